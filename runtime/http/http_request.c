/* The request object, req: a userdata that owns a copy of its request's
 * head (the url and the headers) and builds each field when the script
 * reads it. A handler that reads nothing costs one allocation; a table
 * filled with every field for every request cost about half of a hello
 * request's instructions (callgrind). Owning the bytes is what makes the
 * laziness safe: the parser state the head came from is reused for the
 * next request, maybe on another conn, while a script may keep req. */
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <lauxlib.h>

#include "conn.h"
#include "http_internal.h"
#include "loop.h"

#define REQ_MT "lunet.http.request"

static const char headers_mt_key = 'H'; /* case-insensitive lookup */

/* The request userdata's user values. */
enum {
  UV_FIELDS = 1, /* table of fields the script set, made on the first set */
  UV_BODY,       /* the body string, when there was a body */
  UV_HEADERS,    /* headers, query, params: made on the first read */
  UV_QUERY,
  UV_PARAMS,
  UV_TLS,        /* the conn's tls table, on a TLS conn */
  UV_COUNT = UV_TLS
};

struct request {
  union lunet_sockaddr peer;
  uint32_t url_len;
  uint16_t nhdrs;
  uint8_t method, http10;
  struct http_header hdrs[]; /* then the head bytes the offsets point in */
};

static const char *head_of(const struct request *r) {
  return (const char *)(r->hdrs + r->nhdrs);
}

/* The path: the url up to its query. */
static size_t path_len_of(const struct request *r) {
  const char *qmark = memchr(head_of(r), '?', r->url_len);
  return qmark ? (size_t)(qmark - head_of(r)) : r->url_len;
}

enum field {
  F_NONE,
  F_METHOD,
  F_PATH,
  F_URL,
  F_HEADERS,
  F_BODY,
  F_VERSION,
  F_PEER,
  F_QUERY,
  F_PARAMS,
  F_TLS,
  F_COUNT
};
#define FIELD_NAME(s) \
  { s, sizeof(s) - 1 }
static const struct {
  const char *s;
  size_t n;
} field_names[F_COUNT] = {{NULL, 0},
                          FIELD_NAME("method"),
                          FIELD_NAME("path"),
                          FIELD_NAME("url"),
                          FIELD_NAME("headers"),
                          FIELD_NAME("body"),
                          FIELD_NAME("version"),
                          FIELD_NAME("peer"),
                          FIELD_NAME("query"),
                          FIELD_NAME("params"),
                          FIELD_NAME("tls")};

static enum field field_of(const char *k, size_t n) {
  for (int f = F_METHOD; f < F_COUNT; f++)
    if (field_names[f].n == n && memcmp(k, field_names[f].s, n) == 0)
      return (enum field)f;
  return F_NONE;
}

/* The user value that holds a field, or 0 for one made each read. */
static int slot_of(enum field f) {
  switch (f) {
    case F_BODY:
      return UV_BODY;
    case F_HEADERS:
      return UV_HEADERS;
    case F_QUERY:
      return UV_QUERY;
    case F_PARAMS:
      return UV_PARAMS;
    case F_TLS:
      return UV_TLS;
    default:
      return 0;
  }
}

/* {==================================================================
 * Headers and query tables
 * =================================================================== */

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  ch |= 0x20;
  return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Pushes s[0..n) percent-decoded ('+' as space in query strings). */
static void push_decoded(lua_State *L, const char *s, size_t n, int plus) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t i = 0; i < n; i++) {
    int hi, lo;
    if (s[i] == '%' && i + 2 < n && (hi = hexval(s[i + 1])) >= 0 &&
        (lo = hexval(s[i + 2])) >= 0) {
      luaL_addchar(&b, (char)(hi * 16 + lo));
      i += 2;
    } else {
      luaL_addchar(&b, plus && s[i] == '+' ? ' ' : s[i]);
    }
  }
  luaL_pushresult(&b);
}

/* req.query: a=1&b=x%20y -> {a = "1", b = "x y"}; a repeated key keeps
 * the last value. */
