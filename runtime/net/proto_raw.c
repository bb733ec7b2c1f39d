/* Raw bytes: every read goes to on_data as the socket delivered it, and
 * nothing is ever kept, so a raw conn buffers no input at all. */
#include "conn.h"
#include "protocol.h"
#include "service.h"

static size_t raw_feed(struct lunet_conn *c, const char *buf, size_t len) {
  lunet_conn_message(c, LUNET_ON_DATA, buf, len);
  return len;
}

const struct lunet_protocol lunet_proto_raw = {
    .name = "raw",
    .feed = raw_feed,
};
