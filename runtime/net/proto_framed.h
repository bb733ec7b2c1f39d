/* What line and length framing share (proto_framed.c): the delivery of
 * whole messages to on_message, and the end of the stream. */
#ifndef LUNET_PROTO_FRAMED_H
#define LUNET_PROTO_FRAMED_H

#include <stddef.h>

#include "framing.h"

struct lunet_conn;

/* Delivers the whole messages at the start of buf while the conn accepts
 * input; returns the bytes consumed. A message over the conn's limit
 * closes it ("message_too_long"), after too_long(c) had its say. */
size_t lunet__framed_feed(struct lunet_conn *c, enum lunet_framing f,
                          const char *buf, size_t len,
                          void (*too_long)(struct lunet_conn *c));

/* The end of the stream: the last line is delivered, a cut
 * length-prefixed message logged. Returns the close reason. */
const char *lunet__framed_eof(struct lunet_conn *c, enum lunet_framing f,
                              void (*too_long)(struct lunet_conn *c));

#endif
