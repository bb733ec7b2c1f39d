/* The response object, res: headers and body serialised in C into one
 * buffer and written with one call for a whole response. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <lauxlib.h>

#include "conn.h"
#include "http_internal.h"
#include "loop.h"
#include "service.h"

#define RES_MT "lunet.http.response"
#define RES_UV_HEADERS 1 /* { name, value, name, value, ... } */
#define RES_UV_REQUEST 2 /* an upgrade's request, for res:websocket */

struct res_box {
  struct lunet_http *h; /* NULL once complete or the conn is gone */
  int started;          /* headers sent (streaming) */
  int chunked;
  int close;            /* Connection: close after this response */
  int has_type;         /* the handler set Content-Type */
  int sent;             /* complete (h is NULL then, as when the conn goes) */
};

static const char json_encode_key = 'J';

const char *lunet__http_reason(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
  }
}

/* The status line, Server and Date of a 200, formatted at most once a
 * second (every response carries them); other statuses are formatted
 * each time. */
struct head_cache {
  time_t second;
  size_t len;
  char text[128];
};

static void format_head(char *out, size_t cap, int status, time_t now,
                        size_t *len) {
  struct tm tm;
  char date[40];
  gmtime_r(&now, &tm);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  int n = snprintf(out, cap, "HTTP/1.1 %d %s\r\nServer: lunet\r\nDate: "
                   "%s\r\n", status, lunet__http_reason(status), date);
  *len = n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

/* {==================================================================
 * The bytes of a response: put together on the C stack, and continued in
 * a luaL_Buffer only when they outgrow it (a large body), so a small
 * response costs memcpy, not a Lua API call per piece. No Lua string is
 * made for a response either way.
 * =================================================================== */

struct out {
  lua_State *L;
  size_t len;  /* bytes in small, until spilled into b */
  int spilled; /* b holds everything and has its slot on the stack */
  luaL_Buffer b;
  char small[2048];
};

static void out_init(struct out *o, lua_State *L) {
  o->L = L;
  o->len = 0;
  o->spilled = 0;
}

/* Once spilled, nothing may be pushed until out_send: a luaL_Buffer
 * needs its slot on top of the stack whenever it grows. */
static void out_add(struct out *o, const char *s, size_t n) {
  if (!o->spilled) {
    if (n <= sizeof o->small - o->len) {
      memcpy(o->small + o->len, s, n);
      o->len += n;
      return;
    }
    luaL_buffinit(o->L, &o->b);
    luaL_addlstring(&o->b, o->small, o->len);
    o->spilled = 1;
  }
  luaL_addlstring(&o->b, s, n);
}

static void out_string(struct out *o, const char *s) {
  out_add(o, s, strlen(s));
}

/* A string literal: its length is known at compile time. */
#define OUT_LITERAL(o, s) out_add((o), "" s, sizeof(s) - 1)

/* Decimal without printf: this runs for every response. */
static void out_decimal(struct out *o, unsigned long long v) {
  char digits[24], *end = digits + sizeof digits, *p = end;
  do *--p = (char)('0' + v % 10);
  while ((v /= 10) != 0);
  out_add(o, p, (size_t)(end - p));
}

static void out_send(struct out *o, struct lunet_conn *c) {
  if (!o->spilled) {
    lunet_conn_send(c, o->small, o->len);
    return;
  }
  lunet_conn_send(c, luaL_buffaddr(&o->b), luaL_bufflen(&o->b));
  lua_pop(o->L, 1); /* the buffer's slot (placeholder or box) */
}

/* }================================================================== */

static int body_allowed(int status) {
  return status >= 200 && status != 204 && status != 304;
}

static void add_status_line(struct out *o, int status) {
  static struct head_cache ok = {-1, 0, ""};
  char line[192]; /* the longest reason phrase and date fit */
  size_t n;
  time_t now = time(NULL);
  if (status != 200) {
    format_head(line, sizeof line, status, now, &n);
    out_add(o, line, n);
    return;
  }
  if (ok.second != now) {
    format_head(ok.text, sizeof ok.text, 200, now, &ok.len);
    ok.second = now;
  }
  out_add(o, ok.text, ok.len);
}

static void add_framing(struct out *o, struct lunet_http *h, int status,
                        long long length, int close) {
  if (length >= 0 && body_allowed(status)) {
    OUT_LITERAL(o, "Content-Length: ");
    out_decimal(o, (unsigned long long)length);
    OUT_LITERAL(o, "\r\n");
  } else if (length == -1) {
    OUT_LITERAL(o, "Transfer-Encoding: chunked\r\n");
  }
  if (close)
    OUT_LITERAL(o, "Connection: close\r\n");
  else if (h->http10)
    OUT_LITERAL(o, "Connection: keep-alive\r\n");
  OUT_LITERAL(o, "\r\n");
}

/* One response counted by class, and its latency when a request had
 * been dispatched. */
static void count_response(struct lunet_http *h, int status) {
  struct lunet_metrics *m = &h->c->svc->metrics;
  if (status >= 100 && status < 600) m->responses[status / 100 - 1]++;
  if (h->start_ns != 0)
    lunet_histogram_observe(&m->latency, (double)(uv_hrtime() - h->start_ns) / 1e9);
  h->start_ns = 0;
}

void lunet__http_reply_error(struct lunet_http *h, int status) {
  lunet__http_refuse(h, status, "");
}

void lunet__http_refuse(struct lunet_http *h, int status, const char *extra) {
  lua_State *L = h->c->svc->rt->L;
  count_response(h, status);
  struct out o;
  const char *reason = lunet__http_reason(status);
  out_init(&o, L);
  add_status_line(&o, status);
  out_string(&o, extra);
  OUT_LITERAL(&o, "Content-Type: text/plain\r\n");
  add_framing(&o, h, status, (long long)strlen(reason) + 1, 1);
  out_string(&o, reason);
  OUT_LITERAL(&o, "\n");
  out_send(&o, h->c);
  h->phase = HTTP_DONE;
  lunet_conn_close(h->c, "closed", 1);
}

/* The box stays valid while pinned in h's slot, so h points at it
 * directly: no registry lookup to reach it. */
void lunet__http_release_response(lua_State *L, struct lunet_http *h) {
  if (h->res == NULL) return;
  h->res->h = NULL;
  h->res = NULL;
  lua_pushboolean(L, 0);
  lua_rawseti(L, LUA_REGISTRYINDEX, h->pin_ref);
}

void lunet__http_response_done(struct lunet_http *h, int close) {
  struct lunet_conn *c = h->c;
  lua_State *L = c->svc->rt->L;
  if (h->res != NULL) h->res->sent = 1;
  lunet__http_release_response(L, h);
  count_response(h, h->status);
  c->http_requests++;
  if (close || c->state != CONN_OPEN || c->svc->rt->shutting_down) {
    h->phase = HTTP_DONE;
    lunet_conn_close(c, "closed", 1);
    return;
  }
  h->phase = HTTP_IDLE;
  c->last_read_ms = uv_now(&c->svc->rt->loop); /* keep-alive counts from here */
  lunet_conn_hold(c, 0); /* the next (maybe pipelined) request */
}

void lunet__http_push_response(lua_State *L, struct lunet_http *h) {
  struct res_box *r = lua_newuserdatauv(L, sizeof *r, 2);
  memset(r, 0, sizeof *r);
  r->h = h;
  r->close = !h->keep_alive ||
             h->c->http_requests + 1 >= h->c->svc->opt.max_requests;
  lua_rawgeti(L, LUA_REGISTRYINDEX, lunet_rt(L)->http_response_mt);
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_rawseti(L, LUA_REGISTRYINDEX, h->pin_ref); /* until released */
  h->res = r;
}

void lunet__http_handler_failed(struct lunet_http *h) {
  lua_State *L = h->c->svc->rt->L;
  struct res_box *r = h->res;
  if (r == NULL) return; /* it had answered already */
  if (r->started) {
    lunet__http_release_response(L, h);
    h->phase = HTTP_DONE;
    lunet_conn_close(h->c, "handler_error", 0);
    return;
  }
  lunet__http_reply_simple(h, 500);
}

void lunet__http_reply_simple(struct lunet_http *h, int status) {
  lua_State *L = h->c->svc->rt->L;
  int close = h->res->close || h->c->svc->rt->shutting_down;
  const char *reason = lunet__http_reason(status);
  struct out o;
  h->status = status;
  out_init(&o, L);
  add_status_line(&o, status);
  OUT_LITERAL(&o, "Content-Type: text/plain\r\n");
  add_framing(&o, h, status, (long long)strlen(reason) + 1, close);
  if (!h->head_only) {
    out_string(&o, reason);
    OUT_LITERAL(&o, "\n");
  }
  out_send(&o, h->c);
  lunet__http_response_done(h, close);
}

/* {==================================================================
 * Lua methods
 * =================================================================== */

/* luaL_checkudata without its lookup by name on every call: the
 * metatable is every method's upvalue 1. */
static struct res_box *check_res(lua_State *L) {
  struct res_box *r = lua_touserdata(L, 1);
  int ok = r != NULL && lua_getmetatable(L, 1);
  if (ok) {
    ok = lua_topointer(L, -1) == lua_topointer(L, lua_upvalueindex(1));
    lua_pop(L, 1);
  }
  if (!ok) luaL_typeerror(L, 1, RES_MT);
  return r;
}

/* Answering twice is a bug and raises; answering a client that went away
 * (or was timed out) is not: the method returns nil, "closed". */
static struct res_box *live_res(lua_State *L) {
  struct res_box *r = check_res(L);
  if (r->h == NULL && r->sent) luaL_error(L, "the response was already sent");
  return r->h != NULL ? r : NULL;
}

#define LIVE_RES_OR_CLOSED(r)         \
  if ((r) == NULL) {                 \
    luaL_pushfail(L);                \
    lua_pushliteral(L, "closed");    \
    return 2;                        \
  }

/* {==================================================================
 * Header checks
 *
 * Names and values are Lua strings with a length and are never read as
 * C strings: a NUL is a byte like any other, and refused like the other
 * control bytes. One table lookup per byte keeps the check cheap.
 * =================================================================== */

enum { HB_TCHAR = 1, HB_VALUE = 2 };

/* RFC 9110: tchar for names; field-value bytes (VCHAR, obs-text, SP,
 * HTAB) for values. */
static const unsigned char header_bytes[256] = {
    ['\t'] = HB_VALUE,  [' '] = HB_VALUE,
#define TV HB_TCHAR | HB_VALUE
    ['!'] = TV,         ['#'] = TV,         ['$'] = TV,
    ['%'] = TV,         ['&'] = TV,         ['\''] = TV,
    ['*'] = TV,         ['+'] = TV,         ['-'] = TV,
    ['.'] = TV,         ['^'] = TV,         ['_'] = TV,
    ['`'] = TV,         ['|'] = TV,         ['~'] = TV,
    ['0' ... '9'] = TV, ['A' ... 'Z'] = TV, ['a' ... 'z'] = TV,
#undef TV
    ['"'] = HB_VALUE,   ['('] = HB_VALUE,   [')'] = HB_VALUE,
    [','] = HB_VALUE,   ['/'] = HB_VALUE,   [':'] = HB_VALUE,
    [';'] = HB_VALUE,   ['<'] = HB_VALUE,   ['='] = HB_VALUE,
    ['>'] = HB_VALUE,   ['?'] = HB_VALUE,   ['@'] = HB_VALUE,
    ['['] = HB_VALUE,   ['\\'] = HB_VALUE,  [']'] = HB_VALUE,
    ['{'] = HB_VALUE,   ['}'] = HB_VALUE,   [0x80 ... 0xff] = HB_VALUE,
};

static int is_token(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++)
    if (!(header_bytes[p[i]] & HB_TCHAR)) return 0;
  return 1;
}

