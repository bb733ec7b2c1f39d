#include "udp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <uv.h>

#include "addr.h"
#include "call.h"
#include "log.h"
#include "ratelimit.h"
#include "loop.h"
#include "service.h"
#include "timer.h"

#define UDP_MT "lunet.udp"
#define UDP_UV_ON_MESSAGE 1 /* client sockets: their on_message */
#define UDP_UV_PENDING 2    /* peer -> waiting request (sock:request) */
#define UDP_MAX_IPV4 65507  /* largest payload a datagram can carry */
#define UDP_MAX_IPV6 65527
#define UDP_MAX_QUEUE (4 << 20) /* bytes waiting for the socket to drain */
#define UDP_BATCH 16            /* datagrams per recvmmsg */

struct lunet_udp {
  uv_udp_t handle;
  struct lunet_runtime *rt;
  struct lunet_service *svc; /* NULL for a client socket */
  struct lunet_list node;    /* rt->udp_clients for a client socket */
  int self_ref;
  int closing;
  int receiving;
  size_t queued;
  char bound[LUNET_ADDR_STRLEN];
};

struct udp_box {
  struct lunet_udp *u; /* NULL once freed */
};

struct send_req {
  uv_udp_send_t req;
  struct lunet_udp *u;
  size_t len;
  char data[];
};

static const char reply_key = 'R'; /* registry: Lua half of sock:request */

/* {==================================================================
 * Receiving
 * =================================================================== */

/* One buffer per runtime, room for a recvmmsg batch of the largest
 * datagrams: no allocation per datagram. */
static void udp_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct lunet_udp *u = h->data;
  (void)suggested;
  *buf = uv_buf_init(u->rt->udp_buf, UDP_BATCH * 65536);
}

static void push_box(lua_State *L, const struct lunet_udp *u) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, u->self_ref);
}

/* A datagram from a peer a sock:request() waits on goes to that request.
 * The box is on top. Returns 1 when consumed. */
static int take_reply(lua_State *L, struct lunet_udp *u, const char *peer,
                      const char *p, size_t n) {
  int top = lua_gettop(L);
  if (lua_getiuservalue(L, -1, UDP_UV_PENDING) != LUA_TTABLE ||
      lua_getfield(L, -1, peer) == LUA_TNIL) {
    lua_settop(L, top);
    return 0;
  }
  lua_pushnil(L);
  lua_setfield(L, -3, peer); /* pending[peer] = nil */
  lua_rawgetp(L, LUA_REGISTRYINDEX, &reply_key);
  lua_insert(L, -2);
  lua_pushlstring(L, p, n);
  lua_pushstring(L, peer);
  struct lunet_call_ctx ctx = {u->svc ? u->svc->name : "udp", "request", 0,
                               NULL, u->svc ? &u->svc->metrics : NULL};
  lunet_call(L, 3, &ctx);
  lua_settop(L, top);
  return 1;
}

static int push_handler(lua_State *L, struct lunet_udp *u) {
  if (u->svc != NULL) return lunet_service_push_handler(L, u->svc,
                                                        LUNET_ON_MESSAGE);
  if (lua_getiuservalue(L, -1, UDP_UV_ON_MESSAGE) == LUA_TFUNCTION) return 1;
  lua_pop(L, 1);
  return 0;
}

static void udp_dispatch(struct lunet_udp *u, const char *p, size_t n,
                         const struct sockaddr *from) {
  lua_State *L = u->rt->L;
  char peer[LUNET_ADDR_STRLEN];
  if (lunet_addr_format(from, peer, sizeof peer) < 0) return;
  if (u->svc != NULL) {
    u->svc->metrics.messages++;
    u->svc->metrics.bytes_in += n;
  }
  push_box(L, u);
  if (take_reply(L, u, peer, p, n) || !push_handler(L, u)) {
    lua_pop(L, 1);
    return;
  }
  lua_insert(L, -2);
  lua_pushlstring(L, p, n);
  lua_pushstring(L, peer);
  struct lunet_call_ctx ctx = {u->svc ? u->svc->name : "udp", "on_message",
                               0, from, u->svc ? &u->svc->metrics : NULL};
  lunet_call(L, 3, &ctx); /* an error costs that datagram only */
}

