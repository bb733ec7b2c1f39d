/* A TCP connection and its Lua box (metatable "lunet.conn").
 *
 * Lifetime: OPEN -> (DRAINING) -> CLOSING -> CLOSED. While OPEN, DRAINING or
 * CLOSING the registry holds a self-ref to the box, so Lua never collects a
 * live conn. Closing calls uv_close once; close_cb runs on_close, NULLs the
 * box, drops the self-ref and frees the struct. Nothing else frees it. */
#ifndef LUNET_CONN_H
#define LUNET_CONN_H

#include <stdint.h>
#include <netinet/in.h>
#include <lua.h>
#include <uv.h>

#include "addr.h"
#include "list.h"

struct lunet_protocol;
struct lunet_transport;
struct lunet_runtime;
struct lunet_service;

enum lunet_conn_state {
  CONN_CONNECTING, /* a lunet.connect client before its connect completes */
  CONN_OPEN,
  CONN_DRAINING,
  CONN_CLOSING,
  CONN_CLOSED
};

struct lunet_conn {
  uv_tcp_t tcp;
  struct lunet_list node; /* service->conns while OPEN, rt->draining after */
  struct lunet_list pending; /* rt->pending_input: buffered messages wait */
  struct lunet_service *svc;
  uint64_t id;
  uint64_t drain_deadline; /* loop time (ms) when DRAINING gives up */
  size_t wq_bytes; /* what queued writes hold (lunet_wq_charge), unwritten */
  const char *close_reason; /* static string */
  int self_ref;
  enum lunet_conn_state state;
  unsigned char reading;
  unsigned char paused_by_user;
  unsigned char paused_by_queue;
  unsigned char held;            /* a protocol layer handles a message */
  unsigned char paused_by_hold;  /* input arrived while held */
  unsigned char paused_by_backlog; /* a pipelined request waits its turn
                                      in `in`: no more is read meanwhile */
  unsigned char ip_counted;      /* holds a max_connections_per_ip slot */
  unsigned char peer_eof;        /* the peer shut its side: no more input, but
                                    what is buffered is still delivered (and
                                    answered) before the conn closes */
  unsigned char started;         /* on_connect has run (after a transport's
                                    handshake): on_close will */
  uint64_t last_read_ms;         /* idle_timeout */
  uint64_t write_stalled_ms;     /* output queued and not moving since */
  /* Fixed at connect (a reload's framing applies to new conns); a
   * protocol may hand the conn to another (lunet_conn_switch). */
  const struct lunet_protocol *proto;
  void *proto_state; /* the protocol's, or NULL */
  const struct lunet_transport *transport; /* fixed at connect */
  void *transport_state;                   /* the transport's, or NULL */
  size_t max_message;
  struct lunet_connect_req *connect_req; /* while CONN_CONNECTING */
  uint32_t http_requests;  /* http: requests answered on this conn */
  char *in;              /* partial message between reads; NULL when none */
  size_t in_len;
  size_t in_cap;
  union lunet_sockaddr peer;
};

/* Registers the "lunet.conn" metatable. */
void lunet_conn_open(lua_State *L);

/* Accepts one pending connection of svc and runs on_connect. */
void lunet_conn_accept(struct lunet_service *svc, uv_stream_t *server);

/* Makes an open conn of svc from a connected stream socket (fuzzing and
 * tests drive a service through a socketpair). NULL on failure. */
struct lunet_conn *lunet__conn_adopt(struct lunet_service *svc, int fd);

/* A client conn in CONN_CONNECTING, its box pinned; NULL on ENOMEM. */
struct lunet_conn *lunet_conn_new_client(struct lunet_service *svc);

/* The client's connect completed: reading starts, on_connect runs. */
void lunet_conn_connected(struct lunet_conn *c);

/* Delivers messages that waited in conns' buffers while reading was
 * paused (rt->input_idle's callback). */
void lunet_conn_pending_cb(uv_idle_t *idle);

/* Starts closing (a connecting client is aborted): graceful waits for the write queue to flush (bounded by
 * the service's drain_timeout), otherwise queued data is dropped. on_close
 * runs later, from close_cb, with reason. Idempotent. */
void lunet_conn_close(struct lunet_conn *c, const char *reason,
                      int graceful);

/* Enforces write_timeout, then the protocol's deadlines or idle_timeout,
 * on svc's conns (once a second). */
