/* lunet.websocket.connect(url, handlers [, opts]): a client websocket.
 *
 * The connection is a lunet.connect conn (resolution in the thread pool,
 * connect_timeout, TLS for wss:// with the host verified); once it is
 * up, the upgrade request goes out and the conn speaks the handshake
 * protocol below until the server's 101 is checked, then it becomes a
 * websocket with the same object and events as a server's. Whatever
 * fails before that reaches on_close(ws, 1006, reason). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <lauxlib.h>

#include "conn.h"
#include "log.h"
#include "loop.h"
#include "protocol.h"
#include "service.h"
#include "ws_handshake.h"
#include "ws_internal.h"

#define HEAD_MAX 8192 /* the server's answer to the upgrade */
#define DEFAULT_HANDSHAKE_MS 10000u

struct handshake {
  int box_ref;
  char key[25];
  uint64_t deadline;
  struct lunet_ws_limits lim;
  char *offered; /* the subprotocols we asked for, or NULL */
  char head[HEAD_MAX];
  size_t len;
};

struct url {
  int tls;
  char hostport[300]; /* for lunet.connect and the Host header */
  char host[256];
  const char *path; /* from the url string: "/..." */
};

/* ws://host[:port][/path] and wss://. */
static int parse_url(const char *s, struct url *u) {
  const char *p;
  if (strncmp(s, "ws://", 5) == 0) u->tls = 0, p = s + 5;
  else if (strncmp(s, "wss://", 6) == 0) u->tls = 1, p = s + 6;
  else return -1;
  const char *end = p + strcspn(p, "/?#");
  size_t n = (size_t)(end - p);
  const char *colon = NULL;
  if (n == 0 || n >= sizeof u->host) return -1;
  if (*p == '[') {
    const char *rb = memchr(p, ']', n);
    if (rb == NULL) return -1;
    colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
    if (rb + 1 != end && colon == NULL) return -1;
  } else {
    colon = memchr(p, ':', n);
  }
  size_t hl = (size_t)((colon ? colon : end) - p);
  memcpy(u->host, p, hl);
  u->host[hl] = '\0';
  if (colon != NULL)
    snprintf(u->hostport, sizeof u->hostport, "%.*s", (int)n, p);
  else
    snprintf(u->hostport, sizeof u->hostport, "%s:%s", u->host,
             u->tls ? "443" : "80");
  if (colon != NULL && colon + 1 == end) return -1;
  u->path = *end == '/' ? end : (*end == '?' ? end : "/");
  return *end == '#' ? -1 : 0;
}

/* {==================================================================
 * The handshake protocol: reads the server's answer
 * =================================================================== */

static const struct lunet_protocol handshake_proto;

/* A header's value in head (lines after the status line), or NULL. */
static const char *find_header(const char *head, const char *name,
                               size_t *len) {
  size_t nl = strlen(name);
  const char *line = strstr(head, "\r\n");
  while (line != NULL && line[2] != '\r') {
    line += 2;
    const char *eol = strstr(line, "\r\n");
    if (eol == NULL) return NULL;
    if ((size_t)(eol - line) > nl && line[nl] == ':' &&
        strncasecmp(line, name, nl) == 0) {
      const char *v = line + nl + 1;
      while (*v == ' ' || *v == '\t') v++;
      const char *e = eol;
      while (e > v && (e[-1] == ' ' || e[-1] == '\t')) e--;
      *len = (size_t)(e - v);
      return v;
    }
    line = eol;
  }
  return NULL;
}

static int has_token(const char *v, size_t n, const char *token) {
  size_t tl = strlen(token);
  for (size_t i = 0; i + tl <= n; i++)
    if (strncasecmp(v + i, token, tl) == 0 &&
        (i == 0 || v[i - 1] == ' ' || v[i - 1] == ',') &&
        (i + tl == n || v[i + tl] == ' ' || v[i + tl] == ','))
      return 1;
  return 0;
}

/* NULL when the answer makes a websocket (*protocol set, maybe NULL),
 * else why not. */