static void udp_recv_cb(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                        const struct sockaddr *from, unsigned flags) {
  struct lunet_udp *u = h->data;
  if (u->closing || (nread == 0 && from == NULL)) return;
  if (nread < 0) {
    lunet_log(LUNET_LOG_WARN, "udp receive failed", "socket", u->bound,
              "error", uv_strerror((int)nread), NULL);
    return;
  }
  if (flags & UV_UDP_PARTIAL) {
    lunet_log(LUNET_LOG_WARN, "udp datagram truncated, dropped", "socket",
              u->bound, NULL);
    return;
  }
  if (u->svc != NULL && !lunet_service_rate_ok(u->svc, from)) return;
  udp_dispatch(u, buf->base, (size_t)nread, from);
}

static int udp_start_receiving(struct lunet_udp *u) {
  if (u->receiving) return 0;
  if (u->rt->udp_buf == NULL &&
      (u->rt->udp_buf = malloc(UDP_BATCH * 65536)) == NULL)
    return UV_ENOMEM;
  int r = uv_udp_recv_start(&u->handle, udp_alloc_cb, udp_recv_cb);
  if (r == 0) u->receiving = 1;
  return r;
}

/* }================================================================== */

/* {==================================================================
 * Socket lifetime
 * =================================================================== */

static void udp_close_cb(uv_handle_t *h) {
  struct lunet_udp *u = h->data;
  lua_State *L = u->rt->L;
  push_box(L, u);
  ((struct udp_box *)lua_touserdata(L, -1))->u = NULL;
  lua_pop(L, 1);
  luaL_unref(L, LUA_REGISTRYINDEX, u->self_ref);
  free(u);
}

static void udp_close(struct lunet_udp *u) {
  if (u->closing) return;
  u->closing = 1;
  lunet_list_remove(&u->node);
  if (u->svc != NULL && u->svc->udp == u) u->svc->udp = NULL;
  uv_close((uv_handle_t *)&u->handle, udp_close_cb);
}

/* Pinned and boxed; the box is left on the stack. */
static struct lunet_udp *udp_new(lua_State *L, struct lunet_service *svc) {
  struct lunet_runtime *rt = lunet_rt(L);
  struct lunet_udp *u = calloc(1, sizeof *u);
  if (u == NULL) return NULL;
  /* recvmmsg where libuv has it: one syscall for a batch of datagrams. A
   * service's socket is made now, so SO_REUSEPORT can precede bind; if
   * that fails, bind makes it and reports the error. */
  if (svc == NULL ||
      uv_udp_init_ex(&rt->loop, &u->handle,
                     svc->addr.ss_family | UV_UDP_RECVMMSG) < 0)
    uv_udp_init_ex(&rt->loop, &u->handle, AF_UNSPEC | UV_UDP_RECVMMSG);
  u->handle.data = u;
  u->rt = rt;
  u->svc = svc;
  lunet_list_init(&u->node);
  struct udp_box *b = lua_newuserdatauv(L, sizeof *b, 2);
  b->u = u;
  luaL_setmetatable(L, UDP_MT);
  lua_pushvalue(L, -1);
  u->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return u;
}

static int set_option(const char *what, int r) {
  if (r < 0)
    lunet_log(LUNET_LOG_WARN, "udp option failed", "option", what, "error",
              uv_strerror(r), NULL);
  return r;
}

static void apply_options(struct lunet_udp *u,
                          const struct lunet_service_options *o) {
  int v;
  if (o->broadcast >= 0)
    set_option("broadcast", uv_udp_set_broadcast(&u->handle, o->broadcast));
  if (o->ttl >= 0) set_option("ttl", uv_udp_set_ttl(&u->handle, o->ttl));
  if (o->multicast_ttl >= 0)
    set_option("multicast_ttl",
               uv_udp_set_multicast_ttl(&u->handle, o->multicast_ttl));
  if (o->multicast_loop >= 0)
    set_option("multicast_loop",
               uv_udp_set_multicast_loop(&u->handle, o->multicast_loop));
  if ((v = o->recv_buffer) > 0)
    set_option("recv_buffer", uv_recv_buffer_size((uv_handle_t *)&u->handle,
                                                  &v));
  if ((v = o->send_buffer) > 0)
    set_option("send_buffer", uv_send_buffer_size((uv_handle_t *)&u->handle,
                                                  &v));
}

static int udp_bind(struct lunet_udp *u, const struct sockaddr *addr) {
  struct sockaddr_storage bound;
  int r, len = sizeof bound;
  if ((r = uv_udp_bind(&u->handle, addr, 0)) < 0) return r;
  if ((r = uv_udp_getsockname(&u->handle, (struct sockaddr *)&bound,
                              &len)) < 0)
    return r;
  lunet_addr_format((struct sockaddr *)&bound, u->bound, sizeof u->bound);
  return udp_start_receiving(u);
}

