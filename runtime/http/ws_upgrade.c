/* res:websocket(handlers): the server's side of the opening handshake
 * (RFC 6455 4.2). A request that is no proper upgrade is answered (400,
 * 403, 426) and closed; a good one gets its 101 and the conn becomes a
 * websocket at once, so the bytes after the request are frames. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <lauxlib.h>

#include "conn.h"
#include "http_internal.h"
#include "log.h"
#include "service.h"
#include "ws_handshake.h"
#include "ws_internal.h"

#define MAX_SUBPROTOCOLS 16

/* Pushes req.headers[name] and returns it (NULL, nil pushed, if none),
 * without making req.headers. */
static const char *header(lua_State *L, int req, const char *name,
                          size_t *len) {
  return lunet__http_request_header(L, req, name, len);
}

/* 1 if the comma-separated list (a Connection or Upgrade value) holds
 * token, case-insensitively. */
static int has_token(const char *list, size_t len, const char *token) {
  size_t tl = strlen(token);
  const char *end = list + len;
  while (list < end) {
    while (list < end && (*list == ' ' || *list == '\t' || *list == ','))
      list++;
    const char *e = list;
    while (e < end && *e != ',') e++;
    const char *t = e;
    while (t > list && (t[-1] == ' ' || t[-1] == '\t')) t--;
    if ((size_t)(t - list) == tl && strncasecmp(list, token, tl) == 0)
      return 1;
    list = e;
  }
  return 0;
}

/* 1 if handlers.origins is absent, the request has no Origin (not a
 * browser), or the Origin is in the list. */
static int origin_allowed(lua_State *L, int handlers, int req) {
  int ok = 1;
  if (lua_getfield(L, handlers, "origins") != LUA_TTABLE) {
    lua_pop(L, 1);
    return 1;
  }
  size_t olen;
  const char *origin = header(L, req, "origin", &olen);
  if (origin != NULL) {
    ok = 0;
    for (lua_Integer i = 1; !ok && lua_rawgeti(L, -2, i) != LUA_TNIL; i++) {
      size_t n;
      const char *allowed = lua_tolstring(L, -1, &n);
      ok = allowed != NULL && n == olen && memcmp(allowed, origin, n) == 0;
      lua_pop(L, 1);
    }
    if (!ok) lua_pop(L, 1); /* the nil that ended the list */
  }
  lua_pop(L, 2);
  return ok;
}

/* The subprotocol to answer with: the first of handlers.subprotocols
 * the client offered; NULL for none (the client decides whether it can
 * go on without). The string stays in the handlers table. */
static const char *pick_protocol(lua_State *L, int handlers, int req) {
  const char *ours[MAX_SUBPROTOCOLS];
  int n = 0;
  const char *chosen = NULL;
  size_t olen;
  if (lua_getfield(L, handlers, "subprotocols") != LUA_TTABLE) {
    lua_pop(L, 1);
    return NULL;
  }
  for (; n < MAX_SUBPROTOCOLS && lua_rawgeti(L, -1, n + 1) == LUA_TSTRING; n++) {
    ours[n] = lua_tostring(L, -1);
    lua_pop(L, 1); /* the table keeps it */
  }
  lua_pop(L, 1);
  const char *offered = header(L, req, "sec-websocket-protocol", &olen);
  if (offered != NULL) {
    int i = lunet_ws_pick_protocol(offered, olen, ours, n);
    if (i >= 0) chosen = ours[i];
  }
  lua_pop(L, 2);
  return chosen;
}

/* 1 when the client offered permessage-deflate in a form we take (a
 * malformed or unacceptable offer is declined, not refused: RFC 7692 5). */
static int negotiate_deflate(lua_State *L, int req,
                             struct lunet_ws_deflate_params *params,
                             char *answer, size_t cap) {
  size_t n;
  const char *v = header(L, req, "sec-websocket-extensions", &n);
  int ok = v != NULL &&
           lunet_ws_deflate_negotiate(v, n, params, answer, cap) == 1;
  lua_pop(L, 1);
  return ok;
}

