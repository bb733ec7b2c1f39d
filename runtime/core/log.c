/* Structured logging. A record is built in a fixed buffer and written to
 * stderr by the sink (log_sink.c), whole, so concurrent writers never
 * interleave lines, and no record is ever unbounded: an over-long record is
 * cut and marked. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>

#include "addr.h"
#include "call.h"
#include "log_sink.h"

#define LOG_RECORD_MAX 16384
#define LOG_PAIRS_MAX 32

static int log_level = LUNET_LOG_INFO;
static int log_format = LUNET_LOG_TEXT;
/* A field every record of this process ends with (worker=N), or none. */
static const char *process_key, *process_value;

static const char *const level_names[] = {"debug", "info", "warn", "error",
                                          NULL};

void lunet_log_configure(int level, int format) {
  log_level = level;
  log_format = format;
}

int lunet_log_enabled(int level) { return level >= log_level; }

void lunet_log_set_process_field(const char *key, const char *value) {
  process_key = key;
  process_value = value;
}

int lunet_log_parse_level(const char *name) {
  for (int i = 0; level_names[i] != NULL; i++)
    if (strcmp(name, level_names[i]) == 0) return i;
  return -1;
}

int lunet_log_parse_format(const char *name) {
  if (strcmp(name, "text") == 0) return LUNET_LOG_TEXT;
  if (strcmp(name, "json") == 0) return LUNET_LOG_JSON;
  return -1;
}

/* {==================================================================
 * Record formatting into a bounded buffer
 *
 * Every write is all-or-nothing (an escape sequence or a UTF-8 character
 * is never split), so a record that does not fit is cut at a clean place
 * and closed with a "truncated" field: still one valid logfmt line or JSON
 * object.
 * =================================================================== */

#define CUT_TAIL_MAX 26 /* room for ..." and ,"truncated":"true"} */

struct out {
  char *buf;
  size_t cap; /* bytes usable, one kept for the terminator */
  size_t len;
  int cut;        /* something did not fit; later writes are dropped */
  int open_quote; /* inside a quoted value */
  int npairs;
};

static void put(struct out *o, const char *s, size_t n) {
  if (o->cut) return;
  if (o->len + n >= o->cap) {
    o->cut = 1;
    return;
  }
  memcpy(o->buf + o->len, s, n);
  o->len += n;
}

static void put_str(struct out *o, const char *s) { put(o, s, strlen(s)); }

/* A key or value: a pointer and a length, so the bytes of a Lua string
 * are logged whole (a NUL is escaped, not taken for the end). */
struct str {
  const char *s;
  size_t n;
};

static int needs_quotes(struct str v) {
  const unsigned char *p = (const unsigned char *)v.s;
  if (v.n == 0) return 1;
  for (size_t i = 0; i < v.n; i++)
    if (p[i] <= ' ' || p[i] == '=' || p[i] == '"' || p[i] == '\\' ||
        p[i] == 0x7f)
      return 1;
  return 0;
}

/* Length of the UTF-8 sequence starting at p (left bytes remain), 1 for
 * anything malformed or cut short. */
static size_t utf8_len(const unsigned char *p, size_t left) {
  size_t n = *p >= 0xf0 ? 4 : *p >= 0xe0 ? 3 : *p >= 0xc0 ? 2 : 1;
  if (n > left) return 1;
  for (size_t i = 1; i < n; i++)
    if ((p[i] & 0xc0) != 0x80) return 1;
  return n;
}

/* Escapes shared by logfmt's quoted values and JSON strings. */
static void put_escaped(struct out *o, struct str v) {
  const unsigned char *p = (const unsigned char *)v.s, *end = p + v.n;
  while (p < end) {
    char esc[8];
    if (*p == '"' || *p == '\\') {
      esc[0] = '\\', esc[1] = (char)*p;
      put(o, esc, 2);
    } else if (*p == '\n' || *p == '\t' || *p == '\r') {
      put_str(o, *p == '\n' ? "\\n" : *p == '\t' ? "\\t" : "\\r");
    } else if (*p < 0x20 || *p == 0x7f) {
      snprintf(esc, sizeof esc, "\\u%04x", *p);
      put(o, esc, 6);
    } else {
      size_t n = utf8_len(p, (size_t)(end - p));
      put(o, (const char *)p, n);
      p += n;
      continue;
    }
    p++;
  }
}

