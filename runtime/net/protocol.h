/* A protocol turns the plaintext of a conn into events and back: raw bytes
 * (on_data), line or length framing (on_message), HTTP/1.1, and later
 * WebSocket and HTTP/2. Each is one file that fills in this table; a conn
 * holds a pointer to its protocol's table and one opaque state pointer,
 * and conn.c calls only the table, never a protocol by name.
 *
 * The conn keeps what the rules of every protocol share: the socket, the
 * write queue and its backpressure (a protocol writes through
 * lunet_conn_send and is given no input while the queue is past its
 * high-water mark), the bytes a protocol left unconsumed, limits, timeouts
 * that need no protocol knowledge, and the lifetime rule. */
#ifndef LUNET_PROTOCOL_H
#define LUNET_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

struct lunet_conn;

struct lunet_protocol {
  const char *name;

  /* Bytes arrived: consumes what it can of buf[0..len) and returns how
   * much. The conn keeps the rest and offers it again, with whatever
   * follows, once more bytes arrive, or, for a protocol with
   * one_message_per_turn, on the next loop turn. A protocol may close the
   * conn, or hand it to another protocol (lunet_conn_switch): the conn
   * then feeds the rest of buf to the new one at once. */
  size_t (*feed)(struct lunet_conn *c, const char *buf, size_t len);
  /* buf is always the conn's own memory (the loop's read buffer, the
   * conn's kept bytes, a transport's plaintext), so a protocol may rewrite
   * it in place (WebSocket unmasks payloads where they lie). */

  /* The peer shut its side and everything kept has been offered: says
   * what the bytes still kept (c->in) mean, and returns the close reason
   * ("eof", "eof_truncated", ...). NULL: "eof". */
  const char *(*eof)(struct lunet_conn *c);

  /* Once a second, for an open conn: the protocol's own deadlines. NULL:
   * the service's idle_timeout. */
  void (*timeouts)(struct lunet_conn *c, uint64_t now);

  /* 1 while a message is being handled: a graceful shutdown lets it
   * finish (its answer closes the conn). NULL: never. */
  int (*in_flight)(const struct lunet_conn *c);

  /* The conn is being freed, or handed to another protocol: the state
   * goes. NULL: no state. */
  void (*detach)(struct lunet_conn *c);

  /* The conn is closing gracefully for a reason of its own (shutdown,
   * idle, a slow consumer): the protocol may queue a last message that
   * says why (WebSocket's close frame, HTTP/2's GOAWAY). NULL: none. */
  void (*goodbye)(struct lunet_conn *c, const char *reason);

  /* The write queue drained below half its high-water mark. NULL: the
   * service's on_drain(conn). */
  void (*drain)(struct lunet_conn *c);

  /* Sent, best effort, to a connection refused at accept (HTTP: 503). */
  const char *refusal;
  size_t refusal_len;

  /* The protocol stops at the end of each message so the loop can turn
   * (HTTP answers one request at a time): what it leaves are messages
   * waiting for their turn, not an incomplete one, so the conn reads no
   * more until they are consumed. */
  unsigned char one_message_per_turn;
};

/* Raw bytes: each read goes to on_data as it came (proto_raw.c). */
extern const struct lunet_protocol lunet_proto_raw;
/* Lines, LF or CRLF, to on_message (proto_line.c). */
extern const struct lunet_protocol lunet_proto_line;
/* 4-byte big-endian length, then the payload, to on_message
 * (proto_length.c). */
extern const struct lunet_protocol lunet_proto_length;

#endif
