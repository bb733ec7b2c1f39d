// go_router: the Go httprouter peer of `scripts/bench http` for the route
// scenario. It answers what examples/http_api.lua's router does:
//
//	GET /api/NAME    Hello, NAME!   (httprouter's /api/:name)
//
// and nothing else (404, or 405 with Allow for another method).
//
// Built by scripts/bench with Debian's golang-github-julienschmidt-
// httprouter-dev from /usr/share/gocode (GO111MODULE=off, offline).
// Usage: go_router [-addr 127.0.0.1:0]. Once listening it prints
// "listening service=api proto=http addr=HOST:PORT" to stderr (the line
// scripts/bench waits for) and serves until SIGTERM or SIGINT, then exits 0.
// scripts/bench runs it with GOMAXPROCS=1, pinned to the server CPU.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/julienschmidt/httprouter"
)

const contentType = "text/plain; charset=utf-8" // lunet's default

func api(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	w.Header().Set("Content-Type", contentType)
	w.Write([]byte("Hello, " + ps.ByName("name") + "!"))
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "go_router: listen %s: %v\n", *addr, err)
		os.Exit(1)
	}
	router := httprouter.New()
	router.GET("/api/:name", api)
	srv := &http.Server{Handler: router}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		srv.Close()
	}()
	fmt.Fprintf(os.Stderr, "listening service=api proto=http addr=%s\n",
		ln.Addr())
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		fmt.Fprintf(os.Stderr, "go_router: %v\n", err)
		os.Exit(1)
	}
}