static void push_query(lua_State *L, const struct request *r) {
  const char *url = head_of(r);
  const char *qmark = memchr(url, '?', r->url_len);
  lua_newtable(L);
  if (qmark == NULL) return;
  const char *q = qmark + 1;
  size_t n = r->url_len - (size_t)(q - url);
  while (n > 0) {
    const char *amp = memchr(q, '&', n);
    size_t len = amp ? (size_t)(amp - q) : n;
    const char *eq = memchr(q, '=', len);
    size_t klen = eq ? (size_t)(eq - q) : len;
    if (klen > 0) {
      push_decoded(L, q, klen, 1);
      if (eq)
        push_decoded(L, eq + 1, len - klen - 1, 1);
      else
        lua_pushliteral(L, "");
      lua_rawset(L, -3);
    }
    if (!amp) break;
    n -= len + 1, q = amp + 1;
  }
}

static void lower(char *out, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    out[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] | 0x20) : s[i];
}

/* Header names are short: lowered on the C stack, a luaL_Buffer only for
 * a long one. */
static void push_lower(lua_State *L, const char *s, size_t n) {
  char small[64];
  if (n <= sizeof small) {
    lower(small, s, n);
    lua_pushlstring(L, small, n);
    return;
  }
  luaL_Buffer b;
  lower(luaL_buffinitsize(L, &b, n), s, n);
  luaL_pushresultsize(&b, n);
}

static int is_cookie(const char *name, size_t n) {
  return n == 6 && strncasecmp(name, "cookie", 6) == 0;
}

/* Names are lowercased; a repeated header keeps every value, joined with
 * ", " ("; " for Cookie) as HTTP allows. */
static void push_headers(lua_State *L, const struct request *r) {
  const char *head = head_of(r);
  lua_createtable(L, 0, r->nhdrs);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &headers_mt_key);
  lua_setmetatable(L, -2);
  for (int i = 0; i < r->nhdrs; i++) {
    const struct http_header *x = &r->hdrs[i];
    push_lower(L, head + x->name, x->name_len);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, -3) == LUA_TSTRING) {
      lua_pushstring(L, is_cookie(head + x->name, x->name_len) ? "; " : ", ");
      lua_pushlstring(L, head + x->value, x->value_len);
      lua_concat(L, 3);
    } else {
      lua_pop(L, 1);
      lua_pushlstring(L, head + x->value, x->value_len);
    }
    lua_rawset(L, -3);
  }
}

/* headers["Content-Type"] finds "content-type". */
static int headers_index(lua_State *L) {
  size_t n;
  const char *key = lua_tolstring(L, 2, &n);
  if (key == NULL) return 0;
  push_lower(L, key, n);
  lua_rawget(L, 1);
  return 1;
}

/* }================================================================== */

/* {==================================================================
 * Fields
 * =================================================================== */

static void push_peer(lua_State *L, const struct request *r) {
  char peer[LUNET_ADDR_STRLEN];
  if (lunet_addr_format(&r->peer.sa, peer, sizeof peer) < 0)
    lua_pushnil(L);
  else
    lua_pushstring(L, peer);
}

/* A field kept in a user value: the one stored, else made now (and kept,
 * so that a table read twice is the same table). */
static void push_kept(lua_State *L, const struct request *r, enum field f,
                      int slot) {
  if (lua_getiuservalue(L, 1, slot) != LUA_TNIL) return;
  lua_pop(L, 1);
  switch (f) {
    case F_BODY:
      lua_pushliteral(L, "");
      return; /* no body: nothing kept */
    case F_TLS:
      lua_pushnil(L);
      return; /* a plain conn */
    case F_HEADERS:
      push_headers(L, r);
      break;
    case F_QUERY:
      push_query(L, r);
      break;
    default:
      lua_newtable(L);
      break; /* params: the router fills them */
  }
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, 1, slot);
}

