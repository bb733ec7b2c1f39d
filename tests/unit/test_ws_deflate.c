/* ws_deflate: the negotiation tables of both sides, RFC 7692's examples,
 * round trips through the shared streams, and the failures: a zip bomb
 * stops at max, corrupt data and bad UTF-8 fail with 1007, and a peer
 * that keeps its window across messages is caught. */
#include <stdint.h>
#include <string.h>
#include <zlib.h>

#include "check.h"
#include "ws_deflate.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static const struct lunet_ws_deflate_params default_params = {1, 1, 15, 15};

/* {==================================================================
 * Negotiation
 * =================================================================== */

#define ANSWER_BASE \
  "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

struct offer_case {
  const char *offer;
  int want;
  const char *answer; /* when want == 1 */
  int smwb, cmwb;
};

static const struct offer_case offer_cases[] = {
    /* Firefox's offer; Chrome's and node ws's (tried: ws 8 sends it). */
    {"permessage-deflate", 1, ANSWER_BASE, 15, 15},
    {"permessage-deflate; client_max_window_bits", 1, ANSWER_BASE, 15, 15},
    {"permessage-deflate; client_max_window_bits=10", 1, ANSWER_BASE, 15, 10},
    {"permessage-deflate; server_max_window_bits=10", 1,
     ANSWER_BASE "; server_max_window_bits=10", 10, 15},
    {"permessage-deflate; server_max_window_bits=8", 1,
     ANSWER_BASE "; server_max_window_bits=8", 8, 15},
    {"permessage-deflate; server_max_window_bits=15; client_max_window_bits=9",
     1, ANSWER_BASE "; server_max_window_bits=15", 15, 9},
    {"permessage-deflate; server_max_window_bits=\"12\"", 1,
     ANSWER_BASE "; server_max_window_bits=12", 12, 15},
    {"permessage-deflate; server_max_window_bits=\"1\\1\"", 1,
     ANSWER_BASE "; server_max_window_bits=11", 11, 15},
    {"permessage-deflate;server_no_context_takeover;client_no_context_takeover",
     1, ANSWER_BASE, 15, 15},
    {"PerMessage-Deflate ;\tClient_Max_Window_Bits = 11 ", 1, ANSWER_BASE, 15,
     11},
    {", , permessage-deflate", 1, ANSWER_BASE, 15, 15},
    {"x-webkit-deflate-frame, permessage-deflate", 1, ANSWER_BASE, 15, 15},
    {"x-foo; a=\"b, c; d\", permessage-deflate", 1, ANSWER_BASE, 15, 15},
    {"x-foo; a=\"b\\\", c\", permessage-deflate,", 1, ANSWER_BASE, 15, 15},
    /* Several offers: the first acceptable one wins. */
    {"permessage-deflate; server_max_window_bits=10; client_max_window_bits, "
     "permessage-deflate",
     1, ANSWER_BASE "; server_max_window_bits=10", 10, 15},
    {"permessage-deflate; server_max_window_bits=7, "
     "permessage-deflate; client_max_window_bits",
     1, ANSWER_BASE, 15, 15},
    {"permessage-deflate; foo, permessage-deflate; server_max_window_bits=9", 1,
     ANSWER_BASE "; server_max_window_bits=9", 9, 15},
    /* Parsing stops at the accepted offer. */
    {"permessage-deflate, @@@", 1, ANSWER_BASE, 15, 15},
    /* Nothing for us. */
    {"", 0, NULL, 0, 0},
    {"   ", 0, NULL, 0, 0},
    {"x-webkit-deflate-frame", 0, NULL, 0, 0},
    {"foo, bar; baz=1; q=\"x\"", 0, NULL, 0, 0},
    {"permessage-deflatex", 0, NULL, 0, 0},
    /* Bad offers, declined (RFC 7692 5). */
    {"permessage-deflate; server_max_window_bits", -1, NULL, 0, 0},
    {"permessage-deflate; server_max_window_bits=7", -1, NULL, 0, 0},
    {"permessage-deflate; server_max_window_bits=16", -1, NULL, 0, 0},
    {"permessage-deflate; server_max_window_bits=08", -1, NULL, 0, 0},
    {"permessage-deflate; server_max_window_bits=010", -1, NULL, 0, 0},
    {"permessage-deflate; server_max_window_bits=1000000000015", -1, NULL, 0,
     0},
    {"permessage-deflate; server_max_window_bits=abc", -1, NULL, 0, 0},
    {"permessage-deflate; server_max_window_bits=\"1 0\"", -1, NULL, 0, 0},
    {"permessage-deflate; server_max_window_bits=\"\"", -1, NULL, 0, 0},
    {"permessage-deflate; client_max_window_bits=7", -1, NULL, 0, 0},
    {"permessage-deflate; client_max_window_bits=-9", -1, NULL, 0, 0},
    {"permessage-deflate; server_no_context_takeover=1", -1, NULL, 0, 0},
    {"permessage-deflate; client_no_context_takeover=\"\"", -1, NULL, 0, 0},
    {"permessage-deflate; server_no_context_takeover; "
     "server_no_context_takeover",
     -1, NULL, 0, 0},
    {"permessage-deflate; client_max_window_bits; client_max_window_bits=10",
     -1, NULL, 0, 0},
    {"permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
     -1, NULL, 0, 0},
    {"permessage-deflate; foo", -1, NULL, 0, 0},
    {"permessage-deflate; foo, x-bar", -1, NULL, 0, 0},
    /* Broken syntax. */
    {"permessage-deflate;", -1, NULL, 0, 0},
    {"permessage-deflate; =1", -1, NULL, 0, 0},
    {"permessage-deflate; client_max_window_bits=", -1, NULL, 0, 0},
    {"permessage-deflate; a=\"unterminated", -1, NULL, 0, 0},
    {"permessage-deflate; a=\"bad\\", -1, NULL, 0, 0},
    {"permessage-deflate x", -1, NULL, 0, 0},
    {"; x", -1, NULL, 0, 0},
    {"x-foo; ;, permessage-deflate", -1, NULL, 0, 0},
    {"x-foo; a=\"\x01\", permessage-deflate", -1, NULL, 0, 0},
};

