/* ws_frame: the RFC 6455 parser and frame builders. Every stream is fed
 * whole, a byte at a time and split at every point, each piece placed
 * against a guard page, and must give the same events; every rule of
 * section 5 is a table row with its exact close code and, fed a byte at a
 * time, the exact byte at which it is refused. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "ws_frame.h"

/* {==================================================================
 * Feeding a stream and recording its events
 * =================================================================== */

#define MAX_EVENTS 16

struct rec {
  int kind, opcode, compressed, code;
  size_t len;
  char *data;
  int in_buf; /* data pointed into the piece given */
};

struct run {
  struct rec ev[MAX_EVENTS];
  int n;
  size_t error_at; /* stream offset consumed when ERROR came, else 0 */
  size_t max_held;
  size_t last_piece; /* poisoned before the next, to catch stale pointers */
};

static void run_free(struct run *r) {
  for (int i = 0; i < r->n; i++) free(r->ev[i].data);
  r->n = 0;
}

static void record(struct run *r, const struct lunet_ws_event *ev,
                   const char *piece, size_t piece_len) {
  CHECK(r->n < MAX_EVENTS);
  if (r->n >= MAX_EVENTS) return;
  struct rec *e = &r->ev[r->n++];
  e->kind = ev->kind;
  e->opcode = ev->opcode;
  e->compressed = ev->compressed;
  e->code = ev->code;
  e->len = ev->len;
  e->data = malloc(ev->len + 1);
  if (ev->len) memcpy(e->data, ev->data, ev->len);
  e->data[ev->len] = '\0';
  e->in_buf = ev->len > 0 && ev->data >= piece && ev->data < piece + piece_len;
}

/* One piece, copied to end just before a guard page; returns 0 once
 * ERROR came. */
static int feed_piece(struct lunet_ws_parser *p, struct run *r, char *end,
                      const char *bytes, size_t n, size_t stream_off) {
  char *piece = end - n;
  size_t off = 0;
  memset(end - r->last_piece, 0xa5, r->last_piece);
  memcpy(piece, bytes, n);
  r->last_piece = n;
  for (;;) {
    struct lunet_ws_event ev;
    size_t used = lunet_ws_parse(p, piece + off, n - off, &ev);
    CHECK(used <= n - off);
    off += used;
    size_t held = lunet_ws_parser_held(p);
    if (held > r->max_held) r->max_held = held;
    if (ev.kind == LUNET_WS_EV_NONE) {
      CHECK_INT(off, n);
      return 1;
    }
    record(r, &ev, piece, n);
    if (ev.kind == LUNET_WS_EV_ERROR) {
      r->error_at = stream_off + off;
      /* Sticky: nothing more parses, the same error again. */
      struct lunet_ws_event again;
      CHECK_INT(lunet_ws_parse(p, piece + off, n - off, &again), 0);
      CHECK_INT(again.kind, LUNET_WS_EV_ERROR);
      CHECK_INT(again.code, ev.code);
      CHECK_INT(p->failed, 1);
      return 0;
    }
  }
}

struct cfg {
  enum lunet_ws_role role;
  int deflate;
  size_t max;
};

/* Feeds s in pieces of `step` bytes (0: whole), or, with split > 0, in
 * two pieces cut at split. Each piece ends at the same guard page. */
static void feed(const struct cfg *c, const char *s, size_t len, size_t step,
                 size_t split, struct run *r) {
  struct lunet_ws_parser p;
  struct guard g;
  char *end = guard_alloc(&g, len) + len;
  memset(r, 0, sizeof *r);
  lunet_ws_parser_init(&p, c->role, c->max, c->deflate);
  if (split) {
    if (feed_piece(&p, r, end, s, split, 0))
      feed_piece(&p, r, end, s + split, len - split, split);
  } else {
    size_t piece = step ? step : len;
    for (size_t off = 0; off < len; off += piece) {
      size_t n = len - off < piece ? len - off : piece;
      if (!feed_piece(&p, r, end, s + off, n, off)) break;
    }
    if (len == 0) feed_piece(&p, r, end, s, 0, 0);
  }
  lunet_ws_parser_free(&p);
  guard_free(&g);
}

static int same_events(const struct run *a, const struct run *b) {
  if (a->n != b->n) return 0;
  for (int i = 0; i < a->n; i++) {
    const struct rec *x = &a->ev[i], *y = &b->ev[i];
    if (x->kind != y->kind || x->opcode != y->opcode ||
        x->compressed != y->compressed || x->code != y->code ||
        x->len != y->len || memcmp(x->data, y->data, x->len) != 0)
      return 0;
  }
  return 1;
}

/* Whole, byte by byte, and every two-piece split give the same events. */
static void check_split_invariance(const struct cfg *c, const char *s,
                                   size_t len, const char *name) {
  struct run whole, other;
  feed(c, s, len, 0, 0, &whole);
  CHECK_SCOPE();
  feed(c, s, len, 1, 0, &other);
  CHECK(same_events(&whole, &other));
  run_free(&other);
  for (size_t cut = 1; cut < len && len < 4096; cut++) {
    feed(c, s, len, 0, cut, &other);
    CHECK(same_events(&whole, &other));
    run_free(&other);
    if (check_failed != check_note_mark) {
      CHECK_NOTE("%s split at %zu", name, cut);
      break;
    }
  }
  CHECK_NOTE("%s (byte at a time or split)", name);
  run_free(&whole);
}

