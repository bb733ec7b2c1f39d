/* libFuzzer target: the RFC 6455 parser. The first byte picks the role,
 * permessage-deflate and max_message, the next two seed where the stream
 * is cut; the rest is the stream. It is parsed twice, whole and in
 * pieces cut at pseudo-random points, each piece in its own exact-size
 * allocation (so ASan sees any byte read past it). Both runs must give
 * the same events, and every event must keep the parser's promises:
 * consumed <= given, NONE only when all was consumed, a message within
 * max_message, text valid UTF-8 unless compressed, data inside the
 * piece or the parser, ERROR sticky. */
/* The fuzz build is RelWithDebInfo, whose NDEBUG would compile every
 * check below away; they are the point of this target. */
#undef NDEBUG
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws_frame.h"

#define MAX_DIGESTS 4096

struct digest {
  int kind, opcode, compressed, code;
  size_t len;
  uint64_t hash;
};

struct trace {
  struct digest d[MAX_DIGESTS];
  size_t n;
  int failed;
};

static const size_t max_messages[8] = {0,   1,    16,      125,
                                       126, 1000, 1 << 16, 1 << 20};

static uint64_t fnv(const char *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
  return h;
}

static int inside(const char *d, size_t n, const char *base, size_t cap) {
  return d >= base && d + n <= base + cap;
}

static void check_event(const struct lunet_ws_parser *p,
                        const struct lunet_ws_event *ev, const char *piece,
                        size_t avail) {
  int in_piece = inside(ev->data, ev->len, piece, avail);
  switch (ev->kind) {
    case LUNET_WS_EV_MESSAGE:
      assert(ev->len <= p->max_message);
      assert(ev->opcode == LUNET_WS_TEXT || ev->opcode == LUNET_WS_BINARY);
      assert(!ev->compressed || p->deflate);
      if (ev->opcode == LUNET_WS_TEXT && !ev->compressed)
        assert(lunet_utf8_valid(ev->data, ev->len));
      assert(in_piece || ev->len == 0 ||
             inside(ev->data, ev->len, p->msg, p->msg_cap));
      break;
    case LUNET_WS_EV_PING:
    case LUNET_WS_EV_PONG:
    case LUNET_WS_EV_CLOSE:
      assert(ev->len <= 125);
      assert(in_piece || ev->len == 0 ||
             inside(ev->data, ev->len, p->ctl, sizeof p->ctl));
      if (ev->kind == LUNET_WS_EV_CLOSE) {
        assert(lunet_utf8_valid(ev->data, ev->len));
        assert(lunet_ws_close_code_valid(ev->code) ||
               (ev->code == 1005 && ev->len == 0));
      }
      break;
    case LUNET_WS_EV_ERROR:
      assert(ev->code == 1002 || ev->code == 1007 || ev->code == 1009 ||
             ev->code == 1011);
      assert(p->failed == 1 && ev->len > 0);
      break;
    default:
      assert(0);
  }
}

static void keep(struct trace *t, const struct lunet_ws_event *ev) {
  if (t->n == MAX_DIGESTS) return;
  struct digest *d = &t->d[t->n++];
  d->kind = ev->kind;
  d->opcode = ev->kind == LUNET_WS_EV_ERROR ? 0 : ev->opcode;
  d->compressed = ev->compressed;
  d->code = ev->code;
  d->len = ev->len;
  d->hash = fnv(ev->data, ev->len);
}

/* Parses one piece (copied into its own allocation); 0 once failed. */
static int parse_piece(struct lunet_ws_parser *p, struct trace *t,
                       const uint8_t *src, size_t n) {
  char *piece = malloc(n ? n : 1);
  size_t off = 0;
  memcpy(piece, src, n);
  for (;;) {
    struct lunet_ws_event ev;
    size_t used = lunet_ws_parse(p, piece + off, n - off, &ev);
    assert(used <= n - off);
    assert(lunet_ws_parser_held(p) <= p->max_message + 125);
    if (ev.kind == LUNET_WS_EV_NONE) {
      assert(off + used == n);
      break;
    }
    check_event(p, &ev, piece + off, n - off);
    keep(t, &ev);
    off += used;
    if (ev.kind == LUNET_WS_EV_ERROR) {
      struct lunet_ws_event again;
      assert(lunet_ws_parse(p, piece + off, n - off, &again) == 0);
      assert(again.kind == LUNET_WS_EV_ERROR && again.code == ev.code);
      t->failed = 1;
      break;
    }
  }
  free(piece);
  return !t->failed;
}

/* Cuts: mostly short pieces (header and UTF-8 boundaries), sometimes
 * long ones (the zero-copy path). */
static size_t next_cut(uint32_t *seed, size_t left) {
  *seed ^= *seed << 13;
  *seed ^= *seed >> 17;
  *seed ^= *seed << 5;
  size_t n = *seed & 0x100 ? (*seed >> 9) % 4096 + 1 : (*seed >> 9) % 16 + 1;
  return n < left ? n : left;
}

static void run(const uint8_t *s, size_t len, uint8_t cfg, uint32_t seed,
                struct trace *t) {
  struct lunet_ws_parser p;
  lunet_ws_parser_init(&p, cfg & 1 ? LUNET_WS_CLIENT : LUNET_WS_SERVER,
                       max_messages[cfg >> 2 & 7], cfg >> 1 & 1);
  memset(t, 0, sizeof *t);
  size_t off = 0;
  while (off < len) {
    size_t n = seed ? next_cut(&seed, len - off) : len - off;
    if (!parse_piece(&p, t, s + off, n)) break;
    off += n;
  }
  lunet_ws_parser_free(&p);
}

static struct trace whole, split;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3) return 0;
  uint32_t seed = (uint32_t)data[1] << 8 | data[2] | 1u << 16;
  run(data + 3, size - 3, data[0], 0, &whole);
  run(data + 3, size - 3, data[0], seed, &split);
  assert(whole.n == split.n && whole.failed == split.failed);
  assert(memcmp(whole.d, split.d, whole.n * sizeof whole.d[0]) == 0);
  return 0;
}