static void check_offers(void) {
  size_t n = sizeof offer_cases / sizeof offer_cases[0];
  for (size_t i = 0; i < n; i++) {
    const struct offer_case *t = &offer_cases[i];
    struct lunet_ws_deflate_params p;
    struct guard g;
    size_t len = strlen(t->offer);
    char *offer = guard_alloc(&g, len); /* not NUL-terminated on purpose */
    memcpy(offer, t->offer, len);
    char answer[LUNET_WS_DEFLATE_ANSWER_MAX];
    CHECK_SCOPE();
    int r = lunet_ws_deflate_negotiate(offer, len, &p, answer, sizeof answer);
    CHECK_INT(r, t->want);
    if (r == 1 && t->want == 1) {
      CHECK_STR(answer, t->answer);
      CHECK_INT(p.server_no_context_takeover, 1);
      CHECK_INT(p.client_no_context_takeover, 1);
      CHECK_INT(p.server_max_window_bits, t->smwb);
      CHECK_INT(p.client_max_window_bits, t->cmwb);
    } else {
      CHECK_STR(answer, "");
    }
    CHECK_NOTE("offer %zu: \"%s\"", i, t->offer);
    guard_free(&g);
  }
}

/* Every prefix of every row, ending at a guard page, through both
 * sides: a read past the end faults; any answer is well-formed. */
static void check_prefixes(void) {
  size_t n = sizeof offer_cases / sizeof offer_cases[0];
  int odd = 0;
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(offer_cases[i].offer);
    for (size_t prefix = 0; prefix <= len; prefix++) {
      struct lunet_ws_deflate_params p;
      struct guard g;
      char answer[LUNET_WS_DEFLATE_ANSWER_MAX];
      char *offer = guard_alloc(&g, prefix);
      memcpy(offer, offer_cases[i].offer, prefix);
      int r =
          lunet_ws_deflate_negotiate(offer, prefix, &p, answer, sizeof answer);
      if (r < -1 || r > 1 ||
          (r == 1 && strncmp(answer, ANSWER_BASE, strlen(ANSWER_BASE))))
        odd++;
      r = lunet_ws_deflate_accept_response(offer, prefix, &p);
      if (r < -1 || r > 1) odd++;
      guard_free(&g);
    }
  }
  CHECK_INT(odd, 0);
}