/* The offset of the first byte a field value may not hold, or n. */
static size_t bad_value_byte(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < n && (header_bytes[p[i]] & HB_VALUE)) i++;
  return i;
}

/* A refused name for an error message: bytes that are not printable are
 * shown as \xNN, and a long name is cut (marked "..."). */
static const char *printable_name(char *buf, size_t cap, const char *s,
                                  size_t n) {
  size_t len = 0, i = 0;
  for (; i < n && len + 8 < cap; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch >= 0x20 && ch < 0x7f && ch != '\\')
      buf[len++] = (char)ch;
    else
      len += (size_t)snprintf(buf + len, cap - len, "\\x%02x", ch);
  }
  if (i < n) memcpy(buf + len, "...", 3), len += 3;
  buf[len] = '\0';
  return buf;
}

static int name_is(const char *name, size_t n, const char *lower,
                   size_t lower_len) {
  return n == lower_len && strncasecmp(name, lower, n) == 0;
}

#define NAME_IS(x, lit) \
  name_is((x)->name, (x)->name_len, "" lit, sizeof(lit) - 1)

/* }================================================================== */

#define RES_MAX_HEADERS 64

struct out_header {
  const char *name, *value; /* anchored in their tables on the stack */
  size_t name_len, value_len;
};

static void refuse_value(lua_State *L, const struct out_header *x, size_t at) {
  unsigned char ch = (unsigned char)x->value[at];
  char hex[8];
  if (ch == '\r' || ch == '\n')
    luaL_error(L, "invalid value for header '%s' (CR or LF)", x->name);
  snprintf(hex, sizeof hex, "0x%02x", ch);
  luaL_error(L, "invalid value for header '%s' (control byte %s at offset %d)",
             x->name, hex, (int)at);
}

