#include "client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <uv.h>

#include "conn.h"
#include "log.h"
#include "loop.h"
#include "service.h"
#include "tls.h"
#include "tls_client.h"

/* Lives until the lookup, the connect and the timer have all finished;
 * `c` is cleared as soon as the conn no longer needs it. */
struct lunet_connect_req {
  uv_getaddrinfo_t gai;
  uv_connect_t connect;
  uv_timer_t timer;
  struct lunet_conn *c;
  int refs; /* outstanding callbacks, the timer's close included */
  int resolving;
  int preparing; /* building the TLS context, then the lookup */
  char host[256];
  char port[8];
};

static void req_release(struct lunet_connect_req *req) {
  if (--req->refs == 0) free(req);
}

static void timer_closed(uv_handle_t *h) { req_release(h->data); }

/* Detaches the request from its conn: nothing of it runs any more. */
static struct lunet_conn *req_detach(struct lunet_connect_req *req) {
  struct lunet_conn *c = req->c;
  if (c == NULL) return NULL;
  req->c = NULL;
  c->connect_req = NULL;
  uv_close((uv_handle_t *)&req->timer, timer_closed);
  if (req->resolving) uv_cancel((uv_req_t *)&req->gai);
  return c;
}

void lunet__connect_abandon(struct lunet_connect_req *req) {
  req_detach(req);
}

static void req_fail(struct lunet_connect_req *req, int err) {
  struct lunet_conn *c = req_detach(req);
  if (c == NULL) return;
  lunet_log(LUNET_LOG_WARN, "connect failed", "addr", c->svc->name, "error",
            uv_strerror(err), NULL);
  lunet_conn_close(c, uv_err_name(err), 0);
}

static void connect_cb(uv_connect_t *creq, int status) {
  struct lunet_connect_req *req = creq->data;
  if (req->c != NULL) {
    if (status < 0) {
      req_fail(req, status);
    } else {
      struct lunet_conn *c = req_detach(req);
      lunet_conn_connected(c);
    }
  }
  req_release(req);
}

static void resolved_cb(uv_getaddrinfo_t *gai, int status,
                        struct addrinfo *res) {
  struct lunet_connect_req *req = gai->data;
  req->resolving = 0;
  if (req->c != NULL && status < 0) req_fail(req, status);
  if (req->c != NULL) {
    int r = uv_tcp_connect(&req->connect, &req->c->tcp, res->ai_addr,
                           connect_cb);
    if (r < 0) req_fail(req, r);
    else req->refs++;
  }
  uv_freeaddrinfo(res);
  req_release(req);
}

static void timeout_cb(uv_timer_t *t) { req_fail(t->data, UV_ETIMEDOUT); }

/* Splits "host:port" or "[v6]:port". */
static int split_addr(struct lunet_connect_req *req, const char *addr) {
  const char *colon = strrchr(addr, ':');
  const char *host = addr;
  size_t hlen;
  if (colon == NULL || colon[1] == '\0' || strlen(colon + 1) >= 6) return -1;
  hlen = (size_t)(colon - addr);
  if (addr[0] == '[') {
    if (hlen < 2 || addr[hlen - 1] != ']') return -1;
    host++, hlen -= 2;
  }
  if (hlen == 0 || hlen >= sizeof req->host) return -1;
  memcpy(req->host, host, hlen);
  req->host[hlen] = '\0';
  strcpy(req->port, colon + 1);
  return 0;
}

/* handlers, then opts on top of them, as one table on the stack top. */
static void merge_tables(lua_State *L) {
  lua_newtable(L);
  for (int arg = 2; arg <= 3; arg++) {
    if (lua_isnoneornil(L, arg)) continue;
    lua_pushnil(L);
    while (lua_next(L, arg) != 0) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_settable(L, -4);
    }
  }
}

static struct lunet_service *client_service(lua_State *L, const char *addr,
                                            lunet_client_check_fn check) {
  char err[512];
  struct lunet_service *svc = lunet_service_new(lunet_rt(L), addr);
  if (svc == NULL) luaL_error(L, "out of memory");
  svc->client = 1;
  merge_tables(L);
  if (check(L, svc, "lunet.connect", err, sizeof err) < 0) {
    lunet_service_free(svc);
    luaL_error(L, "%s", err);
  }
  lua_pop(L, 1);
  return svc;
}