static void push_made(lua_State *L, const struct request *r, enum field f) {
  const char *url = head_of(r);
  switch (f) {
    case F_METHOD:
      lua_pushstring(L, llhttp_method_name(r->method));
      break;
    case F_PATH:
      lua_pushlstring(L, url, path_len_of(r));
      break;
    case F_URL:
      lua_pushlstring(L, url, r->url_len);
      break;
    case F_VERSION:
      lua_pushstring(L, r->http10 ? "1.0" : "1.1");
      break;
    case F_PEER:
      push_peer(L, r);
      break;
    default:
      lua_pushnil(L);
      break;
  }
}

/* Pushes req[key] for the request at 1: what the script set wins, then
 * the request's own field. */
static void push_field(lua_State *L, const struct request *r, int key,
                       enum field f) {
  int slot = slot_of(f);
  if (slot != 0) return push_kept(L, r, f, slot);
  if (lua_getiuservalue(L, 1, UV_FIELDS) == LUA_TTABLE) {
    lua_pushvalue(L, key);
    if (lua_rawget(L, -2) != LUA_TNIL || f == F_NONE) {
      lua_remove(L, -2);
      return;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  push_made(L, r, f);
}

static enum field field_of_key(lua_State *L, int key) {
  size_t n;
  if (lua_type(L, key) != LUA_TSTRING) return F_NONE;
  const char *k = lua_tolstring(L, key, &n);
  return field_of(k, n);
}

/* }================================================================== */

/* {==================================================================
 * Metamethods
 * =================================================================== */

static struct request *check_request(lua_State *L) {
  struct request *r = lua_touserdata(L, 1);
  int ok = r != NULL && lua_getmetatable(L, 1);
  if (ok) {
    ok = lua_rawequal(L, -1, lua_upvalueindex(1));
    lua_pop(L, 1);
  }
  if (!ok) luaL_typeerror(L, 1, REQ_MT);
  return r;
}

static int request_index(lua_State *L) {
  struct request *r = check_request(L);
  push_field(L, r, 2, field_of_key(L, 2));
  return 1;
}

/* Setting a field of the request replaces it (req.path = "/v2" in a
 * before hook); any other key is the script's own. */
static int request_newindex(lua_State *L) {
  check_request(L);
  int slot = slot_of(field_of_key(L, 2));
  lua_settop(L, 3);
  if (slot != 0) {
    lua_setiuservalue(L, 1, slot);
    return 0;
  }
  if (lua_getiuservalue(L, 1, UV_FIELDS) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, UV_FIELDS);
  }
  lua_insert(L, 2);
  lua_rawset(L, 2);
  return 0;
}

static int snapshot_next(lua_State *L) {
  lua_settop(L, 2);
  if (lua_next(L, 1)) return 2;
  lua_pushnil(L);
  return 1;
}

/* pairs(req) walks a snapshot: every field of the request, then what
 * the script set. */
static int request_pairs(lua_State *L) {
  struct request *r = check_request(L);
  lua_settop(L, 1);
  lua_newtable(L);
  for (int f = F_METHOD; f < F_COUNT; f++) {
    lua_pushlstring(L, field_names[f].s, field_names[f].n);
    push_field(L, r, 3, (enum field)f);
    lua_rawset(L, 2);
  }
  if (lua_getiuservalue(L, 1, UV_FIELDS) == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, 2);
    }
  }
  lua_pushcfunction(L, snapshot_next);
  lua_pushvalue(L, 2);
  lua_pushnil(L);
  return 3;
}

static int request_tostring(lua_State *L) {
  struct request *r = check_request(L);
  lua_pushfstring(L, "%s: %s ", REQ_MT, llhttp_method_name(r->method));
  lua_pushlstring(L, head_of(r), r->url_len);
  lua_concat(L, 2);
  return 1;
}

/* }================================================================== */

/* The request object at idx, or NULL for any other value. */
static struct request *request_at(lua_State *L, int idx) {
  int same;
  if (lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx))
    return NULL;
  lua_rawgeti(L, LUA_REGISTRYINDEX, lunet_rt(L)->http_request_mt);
  same = lua_topointer(L, -1) == lua_topointer(L, -2);
  lua_pop(L, 2);
  return same ? lua_touserdata(L, idx) : NULL;
}

