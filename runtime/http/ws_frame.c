/* RFC 6455 framing (ws_frame.h): the parser, strict in the way Autobahn
 * tests it, and the helpers that build frames. The parser is a loop over
 * two phases, the frame head (2 to 14 bytes, gathered in p->head even when
 * split across reads) and its payload; every rule of section 5 is checked
 * as soon as the bytes that break it are in, so a hostile peer costs at
 * most one frame head before it is refused. */
#include "ws_frame.h"

#include <stdlib.h>
#include <string.h>

/* {==================================================================
 * UTF-8: a DFA over byte classes (RFC 3629's table of well-formed
 * sequences), with an ASCII fast path.
 * =================================================================== */

enum { UTF8_ACCEPT = 0, UTF8_REJECT = 1, UTF8_CLASSES = 12 };

/* Classes: 0 ASCII; 1 80-8F, 2 90-9F, 3 A0-BF (continuations, split where
 * a lead byte narrows its second byte); 4 never valid (C0 C1 F5-FF);
 * 5 C2-DF; 6 E0; 7 E1-EC EE EF; 8 ED; 9 F0; 10 F1-F3; 11 F4. */
/* clang-format off */
#define X16(c) c, c, c, c, c, c, c, c, c, c, c, c, c, c, c, c
static const unsigned char utf8_class[256] = {
  X16(0), X16(0), X16(0), X16(0), X16(0), X16(0), X16(0), X16(0), /* 00-7F */
  X16(1), X16(2), X16(3), X16(3),                                 /* 80-BF */
  4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,                 /* C0-CF */
  X16(5),                                                         /* D0-DF */
  6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 7,                 /* E0-EF */
  9, 10, 10, 10, 11, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,             /* F0-FF */
};
#undef X16
/* clang-format on */

/* States: 0 accept, 1 reject, 2 one continuation due, 3 two due, 4 after
 * E0 (A0-BF: no overlongs), 5 after ED (80-9F: no surrogates), 6 three
 * due, 7 after F0 (90-BF: no overlongs), 8 after F4 (80-8F: <= U+10FFFF).
 * Rows are states, columns classes. */