int lunet_udp_listen(struct lunet_service *svc) {
  lua_State *L = svc->rt->L;
  struct lunet_udp *u = udp_new(L, svc);
  if (u == NULL) return UV_ENOMEM;
  lua_pop(L, 1);
  int r = svc->rt->up->share_port(svc->rt, (uv_handle_t *)&u->handle);
  if (r == 0) r = udp_bind(u, (struct sockaddr *)&svc->addr);
  if (r < 0) {
    lunet_log(LUNET_LOG_ERROR, "listen failed", "service", svc->name, "proto",
              "udp", "addr", svc->addr_text, "error", uv_strerror(r), NULL);
    udp_close(u);
    return r;
  }
  apply_options(u, &svc->opt);
  svc->udp = u;
  memcpy(svc->bound, u->bound, sizeof svc->bound);
  lunet_log(LUNET_LOG_INFO, "listening", "service", svc->name, "proto", "udp",
            "addr", svc->bound, NULL);
  svc->rt->up->listening(svc, "udp");
  return 0;
}

void lunet_udp_unlisten(struct lunet_service *svc) {
  if (svc->udp == NULL) return;
  lunet_log(LUNET_LOG_INFO, "stopped listening", "service", svc->name,
            "addr", svc->bound, NULL);
  udp_close(svc->udp);
}

void lunet__udp_set_service(struct lunet_udp *u, struct lunet_service *svc) {
  u->svc = svc;
}

void lunet_udp_close_clients(struct lunet_runtime *rt) {
  while (!lunet_list_empty(&rt->udp_clients))
    udp_close(lunet_container_of(rt->udp_clients.next, struct lunet_udp,
                                 node));
}

/* }================================================================== */

/* {==================================================================
 * Sending
 * =================================================================== */

static void udp_send_cb(uv_udp_send_t *req, int status) {
  struct send_req *s = (struct send_req *)req;
  s->u->queued -= s->len;
  if (status < 0 && status != UV_ECANCELED)
    lunet_log(LUNET_LOG_WARN, "udp send failed", "socket", s->u->bound,
              "error", uv_strerror(status), NULL);
  free(s);
}

/* Sends now if the socket takes it, else queues a copy (bounded). */
static int udp_send(struct lunet_udp *u, const char *p, size_t n,
                    const struct sockaddr *to) {
  size_t max = to->sa_family == AF_INET6 ? UDP_MAX_IPV6 : UDP_MAX_IPV4;
  if (n > max) return UV_EMSGSIZE;
  uv_buf_t buf = uv_buf_init((char *)p, (unsigned)n);
  if (u->svc != NULL) u->svc->metrics.bytes_out += n;
  int r = uv_udp_try_send(&u->handle, &buf, 1, to);
  if (r >= 0) return 0;
  if (r != UV_EAGAIN) return r;
  if (u->queued + n > UDP_MAX_QUEUE) return UV_ENOBUFS;
  struct send_req *s = malloc(sizeof *s + n);
  if (s == NULL) return UV_ENOMEM;
  memcpy(s->data, p, n);
  s->u = u, s->len = n;
  buf = uv_buf_init(s->data, (unsigned)n);
  if ((r = uv_udp_send(&s->req, &u->handle, &buf, 1, to, udp_send_cb)) < 0) {
    free(s);
    return r;
  }
  u->queued += n;
  return 0;
}

/* }================================================================== */

/* {==================================================================
 * Lua methods
 * =================================================================== */

static struct udp_box *udp_box(lua_State *L) {
  return luaL_checkudata(L, 1, UDP_MT);
}

static struct lunet_udp *open_udp(lua_State *L) {
  struct lunet_udp *u = udp_box(L)->u;
  if (u != NULL && !u->closing) return u;
  luaL_pushfail(L);
  lua_pushliteral(L, "closed");
  return NULL;
}

static int push_error(lua_State *L, int r, const char *detail) {
  luaL_pushfail(L);
  if (detail != NULL)
    lua_pushfstring(L, "%s: %s", uv_err_name(r), detail);
  else
    lua_pushfstring(L, "%s: %s", uv_err_name(r), uv_strerror(r));
  lua_pushstring(L, uv_err_name(r));
  return 3;
}

/* Why a peer is not an address; a NUL in it is named, since the text
 * shown stops there. */
static const char *invalid_address(lua_State *L, const char *s, size_t n) {
  const char *nul = memchr(s, '\0', n);
  if (nul == NULL) return lua_pushfstring(L, "invalid address '%s'", s);
  return lua_pushfstring(L, "invalid address '%s' (a NUL byte at offset %d)", s,
                         (int)(nul - s));
}