static void check_offer_answer_cap(void) {
  struct lunet_ws_deflate_params p;
  char answer[LUNET_WS_DEFLATE_ANSWER_MAX];
  const char *offer = "permessage-deflate; server_max_window_bits=10";
  CHECK_INT(lunet_ws_deflate_negotiate(offer, strlen(offer), &p, answer,
                                       sizeof answer - 1),
            0);
  CHECK_STR(answer, "");
  /* The longest answer there is fits. */
  CHECK_INT(lunet_ws_deflate_negotiate(offer, strlen(offer), &p, answer,
                                       sizeof answer),
            1);
  CHECK(strlen(answer) < sizeof answer);
}

struct response_case {
  const char *resp;
  int want;
  int smwb, cmwb;
};

static const struct response_case response_cases[] = {
    {"permessage-deflate; server_no_context_takeover", 1, 15, 15},
    /* node ws's answer to our offer (tried). */
    {"permessage-deflate; server_no_context_takeover; "
     "client_no_context_takeover",
     1, 15, 15},
    {"permessage-deflate; server_no_context_takeover; "
     "client_max_window_bits=10",
     1, 15, 10},
    {"permessage-deflate; server_no_context_takeover; client_max_window_bits=8",
     1, 15, 8},
    {"permessage-deflate; server_max_window_bits=12; "
     "server_no_context_takeover",
     1, 12, 15},
    {"", 0, 0, 0},
    {"permessage-deflate", -1, 0, 0},
    {"permessage-deflate; client_no_context_takeover", -1, 0, 0},
    {"permessage-deflate; server_no_context_takeover; client_max_window_bits",
     -1, 0, 0},
    {"permessage-deflate; server_no_context_takeover; "
     "server_max_window_bits=16",
     -1, 0, 0},
    {"permessage-deflate; server_no_context_takeover; foo", -1, 0, 0},
    {"permessage-deflate; server_no_context_takeover; "
     "server_no_context_takeover",
     -1, 0, 0},
    {"permessage-deflate; server_no_context_takeover, "
     "permessage-deflate; server_no_context_takeover",
     -1, 0, 0},
    {"permessage-deflate; server_no_context_takeover, x-foo", -1, 0, 0},
    {"x-foo", -1, 0, 0},
    {"permessage-deflate; server_no_context_takeover;", -1, 0, 0},
};

static void check_responses(void) {
  size_t n = sizeof response_cases / sizeof response_cases[0];
  for (size_t i = 0; i < n; i++) {
    const struct response_case *t = &response_cases[i];
    struct lunet_ws_deflate_params p;
    CHECK_SCOPE();
    int r = lunet_ws_deflate_accept_response(t->resp, strlen(t->resp), &p);
    CHECK_INT(r, t->want);
    if (r == 1 && t->want == 1) {
      CHECK_INT(p.server_no_context_takeover, 1);
      CHECK_INT(p.client_no_context_takeover, 1);
      CHECK_INT(p.server_max_window_bits, t->smwb);
      CHECK_INT(p.client_max_window_bits, t->cmwb);
    }
    CHECK_NOTE("response %zu: \"%s\"", i, t->resp);
  }
}

/* Our client's offer, answered by our server, accepted by our client. */
static void check_both_sides(void) {
  char offer[LUNET_WS_DEFLATE_ANSWER_MAX], answer[LUNET_WS_DEFLATE_ANSWER_MAX];
  struct lunet_ws_deflate_params server, client;
  size_t n = lunet_ws_deflate_offer(offer, sizeof offer);
  CHECK_INT(n, strlen(offer));
  CHECK_STR(offer,
            "permessage-deflate; client_max_window_bits; "
            "server_no_context_takeover; client_no_context_takeover");
  CHECK_INT(lunet_ws_deflate_offer(offer, 10), 0);
  n = lunet_ws_deflate_offer(offer, sizeof offer);
  CHECK_INT(
      lunet_ws_deflate_negotiate(offer, n, &server, answer, sizeof answer), 1);
  CHECK_INT(lunet_ws_deflate_accept_response(answer, strlen(answer), &client),
            1);
  CHECK_INT(client.server_max_window_bits, 15);
}

