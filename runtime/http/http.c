#include "http_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>

#include "call.h"
#include "conn.h"
#include "log.h"
#include "protocol.h"
#include "loop.h"
#include "service.h"

#define HTTP_MAX_HEADERS 100


static struct lunet_http *http_of(llhttp_t *p) { return p->data; }

/* The conn's HTTP state: made by its first byte, let go while idle. */
static struct lunet_http *conn_http(const struct lunet_conn *c) {
  return c->proto_state;
}

static int http_attach(struct lunet_conn *c);
static void http_detach(struct lunet_conn *c);

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
  h->head_done = 0;
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
  h->head_done = 1;
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
  lunet__http_push_request(L, h);
  reset_request(h);
  lunet__http_push_response(L, h);
  if (h->upgrade) lunet__http_keep_request(L, -1, -2);
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

/* Parses what it can of buf; stops after a whole request, which it
 * dispatches, so what follows waits for its turn in the conn. Returns the
 * bytes consumed (all of them once the conn is closing). */
static size_t http_feed(struct lunet_conn *c, const char *buf, size_t len) {
  if (conn_http(c) == NULL && http_attach(c) < 0) {
    lunet_conn_close(c, "ENOMEM", 0);
    return len;
  }
  struct lunet_http *h = conn_http(c);
  if (h->phase == HTTP_HANDLING || h->phase == HTTP_DONE) return 0;
  h->feed_end = buf + len;
  llhttp_errno_t err = llhttp_execute(&h->parser, buf, len);
  if (err == HPE_OK) return len;
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
    size_t used = (size_t)(llhttp_get_error_pos(&h->parser) - buf);
    llhttp_resume(&h->parser);
    /* An upgrade the handler does not take (res:websocket) ends the conn:
     * what follows its head is not HTTP. */
    h->upgrade = err == HPE_PAUSED_UPGRADE || h->parser.upgrade;
    if (h->upgrade) h->keep_alive = 0;
    http_dispatch(h);
    if (c->state != CONN_OPEN) return len;
    if (c->proto != &lunet_proto_http1) return used; /* h went with it */
    /* Answered already and nothing more came: the conn goes idle without
     * parser state (memory per idle conn stays that of a TCP conn). */
    if (h->phase == HTTP_IDLE && used == len && c->in_len == 0 && !c->held)
      http_detach(c);
    return used;
  }
  int status = status_for(h);
  log_bad_request(h, err, status);
  reset_request(h);
  lunet__http_reply_error(h, status);
  return len;
}

/* How much of a request arrived before the EOF: the head so far, or the
 * body against its Content-Length (chunked bodies have no total). */
static void log_cut_request(struct lunet_http *h) {
  char id[24], got[24], want[24] = "", peer[LUNET_ADDR_STRLEN] = "";
  const llhttp_t *p = &h->parser;
  int in_body = h->head_done;
  snprintf(id, sizeof id, "%" PRIu64, h->c->id);
  snprintf(got, sizeof got, "%zu", in_body ? h->body_len : h->head_len);
  if (in_body && (p->flags & F_CONTENT_LENGTH))
    snprintf(want, sizeof want, "%zu", h->body_len + (size_t)p->content_length);
  lunet_addr_format(&h->c->peer.sa, peer, sizeof peer);
  lunet_log(LUNET_LOG_INFO, "request cut by eof", "service", h->c->svc->name,
            "conn", id, "peer", peer, "part", in_body ? "body" : "head",
            "received", got, "expected", want, NULL);
}

/* The peer shut its side and every request it sent whole has had its
 * turn. A request still being answered is abandoned: the client is taken
 * to have left (nginx's 499), so its response goes nowhere. A request cut
 * short is logged. */
static const char *http_eof(struct lunet_conn *c) {
  struct lunet_http *h = conn_http(c);
  if (h == NULL || h->phase != HTTP_READING) return "eof";
  log_cut_request(h);
  reset_request(h);
  return "eof_truncated";
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

static int http_attach(struct lunet_conn *c) {
  struct lunet_http *h = state_new(c->svc->rt);
  if (h == NULL) return UV_ENOMEM;
  llhttp_init(&h->parser, HTTP_REQUEST, &settings);
  h->parser.data = h;
  h->c = c;
  h->phase = HTTP_IDLE;
  h->error_status = 0;
  c->proto_state = h;
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

static void http_detach(struct lunet_conn *c) {
  struct lunet_http *h = conn_http(c);
  struct lunet_runtime *rt = c->svc->rt;
  if (h == NULL) return;
  lunet__http_release_response(rt->L, h);
  c->proto_state = NULL;
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

static int http_in_flight(const struct lunet_conn *c) {
  return conn_http(c) != NULL && conn_http(c)->phase == HTTP_HANDLING;
}

/* An idle keep-alive conn keeps no parser state (it is made again by the
 * next request's first byte) and is closed after keepalive_timeout, which
 * counts from its last input or answer. */
static void check_idle(struct lunet_conn *c, uint64_t now) {
  if (now - c->last_read_ms >= c->svc->opt.keepalive_timeout_ms)
    return lunet_conn_close(c, "idle_timeout", 1);
  if (conn_http(c) != NULL && conn_http(c)->phase == HTTP_IDLE &&
      c->in_len == 0 && !c->held)
    http_detach(c);
}

/* A request that does not finish arriving gets 408; a handler that never
 * answers gets 504. */
static void check_deadline(struct lunet_conn *c, uint64_t now) {
  struct lunet_http *h = conn_http(c);
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

static const char http_busy[] =
    "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
    "Content-Type: text/plain\r\nContent-Length: 20\r\n"
    "Connection: close\r\n\r\nService Unavailable\n";

const struct lunet_protocol lunet_proto_http1 = {
    .name = "http/1.1",
    .feed = http_feed,
    .eof = http_eof,
    .timeouts = check_deadline,
    .in_flight = http_in_flight,
    .detach = http_detach,
    .refusal = http_busy,
    .refusal_len = sizeof http_busy - 1,
    .one_message_per_turn = 1,
};

void lunet_http_open(lua_State *L) {
  llhttp_settings_init(&settings);
  settings.on_message_begin = on_message_begin;
  settings.on_url = on_url;
  settings.on_header_field = on_header_field;
  settings.on_header_value = on_header_value;
  settings.on_headers_complete = on_headers_complete;
  settings.on_body = on_body;
  settings.on_message_complete = on_message_complete;
  lunet__http_request_open(L);
  lunet__http_response_open(L);
}
