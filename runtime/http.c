#include "http_internal.h"

#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>

#include "call.h"
#include "conn.h"
#include "log.h"
#include "runtime.h"
#include "service.h"

#define HTTP_MAX_HEADERS 100

static const char headers_mt_key = 'H'; /* case-insensitive header table */
static const char request_mt_key = 'R'; /* lazy req.query and req.params */

static struct lunet_http *http_of(llhttp_t *p) { return p->data; }

static const struct lunet_service_options *opts(struct lunet_http *h) {
  return &h->c->svc->opt;
}

static uint64_t now_ms(struct lunet_http *h) {
  return uv_now(&h->c->svc->rt->loop);
}

/* {==================================================================
 * Request buffers: bounded as the bytes arrive
 * =================================================================== */

static int grow(char **buf, size_t *cap, size_t need) {
  if (need <= *cap) return 0;
  size_t n = *cap ? *cap : 512;
  while (n < need) n *= 2;
  char *p = realloc(*buf, n);
  if (p == NULL) return -1;
  *buf = p, *cap = n;
  return 0;
}

/* Fails the parse with `status` when appending would pass `max`. */
static int append(struct lunet_http *h, char **buf, size_t *len, size_t *cap,
                  const char *at, size_t n, size_t max, int status) {
  if (*len + n > max || grow(buf, cap, *len + n) < 0) {
    h->error_status = status;
    return HPE_USER;
  }
  memcpy(*buf + *len, at, n);
  *len += n;
  return HPE_OK;
}

/* Buffers stay for the next request on this conn (they go with the
 * parser state once the conn is idle); a body buffer grown past 64 KiB is
 * let go at once. */
static void reset_request(struct lunet_http *h) {
  if (h->body_cap > (64 << 10)) {
    free(h->body);
    h->body = NULL;
    h->body_cap = 0;
  }
  h->head_len = h->body_len = 0;
  h->nhdrs = h->in_value = h->value_done = 0;
  h->url_len = 0;
}

static void free_request(struct lunet_http *h) {
  free(h->head), free(h->hdrs), free(h->body);
  h->head = h->body = NULL;
  h->hdrs = NULL;
  h->head_cap = h->body_cap = 0;
  h->hdrs_cap = 0;
  reset_request(h);
}

/* }================================================================== */

/* {==================================================================
 * llhttp callbacks
 * =================================================================== */

static int on_message_begin(llhttp_t *p) {
  struct lunet_http *h = http_of(p);
  reset_request(h);
  h->phase = HTTP_READING;
  h->deadline = now_ms(h) + opts(h)->header_timeout_ms;
  return HPE_OK;
}

static int on_url(llhttp_t *p, const char *at, size_t n) {
  struct lunet_http *h = http_of(p);
  if (h->url_len + n > opts(h)->max_url) {
    h->error_status = 414;
    return HPE_USER;
  }
  h->url_len += (uint32_t)n;
  return append(h, &h->head, &h->head_len, &h->head_cap, at, n,
                opts(h)->max_header, 431);
}

static int new_header(struct lunet_http *h) {
  if (h->nhdrs == HTTP_MAX_HEADERS) {
    h->error_status = 431;
    return HPE_USER;
  }
  if (h->nhdrs == h->hdrs_cap) {
    int cap = h->hdrs_cap ? h->hdrs_cap * 2 : 16;
    void *p = realloc(h->hdrs, (size_t)cap * sizeof *h->hdrs);
    if (p == NULL) return h->error_status = 431, HPE_USER;
    h->hdrs = p, h->hdrs_cap = cap;
  }
  struct http_header *x = &h->hdrs[h->nhdrs++];
  x->name = (uint32_t)h->head_len;
  x->name_len = x->value = x->value_len = 0;
  h->in_value = 0;
  return HPE_OK;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n) {
  struct lunet_http *h = http_of(p);
  int r;
  if ((h->nhdrs == 0 || h->in_value) && (r = new_header(h)) != HPE_OK)
    return r;
  h->value_done = 0;
  h->hdrs[h->nhdrs - 1].name_len += (uint32_t)n;
  return append(h, &h->head, &h->head_len, &h->head_cap, at, n,
                opts(h)->max_header, 431);
}