/* "81 85 37fa" -> bytes; returns the length. */
static size_t unhex(const char *hex, char *out) {
  size_t n = 0;
  int hi = -1;
  for (; *hex; hex++) {
    int v;
    if (*hex >= '0' && *hex <= '9')
      v = *hex - '0';
    else if (*hex >= 'a' && *hex <= 'f')
      v = *hex - 'a' + 10;
    else
      continue;
    if (hi < 0) {
      hi = v;
    } else {
      out[n++] = (char)(hi << 4 | v);
      hi = -1;
    }
  }
  return n;
}

/* A frame built with our own head and mask helpers. */
static size_t build(char *out, int op, int fin, const char *payload, size_t len,
                    const unsigned char *mask) {
  size_t h = lunet_ws_frame_head((unsigned char *)out, op, fin, len, mask);
  if (mask)
    lunet_ws_mask_copy(out + h, payload, len, mask);
  else
    memcpy(out + h, payload, len);
  return h + len;
}

/* }================================================================== */

static const struct cfg server = {LUNET_WS_SERVER, 0, 1 << 20};
static const struct cfg client = {LUNET_WS_CLIENT, 0, 1 << 20};

/* RFC 6455 5.7, byte for byte. */
static void check_rfc_examples(void) {
  char s[64];
  struct run r;
  size_t n = unhex("81 05 48 65 6c 6c 6f", s);
  feed(&client, s, n, 0, 0, &r);
  CHECK_INT(r.n, 1);
  CHECK_INT(r.ev[0].kind, LUNET_WS_EV_MESSAGE);
  CHECK_INT(r.ev[0].opcode, LUNET_WS_TEXT);
  CHECK_STR(r.ev[0].data, "Hello");
  CHECK(r.ev[0].in_buf); /* whole in one read: no copy */
  check_split_invariance(&client, s, n, "rfc unmasked Hello");
  run_free(&r);

  n = unhex("81 85 37 fa 21 3d 7f 9f 4d 51 58", s);
  feed(&server, s, n, 0, 0, &r);
  CHECK_INT(r.n, 1);
  CHECK_STR(r.ev[0].data, "Hello");
  CHECK(r.ev[0].in_buf);
  check_split_invariance(&server, s, n, "rfc masked Hello");
  run_free(&r);

  n = unhex("01 03 48 65 6c 80 02 6c 6f", s);
  feed(&client, s, n, 0, 0, &r);
  CHECK_INT(r.n, 1);
  CHECK_STR(r.ev[0].data, "Hello");
  CHECK(!r.ev[0].in_buf); /* fragmented: reassembled */
  check_split_invariance(&client, s, n, "rfc fragmented Hello");
  run_free(&r);

  n = unhex("89 05 48 65 6c 6c 6f", s);
  feed(&client, s, n, 0, 0, &r);
  CHECK_INT(r.n, 1);
  CHECK_INT(r.ev[0].kind, LUNET_WS_EV_PING);
  CHECK_STR(r.ev[0].data, "Hello");
  run_free(&r);

  n = unhex("8a 85 37 fa 21 3d 7f 9f 4d 51 58", s);
  feed(&server, s, n, 0, 0, &r);
  CHECK_INT(r.n, 1);
  CHECK_INT(r.ev[0].kind, LUNET_WS_EV_PONG);
  CHECK_STR(r.ev[0].data, "Hello");
  run_free(&r);

  /* Our head builder writes the same bytes. */
  unsigned char h[14], key[4] = {0x37, 0xfa, 0x21, 0x3d};
  CHECK_INT(lunet_ws_frame_head(h, LUNET_WS_TEXT, 1, 5, NULL), 2);
  CHECK(h[0] == 0x81 && h[1] == 0x05);
  CHECK_INT(lunet_ws_frame_head(h, LUNET_WS_PONG, 1, 5, key), 6);
  CHECK(h[0] == 0x8a && h[1] == 0x85 && memcmp(h + 2, key, 4) == 0);
  char masked[5];
  lunet_ws_mask_copy(masked, "Hello", 5, key);
  CHECK(memcmp(masked, "\x7f\x9f\x4d\x51\x58", 5) == 0);
}

/* 256 bytes and 64 KiB in one unmasked binary frame (RFC 6455 5.7). */
static void check_rfc_lengths(void) {
  static const char *heads[] = {"82 7e 01 00", "82 7f 00 00 00 00 00 01 00 00"};
  static const size_t lens[] = {256, 65536};
  for (int i = 0; i < 2; i++) {
    char *s = malloc(lens[i] + 16);
    size_t h = unhex(heads[i], s);
    for (size_t j = 0; j < lens[i]; j++) s[h + j] = (char)(j * 7);
    struct run whole, bytes;
    feed(&client, s, h + lens[i], 0, 0, &whole);
    feed(&client, s, h + lens[i], 1, 0, &bytes);
    CHECK_SCOPE();
    CHECK_INT(whole.n, 1);
    CHECK_INT(whole.ev[0].len, lens[i]);
    CHECK(whole.ev[0].len == lens[i] &&
          memcmp(whole.ev[0].data, s + h, lens[i]) == 0);
    CHECK(whole.ev[0].in_buf);
    CHECK(same_events(&whole, &bytes));
    CHECK_NOTE("rfc length %zu", lens[i]);
    run_free(&whole);
    run_free(&bytes);
    free(s);
  }
}