/* }==================================================================
 * Helpers for messages
 * =================================================================== */

static int inflate_is(struct lunet_ws_deflate *d, const char *in, size_t len,
                      const char *want, size_t want_len) {
  struct lunet_ws_buf out = {0};
  int r = lunet_ws_inflate(d, in, len, 1 << 20, 0, &out);
  int ok = r == 0 && out.len == want_len &&
           (want_len == 0 || memcmp(out.p, want, want_len) == 0);
  lunet_ws_buf_free(&out);
  return ok;
}

/* A peer's inflate with its own window of `bits`, writing one byte per
 * call so that every match is checked against the window alone (with a
 * large output buffer zlib also accepts matches reaching into what it
 * wrote in the same call). */
static int peer_inflate(int bits, const char *in, size_t len, char *out,
                        size_t cap, size_t *out_len) {
  z_stream s;
  memset(&s, 0, sizeof s);
  *out_len = 0;
  if (inflateInit2(&s, -bits) != Z_OK) return -1;
  static const unsigned char tail[4] = {0, 0, 0xff, 0xff};
  unsigned char *buf = malloc(len + 4);
  memcpy(buf, in, len);
  memcpy(buf + len, tail, 4);
  s.next_in = buf;
  s.avail_in = (uInt)(len + 4);
  int r = Z_OK;
  while (s.avail_in > 0 && *out_len < cap) {
    s.next_out = (Bytef *)out + *out_len;
    s.avail_out = 1;
    r = inflate(&s, Z_SYNC_FLUSH);
    *out_len += 1 - s.avail_out;
    if (r != Z_OK && r != Z_BUF_ERROR) break;
  }
  inflateEnd(&s);
  free(buf);
  return r == Z_OK || r == Z_BUF_ERROR ? 0 : -1;
}

/* Text: words, some of them beyond ASCII. */
static char *make_text(size_t n) {
  static const char *const words[] = {"the ",
                                      "message ",
                                      "is ",
                                      "compressed ",
                                      "caf\xc3\xa9 ",
                                      "\xe6\x97\xa5\xe6\x9c\xac ",
                                      "\xf0\x9f\x98\x80 ",
                                      "{\"k\":1} ",
                                      "\n"};
  char *p = malloc(n + 1);
  size_t len = 0;
  while (len < n) {
    const char *w = words[rng() % (sizeof words / sizeof words[0])];
    size_t wl = strlen(w);
    if (len + wl > n) { /* pad with ASCII: a cut word would be bad UTF-8 */
      memset(p + len, 'x', n - len);
      len = n;
      break;
    }
    memcpy(p + len, w, wl);
    len += wl;
  }
  p[n] = '\0';
  return p;
}

static char *make_random(size_t n) {
  char *p = malloc(n + 1);
  for (size_t i = 0; i < n; i++) p[i] = (char)(rng() >> 56);
  return p;
}

/* }==================================================================
 * RFC 7692 section 7.2.3 examples
 * =================================================================== */

