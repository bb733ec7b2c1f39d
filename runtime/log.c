/* Structured logging. A record is built in a fixed buffer and written to
 * stderr with one write(2), so concurrent writers never interleave lines and
 * no record is ever unbounded: an over-long record is cut and marked. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>

#define LOG_RECORD_MAX 16384
#define LOG_PAIRS_MAX 32

static int log_level = LUNET_LOG_INFO;
static int log_format = LUNET_LOG_TEXT;

static const char *const level_names[] = {"debug", "info", "warn", "error",
                                          NULL};

void lunet_log_configure(int level, int format) {
  log_level = level;
  log_format = format;
}

int lunet_log_enabled(int level) { return level >= log_level; }

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
 * =================================================================== */

struct out {
  char *buf;
  size_t cap; /* usable bytes, one kept for the terminator */
  size_t len;
  int cut;
};

static void out_char(struct out *o, char ch) {
  if (o->len + 1 < o->cap)
    o->buf[o->len++] = ch;
  else
    o->cut = 1;
}

static void out_str(struct out *o, const char *s) {
  while (*s) out_char(o, *s++);
}

static int needs_quotes(const char *s) {
  if (*s == '\0') return 1;
  for (; *s; s++)
    if (*s <= ' ' || *s == '=' || *s == '"' || *s == '\\' || *s == 0x7f)
      return 1;
  return 0;
}

/* Escapes shared by logfmt's quoted values and JSON strings. */
static void out_escaped(struct out *o, const char *s) {
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') {
      out_char(o, '\\');
      out_char(o, (char)ch);
    } else if (ch == '\n') {
      out_str(o, "\\n");
    } else if (ch == '\t') {
      out_str(o, "\\t");
    } else if (ch == '\r') {
      out_str(o, "\\r");
    } else if (ch < 0x20 || ch == 0x7f) {
      char hex[8];
      snprintf(hex, sizeof hex, "\\u%04x", ch);
      out_str(o, hex);
    } else {
      out_char(o, (char)ch);
    }
  }
}

static void text_pair(struct out *o, const char *key, const char *value) {
  if (o->len > 0) out_char(o, ' ');
  out_str(o, key);
  out_char(o, '=');
  if (!needs_quotes(value)) {
    out_str(o, value);
    return;
  }
  out_char(o, '"');
  out_escaped(o, value);
  out_char(o, '"');
}

static void json_pair(struct out *o, const char *key, const char *value) {
  if (o->len > 1) out_char(o, ','); /* the record opened with '{' */
  out_char(o, '"');
  out_escaped(o, key);
  out_str(o, "\":\"");
  out_escaped(o, value);
  out_char(o, '"');
}

size_t lunet__log_format(char *buf, size_t cap, int format, int level,
                         const char *ts, const char *msg,
                         const char *const *kv, int npairs) {
  struct out o = {buf, cap > 16 ? cap - 8 : 0, 0, 0}; /* room for a cut mark */
  void (*pair)(struct out *, const char *, const char *) =
      format == LUNET_LOG_JSON ? json_pair : text_pair;
  if (format == LUNET_LOG_JSON) out_char(&o, '{');
  pair(&o, "ts", ts);
  pair(&o, "level", level_names[level]);
  pair(&o, "msg", msg);
  for (int i = 0; i < npairs; i++)
    pair(&o, kv[2 * i], kv[2 * i + 1] ? kv[2 * i + 1] : "");
  o.cap = cap; /* the reserved tail holds the closing and the cut mark */
  if (o.cut) out_str(&o, format == LUNET_LOG_JSON ? "...\"}" : " ...");
  else if (format == LUNET_LOG_JSON) out_char(&o, '}');
  if (cap > 0) buf[o.len] = '\0';
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

void lunet_log_pairs(int level, const char *msg, const char *const *kv,
                     int npairs) {
  char ts[64];
  char line[LOG_RECORD_MAX];
  if (!lunet_log_enabled(level)) return;
  format_timestamp(ts, sizeof ts);
  size_t n = lunet__log_format(line, sizeof line - 1, log_format, level, ts,
                               msg, kv, npairs);
  line[n++] = '\n';
  /* stderr is the log sink; a failed write has nowhere better to go. */
  ssize_t r = write(STDERR_FILENO, line, n);
  (void)r;
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

static int compare_keys(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Collects string keys of the fields table, sorted so records are stable. */
static int collect_keys(lua_State *L, int fields, const char **keys) {
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, fields) != 0) {
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING && n < LOG_PAIRS_MAX)
      keys[n++] = lua_tostring(L, -1);
  }
  qsort(keys, n, sizeof *keys, compare_keys);
  return n;
}

static int log_record(lua_State *L, int level) {
  const char *kv[2 * LOG_PAIRS_MAX];
  const char *keys[LOG_PAIRS_MAX];
  int n = 0;
  if (!lunet_log_enabled(level)) return 0;
  const char *msg = luaL_tolstring(L, 1, NULL);
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_checkstack(L, LOG_PAIRS_MAX + 4, "too many log fields");
    n = collect_keys(L, 2, keys);
    for (int i = 0; i < n; i++) {
      lua_getfield(L, 2, keys[i]);
      kv[2 * i] = keys[i];
      kv[2 * i + 1] = luaL_tolstring(L, -1, NULL); /* stays on the stack */
      lua_remove(L, -2);
    }
  }
  lunet_log_pairs(level, msg, kv, n);
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