/* sock:send(data, peer) -> true, or nil, message, code. Failures of the
 * destination or the network are returned, never raised. */
static int udp_send_method(lua_State *L) {
  struct sockaddr_storage to;
  size_t n, peer_len;
  struct lunet_udp *u = open_udp(L);
  const char *p = luaL_checklstring(L, 2, &n);
  const char *peer = luaL_checklstring(L, 3, &peer_len);
  if (u == NULL) return 2;
  if (lunet_addr_parse_n(peer, peer_len, &to) < 0)
    return push_error(L, UV_EINVAL, invalid_address(L, peer, peer_len));
  int r = udp_send(u, p, n, (struct sockaddr *)&to);
  if (r == UV_EMSGSIZE)
    return push_error(L, r, lua_pushfstring(L, "datagram of %d bytes is too "
                      "large (max %d)", (int)n, to.ss_family == AF_INET6
                      ? UDP_MAX_IPV6 : UDP_MAX_IPV4));
  if (r < 0) return push_error(L, r, NULL);
  /* A client socket that was not bound is now (by the send): listen. */
  if (!u->receiving) udp_start_receiving(u);
  lua_pushboolean(L, 1);
  return 1;
}

static int udp_close_method(lua_State *L) {
  struct lunet_udp *u = open_udp(L);
  if (u == NULL) return 2;
  if (u->svc != NULL)
    return luaL_error(L, "a service's socket closes when the service goes");
  udp_close(u);
  lua_pushboolean(L, 1);
  return 1;
}