/* {==================================================================
 * Tables: streams that must parse to given events, and streams that
 * must fail with a given code at a given byte. Masked rows use the key
 * 00000000 so their payloads read as plain text.
 * =================================================================== */

#define M0 "00 00 00 00 "

struct want {
  int kind, op_or_code;
  const char *payload;
  int compressed;
};

struct valid_case {
  const char *name;
  struct cfg cfg;
  const char *hex;
  struct want ev[4];
  int n;
};

#define TXT(s) \
  { LUNET_WS_EV_MESSAGE, LUNET_WS_TEXT, s, 0 }
#define BIN(s) \
  { LUNET_WS_EV_MESSAGE, LUNET_WS_BINARY, s, 0 }
#define PING(s) \
  { LUNET_WS_EV_PING, LUNET_WS_PING, s, 0 }
#define PONG(s) \
  { LUNET_WS_EV_PONG, LUNET_WS_PONG, s, 0 }
#define CLOSE(code, s) \
  { LUNET_WS_EV_CLOSE, code, s, 0 }

static const struct valid_case valid_cases[] = {
    {"empty text", {LUNET_WS_SERVER, 0, 1 << 20}, "81 80" M0, {TXT("")}, 1},
    {"empty binary", {LUNET_WS_CLIENT, 0, 1 << 20}, "82 00", {BIN("")}, 1},
    {"two messages in one read",
     {LUNET_WS_CLIENT, 0, 1 << 20},
     "81 02 68 69 82 01 21",
     {TXT("hi"), BIN("!")},
     2},
    {"ping between fragments",
     {LUNET_WS_SERVER, 0, 1 << 20},
     "01 83" M0 "48 65 6c 89 82" M0 "70 31 80 82" M0 "6c 6f",
     {PING("p1"), TXT("Hello")},
     2},
    {"pong and close between fragments",
     {LUNET_WS_CLIENT, 0, 1 << 20},
     "02 01 61 8a 00 00 01 62 88 02 03 e8 80 01 63",
     {PONG(""), CLOSE(1000, ""), BIN("abc")},
     3},
    {"empty fragments",
     {LUNET_WS_SERVER, 0, 1 << 20},
     "01 80" M0 "00 80" M0 "80 80" M0,
     {TXT("")},
     1},
    {"empty close is 1005",
     {LUNET_WS_SERVER, 0, 1 << 20},
     "88 80" M0,
     {CLOSE(1005, "")},
     1},
    {"close with reason",
     {LUNET_WS_SERVER, 0, 1 << 20},
     "88 84" M0 "0f a0 6f 6b",
     {CLOSE(4000, "ok")},
     1},
    {"close 3000 with UTF-8 reason",
     {LUNET_WS_CLIENT, 0, 1 << 20},
     "88 04 0b b8 c3 a9",
     {CLOSE(3000, "\xc3\xa9")},
     1},
    {"UTF-8 split across fragments",
     {LUNET_WS_SERVER, 0, 1 << 20},
     "01 81" M0 "e2 00 81" M0 "82 80 81" M0 "ac",
     {TXT("\xe2\x82\xac")},
     1},
    {"exactly max_message",
     {LUNET_WS_SERVER, 0, 16},
     "02 88" M0 "30 31 32 33 34 35 36 37 80 88" M0 "38 39 61 62 63 64 65 66",
     {BIN("0123456789abcdef")},
     1},
    {"RSV1 text with deflate: not UTF-8 checked",
     {LUNET_WS_SERVER, 1, 64},
     "c1 82" M0 "ff fe",
     {{LUNET_WS_EV_MESSAGE, LUNET_WS_TEXT, "\xff\xfe", 1}},
     1},
    {"RSV1 fragmented binary with deflate",
     {LUNET_WS_SERVER, 1, 64},
     "42 81" M0 "01 80 81" M0 "02",
     {{LUNET_WS_EV_MESSAGE, LUNET_WS_BINARY, "\x01\x02", 1}},
     1},
    {"ping of 125",
     {LUNET_WS_CLIENT, 0, 0},
     "89 7d"
     "61616161616161616161616161616161616161616161616161"
     "61616161616161616161616161616161616161616161616161"
     "61616161616161616161616161616161616161616161616161"
     "61616161616161616161616161616161616161616161616161"
     "61616161616161616161616161616161616161616161616161",
     {PING("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
           "aaaaaaaaaaaaaaaaaaaaaaaaa")},
     1},
};

