// The Go peer of `scripts/bench ws`: net/http with Debian's
// gorilla/websocket (golang-github-gorilla-websocket-dev, built with
// GO111MODULE=off against /usr/share/gocode), the routes of
// bench/ws_echo.lua and bench/ws_fanout.lua:
//
//	/echo  every message is sent back as it came (text or binary)
//	/sub   receives every message sent on /pub
//	/pub   its messages go to the hub, which hands each to every /sub
//
// The hub is one goroutine owning the set of subscribers, each of which
// has a writer goroutine and a buffered queue: the usual gorilla design.
// A full queue blocks the hub (no message is dropped: the benchmark
// checks every delivery). scripts/bench runs it with GOMAXPROCS=1, one
// CPU as lunet has.
//
//	ws-gorilla [-addr 127.0.0.1:0]
//
// Prints "listening service=ws proto=tcp addr=IP:PORT" on stderr once
// listening, the line scripts/bench waits for; exits 0 on SIGTERM or
// SIGINT, as the other servers do.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/gorilla/websocket"
)

const queueLen = 1024 // messages waiting for one subscriber's writer

type message struct {
	kind int
	data []byte
}

type hub struct {
	join    chan chan message
	leave   chan chan message
	publish chan message
}

func (h *hub) run() {
	subs := make(map[chan message]struct{})
	for {
		select {
		case q := <-h.join:
			subs[q] = struct{}{}
		case q := <-h.leave:
			if _, ok := subs[q]; ok {
				delete(subs, q)
				close(q)
			}
		case m := <-h.publish:
			for q := range subs {
				q <- m
			}
		}
	}
}

// The default buffers (4 KiB each way) are what a gorilla server has
// unless told otherwise; compression is off, as in the other servers.
var upgrader = websocket.Upgrader{
	CheckOrigin: func(*http.Request) bool { return true },
}

func echo(w http.ResponseWriter, r *http.Request) {
	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	for {
		kind, data, err := c.ReadMessage()
		if err != nil {
			return
		}
		if c.WriteMessage(kind, data) != nil {
			return
		}
	}
}

// The writer of one subscriber; its reader only notices the close.
func (h *hub) subscribe(w http.ResponseWriter, r *http.Request) {
	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	q := make(chan message, queueLen)
	h.join <- q
	go func() {
		for {
			if _, _, err := c.NextReader(); err != nil {
				h.leave <- q
				return
			}
		}
	}()
	for m := range q {
		if c.WriteMessage(m.kind, m.data) != nil {
			break
		}
	}
	c.Close()
	for range q { // drained until the hub lets go of it
	}
}

func (h *hub) publisher(w http.ResponseWriter, r *http.Request) {
	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	for {
		kind, data, err := c.ReadMessage()
		if err != nil {
			return
		}
		h.publish <- message{kind, data}
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()
	h := &hub{make(chan chan message), make(chan chan message),
		make(chan message, queueLen)}
	go h.run()
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", echo)
	mux.HandleFunc("/sub", h.subscribe)
	mux.HandleFunc("/pub", h.publisher)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ws-gorilla:", err)
		os.Exit(1)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		os.Exit(0)
	}()
	fmt.Fprintf(os.Stderr, "listening service=ws proto=tcp addr=%s\n",
		ln.Addr())
	fmt.Fprintln(os.Stderr, "ws-gorilla:", http.Serve(ln, mux))
	os.Exit(1)
}