static int on_header_value(llhttp_t *p, const char *at, size_t n) {
  struct lunet_http *h = http_of(p);
  struct http_header *x = &h->hdrs[h->nhdrs - 1];
  /* llhttp 8 accepts obs-fold (a value continued on the next line after
   * spaces). A value span ends only at its CR or at the end of the bytes
   * fed, so more value after a span that ended inside the buffer is a
   * continuation line. RFC 9112 lets a server reject it, and we do: it is
   * a request smuggling vector. */
  if (h->value_done) return HPE_USER;
  h->value_done = at + n != h->feed_end;
  if (!h->in_value) {
    x->value = (uint32_t)h->head_len;
    h->in_value = 1;
  }
  x->value_len += (uint32_t)n;
  return append(h, &h->head, &h->head_len, &h->head_cap, at, n,
                opts(h)->max_header, 431);
}

static int header_is(struct lunet_http *h, const struct http_header *x,
                     const char *name, const char *value) {
  return x->name_len == strlen(name) &&
         strncasecmp(h->head + x->name, name, x->name_len) == 0 &&
         (value == NULL || (x->value_len == strlen(value) &&
                            strncasecmp(h->head + x->value, value,
                                        x->value_len) == 0));
}

/* A body that will not fit is refused before it is read; a client that
 * asked to be told first (Expect: 100-continue) is told to go on. */
static int on_headers_complete(llhttp_t *p) {
  struct lunet_http *h = http_of(p);
  /* llhttp only takes -1 as an error from this callback. */
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > opts(h)->max_body)
    return h->error_status = 413, -1;
  h->deadline = now_ms(h) + opts(h)->header_timeout_ms;
  for (int i = 0; i < h->nhdrs; i++) {
    if (!header_is(h, &h->hdrs[i], "expect", NULL)) continue;
    if (!header_is(h, &h->hdrs[i], "expect", "100-continue"))
      return h->error_status = 417, -1;
    if (p->http_major == 1 && p->http_minor == 1) {
      static const char go_on[] = "HTTP/1.1 100 Continue\r\n\r\n";
      lunet_conn_send(h->c, go_on, sizeof go_on - 1);
    }
  }
  return HPE_OK;
}

static int on_body(llhttp_t *p, const char *at, size_t n) {
  struct lunet_http *h = http_of(p);
  return append(h, &h->body, &h->body_len, &h->body_cap, at, n,
                opts(h)->max_body, 413);
}

/* Stop here: the request is dispatched once llhttp_execute returns, and
 * the next one is parsed only after its response. */
static int on_message_complete(llhttp_t *p) {
  struct lunet_http *h = http_of(p);
  h->phase = HTTP_HANDLING;
  h->keep_alive = llhttp_should_keep_alive(p);
  h->head_only = p->method == HTTP_HEAD;
  h->http10 = p->http_major == 1 && p->http_minor == 0;
  return HPE_PAUSED;
}

static llhttp_settings_t settings;

/* }================================================================== */

/* {==================================================================
 * The request as Lua sees it
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
static void push_query(lua_State *L, const char *q, size_t n) {
  lua_newtable(L);
  while (n > 0) {
    const char *amp = memchr(q, '&', n);
    size_t len = amp ? (size_t)(amp - q) : n;
    const char *eq = memchr(q, '=', len);
    size_t klen = eq ? (size_t)(eq - q) : len;
    if (klen > 0) {
      push_decoded(L, q, klen, 1);
      if (eq) push_decoded(L, eq + 1, len - klen - 1, 1);
      else lua_pushliteral(L, "");
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

/* Names are lowercased; a repeated header keeps every value, joined with
 * ", " ("; " for Cookie) as HTTP allows. */