static void check_rfc_examples(struct lunet_ws_zctx *z) {
  struct lunet_ws_deflate d;
  struct lunet_ws_buf out = {0};
  static const char hello_payload[] = "\xf2\x48\xcd\xc9\xc9\x07\x00";
  lunet_ws_deflate_init(&d, z, &default_params, LUNET_WS_SERVER);
  /* 7.2.3.1: "Hello" as one compressed frame, c1 07 f2 48 cd c9 c9 07 00. */
  CHECK_INT(lunet_ws_deflate(&d, "Hello", 5, &out), 0);
  CHECK_INT(out.len, 7);
  unsigned char frame[16] = {LUNET_WS_FIN | LUNET_WS_RSV1 | LUNET_WS_TEXT,
                             (unsigned char)out.len};
  memcpy(frame + 2, out.p, out.len);
  CHECK(memcmp(frame, "\xc1\x07\xf2\x48\xcd\xc9\xc9\x07\x00", 9) == 0);
  CHECK(inflate_is(&d, hello_payload, 7, "Hello", 5));
  /* 7.2.3.3: a stored block. */
  CHECK(inflate_is(&d, "\x00\x05\x00\xfa\xff\x48\x65\x6c\x6c\x6f\x00", 11,
                   "Hello", 5));
  /* 7.2.3.4: a block with BFINAL set, then the byte that starts the
   * empty stored block the tail completes; and without that byte. */
  CHECK(inflate_is(&d, "\xf3\x48\xcd\xc9\xc9\x07\x00\x00", 8, "Hello", 5));
  CHECK(inflate_is(&d, "\xf3\x48\xcd\xc9\xc9\x07\x00", 7, "Hello", 5));
  /* 7.2.3.5: two blocks in one message. */
  CHECK(inflate_is(&d, "\xf2\x48\x05\x00\x00\x00\xff\xff\xca\xc9\xc9\x07\x00",
                   13, "Hello", 5));
  /* 7.2.3.6: the empty message is a lone 0x00; an empty payload is taken
   * the same way. */
  CHECK_INT(lunet_ws_deflate(&d, "", 0, &out), 0);
  CHECK_INT(out.len, 1);
  CHECK_INT((unsigned char)out.p[0], 0x00);
  CHECK(inflate_is(&d, "\x00", 1, "", 0));
  CHECK(inflate_is(&d, "", 0, "", 0));
  lunet_ws_buf_free(&out);
}

/* 7.2.3.2: the second "Hello" of a sender that keeps its window is only a
 * back-reference (zlib, keeping its window, reads it as "Hello"); our
 * reset stream must refuse it, as it does not know that window. */
static void check_context_takeover_refused(struct lunet_ws_zctx *z) {
  static const char second[] = "\xf2\x00\x11\x00\x00";
  struct lunet_ws_deflate d;
  struct lunet_ws_buf out = {0};
  char text[16];
  z_stream s;
  memset(&s, 0, sizeof s);
  CHECK(inflateInit2(&s, -15) == Z_OK);
  s.next_in = (Bytef *)"\xf2\x48\xcd\xc9\xc9\x07\x00\x00\x00\xff\xff"
                       "\xf2\x00\x11\x00\x00\x00\x00\xff\xff";
  s.avail_in = 20;
  s.next_out = (Bytef *)text;
  s.avail_out = sizeof text;
  CHECK(inflate(&s, Z_SYNC_FLUSH) == Z_OK);
  CHECK_INT(sizeof text - s.avail_out, 10);
  CHECK(memcmp(text, "HelloHello", 10) == 0);
  inflateEnd(&s);
  lunet_ws_deflate_init(&d, z, &default_params, LUNET_WS_SERVER);
  CHECK(inflate_is(&d, "\xf2\x48\xcd\xc9\xc9\x07\x00", 7, "Hello", 5));
  CHECK_INT(lunet_ws_inflate(&d, second, 5, 1024, 0, &out), 1007);
  lunet_ws_buf_free(&out);
}

/* }==================================================================
 * Round trips
 * =================================================================== */

static const size_t sizes[] = {0,     1,     2,      63,     64,     100,
                               1000,  4095,  4096,   4097,   65535,  65536,
                               65537, 99999, 262144, 500000, 1 << 20};

/* One message of n bytes through deflate and inflate, with max exactly n
 * (fits) and n - 1 (1009). */
static void round_trip(struct lunet_ws_deflate *d, const char *msg, size_t n,
                       int is_text) {
  struct lunet_ws_buf z = {0}, out = {0};
  CHECK_INT(lunet_ws_deflate(d, msg, n, &z), 0);
  CHECK_INT(lunet_ws_inflate(d, z.p, z.len, n, is_text, &out), 0);
  CHECK_INT(out.len, n);
  CHECK(n == 0 || memcmp(out.p, msg, n) == 0);
  CHECK(out.cap <= (n > 0 ? n : 0) || out.p == NULL);
  if (n > 0)
    CHECK_INT(lunet_ws_inflate(d, z.p, z.len, n - 1, is_text, &out), 1009);
  lunet_ws_buf_free(&z);
  lunet_ws_buf_free(&out);
}