static void check_valid_case(const struct valid_case *t) {
  char s[512];
  size_t n = unhex(t->hex, s);
  struct run r;
  feed(&t->cfg, s, n, 0, 0, &r);
  CHECK_SCOPE();
  CHECK_INT(r.n, t->n);
  for (int i = 0; i < t->n && i < r.n; i++) {
    const struct want *w = &t->ev[i];
    CHECK_INT(r.ev[i].kind, w->kind);
    if (w->kind == LUNET_WS_EV_CLOSE)
      CHECK_INT(r.ev[i].code, w->op_or_code);
    else
      CHECK_INT(r.ev[i].opcode, w->op_or_code);
    CHECK_INT(r.ev[i].len, strlen(w->payload));
    CHECK_STR(r.ev[i].data, w->payload);
    CHECK_INT(r.ev[i].compressed, w->compressed);
  }
  CHECK_NOTE("valid case '%s'", t->name);
  run_free(&r);
  check_split_invariance(&t->cfg, s, n, t->name);
}

struct error_case {
  const char *name;
  struct cfg cfg;
  const char *hex;
  int code;
  size_t at; /* fed a byte at a time: bytes consumed when refused */
};

#define S0 \
  { LUNET_WS_SERVER, 0, 1 << 20 }
#define C0 \
  { LUNET_WS_CLIENT, 0, 1 << 20 }
#define S1 \
  { LUNET_WS_SERVER, 1, 1 << 20 }

static const struct error_case error_cases[] = {
    {"server: unmasked frame", S0, "81 05 48 65 6c 6c 6f", 1002, 2},
    {"client: masked frame", C0, "81 85" M0 "48 65 6c 6c 6f", 1002, 2},
    {"RSV2", S0, "a1 80" M0, 1002, 2},
    {"RSV3", S0, "91 80" M0, 1002, 2},
    {"RSV2 with deflate", S1, "a1 80" M0, 1002, 2},
    {"RSV1 without deflate", S0, "c1 80" M0, 1002, 2},
    {"RSV1 on a continuation", S1, "41 80" M0 "c0 80" M0, 1002, 8},
    {"RSV1 on a ping", S1, "c9 80" M0, 1002, 2},
    {"RSV1 on a close", S1, "c8 80" M0, 1002, 2},
    {"RSV1 on a pong", S1, "ca 80" M0, 1002, 2},
    {"opcode 3", S0, "83 80" M0, 1002, 2},
    {"opcode 7", S0, "87 80" M0, 1002, 2},
    {"opcode 0xB", S0, "8b 80" M0, 1002, 2},
    {"opcode 0xF", S0, "8f 80" M0, 1002, 2},
    {"fragmented ping", S0, "09 80" M0, 1002, 2},
    {"fragmented close", C0, "08 00", 1002, 2},
    {"ping of 126, on its head alone", S0, "89 fe 00 7e" M0, 1002, 2},
    {"pong of 127-form length", C0, "8a 7f", 1002, 2},
    {"close of one byte", S0, "88 81" M0 "03", 1002, 2},
    {"continuation first", S0, "80 80" M0, 1002, 2},
    {"non-final continuation first", C0, "00 00", 1002, 2},
    {"text inside a fragmented text", S0, "01 80" M0 "81 80" M0, 1002, 8},
    {"binary inside a fragmented text", C0, "01 01 61 02 00", 1002, 5},
    {"16-bit form for 125", S0, "82 fe 00 7d" M0, 1002, 8},
    {"16-bit form for 0", C0, "82 7e 00 00", 1002, 4},
    {"64-bit form for 65535", C0, "82 7f 00 00 00 00 00 00 ff ff", 1002, 10},
    {"64-bit form for 125", S0, "82 ff 00 00 00 00 00 00 00 7d" M0, 1002, 14},
    {"64-bit length top bit", C0, "82 7f 80 00 00 00 00 00 00 00", 1002, 10},
    {"over max_message", {LUNET_WS_SERVER, 0, 16}, "82 91" M0, 1009, 6},
    {"1 GiB head", S0, "82 ff 00 00 00 00 40 00 00 00" M0, 1009, 14},
    {"1 GiB head, client", C0, "82 7f 00 00 00 00 40 00 00 00", 1009, 10},
    {"fragments over max_message",
     {LUNET_WS_SERVER, 0, 16},
     "02 88" M0 "30 31 32 33 34 35 36 37 80 89" M0,
     1009,
     20},
    {"ping between fragments over max",
     {LUNET_WS_CLIENT, 0, 4},
     "01 02 61 62 89 00 80 03",
     1009,
     8},
    {"bad UTF-8 byte", S0, "81 83" M0 "61 ff 61", 1007, 8},
    {"bad UTF-8 across fragments", S0, "01 81" M0 "e2 80 81" M0 "28", 1007, 14},
    {"overlong after a read boundary", C0, "81 02 e0 80", 1007, 4},
    {"surrogate", C0, "81 03 ed a0 80", 1007, 4},
    {"over U+10FFFF", C0, "81 04 f4 90 80 80", 1007, 4},
    {"truncated at the end", C0, "81 02 e2 82", 1007, 4},
    {"truncated at the end of fragments", S0, "01 81" M0 "e2 80 81" M0 "82",
     1007, 14},
    {"close code 999", S0, "88 82" M0 "03 e7", 1002, 8},
    {"close code 1004", S0, "88 82" M0 "03 ec", 1002, 8},
    {"close code 1005", S0, "88 82" M0 "03 ed", 1002, 8},
    {"close code 1006", S0, "88 82" M0 "03 ee", 1002, 8},
    {"close code 1015", S0, "88 82" M0 "03 f7", 1002, 8},
    {"close code 1016", C0, "88 02 03 f8", 1002, 4},
    {"close code 2999", C0, "88 02 0b b7", 1002, 4},
    {"close code 5000", C0, "88 02 13 88", 1002, 4},
    {"close code 0", C0, "88 02 00 00", 1002, 4},
    {"close reason bad UTF-8", S0, "88 83" M0 "03 e8 ff", 1007, 9},
    {"close reason truncated UTF-8", C0, "88 03 03 e8 c3", 1007, 5},
};