/* Answers a refused upgrade and says why in the log. Returns nil, why. */
static int refuse(lua_State *L, struct lunet_http *h, int status,
                  const char *extra, const char *why) {
  char code[8];
  snprintf(code, sizeof code, "%d", status);
  lunet_log(LUNET_LOG_INFO, "websocket upgrade refused", "service",
            h->c->svc->name, "status", code, "reason", why, NULL);
  lunet__http_refuse(h, status, extra);
  lunet__http_refused(h);
  lua_pushnil(L);
  lua_pushstring(L, why);
  return 2;
}

/* The checks of RFC 6455 4.2.1, in the order a client can act on. */
static int check_request(lua_State *L, struct lunet_http *h, int req,
                         const char **key, size_t *klen) {
  size_t n;
  const char *v;
  if (lua_isnil(L, req))
    return refuse(L, h, 426, "Upgrade: websocket\r\nConnection: Upgrade\r\n",
                  "not an upgrade request");
  lua_getfield(L, req, "method");
  int is_get = strcmp(lua_tostring(L, -1), "GET") == 0;
  lua_pop(L, 1);
  if (!is_get) return refuse(L, h, 400, "", "upgrade not by GET");
  v = header(L, req, "upgrade", &n);
  int up = v != NULL && has_token(v, n, "websocket");
  v = header(L, req, "connection", &n);
  up = up && v != NULL && has_token(v, n, "upgrade");
  lua_pop(L, 2);
  if (!up)
    return refuse(L, h, 426, "Upgrade: websocket\r\nConnection: Upgrade\r\n",
                  "not an upgrade to websocket");
  v = header(L, req, "sec-websocket-version", &n);
  int v13 = v != NULL && n == 2 && memcmp(v, "13", 2) == 0;
  lua_pop(L, 1);
  if (!v13)
    return refuse(L, h, 426, "Sec-WebSocket-Version: 13\r\n",
                  "unsupported Sec-WebSocket-Version");
  *key = header(L, req, "sec-websocket-key", klen); /* left on the stack */
  if (*key == NULL || !lunet_ws_key_valid(*key, *klen))
    return refuse(L, h, 400, "", "bad Sec-WebSocket-Key");
  return 0;
}

static void send_101(struct lunet_http *h, const char *key, size_t klen,
                     const char *protocol, const char *extension) {
  char accept[29], head[768];
  lunet_ws_accept(key, klen, accept);
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 101 Switching Protocols\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: %s\r\n%s%s%s%s%s%s\r\n",
                   accept, protocol ? "Sec-WebSocket-Protocol: " : "",
                   protocol ? protocol : "", protocol ? "\r\n" : "",
                   extension ? "Sec-WebSocket-Extensions: " : "",
                   extension ? extension : "", extension ? "\r\n" : "");
  lunet_conn_send(h->c, head, (size_t)n);
}

/* res:websocket(handlers) -> ws, or nil, why (the request was answered
 * with an error status and its conn closes). */
int lunet__ws_res_websocket(lua_State *L) {
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  struct lunet_ws_limits lim;
  lunet_ws_read_limits(L, 2, &lim); /* a bad limit raises before anything */
  struct lunet_http *h = lunet__http_upgrade_check(L); /* pushes req */
  if (h == NULL) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  const int req = 3;
  const char *key = NULL;
  size_t klen = 0;
  int refused = check_request(L, h, req, &key, &klen);
  if (refused) return refused;
  if (!origin_allowed(L, 2, req))
    return refuse(L, h, 403, "", "Origin not allowed");
  const char *protocol = pick_protocol(L, 2, req);
  struct lunet_ws_deflate_params params;
  char answer[LUNET_WS_DEFLATE_ANSWER_MAX];
  int deflate = lim.compression && negotiate_deflate(L, req, &params, answer,
                                                      sizeof answer);
  struct lunet_conn *c = h->c;
  send_101(h, key, klen, protocol, deflate ? answer : NULL);
  lunet__http_upgraded(h);
  lua_getfield(L, req, "path");
  lunet_ws_attach(L, c, 2, &lim, 0, protocol, lua_tostring(L, -1), req,
                  deflate ? &params : NULL);
  int ws = lua_gettop(L);
  lunet_conn_hold(c, 0); /* frames that came with the request, and more */
  lunet_ws_run_open(L, ws, req);
  lua_settop(L, ws);
  return 1;
}