static void push_headers(lua_State *L, struct lunet_http *h) {
  lua_createtable(L, 0, h->nhdrs);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &headers_mt_key);
  lua_setmetatable(L, -2);
  for (int i = 0; i < h->nhdrs; i++) {
    const struct http_header *x = &h->hdrs[i];
    push_lower(L, h->head + x->name, x->name_len);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, -3) == LUA_TSTRING) {
      lua_pushstring(L, header_is(h, x, "cookie", NULL) ? "; " : ", ");
      lua_pushlstring(L, h->head + x->value, x->value_len);
      lua_concat(L, 3);
    } else {
      lua_pop(L, 1);
      lua_pushlstring(L, h->head + x->value, x->value_len);
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

/* The request's field names, kept (interned) in the array part of the
 * request metatable: a field is set with a raw store, not a lookup of a
 * C string on every request. */
enum request_key {
  REQ_METHOD = 1, REQ_PATH, REQ_URL, REQ_HEADERS, REQ_BODY, REQ_VERSION,
  REQ_PEER, REQ_NKEYS = REQ_PEER
};
static const char *const request_keys[REQ_NKEYS + 1] = {
    NULL, "method", "path", "url", "headers", "body", "version", "peer"};

/* The peer as text, formatted once per parser state: once per request
 * since an answered conn gives its state back at once (see
 * lunet_http_feed), once per request burst of a pipelining conn. */
static void push_peer(lua_State *L, struct lunet_http *h) {
  if (h->peer_len == 0 &&
      lunet_addr_format(&h->c->peer.sa, h->peer, sizeof h->peer) == 0)
    h->peer_len = strlen(h->peer);
  if (h->peer_len == 0) lua_pushnil(L);
  else lua_pushlstring(L, h->peer, h->peer_len);
}

static void push_request(lua_State *L, struct lunet_http *h) {
  const char *url = h->head;
  const char *qmark = memchr(url, '?', h->url_len);
  size_t path_len = qmark ? (size_t)(qmark - url) : h->url_len;
  lua_createtable(L, 0, REQ_NKEYS + 1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &request_mt_key);
  int req = lua_gettop(L) - 1, mt = req + 1;
  lua_rawgeti(L, mt, REQ_METHOD);
  lua_pushstring(L, llhttp_method_name(h->parser.method));
  lua_rawset(L, req);
  lua_rawgeti(L, mt, REQ_PATH);
  lua_pushlstring(L, url, path_len);
  lua_rawset(L, req);
  lua_rawgeti(L, mt, REQ_URL);
  lua_pushlstring(L, url, h->url_len);
  lua_rawset(L, req);
  lua_rawgeti(L, mt, REQ_HEADERS);
  push_headers(L, h);
  lua_rawset(L, req);
  lua_rawgeti(L, mt, REQ_BODY);
  lua_pushlstring(L, h->body ? h->body : "", h->body_len);
  lua_rawset(L, req);
  lua_rawgeti(L, mt, REQ_VERSION);
  lua_pushlstring(L, h->http10 ? "1.0" : "1.1", 3);
  lua_rawset(L, req);
  lua_rawgeti(L, mt, REQ_PEER);
  push_peer(L, h);
  lua_rawset(L, req);
  lua_setmetatable(L, req);
}

/* req.query and req.params are made on first use: most handlers never
 * look at one of them, and a table per request is what an HTTP server
 * spends its time allocating. */
static int request_index(lua_State *L) {
  const char *key = lua_tostring(L, 2);
  if (key == NULL) return 0;
  if (strcmp(key, "query") == 0) {
    size_t n;
    lua_getfield(L, 1, "url");
    const char *url = lua_tolstring(L, -1, &n);
    const char *qmark = url ? memchr(url, '?', n) : NULL;
    if (qmark) push_query(L, qmark + 1, n - (size_t)(qmark - url) - 1);
    else lua_newtable(L);
  } else if (strcmp(key, "params") == 0) {
    lua_newtable(L);
  } else {
    return 0;
  }
  lua_pushvalue(L, 2);
  lua_pushvalue(L, -2);
  lua_rawset(L, 1);
  return 1;
}

/* }================================================================== */

static void http_dispatch(struct lunet_http *h) {
  struct lunet_conn *c = h->c;
  lua_State *L = c->svc->rt->L;
  h->deadline = now_ms(h) + opts(h)->handler_timeout_ms;
  h->start_ns = uv_hrtime();
  h->status = 0;
  c->svc->metrics.messages++;
  lunet_conn_hold(c, 1); /* no more input until this is answered */
  if (!lunet_service_rate_ok(c->svc, &c->peer.sa)) {
    reset_request(h);
    lunet__http_push_response(L, h);
    lua_pop(L, 1);
    return lunet__http_reply_simple(h, 429);
  }
  if (!lunet_service_push_handler(L, c->svc, LUNET_ON_REQUEST)) {
    reset_request(h);
    return lunet__http_reply_error(h, 500);
  }
  push_request(L, h);
  reset_request(h);
  lunet__http_push_response(L, h);
  struct lunet_call_ctx ctx = {c->svc->name, "handler", c->id, &c->peer.sa,
                               &c->svc->metrics};
  if (lunet_call(L, 2, &ctx) != LUA_OK) lunet__http_handler_failed(h);
}

static int status_for(struct lunet_http *h) {
  return h->error_status ? h->error_status : 400;
}

static void log_bad_request(struct lunet_http *h, llhttp_errno_t err,
                            int status) {
  char code[8];
  snprintf(code, sizeof code, "%d", status);
  lunet_log(LUNET_LOG_INFO, "bad request", "service", h->c->svc->name,
            "status", code, "error", llhttp_errno_name(err), "reason",
            llhttp_get_error_reason(&h->parser), NULL);
}

size_t lunet_http_feed(struct lunet_conn *c, const char *buf, size_t len) {
  if (c->http == NULL && lunet_http_attach(c) < 0) {
    lunet_conn_close(c, "ENOMEM", 0);
    return len;
  }
  struct lunet_http *h = c->http;
  if (h->phase == HTTP_HANDLING || h->phase == HTTP_DONE) return 0;
  h->feed_end = buf + len;
  llhttp_errno_t err = llhttp_execute(&h->parser, buf, len);
  if (err == HPE_OK) return len;
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
    size_t used = (size_t)(llhttp_get_error_pos(&h->parser) - buf);
    llhttp_resume(&h->parser);
    if (err == HPE_PAUSED_UPGRADE) h->keep_alive = 0; /* no upgrades yet */
    http_dispatch(h);
    if (c->state != CONN_OPEN) return len;
    /* Answered already and nothing more came: the conn goes idle without
     * parser state (memory per idle conn stays that of a TCP conn). */
    if (h->phase == HTTP_IDLE && used == len && c->in_len == 0 && !c->held)
      lunet_http_detach(c);
    return used;
  }
  int status = status_for(h);
  log_bad_request(h, err, status);
  reset_request(h);
  lunet__http_reply_error(h, status);
  return len;
}

