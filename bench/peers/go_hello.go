// go_hello: the Go net/http peer of `scripts/bench http`, standard library
// only. It answers the same two things lunet's examples do:
//
//	GET /            Hello, World!         (examples/http_hello.lua: any path)
//	GET /api/NAME    Hello, NAME!          (examples/http_api.lua's /api/:name)
//	GET /big         8 MiB of "x"          (`scripts/bench churn`'s aborts)
//
// Usage: go_hello [-addr 127.0.0.1:0]. Once listening it prints
// "listening service=hello proto=http addr=HOST:PORT" to stderr (the line
// scripts/bench waits for) and serves until SIGTERM or SIGINT, then exits 0.
// scripts/bench runs it with GOMAXPROCS=1, pinned to the server CPU.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

const contentType = "text/plain; charset=utf-8" // lunet's default

func hello(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", contentType)
	w.Write([]byte("Hello, World!"))
}

// The route /api/:name with the standard library's mux: one segment after
// /api/, GET (and HEAD) only, like lunet.router.
func api(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/api/")
	if name == "" || strings.Contains(name, "/") {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Write([]byte("Hello, " + name + "!"))
}

// One 8 MiB body shared by every GET /big, made on the first one so the
// other benchmarks' RSS is not charged for it. The Content-Length is set
// by hand: net/http would otherwise send a body this long chunked.
var (
	bigOnce sync.Once
	bigBody []byte
)

func big(w http.ResponseWriter, r *http.Request) {
	bigOnce.Do(func() { bigBody = bytes.Repeat([]byte("x"), 8<<20) })
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(bigBody)))
	w.Write(bigBody)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "go_hello: listen %s: %v\n", *addr, err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", hello)
	mux.HandleFunc("/api/", api)
	mux.HandleFunc("/big", big)
	srv := &http.Server{Handler: mux}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		srv.Close()
	}()
	fmt.Fprintf(os.Stderr, "listening service=hello proto=http addr=%s\n",
		ln.Addr())
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		fmt.Fprintf(os.Stderr, "go_hello: %v\n", err)
		os.Exit(1)
	}
}