/* logfmt keys are bare words: anything else becomes '_'. */
static void put_text_key(struct out *o, struct str key) {
  for (size_t i = 0; i < key.n; i++) {
    char ch = key.s[i];
    int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
             (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-';
    put(o, ok ? key.s + i : "_", 1);
  }
}

static void text_pair(struct out *o, struct str key, struct str value) {
  if (o->npairs > 0) put(o, " ", 1);
  put_text_key(o, key);
  put(o, "=", 1);
  if (!needs_quotes(value)) {
    put(o, value.s, value.n);
    return;
  }
  put(o, "\"", 1);
  o->open_quote = !o->cut;
  put_escaped(o, value);
  put(o, "\"", 1);
  if (!o->cut) o->open_quote = 0;
}

static void json_pair(struct out *o, struct str key, struct str value) {
  if (o->npairs > 0) put(o, ",", 1);
  put(o, "\"", 1);
  put_escaped(o, key);
  put(o, "\":\"", 3);
  o->open_quote = !o->cut;
  put_escaped(o, value);
  put(o, "\"", 1);
  if (!o->cut) o->open_quote = 0;
}

/* A pair cut anywhere but inside its quoted value is taken back whole;
 * one cut inside the value is closed by lunet__log_format. */
static void put_pair(struct out *o, int format, struct str key,
                     struct str value) {
  size_t mark = o->len;
  if (o->cut) return;
  (format == LUNET_LOG_JSON ? json_pair : text_pair)(o, key, value);
  if (o->cut && !o->open_quote) {
    o->len = mark;
    return;
  }
  o->npairs++;
}

static struct str cstr(const char *s) {
  return (struct str){s ? s : "", s ? strlen(s) : 0};
}

/* kv[i] with its length: lens[i], or up to its NUL when lens is NULL. */
static struct str kv_str(const char *const *kv, const size_t *lens, int i) {
  if (lens == NULL || kv[i] == NULL) return cstr(kv[i]);
  return (struct str){kv[i], lens[i]};
}

struct record_in {
  int format, level;
  const char *ts;
  struct str msg;
  const char *const *kv;
  const size_t *lens;
  int npairs;
};

static void put_record(struct out *o, const struct record_in *r) {
  int format = r->format;
  if (format == LUNET_LOG_JSON) put(o, "{", 1);
  put_pair(o, format, cstr("ts"), cstr(r->ts));
  put_pair(o, format, cstr("level"), cstr(level_names[r->level]));
  put_pair(o, format, cstr("msg"), r->msg);
  for (int i = 0; i < r->npairs; i++)
    put_pair(o, format, kv_str(r->kv, r->lens, 2 * i),
             kv_str(r->kv, r->lens, 2 * i + 1));
  if (format == LUNET_LOG_JSON) put(o, "}", 1);
}

size_t lunet__log_format(char *buf, size_t cap, int format, int level,
                         const char *ts, const char *msg,
                         const char *const *kv, int npairs) {
  return lunet__log_format_n(buf, cap, format, level, ts, msg,
                             msg ? strlen(msg) : 0, kv, NULL, npairs);
}

size_t lunet__log_format_n(char *buf, size_t cap, int format, int level,
                           const char *ts, const char *msg, size_t msg_len,
                           const char *const *kv, const size_t *lens,
                           int npairs) {
  struct record_in r = {format, level, ts,    {msg ? msg : "", msg_len},
                        kv,     lens,  npairs};
  struct out o = {buf, cap, 0, 0, 0, 0};
  if (cap == 0) return 0;
  put_record(&o, &r);
  if (o.cut) {
    if (cap <= CUT_TAIL_MAX + 1) {
      buf[0] = '\0';
      return 0;
    }
    o = (struct out){buf, cap - CUT_TAIL_MAX, 0, 0, 0, 0};
    put_record(&o, &r);
    o.cap = cap, o.cut = 0;
    if (o.open_quote) put(&o, "...\"", 4);
    if (o.npairs > 0) put_str(&o, format == LUNET_LOG_JSON ? "," : " ");
    put_str(&o, format == LUNET_LOG_JSON ? "\"truncated\":\"true\"}"
                                         : "truncated=true");
  }
  buf[o.len] = '\0';
  return o.len;
}

/* }================================================================== */

static void format_timestamp(char *ts, size_t cap) {
  struct timespec now;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &now);
  gmtime_r(&now.tv_sec, &tm);
  snprintf(ts, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
           (long)(now.tv_nsec / 1000000) % 1000);
}

