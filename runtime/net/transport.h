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
 * points, so it costs one indirect call each way. A transport with state
 * (a TLS session) keeps it in c->transport_state. */
#ifndef LUNET_TRANSPORT_H
#define LUNET_TRANSPORT_H

#include <stddef.h>
#include <lua.h>

struct lunet_conn;

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
};

/* Plain TCP. */
extern const struct lunet_transport lunet_transport_plain;

#endif
