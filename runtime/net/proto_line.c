/* Line framing: LF or CRLF lines to on_message; at EOF a last line needs
 * no newline. A line client over max_line is told why before the close. */
#include <stdio.h>

#include "conn.h"
#include "proto_framed.h"
#include "protocol.h"

static void line_too_long(struct lunet_conn *c) {
  char line[96];
  int n = snprintf(line, sizeof line, "error: line too long (max %zu bytes)\n",
                   c->max_message);
  lunet_conn_send(c, line, (size_t)n);
}

static size_t line_feed(struct lunet_conn *c, const char *buf, size_t len) {
  return lunet__framed_feed(c, LUNET_FRAMING_LINE, buf, len, line_too_long);
}

static const char *line_eof(struct lunet_conn *c) {
  return lunet__framed_eof(c, LUNET_FRAMING_LINE, line_too_long);
}

const struct lunet_protocol lunet_proto_line = {
    .name = "line",
    .feed = line_feed,
    .eof = line_eof,
};