static const char *check_answer(struct handshake *hs, char *protocol,
                                size_t cap) {
  size_t n;
  const char *v;
  *protocol = '\0';
  if (strncmp(hs->head, "HTTP/1.1 101", 12) != 0)
    return "websocket handshake: the server did not answer 101";
  v = find_header(hs->head, "upgrade", &n);
  if (v == NULL || !has_token(v, n, "websocket"))
    return "websocket handshake: no Upgrade: websocket";
  v = find_header(hs->head, "connection", &n);
  if (v == NULL || !has_token(v, n, "upgrade"))
    return "websocket handshake: no Connection: Upgrade";
  v = find_header(hs->head, "sec-websocket-accept", &n);
  if (v == NULL || !lunet_ws_accept_check(hs->key, v, n))
    return "websocket handshake: bad Sec-WebSocket-Accept";
  if (find_header(hs->head, "sec-websocket-extensions", &n) != NULL)
    return "websocket handshake: an extension we did not offer";
  v = find_header(hs->head, "sec-websocket-protocol", &n);
  if (v != NULL) {
    if (hs->offered == NULL || n >= cap || !has_token(hs->offered,
                                                      strlen(hs->offered),
                                                      (snprintf(protocol, cap,
                                                                "%.*s",
                                                                (int)n, v),
                                                       protocol)))
      return "websocket handshake: a subprotocol we did not offer";
  }
  return NULL;
}

static void fail(struct lunet_conn *c, const char *why) {
  lunet_log(LUNET_LOG_WARN, "websocket connect failed", "addr", c->svc->name,
            "error", why, NULL);
  lunet_conn_close(c, why, 0);
}

/* The response head as headers = { name = value } (lower-cased names),
 * for ws.headers. */
static void push_headers(lua_State *L, const char *head) {
  lua_createtable(L, 0, 1);
  lua_newtable(L);
  const char *line = strstr(head, "\r\n");
  while (line != NULL && line[2] != '\r') {
    line += 2;
    const char *eol = strstr(line, "\r\n");
    const char *colon = memchr(line, ':', (size_t)(eol - line));
    if (colon != NULL) {
      luaL_Buffer b;
      luaL_buffinit(L, &b);
      for (const char *k = line; k < colon; k++)
        luaL_addchar(&b, (char)(*k >= 'A' && *k <= 'Z' ? *k + 32 : *k));
      luaL_pushresult(&b);
      const char *v = colon + 1;
      while (*v == ' ') v++;
      lua_pushlstring(L, v, (size_t)(eol - v));
      lua_rawset(L, -3);
    }
    line = eol;
  }
  lua_setfield(L, -2, "headers");
}

static void opened(struct lunet_conn *c, struct handshake *hs,
                   const char *protocol) {
  lua_State *L = c->svc->rt->L;
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, hs->box_ref);
  push_headers(L, hs->head);
  struct lunet_ws_limits lim = hs->lim;
  lunet__ws_attach_box(L, c, top + 1, &lim, 1, *protocol ? protocol : NULL,
                       top + 2); /* hs is freed here (the switch) */
  lunet_ws_run_open(L, top + 1, 0);
  lua_settop(L, top);
}

static size_t handshake_feed(struct lunet_conn *c, const char *buf,
                             size_t len) {
  struct handshake *hs = c->proto_state;
  size_t had = hs->len;
  size_t take = len < HEAD_MAX - 1 - had ? len : HEAD_MAX - 1 - had;
  memcpy(hs->head + had, buf, take);
  hs->len += take;
  hs->head[hs->len] = '\0';
  char *end = strstr(hs->head, "\r\n\r\n");
  if (end == NULL) {
    if (hs->len == HEAD_MAX - 1) fail(c, "websocket handshake: answer too large");
    return len;
  }
  end[4] = '\0'; /* the head alone: what follows is frames */
  size_t used = (size_t)(end + 4 - hs->head) - had;
  char protocol[128];
  const char *why = check_answer(hs, protocol, sizeof protocol);
  if (why != NULL) {
    fail(c, why);
    return len;
  }
  opened(c, hs, protocol);
  return used; /* what follows is frames, for the websocket */
}