int lunet_http_request_params(lua_State *L, int idx) {
  if (request_at(L, idx) == NULL) return 0;
  lua_getiuservalue(L, idx, UV_PARAMS);
  return 1;
}

int lunet_http_request_set_params(lua_State *L, int idx) {
  if (request_at(L, idx) == NULL) return 0;
  lua_setiuservalue(L, idx, UV_PARAMS);
  return 1;
}

/* 1 when the fields table on top, of those the script set, has field f
 * (a before hook replaced req.path). */
static int replaced(lua_State *L, enum field f) {
  int set = lua_getfield(L, -1, field_names[f].s) != LUA_TNIL;
  lua_pop(L, 1);
  return set;
}

int lunet_http_request_target(lua_State *L, int idx, const char **method,
                              const char **path, size_t *path_len) {
  const struct request *r = request_at(L, idx);
  if (r == NULL) return 0;
  if (lua_getiuservalue(L, idx, UV_FIELDS) == LUA_TTABLE &&
      (replaced(L, F_METHOD) || replaced(L, F_PATH))) {
    lua_pop(L, 1);
    return 0;
  }
  lua_pop(L, 1);
  *method = llhttp_method_name(r->method);
  *path = head_of(r);
  *path_len = path_len_of(r);
  return 1;
}

void lunet__http_push_request(lua_State *L, const struct lunet_http *h) {
  size_t hdrs_size = (size_t)h->nhdrs * sizeof(struct http_header);
  struct request *r =
      lua_newuserdatauv(L, sizeof *r + hdrs_size + h->head_len, UV_COUNT);
  r->peer = h->c->peer;
  r->url_len = h->url_len;
  r->nhdrs = (uint16_t)h->nhdrs;
  r->method = (uint8_t)h->parser.method;
  r->http10 = (uint8_t)h->http10;
  if (hdrs_size > 0) memcpy(r->hdrs, h->hdrs, hdrs_size);
  if (h->head_len > 0) memcpy((char *)head_of(r), h->head, h->head_len);
  lua_rawgeti(L, LUA_REGISTRYINDEX, lunet_rt(L)->http_request_mt);
  lua_setmetatable(L, -2);
  if (lunet_conn_push_tls(L, h->c)) /* the conn's table, made once */
    lua_setiuservalue(L, -2, UV_TLS);
  if (h->body_len > 0) {
    lua_pushlstring(L, h->body, h->body_len);
    lua_setiuservalue(L, -2, UV_BODY);
  }
}

const char *lunet__http_request_header(lua_State *L, int idx,
                                       const char *name, size_t *len) {
  const struct request *r = lua_touserdata(L, idx);
  const char *head = head_of(r);
  size_t nl = strlen(name);
  int found = 0;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 0; i < r->nhdrs; i++) {
    const struct http_header *x = &r->hdrs[i];
    if (x->name_len != nl || strncasecmp(head + x->name, name, nl) != 0)
      continue;
    if (found++) luaL_addlstring(&b, ", ", 2);
    luaL_addlstring(&b, head + x->value, x->value_len);
  }
  luaL_pushresult(&b);
  if (!found) {
    lua_pop(L, 1);
    lua_pushnil(L);
    return NULL;
  }
  return lua_tolstring(L, -1, len);
}

void lunet__http_request_open(lua_State *L) {
  static const luaL_Reg metamethods[] = {{"__index", request_index},
                                         {"__newindex", request_newindex},
                                         {"__pairs", request_pairs},
                                         {"__tostring", request_tostring},
                                         {NULL, NULL}};
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, headers_index);
  lua_setfield(L, -2, "__index");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &headers_mt_key);
  lua_createtable(L, 0, 5);
  lua_pushvalue(L, -1);
  luaL_setfuncs(L, metamethods, 1); /* the metatable, to check req by */
  lua_pushliteral(L, REQ_MT);
  lua_setfield(L, -2, "__name");
  lunet_rt(L)->http_request_mt = luaL_ref(L, LUA_REGISTRYINDEX);
}