/* One record with the process field appended (its length is its
 * strlen, as it is a C string). */
static size_t record_n(char *buf, size_t cap, int level, const char *msg,
                       size_t msg_len, const char *const *kv,
                       const size_t *lens, int npairs) {
  char ts[64];
  const char *tagged[2 * (LOG_PAIRS_MAX + 4)];
  size_t tagged_lens[2 * (LOG_PAIRS_MAX + 4)];
  if (process_key != NULL && npairs < LOG_PAIRS_MAX + 3) {
    memcpy(tagged, kv, sizeof *kv * 2 * (size_t)npairs);
    tagged[2 * npairs] = process_key;
    tagged[2 * npairs + 1] = process_value;
    if (lens != NULL) {
      memcpy(tagged_lens, lens, sizeof *lens * 2 * (size_t)npairs);
      tagged_lens[2 * npairs] = strlen(process_key);
      tagged_lens[2 * npairs + 1] = process_value ? strlen(process_value) : 0;
      lens = tagged_lens;
    }
    kv = tagged, npairs++;
  }
  format_timestamp(ts, sizeof ts);
  size_t n = lunet__log_format_n(buf, cap - 1, log_format, level, ts, msg,
                                 msg_len, kv, lens, npairs);
  buf[n++] = '\n';
  return n;
}

size_t lunet__log_record(char *buf, size_t cap, int level, const char *msg,
                         const char *const *kv, int npairs) {
  return record_n(buf, cap, level, msg, strlen(msg), kv, NULL, npairs);
}

void lunet_log_pairs(int level, const char *msg, const char *const *kv,
                     int npairs) {
  lunet_log_pairs_n(level, msg, strlen(msg), kv, NULL, npairs);
}

void lunet_log_pairs_n(int level, const char *msg, size_t msg_len,
                       const char *const *kv, const size_t *lens, int npairs) {
  char line[LOG_RECORD_MAX];
  if (!lunet_log_enabled(level)) return;
  lunet_log_sink_write(
      line, record_n(line, sizeof line, level, msg, msg_len, kv, lens, npairs));
}

void lunet_log(int level, const char *msg, ...) {
  const char *kv[2 * LOG_PAIRS_MAX];
  int n = 0;
  va_list ap;
  if (!lunet_log_enabled(level)) return;
  va_start(ap, msg);
  for (;;) {
    const char *key = va_arg(ap, const char *);
    if (key == NULL || n == LOG_PAIRS_MAX) break;
    kv[2 * n] = key;
    kv[2 * n + 1] = va_arg(ap, const char *);
    n++;
  }
  va_end(ap);
  lunet_log_pairs(level, msg, kv, n);
}

/* {==================================================================
 * Lua binding: lunet.log.info(msg, {key = value, ...})
 * =================================================================== */

/* A field's key: a Lua string with its length, anchored in the fields
 * table while the record is made. */
struct key {
  const char *s;
  size_t n;
};

static int compare_keys(const void *a, const void *b) {
  const struct key *x = a, *y = b;
  int c = memcmp(x->s, y->s, x->n < y->n ? x->n : y->n);
  return c != 0 ? c : (x->n > y->n) - (x->n < y->n);
}