static void check_round_trips(struct lunet_ws_zctx *z) {
  struct lunet_ws_deflate d;
  lunet_ws_deflate_init(&d, z, &default_params, LUNET_WS_SERVER);
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    char *text = make_text(sizes[i]), *bin = make_random(sizes[i]);
    CHECK_SCOPE();
    round_trip(&d, text, sizes[i], 1);
    round_trip(&d, bin, sizes[i], 0);
    CHECK_NOTE("round trip of %zu bytes", sizes[i]);
    free(text);
    free(bin);
  }
}

/* Every window size a client may ask of us, read back by a peer with
 * exactly that window: the data repeats at a distance of 300 bytes (more
 * than 256), so a 10-bit window would make matches an 8-bit peer cannot
 * follow. */
static void check_window_sizes(struct lunet_ws_zctx *z) {
  size_t n = 64 * 1024;
  char *block = make_random(300), *msg = malloc(n), *back = malloc(n);
  for (size_t i = 0; i < n; i++) msg[i] = block[i % 300];
  for (int bits = 8; bits <= 15; bits++) {
    struct lunet_ws_deflate_params p = {1, 1, (unsigned char)bits, 15};
    struct lunet_ws_deflate d;
    struct lunet_ws_buf out = {0};
    size_t back_len;
    lunet_ws_deflate_init(&d, z, &p, LUNET_WS_SERVER);
    CHECK_SCOPE();
    CHECK_INT(d.deflate_bits, bits < 9 ? 9 : bits);
    CHECK_INT(lunet_ws_deflate(&d, msg, n, &out), 0);
    CHECK_INT(peer_inflate(bits, out.p, out.len, back, n, &back_len), 0);
    CHECK_INT(back_len, n);
    CHECK(memcmp(back, msg, n) == 0);
    /* A 9-bit window reaches back 250 bytes: no match at 300. */
    if (bits >= 10)
      CHECK(out.len < n / 10);
    else
      CHECK(out.len > n / 2);
    CHECK_NOTE("server_max_window_bits=%d", bits);
    lunet_ws_buf_free(&out);
  }
  /* A client compresses with the client's window. */
  struct lunet_ws_deflate_params p = {1, 1, 15, 10};
  struct lunet_ws_deflate d;
  lunet_ws_deflate_init(&d, z, &p, LUNET_WS_CLIENT);
  CHECK_INT(d.deflate_bits, 10);
  free(block);
  free(msg);
  free(back);
}

/* Many messages in a row, two connections with different windows taking
 * turns on the one zctx: each message stands alone, and the zctx stops
 * growing after the first round. */
static void check_many_messages(struct lunet_ws_zctx *z) {
  struct lunet_ws_deflate_params p10 = {1, 1, 10, 15};
  struct lunet_ws_deflate a, b;
  struct lunet_ws_buf zbuf = {0}, out = {0};
  size_t bytes_after_first = 0;
  int bad = 0;
  lunet_ws_deflate_init(&a, z, &default_params, LUNET_WS_SERVER);
  lunet_ws_deflate_init(&b, z, &p10, LUNET_WS_SERVER);
  for (int i = 0; i < 2000; i++) {
    struct lunet_ws_deflate *d = i % 2 ? &b : &a;
    size_t n = (size_t)(rng() % 3000);
    char *msg = i % 3 ? make_text(n) : make_random(n);
    if (lunet_ws_deflate(d, msg, n, &zbuf) != 0 ||
        lunet_ws_inflate(i % 2 ? &a : &b, zbuf.p, zbuf.len, n, i % 3 != 0,
                         &out) != 0 ||
        out.len != n || (n > 0 && memcmp(out.p, msg, n) != 0))
      bad++;
    free(msg);
    if (i == 1) bytes_after_first = lunet_ws_zctx_bytes(z);
  }
  CHECK_INT(bad, 0);
  CHECK_INT(lunet_ws_zctx_bytes(z), bytes_after_first);
  lunet_ws_buf_free(&zbuf);
  lunet_ws_buf_free(&out);
}

/* }==================================================================
 * Failures
 * =================================================================== */

/* 1 MiB of zeros deflates to about 1 KiB; inflating it under a 64 KiB
 * max must stop there. */