static const unsigned char utf8_next[9][UTF8_CLASSES] = {
    {0, 1, 1, 1, 1, 2, 4, 3, 5, 7, 6, 8}, /* 0 */
    {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, /* 1 */
    {1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1}, /* 2 */
    {1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1}, /* 3 */
    {1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1}, /* 4 */
    {1, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1}, /* 5 */
    {1, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, /* 6 */
    {1, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, /* 7 */
    {1, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, /* 8 */
};

#define HIGH_BITS 0x8080808080808080ull

/* Skips the ASCII run at s: 32 bytes a test while they last (one branch
 * for four words), then 8, then single bytes. */
static const unsigned char *skip_ascii(const unsigned char *s,
                                       const unsigned char *end) {
  uint64_t w[4];
  while (end - s >= 32) {
    memcpy(w, s, 32);
    if ((w[0] | w[1] | w[2] | w[3]) & HIGH_BITS) break;
    s += 32;
  }
  while (end - s >= 8) {
    memcpy(w, s, 8);
    if (w[0] & HIGH_BITS) break;
    s += 8;
  }
  while (s < end && *s < 0x80) s++;
  return s;
}

int lunet_utf8_scan(uint32_t *state, const char *p, size_t n) {
  const unsigned char *s = (const unsigned char *)p, *end = s + n;
  uint32_t st = *state;
  if (st == UTF8_REJECT) return 0;
  while (s < end) {
    if (st == UTF8_ACCEPT && (s = skip_ascii(s, end)) == end) break;
    st = utf8_next[st][utf8_class[*s++]];
    if (st == UTF8_REJECT) break;
  }
  *state = st;
  return st != UTF8_REJECT;
}

int lunet_utf8_valid(const char *p, size_t n) {
  uint32_t st = UTF8_ACCEPT;
  return lunet_utf8_scan(&st, p, n) && st == UTF8_ACCEPT;
}

/* }================================================================== */

/* {==================================================================
 * Masking: 8 bytes a step. The key repeats every 4 bytes, so one 64-bit
 * word of it, rotated to the starting offset, serves the whole run.
 * =================================================================== */

static uint64_t mask_word(const unsigned char mask[4], unsigned pos) {
  uint32_t m;
  memcpy(&m, mask, 4);
  pos = (pos & 3) * 8;
  /* Byte i of the word must be mask[(pos + i) & 3]: in memory order,
   * which is a right rotation on a little-endian load. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  if (pos) m = m >> pos | m << (32 - pos);
#else
  if (pos) m = m << pos | m >> (32 - pos);
#endif
  return (uint64_t)m << 32 | m;
}

/* XORs n bytes (a multiple of 8) of src with w into dst, 32 a step. */
static void xor_words(char *dst, const char *src, size_t n, uint64_t w) {
  uint64_t v[4];
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    memcpy(v, src + i, 32);
    v[0] ^= w;
    v[1] ^= w;
    v[2] ^= w;
    v[3] ^= w;
    memcpy(dst + i, v, 32);
  }
  for (; i < n; i += 8) {
    memcpy(v, src + i, 8);
    v[0] ^= w;
    memcpy(dst + i, v, 8);
  }
}

void lunet_ws_mask(char *p, size_t n, const unsigned char mask[4],
                   unsigned pos) {
  size_t words = n & ~(size_t)7;
  xor_words(p, p, words, mask_word(mask, pos));
  for (size_t i = words; i < n; i++) p[i] ^= (char)mask[(pos + i) & 3];
}

void lunet_ws_mask_copy(char *dst, const char *src, size_t n,
                        const unsigned char mask[4]) {
  size_t words = n & ~(size_t)7;
  xor_words(dst, src, words, mask_word(mask, 0));
  for (size_t i = words; i < n; i++) dst[i] = (char)(src[i] ^ mask[i & 3]);
}

/* }================================================================== */

/* {==================================================================
 * Building frames
 * =================================================================== */

size_t lunet_ws_frame_head(unsigned char out[14], int op, int fin, uint64_t len,
                           const unsigned char *mask) {
  unsigned char mbit = mask ? 0x80 : 0;
  size_t n = 2;
  out[0] = (unsigned char)((fin ? LUNET_WS_FIN : 0) | (op & 0x7f));
  if (len < 126) {
    out[1] = (unsigned char)(mbit | len);
  } else if (len <= 0xffff) {
    out[1] = mbit | 126;
    out[2] = (unsigned char)(len >> 8);
    out[3] = (unsigned char)len;
    n = 4;
  } else {
    out[1] = mbit | 127;
    for (int i = 0; i < 8; i++)
      out[2 + i] = (unsigned char)(len >> (56 - 8 * i));
    n = 10;
  }
  if (mask) {
    memcpy(out + n, mask, 4);
    n += 4;
  }
  return n;
}

size_t lunet_ws_close_payload(char out[125], uint16_t code, const char *reason,
                              size_t reason_len) {
  out[0] = (char)(code >> 8);
  out[1] = (char)code;
  if (reason_len > 123) {
    reason_len = 123;
    /* Back off continuation bytes so the cut lands between characters. */
    while (reason_len > 0 && ((unsigned char)reason[reason_len] & 0xc0) == 0x80)
      reason_len--;
  }
  if (reason_len) memcpy(out + 2, reason, reason_len);
  return 2 + reason_len;
}

int lunet_ws_close_code_valid(unsigned code) {
  if (code >= 3000 && code <= 4999) return 1;
  if (code >= 1000 && code <= 1003) return 1;
  return code >= 1007 && code <= 1014;
}

/* }================================================================== */

/* {==================================================================
 * The parser
 * =================================================================== */

/* Once failed, the frame head is dead: head[0] keeps which error it was,
 * so every later call repeats the same code (the struct has no field of
 * its own for it). */
enum ws_error {
  ERR_RSV,
  ERR_RSV1,
  ERR_OPCODE,
  ERR_UNMASKED,
  ERR_MASKED,
  ERR_CTL_FRAGMENTED,
  ERR_CTL_LONG,
  ERR_CLOSE_ONE_BYTE,
  ERR_CONT,
  ERR_INTERLEAVED,
  ERR_LEN_FORM,
  ERR_LEN_TOP_BIT,
  ERR_TOO_BIG,
  ERR_UTF8,
  ERR_CLOSE_CODE,
  ERR_CLOSE_UTF8,
  ERR_NOMEM
};

static const struct {
  uint16_t code;
  const char *text;
} ws_errors[] = {
    [ERR_RSV] = {1002, "reserved bit set"},
    [ERR_RSV1] = {1002, "unexpected RSV1"},
    [ERR_OPCODE] = {1002, "unknown opcode"},
    [ERR_UNMASKED] = {1002, "client frame not masked"},
    [ERR_MASKED] = {1002, "server frame masked"},
    [ERR_CTL_FRAGMENTED] = {1002, "fragmented control frame"},
    [ERR_CTL_LONG] = {1002, "control frame over 125 bytes"},
    [ERR_CLOSE_ONE_BYTE] = {1002, "close frame of one byte"},
    [ERR_CONT] = {1002, "continuation without a message"},
    [ERR_INTERLEAVED] = {1002, "new message inside a fragmented one"},
    [ERR_LEN_FORM] = {1002, "length not in its shortest form"},
    [ERR_LEN_TOP_BIT] = {1002, "64-bit length with its top bit set"},
    [ERR_TOO_BIG] = {1009, "message too big"},
    [ERR_UTF8] = {1007, "invalid UTF-8 in a text message"},
    [ERR_CLOSE_CODE] = {1002, "invalid close code"},
    [ERR_CLOSE_UTF8] = {1007, "invalid UTF-8 in a close reason"},
    [ERR_NOMEM] = {1011, "out of memory"},
};

/* A message buffer bigger than this is given back once it is delivered,
 * so one large message does not pin memory for the life of the conn. */
#define MSG_KEEP 16384
#define MSG_MIN 1024

static int is_control(unsigned op) {
  return op & 0x8;
}

static int is_known(unsigned op) {
  return op <= LUNET_WS_BINARY || (op >= LUNET_WS_CLOSE && op <= LUNET_WS_PONG);
}

static void fail(struct lunet_ws_parser *p, enum ws_error e) {
  p->failed = 1;
  p->head[0] = (unsigned char)e;
}

static void error_event(const struct lunet_ws_parser *p,
                        struct lunet_ws_event *ev) {
  enum ws_error e = (enum ws_error)p->head[0];
  memset(ev, 0, sizeof *ev);
  ev->kind = LUNET_WS_EV_ERROR;
  ev->code = ws_errors[e].code;
  ev->data = ws_errors[e].text;
  ev->len = strlen(ws_errors[e].text);
}

/* The full head length once its first two bytes are in. */
static size_t head_need(const struct lunet_ws_parser *p) {
  if (p->head_len < 2) return 2;
  unsigned len7 = p->head[1] & 0x7f;
  size_t n = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
  return n + (p->head[1] & 0x80 ? 4 : 0);
}

static int in_payload(const struct lunet_ws_parser *p) {
  return p->head_len >= 2 && p->head_len == head_need(p);
}

/* Everything the first two bytes can prove wrong. */
static int check_start(struct lunet_ws_parser *p) {
  unsigned b0 = p->head[0], b1 = p->head[1], op = b0 & 0x0f;
  int masked = (b1 & 0x80) != 0, len7 = b1 & 0x7f;
  enum ws_error e;
  if (b0 & 0x30)
    e = ERR_RSV;
  else if (!is_known(op))
    e = ERR_OPCODE;
  else if ((b0 & LUNET_WS_RSV1) &&
           !(p->deflate && (op == LUNET_WS_TEXT || op == LUNET_WS_BINARY)))
    e = ERR_RSV1;
  else if (p->role == LUNET_WS_SERVER && !masked)
    e = ERR_UNMASKED;
  else if (p->role == LUNET_WS_CLIENT && masked)
    e = ERR_MASKED;
  else if (is_control(op) && !(b0 & LUNET_WS_FIN))
    e = ERR_CTL_FRAGMENTED;
  else if (is_control(op) && len7 > 125)
    e = ERR_CTL_LONG;
  else if (op == LUNET_WS_CLOSE && len7 == 1)
    e = ERR_CLOSE_ONE_BYTE;
  else if (op == LUNET_WS_CONT && !p->msg_opcode)
    e = ERR_CONT;
  else if (!is_control(op) && op != LUNET_WS_CONT && p->msg_opcode)
    e = ERR_INTERLEAVED;
  else
    return 0;
  fail(p, e);
  return -1;
}

/* The payload length of a complete head, or sets failed. */
static uint64_t head_length(struct lunet_ws_parser *p) {
  unsigned len7 = p->head[1] & 0x7f;
  uint64_t v = 0;
  if (len7 < 126) return len7;
  for (int i = 0; i < (len7 == 126 ? 2 : 8); i++) v = v << 8 | p->head[2 + i];
  if (len7 == 127 && (v >> 63))
    fail(p, ERR_LEN_TOP_BIT);
  else if (v < (len7 == 126 ? 126u : 65536u))
    fail(p, ERR_LEN_FORM);
  return v;
}

/* A complete head: checks the length and sets up the frame. */
static void begin_frame(struct lunet_ws_parser *p) {
  uint64_t len = head_length(p);
  unsigned op = p->head[0] & 0x0f;
  if (p->failed) return;
  if (!is_control(op)) {
    size_t before = op == LUNET_WS_CONT ? p->msg_len : 0;
    if (len > p->max_message - before) {
      fail(p, ERR_TOO_BIG);
      return;
    }
    if (op != LUNET_WS_CONT) {
      p->msg_opcode = (unsigned char)op;
      p->msg_compressed = (p->head[0] & LUNET_WS_RSV1) != 0;
      p->utf8_state = UTF8_ACCEPT;
      p->msg_len = 0;
    }
  }
  p->fin = (p->head[0] & LUNET_WS_FIN) != 0;
  p->opcode = (unsigned char)op;
  p->rsv1 = (p->head[0] & LUNET_WS_RSV1) != 0;
  p->masked = (p->head[1] & 0x80) != 0;
  if (p->masked) memcpy(p->mask, p->head + p->head_len - 4, 4);
  p->payload_len = len;
  p->payload_done = 0;
  p->mask_pos = 0;
  p->ctl_len = 0;
}

/* The common case, a whole head in the read: one fixed-size copy (the
 * bytes past the head are copied too, harmlessly, and not consumed). */
static size_t read_whole_head(struct lunet_ws_parser *p, const char *src) {
  memcpy(p->head, src, sizeof p->head);
  p->head_len = 2;
  if (check_start(p) < 0) return 2;
  p->head_len = (unsigned char)head_need(p);
  begin_frame(p);
  return p->head_len;
}

/* Takes head bytes from src; returns how many. */
static size_t read_head(struct lunet_ws_parser *p, const char *src,
                        size_t avail) {
  if (p->head_len == 0 && avail >= sizeof p->head)
    return read_whole_head(p, src);
  size_t used = 0, need = head_need(p);
  while (p->head_len < need && used < avail) {
    size_t k = need - p->head_len;
    if (k > avail - used) k = avail - used;
    memcpy(p->head + p->head_len, src + used, k);
    p->head_len = (unsigned char)(p->head_len + k);
    used += k;
    if (p->head_len == 2 && check_start(p) < 0) return used;
    need = head_need(p);
  }
  if (p->head_len == need) begin_frame(p);
  return used;
}

/* Unmasks the next n payload bytes in place. */
static void unmask(struct lunet_ws_parser *p, char *s, size_t n) {
  if (p->masked) lunet_ws_mask(s, n, p->mask, p->mask_pos);
  p->mask_pos = (p->mask_pos + (unsigned)n) & 3;
  p->payload_done += n;
}

static void set_event(struct lunet_ws_event *ev, enum lunet_ws_event_kind k,
                      int opcode, const char *data, size_t len) {
  ev->kind = k;
  ev->opcode = opcode;
  ev->compressed = 0;
  ev->code = 0;
  ev->data = data;
  ev->len = len;
}

/* A whole control frame's payload (unmasked) is at data. */
static void control_event(struct lunet_ws_parser *p, const char *data,
                          size_t len, struct lunet_ws_event *ev) {
  p->head_len = 0;
  p->ctl_len = 0;
  if (p->opcode == LUNET_WS_PING || p->opcode == LUNET_WS_PONG) {
    set_event(ev,
              p->opcode == LUNET_WS_PING ? LUNET_WS_EV_PING : LUNET_WS_EV_PONG,
              p->opcode, data, len);
    return;
  }
  if (len == 0) {
    set_event(ev, LUNET_WS_EV_CLOSE, LUNET_WS_CLOSE, data, 0);
    ev->code = 1005;
    return;
  }
  unsigned code =
      (unsigned)(unsigned char)data[0] << 8 | (unsigned char)data[1];
  if (!lunet_ws_close_code_valid(code)) {
    fail(p, ERR_CLOSE_CODE);
    return;
  }
  if (!lunet_utf8_valid(data + 2, len - 2)) {
    fail(p, ERR_CLOSE_UTF8);
    return;
  }
  set_event(ev, LUNET_WS_EV_CLOSE, LUNET_WS_CLOSE, data + 2, len - 2);
  ev->code = (uint16_t)code;
}

static size_t read_control(struct lunet_ws_parser *p, char *src, size_t n,
                           struct lunet_ws_event *ev) {
  int whole = p->ctl_len == 0 && n == p->payload_len;
  unmask(p, src, n);
  if (whole) {
    control_event(p, src, n, ev);
    return n;
  }
  memcpy(p->ctl + p->ctl_len, src, n);
  p->ctl_len += n;
  if (p->payload_done == p->payload_len)
    control_event(p, p->ctl, p->ctl_len, ev);
  return n;
}

static int checks_utf8(const struct lunet_ws_parser *p) {
  return p->msg_opcode == LUNET_WS_TEXT && !p->msg_compressed;
}

static void message_event(struct lunet_ws_parser *p, const char *data,
                          size_t len, struct lunet_ws_event *ev) {
  set_event(ev, LUNET_WS_EV_MESSAGE, p->msg_opcode, data, len);
  ev->compressed = p->msg_compressed;
  p->head_len = 0;
  p->msg_opcode = 0;
  p->msg_compressed = 0;
  p->msg_len = 0;
}

/* Room for need bytes in p->msg, doubling but never past max_message
 * (need itself is within it: begin_frame checked). */
static int reserve(struct lunet_ws_parser *p, size_t need) {
  if (need <= p->msg_cap) return 0;
  size_t cap = p->msg_cap ? p->msg_cap : MSG_MIN;
  while (cap < need) cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
  if (cap > p->max_message) cap = p->max_message;
  char *m = realloc(p->msg, cap);
  if (m == NULL) return -1;
  p->msg = m;
  p->msg_cap = cap;
  return 0;
}

/* One unfragmented message wholly inside buf: handed on where it is. */
static size_t read_whole_message(struct lunet_ws_parser *p, char *src, size_t n,
                                 struct lunet_ws_event *ev) {
  unmask(p, src, n);
  if (checks_utf8(p) && !lunet_utf8_valid(src, n)) {
    fail(p, ERR_UTF8);
    return n;
  }
  message_event(p, src, n, ev);
  return n;
}

static size_t read_data(struct lunet_ws_parser *p, char *src, size_t n,
                        struct lunet_ws_event *ev) {
  if (p->fin && p->opcode != LUNET_WS_CONT && p->payload_done == 0 &&
      n == p->payload_len)
    return read_whole_message(p, src, n, ev);
  if (n && reserve(p, p->msg_len + n) < 0) {
    fail(p, ERR_NOMEM);
    return 0;
  }
  unmask(p, src, n);
  if (checks_utf8(p) && !lunet_utf8_scan(&p->utf8_state, src, n)) {
    fail(p, ERR_UTF8);
    return n;
  }
  if (n) memcpy(p->msg + p->msg_len, src, n);
  p->msg_len += n;
  if (p->payload_done < p->payload_len) return n;
  if (!p->fin) {
    p->head_len = 0; /* the next fragment's head */
    return n;
  }
  if (checks_utf8(p) && p->utf8_state != UTF8_ACCEPT) {
    fail(p, ERR_UTF8);
    return n;
  }
  message_event(p, p->msg ? p->msg : "", p->msg_len, ev);
  return n;
}

/* Takes payload bytes from src (as many as the frame still has). */
static size_t read_payload(struct lunet_ws_parser *p, char *src, size_t avail,
                           struct lunet_ws_event *ev) {
  uint64_t left = p->payload_len - p->payload_done;
  size_t n = left < avail ? (size_t)left : avail;
  if (is_control(p->opcode)) return read_control(p, src, n, ev);
  return read_data(p, src, n, ev);
}

/* Between messages, a big buffer goes back (the last event's data may
 * have pointed into it, so only now, at the next call). */
static void trim_message_buffer(struct lunet_ws_parser *p) {
  if (p->msg_opcode == 0 && p->msg_cap > MSG_KEEP) {
    free(p->msg);
    p->msg = NULL;
    p->msg_cap = 0;
  }
}

size_t lunet_ws_parse(struct lunet_ws_parser *p, char *buf, size_t len,
                      struct lunet_ws_event *ev) {
  size_t off = 0;
  if (p->failed) {
    error_event(p, ev);
    return 0;
  }
  trim_message_buffer(p);
  ev->kind = LUNET_WS_EV_NONE;
  for (;;) {
    if (!in_payload(p)) {
      if (off == len) break;
      off += read_head(p, buf + off, len - off);
      if (!p->failed && !in_payload(p)) break;
    } else if (off == len) {
      break; /* mid-payload, nothing more given */
    }
    if (!p->failed) off += read_payload(p, buf + off, len - off, ev);
    if (p->failed) {
      error_event(p, ev);
      return off;
    }
    if (ev->kind != LUNET_WS_EV_NONE) return off;
  }
  memset(ev, 0, sizeof *ev);
  return off;
}

void lunet_ws_parser_init(struct lunet_ws_parser *p, enum lunet_ws_role role,
                          size_t max_message, int deflate) {
  memset(p, 0, sizeof *p);
  p->role = (unsigned char)role;
  p->max_message = max_message;
  p->deflate = deflate != 0;
}

void lunet_ws_parser_free(struct lunet_ws_parser *p) {
  free(p->msg);
  p->msg = NULL;
  p->msg_len = p->msg_cap = 0;
}

size_t lunet_ws_parser_held(const struct lunet_ws_parser *p) {
  return p->msg_cap + p->ctl_len;
}

int lunet_ws_parser_mid_message(const struct lunet_ws_parser *p) {
  return p->msg_opcode != 0;
}

/* }================================================================== */
