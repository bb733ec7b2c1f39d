/* A transport carries a conn's plaintext over its socket: plain TCP
 * (transport_plain.c) now, TLS next. It sits between the socket and the
 * protocol (protocol.h) and is invisible to the protocol: a protocol
 * reads plaintext from feed and writes plaintext with lunet_conn_send.
 *
 * The read path is one call: socket bytes -> transport->read -> the
 * plaintext it carries -> lunet_conn_plaintext -> the protocol. The write
 * path is one call: plaintext -> transport->write -> the bytes for the
 * wire -> lunet_conn_sock_write (uv_try_write, then the conn's bounded
 * write queue). The conn counts, bounds and backpressures what is queued
 * for the wire, whatever the transport made of it.
 *
 * Plain TCP is the identity: its read and write are the conn's own entry
 * points, so it costs one indirect call each way, and it leaves every
 * other entry NULL. A transport with state (a TLS session, tls.h) keeps
 * it in c->transport_state, and what a service's conns share (its
 * certificates) in svc->transport_ctx. */
#ifndef LUNET_TRANSPORT_H
#define LUNET_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <lua.h>

struct lunet_conn;
struct lunet_service;

struct lunet_transport {
  const char *name;

  /* Socket bytes arrived (buf[0..n), the loop's read buffer, valid for
   * the call): hands the plaintext they carry to lunet_conn_plaintext,
   * and may write (a handshake answers). */
  void (*read)(struct lunet_conn *c, const char *buf, size_t n);

  /* Sends plaintext p[0..n); when it is part of the Lua string at index
   * pin_idx of L (0: none) a plain transport may queue a pin to the
   * string instead of a copy. 0, or a negative UV error from
   * lunet_conn_sock_write (UV_ENOBUFS: past max_write_queue). */
  int (*write)(struct lunet_conn *c, const char *p, size_t n, lua_State *L,
               int pin_idx);

  /* The socket is connected (accepted, or a client's connect done) and
   * reading: 0 when the conn is ready at once (on_connect runs now), 1
   * when the transport has a handshake to do first: it then calls
   * lunet_conn_ready once done, or closes the conn. */
  int (*start)(struct lunet_conn *c);

  /* A graceful close begins: the transport's last words (TLS
   * close_notify) are written before the queue drains. */
  void (*shutdown)(struct lunet_conn *c);

  /* Once a second for an open conn: the transport's own deadlines (the
   * handshake's). 1 when it closed the conn. */
  int (*timeouts)(struct lunet_conn *c, uint64_t now);

  /* Once a second per service using it (certificate expiry). */
  void (*tick)(struct lunet_service *svc, uint64_t now);

  /* Pushes what Lua reads as conn.tls (and req.tls): 1, or 0 for nil. */
  int (*push_info)(lua_State *L, const struct lunet_conn *c);

  /* The conn is being freed (after on_close): the state goes. */
  void (*detach)(struct lunet_conn *c);
};

/* Plain TCP. */
extern const struct lunet_transport lunet_transport_plain;

#endif