/* Checks a header a handler gave: a token for a name, no control byte in
 * the value (CR/LF would split the response; a NUL would be read as its
 * end by many peers), nothing lunet frames itself. Returns 0 when lunet
 * takes it over (Connection). */
static int check_header(lua_State *L, struct res_box *r,
                        const struct out_header *x) {
  if (!is_token(x->name, x->name_len)) {
    char shown[96];
    luaL_error(L, "invalid header name '%s'",
               printable_name(shown, sizeof shown, x->name, x->name_len));
  }
  size_t bad = bad_value_byte(x->value, x->value_len);
  if (bad != x->value_len) refuse_value(L, x, bad);
  if (NAME_IS(x, "content-length") || NAME_IS(x, "transfer-encoding"))
    luaL_error(L, "'%s' is set by lunet", x->name);
  if (NAME_IS(x, "content-type")) r->has_type = 1;
  if (!NAME_IS(x, "connection")) return 1;
  if (x->value_len == 5 && strncasecmp(x->value, "close", 5) == 0) r->close = 1;
  return 0;
}

static int take_header(lua_State *L, struct res_box *r, struct out_header *out,
                       int n, int name_idx, int value_idx) {
  if (n == RES_MAX_HEADERS)
    luaL_error(L, "too many response headers (max %d)", RES_MAX_HEADERS);
  out[n].name = lua_tolstring(L, name_idx, &out[n].name_len);
  out[n].value = lua_tolstring(L, value_idx, &out[n].value_len);
  return n + check_header(L, r, &out[n]);
}