static void check_zip_bomb(struct lunet_ws_zctx *z) {
  size_t n = 1 << 20, max = 64 * 1024;
  char *zeros = calloc(1, n);
  struct lunet_ws_deflate d;
  struct lunet_ws_buf bomb = {0}, out = {0};
  lunet_ws_deflate_init(&d, z, &default_params, LUNET_WS_SERVER);
  CHECK_INT(lunet_ws_deflate(&d, zeros, n, &bomb), 0);
  fprintf(stderr, "zip bomb: 1 MiB of zeros in %zu bytes\n", bomb.len);
  CHECK(bomb.len < 8192);
  CHECK_INT(lunet_ws_inflate(&d, bomb.p, bomb.len, max, 0, &out), 1009);
  CHECK(out.cap <= max);
  CHECK_INT(out.len, max);
  /* A buffer grown earlier beyond max is not written past max either. */
  CHECK_INT(lunet_ws_inflate(&d, bomb.p, bomb.len, n, 0, &out), 0);
  CHECK_INT(lunet_ws_inflate(&d, bomb.p, bomb.len, 1000, 0, &out), 1009);
  CHECK_INT(out.len, 1000);
  CHECK_INT(lunet_ws_inflate(&d, bomb.p, bomb.len, 0, 0, &out), 1009);
  lunet_ws_buf_free(&out);
  lunet_ws_buf_free(&bomb);
  free(zeros);
}

/* Every single-bit error of a small message: deflate has no checksum, so
 * some decode to other bytes, but none may crash or overrun max (ASan),
 * and most must fail the message. */
static void check_bit_flips(struct lunet_ws_deflate *d) {
  struct lunet_ws_buf zbuf = {0}, out = {0};
  char *text = make_text(300);
  int failed = 0, flips = 0, bad_result = 0;
  CHECK_INT(lunet_ws_deflate(d, text, 300, &zbuf), 0);
  for (size_t bit = 0; bit < zbuf.len * 8; bit++, flips++) {
    zbuf.p[bit / 8] ^= (char)(1 << bit % 8);
    int r = lunet_ws_inflate(d, zbuf.p, zbuf.len, 400, 1, &out);
    zbuf.p[bit / 8] ^= (char)(1 << bit % 8);
    if (r == 1007 || r == 1009)
      failed++;
    else if (r != 0 || out.len > 400)
      bad_result++;
  }
  fprintf(stderr, "bit flips: %d of %d failed the message\n", failed, flips);
  CHECK_INT(bad_result, 0);
  CHECK(failed > flips / 2);
  free(text);
  lunet_ws_buf_free(&zbuf);
  lunet_ws_buf_free(&out);
}

static void check_corrupt(struct lunet_ws_zctx *z) {
  struct lunet_ws_deflate d;
  struct lunet_ws_buf zbuf = {0}, out = {0};
  lunet_ws_deflate_init(&d, z, &default_params, LUNET_WS_SERVER);
  /* A reserved block type, a stored block whose NLEN is wrong. */
  CHECK_INT(lunet_ws_inflate(&d, "\xff\xff\xff", 3, 1024, 0, &out), 1007);
  CHECK_INT(
      lunet_ws_inflate(&d, "\x00\x05\x00\x00\x00Hello", 10, 1024, 0, &out),
      1007);
  /* A stored block of 10 bytes with 5: even the tail cannot fill it. */
  CHECK_INT(
      lunet_ws_inflate(&d, "\x00\x0a\x00\xf5\xffHello", 10, 1024, 0, &out),
      1007);
  /* A compressed message cut in half ends inside a block. */
  char *text = make_text(5000);
  CHECK_INT(lunet_ws_deflate(&d, text, 5000, &zbuf), 0);
  CHECK_INT(lunet_ws_inflate(&d, zbuf.p, zbuf.len / 2, 1 << 20, 0, &out), 1007);
  CHECK_INT(lunet_ws_inflate(&d, zbuf.p, zbuf.len - 1, 1 << 20, 0, &out), 1007);
  check_bit_flips(&d);
  /* And the next good message is fine: the failure left nothing behind. */
  CHECK_INT(lunet_ws_deflate(&d, text, 5000, &zbuf), 0);
  CHECK_INT(lunet_ws_inflate(&d, zbuf.p, zbuf.len, 5000, 1, &out), 0);
  free(text);
  lunet_ws_buf_free(&zbuf);
  lunet_ws_buf_free(&out);
}