static int membership(lua_State *L, uv_membership how) {
  struct lunet_udp *u = open_udp(L);
  size_t glen, ilen = 0;
  const char *group = luaL_checklstring(L, 2, &glen);
  const char *iface = luaL_optlstring(L, 3, NULL, &ilen);
  if (u == NULL) return 2;
  /* libuv reads both as C strings: a NUL would cut them. */
  if (memchr(group, '\0', glen) != NULL ||
      (iface != NULL && memchr(iface, '\0', ilen) != NULL))
    return push_error(L, UV_EINVAL, "an address holds a NUL byte");
  int r = uv_udp_set_membership(&u->handle, group, iface, how);
  if (r < 0) return push_error(L, r, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

static int udp_join(lua_State *L) { return membership(L, UV_JOIN_GROUP); }
static int udp_leave(lua_State *L) { return membership(L, UV_LEAVE_GROUP); }

static int set_int(lua_State *L, int (*set)(uv_udp_t *, int), int boolean) {
  struct lunet_udp *u = open_udp(L);
  int v = boolean ? lua_toboolean(L, 2) : (int)luaL_checkinteger(L, 2);
  if (u == NULL) return 2;
  int r = set(&u->handle, v);
  if (r < 0) return push_error(L, r, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

static int udp_set_broadcast(lua_State *L) {
  return set_int(L, uv_udp_set_broadcast, 1);
}
static int udp_set_ttl(lua_State *L) { return set_int(L, uv_udp_set_ttl, 0); }
static int udp_set_multicast_ttl(lua_State *L) {
  return set_int(L, uv_udp_set_multicast_ttl, 0);
}
static int udp_set_multicast_loop(lua_State *L) {
  return set_int(L, uv_udp_set_multicast_loop, 1);
}

/* The form a peer arrives in, so sock:request can match replies. */
static int udp_canonical(lua_State *L) {
  struct sockaddr_storage sa;
  char text[LUNET_ADDR_STRLEN];
  size_t len;
  udp_box(L);
  const char *addr = luaL_checklstring(L, 2, &len);
  if (lunet_addr_parse_n(addr, len, &sa) < 0 ||
      lunet_addr_format((struct sockaddr *)&sa, text, sizeof text) < 0)
    return 0;
  lua_pushstring(L, text);
  return 1;
}

static int udp_pending(lua_State *L) {
  udp_box(L);
  if (lua_getiuservalue(L, 1, UDP_UV_PENDING) == LUA_TTABLE) return 1;
  lua_newtable(L);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, 1, UDP_UV_PENDING);
  return 1;
}

static int udp_index(lua_State *L) {
  struct udp_box *b = udp_box(L);
  lua_settop(L, 2);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
  size_t n;
  const char *key = lua_tolstring(L, 2, &n); /* by length: "addr\0x" is not */
  if (key != NULL && n == 4 && memcmp(key, "addr", 4) == 0 && b->u != NULL)
    return lua_pushstring(L, b->u->bound), 1;
  return 0;
}

static int udp_tostring(lua_State *L) {
  struct udp_box *b = udp_box(L);
  lua_pushfstring(L, "lunet.udp (%s)", b->u && !b->u->closing
                                           ? b->u->bound : "closed");
  return 1;
}

/* }================================================================== */

/* lunet.udp{ bind = "ip:port", on_message = fn, broadcast = bool, ... } */
int lunet_udp_client(lua_State *L) {
  struct lunet_runtime *rt = lunet_rt(L);
  struct sockaddr_storage addr;
  struct lunet_service_options opt = {.broadcast = -1, .ttl = -1,
                                      .multicast_ttl = -1,
                                      .multicast_loop = -1};
  if (rt->tearing_down) return luaL_error(L, "lunet is exiting");
  if (lua_isnoneornil(L, 1)) lua_newtable(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  size_t bind_len;
  const char *bind =
      (lua_getfield(L, 1, "bind"), lua_tolstring(L, -1, &bind_len));
  if (bind != NULL && lunet_addr_parse_n(bind, bind_len, &addr) < 0)
    return luaL_error(L, "bind: not an address like \"0.0.0.0:0\"");
  if (lua_getfield(L, 1, "on_message") != LUA_TNIL)
    luaL_checktype(L, -1, LUA_TFUNCTION);
  lua_getfield(L, 1, "broadcast");
  opt.broadcast = lua_isnil(L, -1) ? -1 : lua_toboolean(L, -1);
  struct lunet_udp *u = udp_new(L, NULL);
  if (u == NULL) return luaL_error(L, "out of memory");
  lua_pushvalue(L, 3);
  lua_setiuservalue(L, -2, UDP_UV_ON_MESSAGE);
  lunet_list_push(&rt->udp_clients, &u->node);
  int r = bind != NULL ? udp_bind(u, (struct sockaddr *)&addr) : 0;
  if (r < 0) {
    udp_close(u);
    return luaL_error(L, "bind %s: %s", bind, uv_strerror(r));
  }
  if (bind != NULL) apply_options(u, &opt);
  return 1;
}

static const char request_lua[] =
    "local methods, after = ...\n"
    "function methods.request(sock, data, peer, timeout_ms, cb)\n"
    "  if type(cb) ~= 'function' then\n"
    "    error(\"bad argument #5 to 'request' (function expected)\", 2)\n"
    "  end\n"
    "  local key = sock:_canonical(peer)\n"
    "  if not key then\n"
    "    return nil, \"EINVAL: invalid address '\" .. tostring(peer) .. \"'\","
    " 'EINVAL'\n"
    "  end\n"
    "  local pending = sock:_pending()\n"
    "  if pending[key] then\n"
    "    return nil, 'EBUSY: a request to ' .. key .. ' is waiting', 'EBUSY'\n"
    "  end\n"
    "  local ok, err, code = sock:send(data, key)\n"
    "  if not ok then return nil, err, code end\n"
    "  local entry = { cb = cb }\n"
    "  entry.timer = after(timeout_ms, function()\n"
    "    if pending[key] == entry then\n"
    "      pending[key] = nil\n"
    "      cb(nil, 'timeout')\n"
    "    end\n"
    "  end)\n"
    "  pending[key] = entry\n"
    "  return true\n"
    "end\n"
    "return function(entry, data, peer)\n"
    "  entry.timer:stop()\n"
    "  entry.cb(data, peer)\n"
    "end\n";

/* sock:request lives in Lua: it is scheduling, and the C side only hands
 * a datagram from a waited-on peer to it (take_reply). */
static void load_request_helper(lua_State *L, int methods) {
  if (luaL_loadbufferx(L, request_lua, sizeof request_lua - 1, "=lunet.udp",
                       "t") != LUA_OK)
    lua_error(L); /* our own code: a bug, at startup */
  lua_pushvalue(L, methods);
  lua_pushcfunction(L, lunet_timer_after);
  lua_call(L, 2, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &reply_key);
}

void lunet_udp_open(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"send", udp_send_method},
      {"close", udp_close_method},
      {"join", udp_join},
      {"leave", udp_leave},
      {"set_broadcast", udp_set_broadcast},
      {"set_ttl", udp_set_ttl},
      {"set_multicast_ttl", udp_set_multicast_ttl},
      {"set_multicast_loop", udp_set_multicast_loop},
      {"_canonical", udp_canonical},
      {"_pending", udp_pending},
      {NULL, NULL}};
  luaL_newmetatable(L, UDP_MT);
  lua_pushcfunction(L, udp_tostring);
  lua_setfield(L, -2, "__tostring");
  luaL_newlib(L, methods);
  load_request_helper(L, lua_gettop(L));
  lua_pushcclosure(L, udp_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}
