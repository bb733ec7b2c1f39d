/* Length framing: a 4-byte big-endian length, then the payload, to
 * on_message; a message cut by EOF is logged, never delivered. */
#include "conn.h"
#include "proto_framed.h"
#include "protocol.h"

static size_t length_feed(struct lunet_conn *c, const char *buf, size_t len) {
  return lunet__framed_feed(c, LUNET_FRAMING_LENGTH, buf, len, NULL);
}

static const char *length_eof(struct lunet_conn *c) {
  return lunet__framed_eof(c, LUNET_FRAMING_LENGTH, NULL);
}

const struct lunet_protocol lunet_proto_length = {
    .name = "length",
    .feed = length_feed,
    .eof = length_eof,
};
