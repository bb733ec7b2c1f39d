#include "framing.h"

#include <string.h>

static int frame_line(const char *buf, size_t len, size_t max,
                      const char **msg, size_t *msglen, size_t *used) {
  size_t scan = len < max + 2 ? len : max + 2; /* room for "\r\n" */
  const char *nl = memchr(buf, '\n', scan);
  if (nl == NULL) return len >= max + 2 ? LUNET_FRAME_TOO_BIG
                                        : LUNET_FRAME_MORE;
  size_t n = (size_t)(nl - buf);
  *used = n + 1;
  if (n > 0 && buf[n - 1] == '\r') n--;
  if (n > max) return LUNET_FRAME_TOO_BIG;
  *msg = buf;
  *msglen = n;
  return LUNET_FRAME_OK;
}

static size_t length_prefix(const char *buf) {
  const unsigned char *p = (const unsigned char *)buf;
  return (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 |
         (size_t)p[3];
}

static int frame_length(const char *buf, size_t len, size_t max,
                        const char **msg, size_t *msglen, size_t *used) {
  if (len < 4) return LUNET_FRAME_MORE;
  size_t n = length_prefix(buf);
  if (n > max) return LUNET_FRAME_TOO_BIG;
  if (len - 4 < n) return LUNET_FRAME_MORE;
  *msg = buf + 4;
  *msglen = n;
  *used = n + 4;
  return LUNET_FRAME_OK;
}

int lunet_frame_next(enum lunet_framing framing, const char *buf, size_t len,
                     size_t max, const char **msg, size_t *msglen,
                     size_t *used) {
  if (framing == LUNET_FRAMING_LINE)
    return frame_line(buf, len, max, msg, msglen, used);
  return frame_length(buf, len, max, msg, msglen, used);
}

int lunet_frame_eof(enum lunet_framing framing, const char *buf, size_t len,
                    size_t max, const char **msg, size_t *msglen,
                    size_t *expected) {
  if (len == 0) return LUNET_FRAME_MORE;
  if (framing == LUNET_FRAMING_LENGTH) {
    *expected = len < 4 ? 4 : 4 + length_prefix(buf);
    return LUNET_FRAME_TRUNCATED;
  }
  size_t n = buf[len - 1] == '\r' ? len - 1 : len;
  if (n > max) return LUNET_FRAME_TOO_BIG;
  *msg = buf;
  *msglen = n;
  return LUNET_FRAME_OK;
}

int lunet_framing_parse(const char *name) {
  if (strcmp(name, "line") == 0) return LUNET_FRAMING_LINE;
  if (strcmp(name, "length") == 0) return LUNET_FRAMING_LENGTH;
  return -1;
}