/* res:header() values (list 0: none), then the headers argument (a
 * table) if any, gathered before the response buffer exists: a
 * luaL_Buffer must have its slot on top of the stack whenever it grows.
 * Each string stays anchored in its table after the pops. */
static int gather_headers(lua_State *L, struct res_box *r, int list, int extra,
                          struct out_header *out) {
  int n = 0;
  for (lua_Integer i = 1; list != 0 && lua_rawgeti(L, list, i) == LUA_TSTRING;
       i += 2) {
    lua_rawgeti(L, list, i + 1);
    n = take_header(L, r, out, n, -2, -1);
    lua_pop(L, 2);
  }
  if (list != 0) lua_pop(L, 1);
  if (extra == 0) return n;
  lua_pushnil(L);
  while (lua_next(L, extra) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "headers must map names to strings");
    n = take_header(L, r, out, n, -2, -1);
    lua_pop(L, 1);
  }
  return n;
}

static void add_headers(struct out *o, const struct out_header *x, int n) {
  for (int i = 0; i < n; i++) {
    out_add(o, x[i].name, x[i].name_len);
    OUT_LITERAL(o, ": ");
    out_add(o, x[i].value, x[i].value_len);
    OUT_LITERAL(o, "\r\n");
  }
}

static int check_status(lua_State *L, int idx) {
  lua_Integer status = luaL_checkinteger(L, idx);
  luaL_argcheck(L, status >= 200 && status <= 599, idx,
                "status must be 200-599");
  return (int)status;
}

/* A body at least this long is not copied after the head but queued as
 * the Lua string itself (pinned): slow clients of one large body hold it
 * once. A shorter one goes with the head, in one write. */