/* Collects string keys of the fields table, sorted so records are stable. */
static int collect_keys(lua_State *L, int fields, struct key *keys) {
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, fields) != 0) {
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING && n < LOG_PAIRS_MAX) {
      keys[n].s = lua_tolstring(L, -1, &keys[n].n);
      n++;
    }
  }
  qsort(keys, n, sizeof *keys, compare_keys);
  return n;
}

struct fields {
  const char *kv[2 * (LOG_PAIRS_MAX + 3)];
  size_t lens[2 * (LOG_PAIRS_MAX + 3)];
  int n;
};

static int has_key(const struct fields *f, const char *key, size_t len) {
  for (int i = 0; i < f->n; i++)
    if (f->lens[2 * i] == len && memcmp(f->kv[2 * i], key, len) == 0) return 1;
  return 0;
}

static void add_pair(struct fields *f, const char *key, const char *value) {
  size_t klen = strlen(key);
  if (has_key(f, key, klen)) return; /* the handler's own field wins */
  f->kv[2 * f->n] = key;
  f->lens[2 * f->n] = klen;
  f->kv[2 * f->n + 1] = value;
  f->lens[2 * f->n + 1] = strlen(value);
  f->n++;
}

/* Inside a handler call the record ends with its service, conn and peer,
 * so one client's story can be followed with grep. */
static void context_pairs(struct fields *f, char *id, char *peer) {
  const struct lunet_call_ctx *ctx = lunet_call_current();
  if (ctx == NULL) return;
  if (ctx->service) add_pair(f, "service", ctx->service);
  if (ctx->conn_id) {
    snprintf(id, 24, "%llu", (unsigned long long)ctx->conn_id);
    add_pair(f, "conn", id);
  }
  if (ctx->peer && lunet_addr_format(ctx->peer, peer, LUNET_ADDR_STRLEN) == 0)
    add_pair(f, "peer", peer);
}

/* The fields table's values as strings (tostring), each left on the stack
 * so it lives until the record is written. Keys and values keep their
 * lengths: a NUL in either is logged escaped, never taken for the end. */
static void table_pairs(lua_State *L, struct fields *f) {
  struct key keys[LOG_PAIRS_MAX];
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checkstack(L, LOG_PAIRS_MAX + 4, "too many log fields");
  int n = collect_keys(L, 2, keys);
  for (int i = 0; i < n; i++) {
    lua_pushlstring(L, keys[i].s, keys[i].n);
    lua_gettable(L, 2);
    f->kv[2 * i] = keys[i].s;
    f->lens[2 * i] = keys[i].n;
    f->kv[2 * i + 1] = luaL_tolstring(L, -1, &f->lens[2 * i + 1]);
    lua_remove(L, -2);
  }
  f->n = n;
}

static int log_record(lua_State *L, int level) {
  struct fields f;
  char id[24], peer[LUNET_ADDR_STRLEN];
  size_t msg_len;
  if (!lunet_log_enabled(level)) return 0;
  lua_settop(L, 2); /* fields stay at 2 when none were given */
  const char *msg = luaL_tolstring(L, 1, &msg_len);
  f.n = 0;
  if (!lua_isnoneornil(L, 2)) table_pairs(L, &f);
  context_pairs(&f, id, peer);
  lunet_log_pairs_n(level, msg, msg_len, f.kv, f.lens, f.n);
  return 0;
}

static int log_debug(lua_State *L) { return log_record(L, LUNET_LOG_DEBUG); }
static int log_info(lua_State *L) { return log_record(L, LUNET_LOG_INFO); }
static int log_warn(lua_State *L) { return log_record(L, LUNET_LOG_WARN); }
static int log_error(lua_State *L) { return log_record(L, LUNET_LOG_ERROR); }

int lunet_log_open(lua_State *L) {
  static const luaL_Reg funcs[] = {{"debug", log_debug},
                                   {"info", log_info},
                                   {"warn", log_warn},
                                   {"error", log_error},
                                   {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