#define HTTP_CACHE_MAX 64
#define HTTP_CACHE_HEAD_MAX 8192 /* a larger head buffer is not kept */

static struct lunet_http *state_new(struct lunet_runtime *rt) {
  struct lunet_http *h = rt->http_cache;
  if (h != NULL) {
    rt->http_cache = h->next_free;
    rt->http_cached--;
    return h;
  }
  if ((h = calloc(1, sizeof *h)) == NULL) return NULL;
  lua_pushboolean(rt->L, 0);
  h->pin_ref = luaL_ref(rt->L, LUA_REGISTRYINDEX);
  return h;
}

int lunet_http_attach(struct lunet_conn *c) {
  struct lunet_http *h = state_new(c->svc->rt);
  if (h == NULL) return UV_ENOMEM;
  llhttp_init(&h->parser, HTTP_REQUEST, &settings);
  h->parser.data = h;
  h->c = c;
  h->phase = HTTP_IDLE;
  h->error_status = 0;
  h->peer_len = 0;
  c->http = h;
  return 0;
}

static void state_free(lua_State *L, struct lunet_http *h) {
  luaL_unref(L, LUA_REGISTRYINDEX, h->pin_ref);
  free_request(h);
  free(h);
}

void lunet_http_cache_free(struct lunet_runtime *rt) {
  while (rt->http_cache != NULL) {
    struct lunet_http *h = rt->http_cache;
    rt->http_cache = h->next_free;
    state_free(rt->L, h);
  }
  rt->http_cached = 0;
}

