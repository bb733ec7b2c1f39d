/* permessage-deflate (RFC 7692): see ws_deflate.h for the design (no
 * context takeover, zlib streams shared per loop and reset per message). */
#include "ws_deflate.h"

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

/* {==================================================================
 * Sec-WebSocket-Extensions syntax (RFC 6455 9.1, RFC 7230 3.2.6)
 * =================================================================== */

struct cursor {
  const char *p, *end;
};

/* One ";"-param. Values longer than ours (at most 2 digits) are kept cut,
 * with value_len telling the real length, so they still fail the check. */
struct ext_param {
  const char *name;
  size_t name_len;
  int has_value;
  char value[8];
  size_t value_len;
};

static int is_tchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
      (c >= 'A' && c <= 'Z'))
    return 1;
  return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* qdtext of a quoted-string, and what a backslash may escape. */
static int is_qdtext(unsigned char c) {
  return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5B) ||
         (c >= 0x5D && c <= 0x7E) || c >= 0x80;
}

static int is_quotable(unsigned char c) {
  return c == '\t' || (c >= 0x20 && c <= 0x7E) || c >= 0x80;
}

static void skip_ows(struct cursor *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t')) c->p++;
}

static int at(const struct cursor *c, char ch) {
  return c->p < c->end && *c->p == ch;
}

static size_t take_token(struct cursor *c) {
  const char *start = c->p;
  while (c->p < c->end && is_tchar((unsigned char)*c->p)) c->p++;
  return (size_t)(c->p - start);
}

static void value_add(struct ext_param *prm, char ch) {
  if (prm->value_len < sizeof prm->value - 1) prm->value[prm->value_len] = ch;
  prm->value_len++;
}

/* A quoted-string, unescaped into prm; -1 when unterminated or bad. */
static int take_quoted(struct cursor *c, struct ext_param *prm) {
  c->p++; /* the opening quote */
  while (c->p < c->end && *c->p != '"') {
    unsigned char ch = (unsigned char)*c->p++;
    if (ch == '\\') {
      if (c->p == c->end || !is_quotable((unsigned char)*c->p)) return -1;
      ch = (unsigned char)*c->p++;
    } else if (!is_qdtext(ch)) {
      return -1;
    }
    value_add(prm, (char)ch);
  }
  if (c->p == c->end) return -1;
  c->p++;
  return 0;
}

static int take_value(struct cursor *c, struct ext_param *prm) {
  prm->has_value = 1;
  if (at(c, '"')) return take_quoted(c, prm);
  const char *start = c->p;
  size_t n = take_token(c);
  if (n == 0) return -1;
  for (size_t i = 0; i < n; i++) value_add(prm, start[i]);
  return 0;
}

/* The next ";"-param of the current element: 1 one read, 0 the element
 * ended (at "," or the end), -1 a syntax error. */
static int next_param(struct cursor *c, struct ext_param *prm) {
  memset(prm, 0, sizeof *prm);
  skip_ows(c);
  if (c->p == c->end || at(c, ',')) return 0;
  if (!at(c, ';')) return -1;
  c->p++;
  skip_ows(c);
  prm->name = c->p;
  prm->name_len = take_token(c);
  if (prm->name_len == 0) return -1;
  skip_ows(c);
  if (!at(c, '=')) return 1;
  c->p++;
  skip_ows(c);
  return take_value(c, prm) < 0 ? -1 : 1;
}

/* The name of the next element, skipping empty ones (the list rule allows
 * "a, , b"): 1 one read, 0 the end, -1 a syntax error. */
static int next_element(struct cursor *c, const char **name, size_t *len) {
  for (;;) {
    skip_ows(c);
    if (c->p == c->end) return 0;
    if (!at(c, ',')) break;
    c->p++;
  }
  *name = c->p;
  *len = take_token(c);
  return *len > 0 ? 1 : -1;
}

static int named(const char *s, size_t len, const char *want) {
  return len == strlen(want) && strncasecmp(s, want, len) == 0;
}

/* }==================================================================
 * permessage-deflate params (RFC 7692 7.1)
 * =================================================================== */

