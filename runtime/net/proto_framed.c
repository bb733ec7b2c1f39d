#include "proto_framed.h"

#include <inttypes.h>
#include <stdio.h>

#include "conn.h"
#include "log.h"
#include "service.h"

static void framed_reject(struct lunet_conn *c,
                          void (*too_long)(struct lunet_conn *c)) {
  char id[24], max[24], peer[LUNET_ADDR_STRLEN] = "";
  snprintf(id, sizeof id, "%" PRIu64, c->id);
  snprintf(max, sizeof max, "%zu", c->max_message);
  lunet_addr_format(&c->peer.sa, peer, sizeof peer);
  lunet_log(LUNET_LOG_WARN, "message too long", "service", c->svc->name, "conn",
            id, "peer", peer, "max", max, NULL);
  if (too_long != NULL) too_long(c);
  lunet_conn_close(c, "message_too_long", 1);
}

size_t lunet__framed_feed(struct lunet_conn *c, enum lunet_framing f,
                          const char *buf, size_t len,
                          void (*too_long)(struct lunet_conn *c)) {
  size_t off = 0, msglen, used;
  const char *msg;
  while (lunet_conn_accepts_input(c)) {
    int r = lunet_frame_next(f, buf + off, len - off, c->max_message, &msg,
                             &msglen, &used);
    if (r == LUNET_FRAME_MORE) break;
    if (r == LUNET_FRAME_TOO_BIG) {
      framed_reject(c, too_long);
      break;
    }
    off += used;
    lunet_conn_message(c, LUNET_ON_MESSAGE, msg, msglen);
  }
  return off;
}

static void framed_log_cut(struct lunet_conn *c, size_t expected) {
  char id[24], want[24], got[24], peer[LUNET_ADDR_STRLEN] = "";
  snprintf(id, sizeof id, "%" PRIu64, c->id);
  snprintf(want, sizeof want, "%zu", expected);
  snprintf(got, sizeof got, "%zu", c->in_len);
  lunet_addr_format(&c->peer.sa, peer, sizeof peer);
  lunet_log(LUNET_LOG_INFO, "message cut by eof", "service", c->svc->name,
            "conn", id, "peer", peer, "expected", want, "received", got, NULL);
}

const char *lunet__framed_eof(struct lunet_conn *c, enum lunet_framing f,
                              void (*too_long)(struct lunet_conn *c)) {
  const char *msg;
  size_t msglen, expected;
  int r = lunet_frame_eof(f, c->in, c->in_len, c->max_message, &msg, &msglen,
                          &expected);
  if (r == LUNET_FRAME_OK) lunet_conn_message(c, LUNET_ON_MESSAGE, msg, msglen);
  if (r == LUNET_FRAME_TOO_BIG) framed_reject(c, too_long);
  if (r != LUNET_FRAME_TRUNCATED) return "eof";
  framed_log_cut(c, expected);
  return "eof_truncated";
}