#define RES_PIN_MIN (16 * 1024)

/* Sends the n bytes at p, inside the string at idx of L. */
static void send_body(lua_State *L, struct lunet_conn *c, int idx,
                      const char *p, size_t n) {
  if (n >= RES_PIN_MIN)
    lunet_conn_send_string(c, L, idx, p, n);
  else
    lunet_conn_send(c, p, n);
}

/* Serialises and writes the head, and the body when given (the string at
 * body_idx); length -1 means chunked, -2 close-delimited (HTTP/1.0
 * streaming). */
static void send_head(lua_State *L, struct res_box *r, int status,
                      long long length, int body_idx, int extra) {
  struct lunet_http *h = r->h;
  struct out_header headers[RES_MAX_HEADERS];
  struct out o;
  /* The list (nil when res:header was not called) stays on the stack:
   * it anchors the strings gathered from it. */
  int list = lua_getiuservalue(L, 1, RES_UV_HEADERS) == LUA_TTABLE
                 ? lua_gettop(L) : 0;
  int nheaders = gather_headers(L, r, list, extra, headers);
  out_init(&o, L);
  add_status_line(&o, status);
  add_headers(&o, headers, nheaders);
  if (length == -2 || h->c->svc->rt->shutting_down) r->close = 1;
  if (!r->has_type && length != 0 && body_allowed(status))
    OUT_LITERAL(&o, "Content-Type: text/plain; charset=utf-8\r\n");
  add_framing(&o, h, status, length, r->close);
  size_t blen = 0;
  const char *body = body_idx != 0 && !h->head_only && body_allowed(status)
                         ? lua_tolstring(L, body_idx, &blen) : NULL;
  if (body != NULL && blen < RES_PIN_MIN) out_add(&o, body, blen);
  out_send(&o, h->c);
  if (body != NULL && blen >= RES_PIN_MIN)
    lunet_conn_send_string(h->c, L, body_idx, body, blen);
  lua_pop(L, 1); /* the header list */
  r->started = 1;
  h->status = status;
}

/* res:send(status, body, headers) */
static int res_send(lua_State *L) {
  struct res_box *r = live_res(L);
  LIVE_RES_OR_CLOSED(r);
  int status = check_status(L, 2);
  size_t blen = 0;
  luaL_optlstring(L, 3, "", &blen);
  int body_idx = lua_isnoneornil(L, 3) ? 0 : 3;
  int extra = lua_isnoneornil(L, 4) ? 0 : 4;
  if (extra) luaL_checktype(L, 4, LUA_TTABLE);
  if (r->started) return luaL_error(L, "headers already sent (streaming)");
  send_head(L, r, status, (long long)blen, body_idx, extra);
  lunet__http_response_done(r->h, r->close);
  lua_pushboolean(L, 1);
  return 1;
}

/* res:json(status, value [, headers]) with lua-cjson. */
static int res_json(lua_State *L) {
  struct res_box *r = live_res(L);
  LIVE_RES_OR_CLOSED(r);
  check_status(L, 2);
  lua_settop(L, 4);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &json_encode_key) != LUA_TFUNCTION)
    return luaL_error(L, "lua-cjson is not available");
  lua_pushvalue(L, 3);
  lua_call(L, 1, 1);
  lua_replace(L, 3);
  if (lua_isnil(L, 4)) lua_newtable(L), lua_replace(L, 4);
  luaL_checktype(L, 4, LUA_TTABLE);
  if (lua_getfield(L, 4, "Content-Type") == LUA_TNIL) {
    lua_pushliteral(L, "application/json");
    lua_setfield(L, 4, "Content-Type");
  }
  lua_settop(L, 4);
  return res_send(L);
}

/* res:header(name, value): sent with the head; repeats are kept. */
static int res_header(lua_State *L) {
  struct res_box *r = live_res(L);
  LIVE_RES_OR_CLOSED(r);
  luaL_checkstring(L, 2);
  luaL_checkstring(L, 3);
  if (r->started) return luaL_error(L, "headers already sent");
  if (lua_getiuservalue(L, 1, RES_UV_HEADERS) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, RES_UV_HEADERS);
  }
  lua_Integer n = luaL_len(L, -1);
  lua_pushvalue(L, 2); /* the string itself: it may hold a NUL */
  lua_rawseti(L, -2, n + 1);
  lua_pushvalue(L, 3);
  lua_rawseti(L, -2, n + 2);
  return 0;
}