static void check_error_case(const struct error_case *t) {
  char s[512];
  size_t n = unhex(t->hex, s);
  struct run whole, bytes;
  feed(&t->cfg, s, n, 0, 0, &whole);
  feed(&t->cfg, s, n, 1, 0, &bytes);
  CHECK_SCOPE();
  CHECK(whole.n >= 1);
  if (whole.n >= 1) {
    CHECK_INT(whole.ev[whole.n - 1].kind, LUNET_WS_EV_ERROR);
    CHECK_INT(whole.ev[whole.n - 1].code, t->code);
    CHECK(whole.ev[whole.n - 1].len > 0);
  }
  CHECK(same_events(&whole, &bytes));
  CHECK_INT(bytes.error_at, t->at);
  CHECK_NOTE("error case '%s'", t->name);
  run_free(&whole);
  run_free(&bytes);
  check_split_invariance(&t->cfg, s, n, t->name);
}

/* Every opcode: 3-7 and 0xB-0xF refused, the rest fine. */
static void check_all_opcodes(void) {
  for (int op = 0; op < 16; op++) {
    char s[8] = {(char)(0x80 | op), 0};
    struct run r;
    feed(&client, s, 2, 0, 0, &r);
    int known = op == 1 || op == 2 || op == 8 || op == 9 || op == 10;
    CHECK_SCOPE();
    CHECK_INT(r.n, 1);
    if (known)
      CHECK(r.ev[0].kind != LUNET_WS_EV_ERROR);
    else
      CHECK_INT(r.ev[0].code, 1002); /* op 0: continuation first */
    CHECK_NOTE("opcode %d", op);
    run_free(&r);
  }
}

/* }================================================================== */

/* {==================================================================
 * UTF-8
 * =================================================================== */

struct utf8_case {
  const char *s;
  int fail_at; /* first impossible byte; -1 valid; -2 valid but cut */
};

static const struct utf8_case utf8_cases[] = {
    {"", -1},
    {"plain ASCII, longer than one word", -1},
    {"\xc2\x80", -1},
    {"\xdf\xbf", -1},
    {"\xe0\xa0\x80", -1},
    {"\xed\x9f\xbf", -1}, /* U+D7FF, just below the surrogates */
    {"\xee\x80\x80", -1}, /* U+E000, just above */
    {"\xef\xbf\xbf", -1},
    {"\xf0\x90\x80\x80", -1},
    {"\xf4\x8f\xbf\xbf", -1}, /* U+10FFFF */
    {"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", -1},
    {"12345678\xe2\x82\xac"
     "12345678\xf0\x9f\x98\x80",
     -1},
    {"\xc0\x80", 0}, /* overlong NUL */
    {"\xc1\xbf", 0},
    {"\xe0\x80\x80", 1},
    {"\xe0\x9f\xbf", 1},
    {"\xf0\x80\x80\x80", 1},
    {"\xf0\x8f\xbf\xbf", 1},
    {"\xed\xa0\x80", 1}, /* U+D800 */
    {"\xed\xad\xbf", 1},
    {"\xed\xbf\xbf", 1},     /* U+DFFF */
    {"\xf4\x90\x80\x80", 1}, /* U+110000 */
    {"\xf5\x80\x80\x80", 0},
    {"\xf8\x88\x80\x80\x80", 0},
    {"\xff", 0},
    {"\xfe", 0},
    {"\x80", 0},
    {"abcdefgh\xbf", 8},
    {"\xc2\x41", 1},
    {"\xe2\x82\x41", 2},
    {"\xf0\x9f\x98\x41", 3},
    {"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\x80", 9},
    {"\xc2", -2},
    {"\xe2\x82", -2},
    {"\xf0\x9f\x98", -2},
    {"abcdefghijklmno\xf4", -2},
};

static void check_utf8_case(const struct utf8_case *t) {
  size_t n = strlen(t->s);
  struct guard g;
  char *s = guard_strndup(&g, t->s, n);
  CHECK_SCOPE();
  CHECK_INT(lunet_utf8_valid(s, n), t->fail_at == -1);
  /* Fail-fast: every prefix up to the bad byte scans fine, the prefix
   * ending with it does not, whether fed whole or byte by byte. */
  for (size_t k = 0; k <= n; k++) {
    uint32_t st = 0, st2 = 0;
    int ok = lunet_utf8_scan(&st, s, k), ok2 = 1;
    for (size_t i = 0; i < k && ok2; i++) ok2 = lunet_utf8_scan(&st2, s + i, 1);
    int want = t->fail_at < 0 || (int)k <= t->fail_at;
    CHECK_INT(ok, want);
    CHECK_INT(ok2, want);
    if (ok && ok2) CHECK_INT(st, st2);
    if (k == n && t->fail_at == -2) CHECK(ok && st != 0);
  }
  CHECK_NOTE("utf8 case %d", (int)(t - utf8_cases));
  guard_free(&g);
}