static int resolve(struct lunet_connect_req *req) {
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
  req->refs++;
  req->resolving = 1;
  int r = uv_getaddrinfo(req->c->tcp.loop, &req->gai, resolved_cb, req->host,
                         req->port, &hints);
  if (r < 0) req->resolving = 0, req->refs--; /* the lookup never started */
  return r;
}

/* The conn runs TLS over ctx from here. */
static void use_tls(struct lunet_conn *c, struct lunet_tls_ctx *ctx) {
  lunet_service_set_tls(c->svc, ctx);
  c->transport = lunet_service_transport(c->svc);
}

static void tls_ready_cb(void *ud, struct lunet_tls_ctx *ctx,
                         const char *err) {
  struct lunet_connect_req *req = ud;
  struct lunet_conn *c = req->c;
  int r = 0;
  req->preparing = 0;
  if (c == NULL) { /* closed or timed out meanwhile */
    lunet_tls_ctx_unref(ctx);
  } else if (ctx == NULL) {
    lunet_log(LUNET_LOG_WARN, "connect failed", "addr", c->svc->name,
              "error", err, NULL);
    req_detach(req);
    lunet_conn_close(c, "tls: cannot load the client's certificates", 0);
  } else {
    use_tls(c, ctx);
    if ((r = resolve(req)) < 0) req_fail(req, r);
  }
  req_release(req);
}

/* The host is the name a TLS client asks for and verifies, unless the
 * script named another. */
static int tls_default_name(struct lunet_service *svc, const char *host) {
  struct lunet_tls_config *cfg = svc->tls_config;
  if (cfg->server_name != NULL) return 0;
  return (cfg->server_name = strdup(host)) != NULL ? 0 : UV_ENOMEM;
}

/* A TLS client first needs its context (built off the loop once per
 * settings), then the lookup. */
static int prepare(struct lunet_connect_req *req) {
  struct lunet_conn *c = req->c;
  struct lunet_tls_ctx *ctx;
  if (c->svc->tls_config == NULL) return resolve(req);
  int r = tls_default_name(c->svc, req->host);
  if (r == 0)
    r = lunet_tls_client_get(c->tcp.loop, c->svc->tls_config, tls_ready_cb,
                             req, &ctx);
  if (r == 1) {
    use_tls(c, ctx);
    return resolve(req);
  }
  if (r == 0) req->refs++, req->preparing = 1;
  return r;
}

static int start(struct lunet_runtime *rt, struct lunet_connect_req *req,
                 struct lunet_conn *c) {
  req->c = c;
  c->connect_req = req;
  uv_timer_init(&rt->loop, &req->timer);
  req->timer.data = req->gai.data = req->connect.data = req;
  uv_timer_start(&req->timer, timeout_cb, c->svc->opt.connect_timeout_ms, 0);
  req->refs = 1; /* the timer's close */
  return prepare(req);
}

/* lunet.connect(addr, handlers [, opts]) -> conn (connecting). */
int lunet_client_connect(lua_State *L, lunet_client_check_fn check) {
  struct lunet_runtime *rt = lunet_rt(L);
  size_t addr_len;
  const char *addr = luaL_checklstring(L, 1, &addr_len);
  luaL_checktype(L, 2, LUA_TTABLE);
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
  if (rt->tearing_down) return luaL_error(L, "lunet is exiting");
  struct lunet_connect_req parsed;
  /* A NUL would end the host or port early: not an address. */
  if (memchr(addr, '\0', addr_len) != NULL || split_addr(&parsed, addr) < 0)
    return luaL_argerror(L, 1, "expected \"host:port\" or \"[v6]:port\"");
  struct lunet_service *svc = client_service(L, addr, check); /* may raise */
  struct lunet_connect_req *req = calloc(1, sizeof *req);
  struct lunet_conn *c = req ? lunet_conn_new_client(svc) : NULL;
  if (c == NULL) {
    free(req);
    lunet_service_free(svc);
    return luaL_error(L, "out of memory");
  }
  lunet_list_push(&rt->clients, &svc->node);
  memcpy(req->host, parsed.host, sizeof req->host);
  memcpy(req->port, parsed.port, sizeof req->port);
  int r = start(rt, req, c);
  if (r < 0) req_fail(req, r);
  lunet_conn_push(L, c);
  return 1;
}