/* res:write(chunk): streams; the head goes first (status 200 unless
 * res:status was given to the first write as a second argument). */
static int res_write(lua_State *L) {
  struct res_box *r = live_res(L);
  LIVE_RES_OR_CLOSED(r);
  size_t n;
  const char *chunk = luaL_checklstring(L, 2, &n);
  if (!r->started) {
    int status = lua_isnoneornil(L, 3) ? 200 : check_status(L, 3);
    r->chunked = !r->h->http10;
    send_head(L, r, status, r->chunked ? -1 : -2, 0, 0);
  }
  if (n == 0 || r->h->head_only) return 0;
  if (!r->chunked) return send_body(L, r->h->c, 2, chunk, n), 0;
  char size[24];
  int k = snprintf(size, sizeof size, "%zx\r\n", n);
  struct out o;
  out_init(&o, L);
  out_add(&o, size, (size_t)k);
  if (n < RES_PIN_MIN) {
    out_add(&o, chunk, n);
    OUT_LITERAL(&o, "\r\n");
    out_send(&o, r->h->c);
    return 0;
  }
  out_send(&o, r->h->c);
  lunet_conn_send_string(r->h->c, L, 2, chunk, n);
  lunet_conn_send(r->h->c, "\r\n", 2);
  return 0;
}

/* res:finish(): ends a streamed response (or sends an empty 200). */
static int res_finish(lua_State *L) {
  struct res_box *r = live_res(L);
  LIVE_RES_OR_CLOSED(r);
  if (!r->started) {
    lua_settop(L, 1);
    lua_pushinteger(L, 200);
    lua_pushliteral(L, "");
    return res_send(L);
  }
  if (r->chunked && !r->h->head_only)
    lunet_conn_send(r->h->c, "0\r\n\r\n", 5);
  lunet__http_response_done(r->h, r->close);
  lua_pushboolean(L, 1);
  return 1;
}

static int res_tostring(lua_State *L) {
  struct res_box *r = check_res(L);
  lua_pushfstring(L, "lunet.http.response (%s)", r->h ? "open" : "sent");
  return 1;
}

/* }================================================================== */

static void cache_json_encode(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "cjson");
  if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_istable(L, -1)) {
    lua_getfield(L, -1, "encode");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &json_encode_key);
  }
  lua_pop(L, 1);
}

/* {==================================================================
 * For the upgrade to a websocket (ws_upgrade.c)
 * =================================================================== */

void lunet__http_keep_request(lua_State *L, int res, int req) {
  res = lua_absindex(L, res);
  lua_pushvalue(L, req);
  lua_setiuservalue(L, res, RES_UV_REQUEST);
}

struct lunet_http *lunet__http_upgrade_check(lua_State *L) {
  struct res_box *r = live_res(L);
  if (r == NULL) return NULL;
  if (r->started) luaL_error(L, "headers already sent (streaming)");
  lua_getiuservalue(L, 1, RES_UV_REQUEST);
  return r->h;
}

void lunet__http_upgraded(struct lunet_http *h) {
  h->res->sent = 1;
  lunet__http_release_response(h->c->svc->rt->L, h);
  count_response(h, 101);
  h->c->http_requests++;
}

void lunet__http_refused(struct lunet_http *h) {
  if (h->res != NULL) h->res->sent = 1;
  lunet__http_release_response(h->c->svc->rt->L, h);
}

/* }================================================================== */

void lunet__http_response_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"send", res_send},
                                     {"websocket", lunet__ws_res_websocket},
                                     {"json", res_json},
                                     {"header", res_header},
                                     {"write", res_write},
                                     {"finish", res_finish},
                                     {NULL, NULL}};
  luaL_newmetatable(L, RES_MT);
  lua_pushvalue(L, -1);
  lunet_rt(L)->http_response_mt = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, res_tostring, 1);
  lua_setfield(L, -2, "__tostring");
  luaL_newlibtable(L, methods);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, methods, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  cache_json_encode(L);
}