/* The plain definition (RFC 3629), by arithmetic, not by table: 1 if
 * s[0..n) is exactly one well-formed character. */
static int ref_one_char(const unsigned char *s, size_t n) {
  static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
  size_t want = s[0] < 0x80       ? 1
                : s[0] >> 5 == 6  ? 2
                : s[0] >> 4 == 14 ? 3
                : s[0] >> 3 == 30 ? 4
                                  : 0;
  if (want == 0 || want != n) return 0;
  uint32_t cp = want == 1 ? s[0] : s[0] & (0x7f >> want);
  for (size_t i = 1; i < n; i++) {
    if (s[i] >> 6 != 2) return 0;
    cp = cp << 6 | (s[i] & 0x3f);
  }
  return cp >= min[want] && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
}

/* Every 1- and 2-byte sequence, every 3-byte one, and 4-byte ones with
 * every first three bytes, against the definition. */
static void check_utf8_exhaustive(void) {
  unsigned char s[4];
  int bad = 0;
  static const unsigned char last[] = {0x41, 0x80, 0x8f, 0x90, 0xbf, 0xc0};
  for (unsigned a = 0; a < 256; a++) {
    s[0] = (unsigned char)a;
    bad += lunet_utf8_valid((char *)s, 1) != ref_one_char(s, 1);
    for (unsigned b = 0; b < 256; b++) {
      s[1] = (unsigned char)b;
      int ref2 =
          ref_one_char(s, 2) || (ref_one_char(s, 1) && ref_one_char(s + 1, 1));
      bad += lunet_utf8_valid((char *)s, 2) != ref2;
      if (a < 0xe0 || a > 0xf4) continue;
      for (unsigned c = 0; c < 256; c++) {
        s[2] = (unsigned char)c;
        if (a < 0xf0) {
          bad += lunet_utf8_valid((char *)s, 3) != ref_one_char(s, 3);
          continue;
        }
        for (size_t d = 0; d < sizeof last; d++) {
          s[3] = last[d];
          bad += lunet_utf8_valid((char *)s, 4) != ref_one_char(s, 4);
        }
      }
    }
  }
  CHECK_INT(bad, 0);
}

/* Long ASCII runs take the word-at-a-time path: a bad byte, or a valid
 * two-byte character, at every position of one must still be seen. */
static void check_utf8_ascii_runs(void) {
  char s[100];
  for (size_t i = 0; i < sizeof s; i++) {
    memset(s, 'a', sizeof s);
    s[i] = (char)0xff;
    CHECK_SCOPE();
    CHECK(!lunet_utf8_valid(s, sizeof s));
    s[i] = (char)0xc3;
    CHECK(!lunet_utf8_valid(s, sizeof s)); /* followed by 'a' or cut */
    if (i + 1 < sizeof s) {
      s[i + 1] = (char)0xa9;
      CHECK(lunet_utf8_valid(s, sizeof s));
    }
    CHECK_NOTE("non-ASCII at %zu of an ASCII run", i);
  }
}

/* A bad byte at every position of a valid text, checked alone and as a
 * text frame fed a byte at a time (refused at that very byte). */
static void check_utf8_every_position(void) {
  const char *good =
      "a\xc3\xa9z\xe2\x82\xac"
      "0123456789\xf0\x9f\x98\x80"
      "xy\xed\x9f\xbf!";
  size_t n = strlen(good);
  CHECK(lunet_utf8_valid(good, n));
  for (size_t i = 0; i < n; i++) {
    char s[64], frame[80];
    memcpy(s, good, n);
    s[i] = (char)0xff;
    CHECK_SCOPE();
    CHECK(!lunet_utf8_valid(s, n));
    uint32_t st = 0;
    CHECK(lunet_utf8_scan(&st, s, i));
    CHECK(!lunet_utf8_scan(&st, s + i, 1));
    unsigned char key[4] = {0xa1, 0xb2, 0xc3, 0xd4};
    size_t len = build(frame, LUNET_WS_TEXT, 1, s, n, key);
    struct run r;
    feed(&server, frame, len, 1, 0, &r);
    CHECK_INT(r.n, 1);
    CHECK_INT(r.ev[0].code, 1007);
    CHECK_INT(r.error_at, len - n + i + 1);
    run_free(&r);
    CHECK_NOTE("0xff at %zu", i);
  }
}

/* }================================================================== */

/* Heads for lengths at each boundary, built and parsed back, with and
 * without a mask, whole and a byte at a time. */