static void handshake_timeouts(struct lunet_conn *c, uint64_t now) {
  struct handshake *hs = c->proto_state;
  if (c->state == CONN_OPEN && now >= hs->deadline)
    fail(c, "websocket handshake: timed out");
}

static void handshake_detach(struct lunet_conn *c) {
  struct handshake *hs = c->proto_state;
  if (hs == NULL) return;
  luaL_unref(c->svc->rt->L, LUA_REGISTRYINDEX, hs->box_ref);
  free(hs->offered);
  free(hs);
  c->proto_state = NULL;
}

static const struct lunet_protocol handshake_proto = {
    .name = "websocket handshake",
    .feed = handshake_feed,
    .timeouts = handshake_timeouts,
    .detach = handshake_detach,
};

/* }================================================================== */

/* {==================================================================
 * lunet.websocket.connect
 * =================================================================== */

/* Pushes the upgrade request but its last CRLF (made at connect(), upvalue
 * 2 of on_connect); opts.headers adds lines. */
static void push_request(lua_State *L, const struct url *u, const char *key,
                         int opts) {
  int top = lua_gettop(L);
  lua_pushfstring(L,
                  "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                  "Sec-WebSocket-Version: 13\r\n",
                  u->path, u->hostport, key);
  if (opts != 0 && lua_getfield(L, opts, "headers") == LUA_TTABLE) {
    int t = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
      const char *k = lua_tostring(L, -2), *v = lua_tostring(L, -1);
      if (lua_type(L, -2) != LUA_TSTRING || v == NULL ||
          strpbrk(k, "\r\n:") != NULL || strpbrk(v, "\r\n") != NULL)
        luaL_error(L, "websocket headers: %s is not a valid header",
                   k ? k : "?");
      lua_pushfstring(L, "%s: %s\r\n", k, v);
      lua_insert(L, t); /* before the table: collected in order */
      t++;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  } else if (opts != 0) {
    lua_pop(L, 1);
  }
  lua_concat(L, lua_gettop(L) - top);
}

/* on_connect(conn), upvalues: box, request, the handshake's settings, the
 * subprotocols offered (or nil): the request goes out and the conn reads
 * the answer. */
static int client_on_connect(lua_State *L) {
  struct lunet_conn *c = lunet_conn_of(L, 1);
  struct handshake *proto = lua_touserdata(L, lua_upvalueindex(3));
  if (c == NULL) return 0;
  struct handshake *hs = malloc(sizeof *hs);
  if (hs == NULL) return luaL_error(L, "out of memory");
  memcpy(hs, proto, offsetof(struct handshake, head));
  const char *offered = lua_tostring(L, lua_upvalueindex(4));
  hs->offered = offered != NULL ? strdup(offered) : NULL;
  hs->len = 0;
  hs->deadline = uv_now(&c->svc->rt->loop) + proto->deadline;
  lua_pushvalue(L, lua_upvalueindex(1));
  hs->box_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lunet_conn_switch(c, &handshake_proto);
  c->proto_state = hs;
  size_t n;
  const char *req = lua_tolstring(L, lua_upvalueindex(2), &n);
  lunet_conn_send(c, req, n);
  return 0;
}

/* on_close(conn, reason), upvalue: box. A socket that opened has had
 * its on_close from the websocket; one that never did gets it here. */
static int client_on_close(lua_State *L) {
  struct ws_box *b = lua_touserdata(L, lua_upvalueindex(1));
  if (!b->connecting) return 0;
  lunet__ws_close_unopened(L, lua_upvalueindex(1), 1006,
                           luaL_optstring(L, 2, "closed"));
  return 0;
}