void lunet_conn_timeouts(struct lunet_service *svc, uint64_t now);

/* Shutdown: 1 while the protocol is handling a message, so the conn
 * closes once it is answered instead of now. */
int lunet_conn_in_flight(const struct lunet_conn *c);

/* Force-closes draining conns past their deadline (all of them if force). */
void lunet_conn_sweep(struct lunet_runtime *rt, int force);

/* Writes bytes for a protocol layer (HTTP): like conn:write, a conn past
 * write_high_water takes no more input until its queue drains, and one
 * past max_write_queue is dropped as a slow consumer. 0 or a negative UV
 * error (conn closing). */
int lunet_conn_send(struct lunet_conn *c, const char *p, size_t n);

/* The same for the n bytes at p inside the Lua string at absolute index
 * idx of L: the queue pins the string instead of copying it (a response
 * body written to many slow clients is held once). */
int lunet_conn_send_string(struct lunet_conn *c, lua_State *L, int idx,
                           const char *p, size_t n);

/* Holds input (hold = 1) while a protocol layer works on a message: bytes
 * that arrive meanwhile are kept and reading stops until release, which
 * delivers them from the loop. No syscall unless input does arrive. */
void lunet_conn_hold(struct lunet_conn *c, int hold);

/* {==================================================================
 * For protocols (protocol.h)
 * =================================================================== */

/* 1 while input may be handed to the protocol: the conn is open and
 * neither the user (conn:pause), a write queue past its high-water mark
 * nor a protocol's hold paused it. Reading from the socket also needs
 * the peer not to have shut its side. A protocol delivering several
 * messages from one feed checks it after each. */
static inline int lunet_conn_accepts_input(const struct lunet_conn *c) {
  return c->state == CONN_OPEN && !c->paused_by_user && !c->paused_by_queue &&
         !c->paused_by_hold;
}

/* One message (or a raw read) to handler h (an enum lunet_handler:
 * LUNET_ON_DATA or LUNET_ON_MESSAGE), with
 * the service's rate_limit (over it, the conn is closed). A handler error
 * closes this conn only. Nothing when the service has no such handler. */
void lunet_conn_message(struct lunet_conn *c, int h, const char *p, size_t n);

/* Hands the conn to protocol p in place (HTTP/1.1 Upgrade, HTTP/2 prior
 * knowledge), from inside the old protocol's feed: the old one's state is
 * detached, and the bytes after what that feed consumed go to p at once. */
void lunet_conn_switch(struct lunet_conn *c, const struct lunet_protocol *p);

/* Input as if read from the socket (unit tests and fuzzing drive a
 * protocol through it): plaintext, past the transport. */
void lunet__conn_feed(struct lunet_conn *c, const char *p, size_t n);

/* {==================================================================
 * For transports (transport.h)
 * =================================================================== */

/* The plaintext a transport got from the socket, for the protocol. */
void lunet_conn_plaintext(struct lunet_conn *c, const char *p, size_t n);

/* The transport's handshake is done: on_connect runs. */
void lunet_conn_ready(struct lunet_conn *c);

/* The peer ended its input inside the transport (TLS close_notify): as
 * an EOF on the socket, what is buffered is delivered, then it closes. */
void lunet_conn_input_end(struct lunet_conn *c);

/* Bytes for the wire: what the socket takes now, the rest queued, pinned
 * when they are part of the Lua string at index idx of L (0: copied).
 * Counted against the conn's write_high_water (no more input past it)
 * and max_write_queue (UV_ENOBUFS), and the process-wide --max-queued
 * (UV_EOVERFLOW: the caller drops the conn). 0 or a negative UV error. */
int lunet_conn_sock_write(struct lunet_conn *c, const char *p, size_t n,
                          lua_State *L, int idx);

/* }================================================================== */

/* }================================================================== */

/* Pushes conn.tls (the transport's view of the session): 1, or 0 and
 * nothing pushed on a plain conn. */
int lunet_conn_push_tls(lua_State *L, const struct lunet_conn *c);

/* The conn of the box at idx (raises if it is none), or NULL once it is
 * closed. */
struct lunet_conn *lunet_conn_of(lua_State *L, int idx);

/* Pushes the conn's box. */
void lunet_conn_push(lua_State *L, const struct lunet_conn *c);

#endif