static void check_utf8(struct lunet_ws_zctx *z) {
  static const char *const bad[] = {"\xc3\x28", "abc\xff", "\xed\xa0\x80",
                                    "caf\xc3"};
  struct lunet_ws_deflate d;
  struct lunet_ws_buf zbuf = {0}, out = {0};
  lunet_ws_deflate_init(&d, z, &default_params, LUNET_WS_SERVER);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    size_t n = strlen(bad[i]);
    CHECK_SCOPE();
    CHECK_INT(lunet_ws_deflate(&d, bad[i], n, &zbuf), 0);
    CHECK_INT(lunet_ws_inflate(&d, zbuf.p, zbuf.len, 64, 1, &out), 1007);
    CHECK_INT(lunet_ws_inflate(&d, zbuf.p, zbuf.len, 64, 0, &out), 0);
    CHECK_INT(out.len, n);
    CHECK_NOTE("bad utf-8 %zu", i);
  }
  CHECK_INT(lunet_ws_deflate(&d, "caf\xc3\xa9", 5, &zbuf), 0);
  CHECK_INT(lunet_ws_inflate(&d, zbuf.p, zbuf.len, 64, 1, &out), 0);
  lunet_ws_buf_free(&zbuf);
  lunet_ws_buf_free(&out);
}

/* }==================================================================
 * Memory
 * =================================================================== */

/* The figures the header states, measured again (they depend on zlib's
 * version, so only their order is checked). */
static void check_memory(void) {
  struct lunet_ws_zctx *z = lunet_ws_zctx_new();
  struct lunet_ws_deflate d;
  struct lunet_ws_buf out = {0};
  struct lunet_ws_deflate_params p9 = {1, 1, 9, 15};
  size_t idle = lunet_ws_zctx_bytes(z);
  lunet_ws_deflate_init(&d, z, &default_params, LUNET_WS_SERVER);
  CHECK_INT(
      lunet_ws_inflate(&d, "\xf2\x48\xcd\xc9\xc9\x07\x00", 7, 64, 1, &out), 0);
  size_t inflate_bytes = lunet_ws_zctx_bytes(z);
  CHECK_INT(lunet_ws_deflate(&d, "Hello", 5, &out), 0);
  size_t deflate15 = lunet_ws_zctx_bytes(z) - inflate_bytes;
  lunet_ws_deflate_init(&d, z, &p9, LUNET_WS_SERVER);
  CHECK_INT(lunet_ws_deflate(&d, "Hello", 5, &out), 0);
  size_t deflate9 = lunet_ws_zctx_bytes(z) - inflate_bytes - deflate15;
  fprintf(stderr,
          "memory: per connection %zu B; zctx idle %zu B (zlib) + its struct, "
          "inflate %zu B, "
          "deflate w15 %zu B, w9 %zu B\n",
          sizeof(struct lunet_ws_deflate), idle, inflate_bytes, deflate15,
          deflate9);
  CHECK_INT(idle, 0);
  CHECK(sizeof(struct lunet_ws_deflate) <= 2 * sizeof(void *));
  CHECK(inflate_bytes > 32768 && inflate_bytes < 48 * 1024);
  CHECK(deflate15 > 256 * 1024 && deflate15 < 300 * 1024);
  CHECK(deflate9 < deflate15 && deflate9 > 128 * 1024);
  lunet_ws_buf_free(&out);
  lunet_ws_zctx_free(z);
  lunet_ws_zctx_free(NULL);
}

/* }================================================================== */

int main(void) {
  struct lunet_ws_zctx *z = lunet_ws_zctx_new();
  check_offers();
  check_prefixes();
  check_offer_answer_cap();
  check_responses();
  check_both_sides();
  CHECK(!lunet_ws_deflate_worth(LUNET_WS_DEFLATE_MIN - 1));
  CHECK(lunet_ws_deflate_worth(LUNET_WS_DEFLATE_MIN));
  check_rfc_examples(z);
  check_context_takeover_refused(z);
  check_round_trips(z);
  check_window_sizes(z);
  check_many_messages(z);
  check_zip_bomb(z);
  check_corrupt(z);
  check_utf8(z);
  check_memory();
  lunet_ws_zctx_free(z);
  CHECK_DONE();
}