enum {
  SEEN_SNCT = 1, /* server_no_context_takeover */
  SEEN_CNCT = 2,
  SEEN_SMWB = 4, /* server_max_window_bits */
  SEEN_CMWB = 8
};

/* 8..15 in decimal without a leading zero, else -1. */
static int window_bits(const struct ext_param *prm) {
  const char *v = prm->value;
  if (prm->value_len == 1 && (v[0] == '8' || v[0] == '9')) return v[0] - '0';
  if (prm->value_len == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
    return 10 + v[1] - '0';
  return -1;
}

/* Which param prm is, as its SEEN_ bit; 0 for an unknown one. */
static unsigned param_bit(const struct ext_param *prm) {
  if (named(prm->name, prm->name_len, "server_no_context_takeover"))
    return SEEN_SNCT;
  if (named(prm->name, prm->name_len, "client_no_context_takeover"))
    return SEEN_CNCT;
  if (named(prm->name, prm->name_len, "server_max_window_bits"))
    return SEEN_SMWB;
  if (named(prm->name, prm->name_len, "client_max_window_bits"))
    return SEEN_CMWB;
  return 0;
}

/* Records prm into p; -1 when it makes the offer (or response) invalid.
 * A bare client_max_window_bits only says "I can take a limit": allowed
 * in an offer, not in a response, which must give the limit. */
static int apply_param(struct lunet_ws_deflate_params *p, unsigned *seen,
                       const struct ext_param *prm, int is_response) {
  unsigned bit = param_bit(prm);
  if (bit == 0 || (*seen & bit)) return -1;
  *seen |= bit;
  if (bit == SEEN_SNCT || bit == SEEN_CNCT) {
    if (prm->has_value) return -1;
    if (bit == SEEN_SNCT)
      p->server_no_context_takeover = 1;
    else
      p->client_no_context_takeover = 1;
    return 0;
  }
  if (!prm->has_value) return bit == SEEN_CMWB && !is_response ? 0 : -1;
  int bits = window_bits(prm);
  if (bits < 0) return -1;
  if (bit == SEEN_SMWB)
    p->server_max_window_bits = (unsigned char)bits;
  else
    p->client_max_window_bits = (unsigned char)bits;
  return 0;
}

static void params_default(struct lunet_ws_deflate_params *p) {
  p->server_no_context_takeover = 0;
  p->client_no_context_takeover = 0;
  p->server_max_window_bits = 15;
  p->client_max_window_bits = 15;
}

/* Reads the params of the element under c into p: 1 valid, 0 invalid
 * (unknown, repeated, bad value), -1 a syntax error. */
static int read_params(struct cursor *c, struct lunet_ws_deflate_params *p,
                       unsigned *seen, int is_response) {
  struct ext_param prm;
  int valid = 1, r;
  params_default(p);
  *seen = 0;
  while ((r = next_param(c, &prm)) == 1)
    if (apply_param(p, seen, &prm, is_response) < 0) valid = 0;
  return r < 0 ? -1 : valid;
}

/* Our answer to an accepted offer; 0, or -1 when it does not fit. */
static int write_answer(char *answer, size_t cap, unsigned seen,
                        const struct lunet_ws_deflate_params *p) {
  int n = snprintf(answer, cap,
                   "permessage-deflate; server_no_context_takeover; "
                   "client_no_context_takeover");
  if (n < 0 || (size_t)n >= cap) return -1;
  if (seen & SEEN_SMWB) {
    int m = snprintf(answer + n, cap - (size_t)n, "; server_max_window_bits=%d",
                     p->server_max_window_bits);
    if (m < 0 || (size_t)(n + m) >= cap) return -1;
  }
  return 0;
}

int lunet_ws_deflate_negotiate(const char *offer, size_t len,
                               struct lunet_ws_deflate_params *out,
                               char *answer, size_t answer_cap) {
  struct cursor c = {offer, offer + len};
  const char *name;
  size_t name_len;
  unsigned seen;
  int malformed = 0, r;
  if (answer_cap > 0) answer[0] = '\0';
  if (answer_cap < LUNET_WS_DEFLATE_ANSWER_MAX) return 0;
  while ((r = next_element(&c, &name, &name_len)) == 1) {
    int is_ours = named(name, name_len, "permessage-deflate");
    int valid = read_params(&c, out, &seen, 0);
    if (valid < 0) return -1;
    if (!is_ours) continue;
    if (!valid) {
      malformed = 1;
      continue;
    }
    out->server_no_context_takeover = 1;
    out->client_no_context_takeover = 1;
    if (write_answer(answer, answer_cap, seen, out) < 0) return 0;
    return 1;
  }
  return r < 0 || malformed ? -1 : 0;
}

size_t lunet_ws_deflate_offer(char *out, size_t cap) {
  static const char offer[] =
      "permessage-deflate; client_max_window_bits; "
      "server_no_context_takeover; client_no_context_takeover";
  if (cap < sizeof offer) return 0;
  memcpy(out, offer, sizeof offer);
  return sizeof offer - 1;
}

int lunet_ws_deflate_accept_response(const char *resp, size_t len,
                                     struct lunet_ws_deflate_params *out) {
  struct cursor c = {resp, resp + len};
  const char *name;
  size_t name_len;
  unsigned seen;
  int r = next_element(&c, &name, &name_len);
  if (r <= 0) return r;
  if (!named(name, name_len, "permessage-deflate")) return -1;
  if (read_params(&c, out, &seen, 1) != 1) return -1;
  if (!(seen & SEEN_SNCT)) return -1;
  if (next_element(&c, &name, &name_len) != 0) return -1;
  /* We never take over, whether or not the server asked. */
  out->client_no_context_takeover = 1;
  return 1;
}

/* }==================================================================
 * Shared streams
 * =================================================================== */

#define WINDOW_MIN 9 /* zlib's raw deflate refuses 8 (see the header) */
#define DEFLATE_STREAMS (15 - WINDOW_MIN + 1)
#define MEM_LEVEL 8

struct lunet_ws_zctx {
  size_t bytes; /* what zlib holds, counted by zctx_alloc */
  z_stream inflate;
  z_stream deflate[DEFLATE_STREAMS]; /* by window bits, from WINDOW_MIN */
  unsigned char inflate_ready;
  unsigned char deflate_ready[DEFLATE_STREAMS];
};

/* zlib's allocations carry their size in front, so the free can count. */
union alloc_head {
  size_t size;
  max_align_t align;
};

static voidpf zctx_alloc(voidpf opaque, uInt items, uInt size) {
  struct lunet_ws_zctx *z = opaque;
  if (size != 0 && items > (SIZE_MAX - sizeof(union alloc_head)) / size)
    return Z_NULL;
  size_t n = (size_t)items * size;
  union alloc_head *h = malloc(sizeof *h + n);
  if (h == NULL) return Z_NULL;
  h->size = n;
  z->bytes += n;
  return h + 1;
}

static void zctx_release(voidpf opaque, voidpf p) {
  struct lunet_ws_zctx *z = opaque;
  union alloc_head *h = (union alloc_head *)p - 1;
  z->bytes -= h->size;
  free(h);
}

static void stream_prepare(struct lunet_ws_zctx *z, z_stream *s) {
  memset(s, 0, sizeof *s);
  s->zalloc = zctx_alloc;
  s->zfree = zctx_release;
  s->opaque = z;
}

struct lunet_ws_zctx *lunet_ws_zctx_new(void) {
  return calloc(1, sizeof(struct lunet_ws_zctx));
}

void lunet_ws_zctx_free(struct lunet_ws_zctx *z) {
  if (z == NULL) return;
  if (z->inflate_ready) inflateEnd(&z->inflate);
  for (int i = 0; i < DEFLATE_STREAMS; i++)
    if (z->deflate_ready[i]) deflateEnd(&z->deflate[i]);
  free(z);
}

size_t lunet_ws_zctx_bytes(const struct lunet_ws_zctx *z) {
  return z->bytes;
}

/* The inflate stream, fresh for a new message: a reset forgets the window
 * (whave = 0), so nothing of the last message can be referred to. */
static z_stream *zctx_inflate(struct lunet_ws_zctx *z) {
  if (z->inflate_ready) {
    inflateReset(&z->inflate);
    return &z->inflate;
  }
  stream_prepare(z, &z->inflate);
  if (inflateInit2(&z->inflate, -15) != Z_OK) return NULL;
  z->inflate_ready = 1;
  return &z->inflate;
}

static z_stream *zctx_deflate(struct lunet_ws_zctx *z, int bits) {
  int i = bits - WINDOW_MIN;
  z_stream *s = &z->deflate[i];
  if (z->deflate_ready[i]) {
    deflateReset(s);
    return s;
  }
  stream_prepare(z, s);
  if (deflateInit2(s, LUNET_WS_DEFLATE_LEVEL, Z_DEFLATED, -bits, MEM_LEVEL,
                   Z_DEFAULT_STRATEGY) != Z_OK)
    return NULL;
  z->deflate_ready[i] = 1;
  return s;
}

void lunet_ws_deflate_init(struct lunet_ws_deflate *d, struct lunet_ws_zctx *z,
                           const struct lunet_ws_deflate_params *params,
                           enum lunet_ws_role role) {
  int bits = role == LUNET_WS_SERVER ? params->server_max_window_bits
                                     : params->client_max_window_bits;
  d->z = z;
  d->params = *params;
  d->deflate_bits = (unsigned char)(bits < WINDOW_MIN ? WINDOW_MIN : bits);
}

/* }==================================================================
 * Buffers
 * =================================================================== */

void lunet_ws_buf_free(struct lunet_ws_buf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

static int buf_reserve(struct lunet_ws_buf *b, size_t cap) {
  if (cap <= b->cap) return 0;
  char *p = realloc(b->p, cap);
  if (p == NULL) return -1;
  b->p = p;
  b->cap = cap;
  return 0;
}

/* The next size for an inflate: doubling, never past max. */
static size_t grow_size(const struct lunet_ws_buf *b, size_t in_len,
                        size_t max) {
  size_t want = b->cap ? b->cap * 2 : (in_len < 512 ? 1024 : in_len * 2);
  if (want < b->cap || want > max) want = max;
  return want;
}

/* }==================================================================
 * Messages
 * =================================================================== */

static const unsigned char sync_tail[4] = {0x00, 0x00, 0xff, 0xff};

int lunet_ws_deflate_worth(size_t len) {
  return len >= LUNET_WS_DEFLATE_MIN;
}

/* One inflate of a whole message: the input still to give zlib (payload,
 * then the 4-byte tail), and the output bound. */
struct inflate_job {
  z_stream *s;
  const unsigned char *in;
  size_t in_left;
  int tail_given;
  size_t in_len, max;
  struct lunet_ws_buf *out;
  int probing; /* out is full: zlib writes into a one-byte probe */
};

/* Gives zlib more input once it has used what it had. */
static void job_feed(struct inflate_job *j) {
  if (j->s->avail_in != 0) return;
  if (j->in_left > 0) {
    uInt n = j->in_left > UINT_MAX ? UINT_MAX : (uInt)j->in_left;
    j->s->next_in = (Bytef *)j->in;
    j->s->avail_in = n;
    j->in += n;
    j->in_left -= n;
  } else if (!j->tail_given) {
    j->s->next_in = (Bytef *)sync_tail;
    j->s->avail_in = sizeof sync_tail;
    j->tail_given = 1;
  }
}

/* Points zlib at the free part of out (growing it up to max), or at a
 * one-byte probe once out holds max: a byte there means "too big".
 * Returns the room given, or 0 when out could not grow. */
static uInt job_room(struct inflate_job *j, unsigned char *probe) {
  struct lunet_ws_buf *out = j->out;
  size_t limit = out->cap < j->max ? out->cap : j->max;
  j->probing = out->len == j->max;
  if (j->probing) {
    j->s->next_out = probe;
    return j->s->avail_out = 1;
  }
  if (out->len == limit) {
    if (buf_reserve(out, grow_size(out, j->in_len, j->max)) < 0) return 0;
    limit = out->cap < j->max ? out->cap : j->max;
  }
  size_t room = limit - out->len;
  j->s->next_out = (Bytef *)out->p + out->len;
  return j->s->avail_out = room > UINT_MAX ? UINT_MAX : (uInt)room;
}

/* 1 when every byte, the tail included, went in and zlib has nothing
 * more to write. */
static int job_drained(const struct inflate_job *j) {
  return j->s->avail_in == 0 && j->in_left == 0 && j->tail_given &&
         j->s->avail_out != 0;
}

static int job_run(struct inflate_job *j) {
  unsigned char probe;
  for (;;) {
    job_feed(j);
    uInt room = job_room(j, &probe);
    if (room == 0) return 1011;
    /* Z_BLOCK: stop at each block's end, where data_type says so. */
    int r = inflate(j->s, Z_BLOCK);
    uInt wrote = room - j->s->avail_out;
    if (j->probing && wrote > 0) return 1009;
    if (!j->probing) j->out->len += wrote;
    /* A final block ends the message; bytes after it (RFC 7692 7.2.3.4
     * leaves a 0x00 there) cannot add output and are ignored. */
    if (r == Z_STREAM_END) return 0;
    if (r == Z_MEM_ERROR) return 1011;
    if (r != Z_OK && r != Z_BUF_ERROR) return 1007;
    /* Done: the tail closed an empty stored block, so zlib must wait
     * at a block boundary (data_type 128); else the data was cut. */
    if (job_drained(j)) return (j->s->data_type & 128) ? 0 : 1007;
  }
}

int lunet_ws_inflate(struct lunet_ws_deflate *d, const char *in, size_t len,
                     size_t max, int is_text, struct lunet_ws_buf *out) {
  out->len = 0;
  /* Not valid deflate even with the tail, but it can only mean the
   * empty message, and some senders strip the 0x00 that RFC 7692 7.2.3.6
   * asks for. */
  if (len == 0) return 0;
  z_stream *s = zctx_inflate(d->z);
  if (s == NULL) return 1011;
  s->avail_in = 0; /* a reset keeps what the last message left unread */
  struct inflate_job j = {s, (const unsigned char *)in, len, 0, len, max, out,
                          0};
  int r = job_run(&j);
  if (r == 0 && is_text && out->len > 0 && !lunet_utf8_valid(out->p, out->len))
    return 1007;
  return r;
}

/* Runs deflate until all of in is in and the sync flush is out, growing
 * out as needed. */
static int deflate_run(z_stream *s, const unsigned char *in, size_t len,
                       struct lunet_ws_buf *out) {
  for (;;) {
    if (s->avail_in == 0 && len > 0) {
      uInt n = len > UINT_MAX ? UINT_MAX : (uInt)len;
      s->next_in = (Bytef *)in;
      s->avail_in = n;
      in += n;
      len -= n;
    }
    if (out->len == out->cap && buf_reserve(out, out->cap * 2) < 0) return 1011;
    size_t room = out->cap - out->len;
    uInt give = room > UINT_MAX ? UINT_MAX : (uInt)room;
    s->next_out = (Bytef *)out->p + out->len;
    s->avail_out = give;
    int r = deflate(s, len > 0 ? Z_NO_FLUSH : Z_SYNC_FLUSH);
    out->len += give - s->avail_out;
    if (r != Z_OK && r != Z_BUF_ERROR) return 1011;
    if (len == 0 && s->avail_in == 0 && s->avail_out != 0) return 0;
  }
}

int lunet_ws_deflate(struct lunet_ws_deflate *d, const char *in, size_t len,
                     struct lunet_ws_buf *out) {
  out->len = 0;
  z_stream *s = zctx_deflate(d->z, d->deflate_bits);
  if (s == NULL) return 1011;
  /* The bound is for Z_FINISH; the flush adds at most an empty stored
   * block. Rarely short; deflate_run grows out if it is. */
  if (buf_reserve(out, deflateBound(s, len) + 16) < 0) return 1011;
  s->avail_in = 0;
  int r = deflate_run(s, (const unsigned char *)in, len, out);
  if (r != 0) return r;
  if (out->len >= 4 &&
      memcmp(out->p + out->len - 4, sync_tail, sizeof sync_tail) == 0)
    out->len -= 4;
  return 0;
}

/* }================================================================== */