static void check_head_round_trips(void) {
  static const uint64_t lens[] = {0, 125, 126, 65535, 65536};
  static const size_t head[] = {2, 2, 4, 4, 10};
  unsigned char key[4] = {0x12, 0x34, 0x56, 0x78};
  char *payload = malloc(65536), *frame = malloc(65536 + 14);
  for (size_t i = 0; i < 65536; i++) payload[i] = (char)(i * 31 + 7);
  for (int m = 0; m < 2; m++) {
    for (int i = 0; i < 5; i++) {
      unsigned char h[14];
      const unsigned char *mask = m ? key : NULL;
      CHECK_SCOPE();
      CHECK_INT(lunet_ws_frame_head(h, LUNET_WS_BINARY, 1, lens[i], mask),
                head[i] + (m ? 4 : 0));
      size_t len = build(frame, LUNET_WS_BINARY, 1, payload, lens[i], mask);
      struct run whole, bytes;
      const struct cfg *c = m ? &server : &client;
      feed(c, frame, len, 0, 0, &whole);
      feed(c, frame, len, 1, 0, &bytes);
      CHECK_INT(whole.n, 1);
      CHECK_INT(whole.ev[0].kind, LUNET_WS_EV_MESSAGE);
      CHECK_INT(whole.ev[0].len, lens[i]);
      CHECK(whole.ev[0].len == lens[i] &&
            memcmp(whole.ev[0].data, payload, lens[i]) == 0);
      CHECK(same_events(&whole, &bytes));
      CHECK_NOTE("round trip len %llu mask %d", (unsigned long long)lens[i], m);
      run_free(&whole);
      run_free(&bytes);
    }
  }
  /* The 64-bit form: all eight bytes, big-endian. */
  unsigned char h[14];
  CHECK_INT(
      lunet_ws_frame_head(h, LUNET_WS_BINARY, 0, 0x0102030405060708ull, NULL),
      10);
  CHECK(h[0] == 0x02 && h[1] == 127 &&
        memcmp(h + 2, "\x01\x02\x03\x04\x05\x06\x07\x08", 8) == 0);
  /* RSV1 passes through the op. */
  lunet_ws_frame_head(h, LUNET_WS_TEXT | LUNET_WS_RSV1, 1, 3, NULL);
  CHECK_INT(h[0], 0xc1);
  free(payload);
  free(frame);
}

/* The word-at-a-time mask against the plain definition, at every offset
 * and length, and split into two calls at every point. */
static void check_mask(void) {
  const unsigned char key[4] = {0x01, 0x80, 0xfe, 0x5a};
  char ref[48], got[48], copy[48], src[48];
  for (int i = 0; i < 48; i++) src[i] = (char)(i * 13 + 1);
  for (unsigned pos = 0; pos < 4; pos++) {
    for (size_t n = 0; n <= 40; n++) {
      for (size_t i = 0; i < n; i++) ref[i] = src[i] ^ key[(pos + i) % 4];
      memcpy(got, src, n);
      lunet_ws_mask(got, n, key, pos);
      CHECK(memcmp(got, ref, n) == 0);
      for (size_t cut = 0; cut <= n; cut++) {
        memcpy(got, src, n);
        lunet_ws_mask(got, cut, key, pos);
        lunet_ws_mask(got + cut, n - cut, key, (unsigned)(pos + cut) & 3);
        CHECK(memcmp(got, ref, n) == 0);
      }
      if (pos == 0) {
        lunet_ws_mask_copy(copy, src, n, key);
        CHECK(memcmp(copy, ref, n) == 0);
      }
    }
  }
}

static void check_close_codes(void) {
  static const unsigned ok[] = {1000, 1001, 1002, 1003, 1007, 1008,
                                1011, 1014, 3000, 3999, 4000, 4999};
  static const unsigned bad[] = {0,    1,    999,  1004, 1005, 1006,  1015,
                                 1016, 1999, 2000, 2999, 5000, 65535, 70000};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    CHECK(lunet_ws_close_code_valid(ok[i]));
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECK(!lunet_ws_close_code_valid(bad[i]));
}

static void check_close_payload(void) {
  char out[125], reason[200];
  CHECK_INT(lunet_ws_close_payload(out, 1000, "", 0), 2);
  CHECK(out[0] == 0x03 && (unsigned char)out[1] == 0xe8);
  CHECK_INT(lunet_ws_close_payload(out, 4321, "bye", 3), 5);
  CHECK(out[0] == 0x10 && (unsigned char)out[1] == 0xe1);
  CHECK(memcmp(out + 2, "bye", 3) == 0);
  memset(reason, 'a', 123);
  CHECK_INT(lunet_ws_close_payload(out, 1000, reason, 123), 125);
  /* 122 ASCII then a 2-byte character: it would straddle byte 123. */
  memcpy(reason + 122, "\xc3\xa9", 2);
  CHECK_INT(lunet_ws_close_payload(out, 1000, reason, 124), 124);
  /* All 3-byte characters: cut at 123 = 41 of them, a boundary. */
  for (int i = 0; i < 66; i++) memcpy(reason + 3 * i, "\xe2\x82\xac", 3);
  CHECK_INT(lunet_ws_close_payload(out, 1000, reason, 198), 125);
  /* 4-byte ones: 30 of them (120 bytes). */
  for (int i = 0; i < 50; i++) memcpy(reason + 4 * i, "\xf0\x9f\x98\x80", 4);
  size_t n = lunet_ws_close_payload(out, 1000, reason, 200);
  CHECK_INT(n, 122);
  CHECK(lunet_utf8_valid(out + 2, n - 2));
}