/* Pushes the subprotocols of opts.protocols as "a, b", or nil. */
static void push_offered(lua_State *L, int opts) {
  if (opts == 0 || lua_getfield(L, opts, "protocols") != LUA_TTABLE) {
    if (opts != 0) lua_pop(L, 1);
    lua_pushnil(L);
    return;
  }
  int list = lua_gettop(L), n = 0;
  for (lua_Integer i = 1; lua_rawgeti(L, list, i) == LUA_TSTRING; i++, n++) {
    if (i > 1) {
      lua_pushliteral(L, ", ");
      lua_insert(L, -2);
      n++;
    }
  }
  lua_pop(L, 1); /* what ended the list */
  if (n == 0)
    lua_pushnil(L);
  else
    lua_concat(L, n);
  lua_remove(L, -2);
}

static void connect_opts(lua_State *L, const struct url *u, int opts) {
  lua_newtable(L);
  if (opts != 0) {
    if (lua_getfield(L, opts, "connect_timeout") != LUA_TNIL)
      lua_setfield(L, -2, "connect_timeout");
    else
      lua_pop(L, 1);
  }
  if (u->tls) {
    if (opts == 0 || lua_getfield(L, opts, "tls") == LUA_TNIL) {
      if (opts != 0) lua_pop(L, 1);
      lua_newtable(L);
    }
    lua_setfield(L, -2, "tls");
  }
}

/* lunet.websocket.connect(url, handlers [, opts]) -> ws (connecting);
 * upvalue 1: lunet.connect. */
int lunet_ws_connect(lua_State *L) {
  const char *s = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  int opts = lua_isnoneornil(L, 3) ? 0 : 3;
  if (opts) luaL_checktype(L, 3, LUA_TTABLE);
  struct url u;
  if (parse_url(s, &u) < 0)
    return luaL_argerror(L, 1, "expected ws://host[:port][/path] or wss://");
  struct handshake *proto = lua_newuserdatauv(L, offsetof(struct handshake,
                                                          head), 0);
  int proto_idx = lua_gettop(L);
  lunet_ws_read_limits(L, 2, &proto->lim);
  proto->deadline = DEFAULT_HANDSHAKE_MS;
  if (opts && lua_getfield(L, opts, "handshake_timeout") != LUA_TNIL) {
    double t = lua_tonumber(L, -1);
    luaL_argcheck(L, t > 0 && t <= 3600, 3, "handshake_timeout: seconds");
    proto->deadline = (uint64_t)(t * 1000);
  }
  if (opts) lua_pop(L, 1);
  if (lunet_ws_client_key(proto->key) < 0)
    return luaL_error(L, "no random bytes for a websocket key");
  proto->offered = NULL; /* upvalue 4 of on_connect */
  lunet__ws_push_box(L, 2, u.path);
  int box = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1)); /* lunet.connect */
  lua_pushstring(L, u.hostport);
  lua_createtable(L, 0, 2);
  lua_pushvalue(L, box);
  push_request(L, &u, proto->key, opts);
  int request = lua_gettop(L);
  push_offered(L, opts);
  int offered = lua_gettop(L);
  lua_pushvalue(L, request);
  if (lua_isstring(L, offered))
    lua_pushfstring(L, "Sec-WebSocket-Protocol: %s\r\n\r\n",
                    lua_tostring(L, offered));
  else
    lua_pushliteral(L, "\r\n");
  lua_concat(L, 2);
  lua_replace(L, request); /* box, request, offered */
  lua_pushvalue(L, proto_idx);
  lua_insert(L, offered); /* box, request, settings, offered */
  lua_pushcclosure(L, client_on_connect, 4);
  lua_setfield(L, -2, "on_connect");
  lua_pushvalue(L, box);
  lua_pushcclosure(L, client_on_close, 1);
  lua_setfield(L, -2, "on_close");
  connect_opts(L, &u, opts);
  lua_call(L, 3, 1); /* errors as lunet.connect's own */
  lua_pop(L, 1); /* the conn: the box stands for it */
  lua_pushvalue(L, box);
  return 1;
}

/* }================================================================== */