void lunet_http_detach(struct lunet_conn *c) {
  struct lunet_http *h = c->http;
  struct lunet_runtime *rt = c->svc->rt;
  if (h == NULL) return;
  lunet__http_release_response(rt->L, h);
  c->http = NULL;
  h->c = NULL;
  if (rt->http_cached == HTTP_CACHE_MAX || rt->tearing_down) {
    state_free(rt->L, h);
    return;
  }
  reset_request(h);
  if (h->head_cap > HTTP_CACHE_HEAD_MAX) free_request(h);
  h->next_free = rt->http_cache;
  rt->http_cache = h;
  rt->http_cached++;
}

int lunet_http_in_flight(const struct lunet_conn *c) {
  return c->http != NULL && c->http->phase == HTTP_HANDLING;
}

/* An idle keep-alive conn keeps no parser state (it is made again by the
 * next request's first byte) and is closed after keepalive_timeout, which
 * counts from its last input or answer. */
static void check_idle(struct lunet_conn *c, uint64_t now) {
  if (now - c->last_read_ms >= c->svc->opt.keepalive_timeout_ms)
    return lunet_conn_close(c, "idle_timeout", 1);
  if (c->http != NULL && c->http->phase == HTTP_IDLE && c->in_len == 0 &&
      !c->held)
    lunet_http_detach(c);
}

/* A request that does not finish arriving gets 408; a handler that never
 * answers gets 504. */
static void check_deadline(struct lunet_conn *c, uint64_t now) {
  struct lunet_http *h = c->http;
  if (c->state != CONN_OPEN) return;
  if (h == NULL || h->phase == HTTP_IDLE) return check_idle(c, now);
  if (now < h->deadline) return;
  if (h->phase == HTTP_READING) {
    reset_request(h);
    lunet__http_reply_error(h, 408);
  } else if (h->phase == HTTP_HANDLING) {
    lunet_log(LUNET_LOG_WARN, "handler timeout", "service", c->svc->name,
              NULL);
    lunet__http_release_response(c->svc->rt->L, h);
    lunet__http_reply_error(h, 504);
  }
}

void lunet_http_sweep(struct lunet_service *svc, uint64_t now) {
  struct lunet_list *q, *next;
  for (q = svc->conns.next; q != &svc->conns; q = next) {
    next = q->next;
    check_deadline(lunet_container_of(q, struct lunet_conn, node), now);
  }
}

void lunet_http_open(lua_State *L) {
  llhttp_settings_init(&settings);
  settings.on_message_begin = on_message_begin;
  settings.on_url = on_url;
  settings.on_header_field = on_header_field;
  settings.on_header_value = on_header_value;
  settings.on_headers_complete = on_headers_complete;
  settings.on_body = on_body;
  settings.on_message_complete = on_message_complete;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, headers_index);
  lua_setfield(L, -2, "__index");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &headers_mt_key);
  lua_createtable(L, REQ_NKEYS, 1);
  lua_pushcfunction(L, request_index);
  lua_setfield(L, -2, "__index");
  for (int k = 1; k <= REQ_NKEYS; k++) {
    lua_pushstring(L, request_keys[k]);
    lua_rawseti(L, -2, k);
  }
  lua_rawsetp(L, LUA_REGISTRYINDEX, &request_mt_key);
  lunet__http_response_open(L);
}