/* Where data points, what the parser holds, and when it lets go. */
static void check_buffers(void) {
  struct lunet_ws_parser p;
  struct lunet_ws_event ev;
  char s[64];
  /* A control frame split across reads is assembled in p->ctl. */
  lunet_ws_parser_init(&p, LUNET_WS_CLIENT, 100, 0);
  size_t n = unhex("89 04 70 69 6e 67", s);
  CHECK_INT(lunet_ws_parse(&p, s, 4, &ev), 4);
  CHECK_INT(ev.kind, LUNET_WS_EV_NONE);
  CHECK_INT(lunet_ws_parser_held(&p), 2);
  CHECK_INT(lunet_ws_parse(&p, s + 4, n - 4, &ev), 2);
  CHECK_INT(ev.kind, LUNET_WS_EV_PING);
  CHECK(ev.data >= p.ctl && ev.data < p.ctl + sizeof p.ctl);
  CHECK(ev.len == 4 && memcmp(ev.data, "ping", 4) == 0);
  /* A fragmented message is in p->msg, bounded by max_message. */
  n = unhex("02 32", s);
  CHECK_INT(lunet_ws_parse(&p, s, n, &ev), 2);
  CHECK(lunet_ws_parser_mid_message(&p));
  char chunk[50];
  memset(chunk, 'x', sizeof chunk);
  CHECK_INT(lunet_ws_parse(&p, chunk, 50, &ev), 50);
  CHECK_INT(ev.kind, LUNET_WS_EV_NONE);
  CHECK(lunet_ws_parser_held(&p) <= 100);
  n = unhex("80 32", s);
  CHECK_INT(lunet_ws_parse(&p, s, n, &ev), 2);
  CHECK_INT(lunet_ws_parse(&p, chunk, 50, &ev), 50);
  CHECK_INT(ev.kind, LUNET_WS_EV_MESSAGE);
  CHECK_INT(ev.len, 100);
  CHECK(ev.data == p.msg);
  CHECK(!lunet_ws_parser_mid_message(&p));
  CHECK_INT(p.msg_cap, 100); /* grown, but never past max_message */
  lunet_ws_parser_free(&p);

  /* A large reassembled message's buffer is given back at the next call. */
  size_t big = 100000;
  char *data = malloc(big);
  memset(data, 'y', big);
  lunet_ws_parser_init(&p, LUNET_WS_CLIENT, big, 0);
  n = unhex("02 7f 00 00 00 00 00 01 86 a0", s);
  CHECK_INT(lunet_ws_parse(&p, s, n, &ev), n);
  CHECK_INT(lunet_ws_parse(&p, data, big / 2, &ev), big / 2);
  CHECK(lunet_ws_parser_held(&p) >= big / 2);
  n = unhex("80 00", s);
  CHECK_INT(lunet_ws_parse(&p, data + big / 2, big / 2, &ev), big / 2);
  CHECK_INT(ev.kind, LUNET_WS_EV_NONE);
  CHECK_INT(lunet_ws_parse(&p, s, n, &ev), 2);
  CHECK_INT(ev.kind, LUNET_WS_EV_MESSAGE);
  CHECK_INT(ev.len, big);
  CHECK(lunet_ws_parser_held(&p) <= big);
  CHECK_INT(lunet_ws_parse(&p, s, 0, &ev), 0);
  CHECK_INT(ev.kind, LUNET_WS_EV_NONE);
  CHECK(lunet_ws_parser_held(&p) < 20000);
  lunet_ws_parser_free(&p);
  free(data);
}

/* The 1009 check costs nothing: a 1 GiB head is refused before any
 * payload, and the parser never held more than the head. */
static void check_no_buffer_before_refusal(void) {
  char s[16];
  size_t n = unhex("82 ff 00 00 00 00 40 00 00 00 01 02 03 04", s);
  struct run r;
  feed(&server, s, n, 0, 0, &r);
  CHECK_INT(r.n, 1);
  CHECK_INT(r.ev[0].code, 1009);
  CHECK_INT(r.max_held, 0);
  run_free(&r);
}

int main(void) {
  check_rfc_examples();
  check_rfc_lengths();
  for (size_t i = 0; i < sizeof valid_cases / sizeof valid_cases[0]; i++)
    check_valid_case(&valid_cases[i]);
  for (size_t i = 0; i < sizeof error_cases / sizeof error_cases[0]; i++)
    check_error_case(&error_cases[i]);
  check_all_opcodes();
  for (size_t i = 0; i < sizeof utf8_cases / sizeof utf8_cases[0]; i++)
    check_utf8_case(&utf8_cases[i]);
  check_utf8_every_position();
  check_utf8_exhaustive();
  check_utf8_ascii_runs();
  check_head_round_trips();
  check_mask();
  check_close_codes();
  check_close_payload();
  check_buffers();
  check_no_buffer_before_refusal();
  CHECK_DONE();
}
