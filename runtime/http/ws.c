#include "ws_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <lauxlib.h>

#include "call.h"
#include "conn.h"
#include "log.h"
#include "loop.h"
#include "protocol.h"
#include "service.h"

#define WS_MT "lunet.websocket"
#define WS_DEFAULT_MAX_MESSAGE (1u << 20)
#define WS_DEFAULT_PING_MS 30000u
#define WS_DEFAULT_CLOSE_MS 5000u
/* A payload this large is queued as the Lua string itself (pinned), not
 * copied after its head. */
#define WS_PIN_MIN (16u << 10)

static struct lunet_ws *ws_of(const struct lunet_conn *c) {
  return c->proto_state;
}

static lua_State *ws_L(const struct lunet_ws *ws) {
  return ws->c->svc->rt->L;
}

static uint64_t ws_now(const struct lunet_ws *ws) {
  return uv_now(&ws->c->svc->rt->loop);
}

/* {==================================================================
 * permessage-deflate: one pair of zlib streams per loop
 * =================================================================== */

/* With no context takeover (ws_deflate.h) nothing of zlib lives per
 * socket: every compressed socket of the loop shares these. */
struct ws_zip {
  struct lunet_ws_zctx *z;
  struct lunet_ws_buf in, out; /* an inflated message, a deflated one */
};

static struct ws_zip *zip_of(struct lunet_runtime *rt) {
  struct ws_zip *zip = rt->ws_zip;
  if (zip != NULL) return zip;
  if ((zip = calloc(1, sizeof *zip)) == NULL) return NULL;
  if ((zip->z = lunet_ws_zctx_new()) == NULL) return free(zip), NULL;
  return rt->ws_zip = zip;
}

void lunet_ws_free(struct lunet_runtime *rt) {
  struct ws_zip *zip = rt->ws_zip;
  lunet__ws_topics_free(rt);
  if (zip == NULL) return;
  lunet_ws_zctx_free(zip->z);
  lunet_ws_buf_free(&zip->in);
  lunet_ws_buf_free(&zip->out);
  free(zip);
  rt->ws_zip = NULL;
}

const struct lunet_ws_buf *lunet__ws_compress(struct lunet_ws *ws,
                                              const char *p, size_t n) {
  struct ws_zip *zip = ws->c->svc->rt->ws_zip;
  if (!ws->compress || !lunet_ws_deflate_worth(n)) return NULL;
  if (lunet_ws_deflate(&ws->deflate, p, n, &zip->out) != 0) return NULL;
  return zip->out.len < n ? &zip->out : NULL;
}

/* }================================================================== */

/* {==================================================================
 * Frames out
 * =================================================================== */

/* Masking keys from the kernel's CSPRNG (RFC 6455 10.3: a proxy must
 * not be able to predict them), drawn 64 at a time so a frame costs no
 * syscall. */
static void mask_key(unsigned char key[4]) {
  static unsigned char pool[256];
  static size_t left;
  if (left < 4) {
    ssize_t got = getrandom(pool, sizeof pool, 0);
    if (got < (ssize_t)sizeof pool) { /* no entropy: never on Linux >= 3.17 */
      for (size_t i = 0; i < sizeof pool; i++)
        pool[i] ^= (unsigned char)(uv_hrtime() >> (i % 8));
    }
    left = sizeof pool;
  }
  left -= 4;
  memcpy(key, pool + left, 4);
}

/* A client masks every frame with a fresh key; its payload is copied
 * masked, so nothing of it is pinned. */
static int send_masked(struct lunet_ws *ws, int op, const char *p, size_t n) {
  unsigned char head[14], key[4];
  mask_key(key);
  size_t hl = lunet_ws_frame_head(head, op, 1, n, key);
  char *buf = malloc(hl + n);
  if (buf == NULL) return UV_ENOMEM;
  memcpy(buf, head, hl);
  lunet_ws_mask_copy(buf + hl, p, n, key);
  int rc = lunet_conn_send(ws->c, buf, hl + n);
  free(buf);
  return rc;
}

static int send_frame(struct lunet_ws *ws, int op, const char *p, size_t n,
                      int idx);
static void set_close(struct lunet_ws *ws, uint16_t code, const char *reason,
                      size_t len);

/* A frame the queue cannot take has dropped the conn as a slow consumer
 * (conn.c): on_close says so. */
int lunet__ws_send_frame(struct lunet_ws *ws, int op, const char *p,
                         size_t n, int idx) {
  lunet__ws_uncork(ws); /* topic frames of this turn go first */
  int r = send_frame(ws, op, p, n, idx);
  if (r == UV_ENOBUFS) {
    set_close(ws, 1008, "slow consumer", 13);
    ws->close_sent = 1;
  }
  return r;
}

static int send_frame(struct lunet_ws *ws, int op, const char *p, size_t n,
                      int idx) {
  struct lunet_conn *c = ws->c;
  if (c->state != CONN_OPEN) return UV_EPIPE;
  const struct lunet_ws_buf *z =
      op == LUNET_WS_TEXT || op == LUNET_WS_BINARY ? lunet__ws_compress(ws, p, n)
                                                   : NULL;
  if (z != NULL) op |= LUNET_WS_RSV1, p = z->p, n = z->len, idx = 0;
  if (ws->client) return send_masked(ws, op, p, n);
  unsigned char head[14];
  size_t hl = lunet_ws_frame_head(head, op, 1, n, NULL);
  if (n >= WS_PIN_MIN && idx != 0) {
    int r = lunet_conn_send(c, (const char *)head, hl);
    return r < 0 ? r : lunet_conn_send_string(c, ws_L(ws), idx, p, n);
  }
  char small[14 + 4096];
  char *buf = hl + n <= sizeof small ? small : malloc(hl + n);
  if (buf == NULL) return UV_ENOMEM;
  memcpy(buf, head, hl);
  if (n > 0) memcpy(buf + hl, p, n);
  int r = lunet_conn_send(c, buf, hl + n);
  if (buf != small) free(buf);
  return r;
}

static void send_close(struct lunet_ws *ws, uint16_t code, const char *reason,
                       size_t reason_len) {
  char payload[125];
  size_t n = 0;
  if (ws->close_sent) return;
  ws->close_sent = 1;
  if (code != 1005)
    n = lunet_ws_close_payload(payload, code, reason, reason_len);
  lunet__ws_send_frame(ws, LUNET_WS_CLOSE, payload, n, 0);
  ws->close_deadline = ws_now(ws) + ws->lim.close_timeout_ms;
}

static void set_close(struct lunet_ws *ws, uint16_t code, const char *reason,
                      size_t len) {
  ws->close_code = code;
  free(ws->close_reason);
  ws->close_reason = NULL;
  if (len == 0) return;
  if ((ws->close_reason = malloc(len + 1)) == NULL) return;
  memcpy(ws->close_reason, reason, len);
  ws->close_reason[len] = '\0';
}

void lunet__ws_log(struct lunet_ws *ws, int level, const char *msg,
                   uint16_t code, const char *reason) {
  char id[24], codes[8], peer[LUNET_ADDR_STRLEN];
  snprintf(id, sizeof id, "%" PRIu64, ws->c->id);
  snprintf(codes, sizeof codes, "%u", (unsigned)code);
  lunet_addr_format(&ws->c->peer.sa, peer, sizeof peer);
  lunet_log(level, msg, "service", ws->c->svc->name, "conn", id, "peer", peer,
            "code", codes, "reason", reason, NULL);
}

void lunet__ws_drop(struct lunet_ws *ws, uint16_t code, const char *reason,
                    const char *conn_reason) {
  set_close(ws, code, reason, strlen(reason));
  ws->close_sent = 1;
  lunet_conn_close(ws->c, conn_reason, 0);
}

void lunet__ws_fail(struct lunet_ws *ws, uint16_t code, const char *reason,
                    const char *conn_reason) {
  size_t len = strlen(reason);
  if (!ws->close_received) set_close(ws, code, reason, len);
  send_close(ws, code, reason, len);
  lunet_conn_close(ws->c, conn_reason, 1);
}

/* }================================================================== */

/* {==================================================================
 * Handlers
 * =================================================================== */

/* adopt(box, router, path): the router's handlers for path become the
 * box's, when it has some. Runs under lunet_call (protected, budgeted). */
static int adopt_handlers(lua_State *L) {
  if (lua_getfield(L, 2, "websocket_handlers") != LUA_TFUNCTION) return 0;
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  lua_call(L, 2, 1);
  if (lua_type(L, -1) == LUA_TTABLE) lua_setiuservalue(L, 1, WS_UV_HANDLERS);
  return 0;
}

/* After a reload the service's handler may know newer handlers for this
 * socket's path (router:websocket_handlers); a route that is gone keeps
 * the socket under the handlers it has. */
static void refresh_handlers(lua_State *L, struct lunet_ws *ws, int box) {
  ws->handlers_version = ws->c->svc->rt->version;
  if (ws->client) return;
  lua_pushcfunction(L, adopt_handlers);
  lua_pushvalue(L, box);
  if (!lunet_service_push_handler(L, ws->c->svc, LUNET_ON_REQUEST) ||
      lua_type(L, -1) != LUA_TTABLE) return;
  lua_getiuservalue(L, box, WS_UV_PATH);
  struct lunet_call_ctx ctx = {ws->c->svc->name, "websocket_handlers",
                               ws->c->id, &ws->c->peer.sa,
                               &ws->c->svc->metrics};
  lunet_call(L, 3, &ctx);
}

/* Pushes handlers.name for the ws box at index box; 0 (nothing pushed)
 * when it has none. */
static int push_handler(lua_State *L, struct lunet_ws *ws, int box,
                        const char *name) {
  if (ws->handlers_version != ws->c->svc->rt->version) {
    int top = lua_gettop(L);
    refresh_handlers(L, ws, box);
    lua_settop(L, top);
  }
  lua_getiuservalue(L, box, WS_UV_HANDLERS);
  if (lua_getfield(L, -1, name) == LUA_TFUNCTION) {
    lua_remove(L, -2);
    return 1;
  }
  lua_pop(L, 2);
  return 0;
}

static void push_box(lua_State *L, const struct lunet_ws *ws) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, ws->box_ref);
}

/* Calls handlers.name(ws, <nargs values on the stack>): a handler error
 * costs this socket only (closed 1011). Pops the values. */
static void call_handler(struct lunet_ws *ws, const char *name, int nargs) {
  lua_State *L = ws_L(ws);
  int args = lua_gettop(L) - nargs + 1;
  push_box(L, ws);
  int box = lua_gettop(L);
  if (!push_handler(L, ws, box, name)) {
    lua_settop(L, args - 1);
    return;
  }
  int base = lua_gettop(L);
  lua_pushcfunction(L, lunet_traceback);
  lua_insert(L, base); /* traceback, fn */
  lua_pushvalue(L, box);
  for (int i = 0; i < nargs; i++) lua_pushvalue(L, args + i);
  struct lunet_call_ctx ctx = {ws->c->svc->name, name, ws->c->id,
                               &ws->c->peer.sa, &ws->c->svc->metrics};
  int status = lunet_call_prepared(L, base, nargs + 1, &ctx);
  lua_settop(L, args - 1);
  if (status != LUA_OK && ws->c->state == CONN_OPEN)
    lunet__ws_fail(ws, 1011, "handler error", "handler_error");
}

void lunet__ws_close_unopened(lua_State *L, int box_idx, int code,
                              const char *reason) {
  box_idx = lua_absindex(L, box_idx);
  ((struct ws_box *)lua_touserdata(L, box_idx))->connecting = 0;
  lua_getiuservalue(L, box_idx, WS_UV_HANDLERS);
  if (lua_getfield(L, -1, "on_close") != LUA_TFUNCTION) {
    lua_pop(L, 2);
    return;
  }
  lua_remove(L, -2);
  lua_pushvalue(L, box_idx);
  lua_pushinteger(L, code);
  lua_pushstring(L, reason);
  struct lunet_call_ctx ctx = {NULL, "on_close", 0, NULL, NULL};
  lunet_call(L, 3, &ctx);
}

void lunet_ws_run_open(lua_State *L, int ws_idx, int extra_idx) {
  struct ws_box *b = lua_touserdata(L, ws_idx);
  if (b->ws == NULL) return;
  if (extra_idx != 0) lua_pushvalue(L, extra_idx);
  call_handler(b->ws, "on_open", extra_idx != 0);
}

/* }================================================================== */

/* {==================================================================
 * The protocol: frames in
 * =================================================================== */

static void on_message(struct lunet_ws *ws, const struct lunet_ws_event *ev) {
  lua_State *L = ws_L(ws);
  struct lunet_metrics *m = &ws->c->svc->metrics;
  m->messages++;
  m->ws_messages_in++;
  if (ws->close_sent) return; /* closing: what still arrives is dropped */
  if (!lunet_service_rate_ok(ws->c->svc, &ws->c->peer.sa))
    return lunet__ws_fail(ws, 1008, "rate limited", "rate_limited");
  const char *p = ev->data;
  size_t n = ev->len;
  if (ev->compressed) {
    struct ws_zip *zip = ws->c->svc->rt->ws_zip;
    int code = lunet_ws_inflate(&ws->deflate, p, n, ws->lim.max_message,
                                ev->opcode == LUNET_WS_TEXT, &zip->in);
    if (code != 0) {
      const char *why = code == 1009   ? "message too big"
                        : code == 1007 ? "bad compressed message"
                                       : "out of memory";
      lunet__ws_log(ws, LUNET_LOG_INFO, "websocket protocol error",
                    (uint16_t)code, why);
      return lunet__ws_fail(ws, (uint16_t)code, why,
                            code == 1009 ? "message_too_long"
                                         : "protocol_error");
    }
    p = zip->in.p, n = zip->in.len;
  }
  lua_pushlstring(L, p, n);
  lua_pushboolean(L, ev->opcode == LUNET_WS_BINARY);
  call_handler(ws, "on_message", 2);
}

static void on_close_frame(struct lunet_ws *ws,
                           const struct lunet_ws_event *ev) {
  ws->close_received = 1;
  set_close(ws, ev->code, ev->data, ev->len);
  send_close(ws, ev->code, NULL, 0); /* the echo: the code alone */
  lunet_conn_close(ws->c, "closed", 1);
}

static void ws_event(struct lunet_ws *ws, const struct lunet_ws_event *ev) {
  switch (ev->kind) {
    case LUNET_WS_EV_MESSAGE:
      return on_message(ws, ev);
    case LUNET_WS_EV_PING:
      if (!ws->close_sent)
        lunet__ws_send_frame(ws, LUNET_WS_PONG, ev->data, ev->len, 0);
      return;
    case LUNET_WS_EV_PONG:
      ws->pings_out = 0;
      return;
    case LUNET_WS_EV_CLOSE:
      return on_close_frame(ws, ev);
    case LUNET_WS_EV_ERROR:
      lunet__ws_log(ws, LUNET_LOG_INFO, "websocket protocol error", ev->code,
             ev->data);
      return lunet__ws_fail(ws, ev->code, ev->data,
                            ev->code == 1009 ? "message_too_long"
                                             : "protocol_error");
    case LUNET_WS_EV_NONE:
      return;
  }
}

/* Every byte is consumed: the parser keeps partial frames itself. It
 * stops early only when the conn may take no more input (its queue is
 * past the high-water mark), and the conn keeps the rest meanwhile. The
 * buffer is the conn's own (protocol.h), so payloads unmask in place. */
static size_t ws_feed(struct lunet_conn *c, const char *buf, size_t len) {
  struct lunet_ws *ws = ws_of(c);
  size_t off = 0;
  for (;;) {
    if (!lunet_conn_accepts_input(c))
      return c->state == CONN_OPEN ? off : len;
    struct lunet_ws_event ev;
    off += lunet_ws_parse(&ws->parser, (char *)buf + off, len - off, &ev);
    if (ev.kind == LUNET_WS_EV_NONE) return len;
    ws_event(ws, &ev);
  }
}

/* The peer's TCP ended without a close frame: abnormal (1006). */
static const char *ws_eof(struct lunet_conn *c) {
  struct lunet_ws *ws = ws_of(c);
  if (!ws->close_received && !ws->close_sent) set_close(ws, 1006, NULL, 0);
  return "eof";
}

/* Pings every ping_interval; a peer that answered neither of the last two
 * is gone. A close handshake the peer does not finish is cut. */
static void ws_timeouts(struct lunet_conn *c, uint64_t now) {
  struct lunet_ws *ws = ws_of(c);
  if (c->state != CONN_OPEN) return;
  if (ws->close_sent) {
    if (now >= ws->close_deadline) lunet_conn_close(c, "close_timeout", 0);
    return;
  }
  unsigned every = ws->lim.ping_interval_ms;
  if (every == 0 || now - ws->last_ping_ms < every) return;
  if (ws->pings_out >= 2) {
    lunet__ws_log(ws, LUNET_LOG_INFO, "websocket ping timeout", 1006,
           "no pong to two pings");
    set_close(ws, 1006, "ping timeout", 12); /* on_close's: no close came */
    send_close(ws, 1001, "ping timeout", 12);
    lunet_conn_close(c, "idle_timeout", 1);
    return;
  }
  ws->last_ping_ms = now;
  ws->pings_out++;
  lunet__ws_send_frame(ws, LUNET_WS_PING, NULL, 0, 0);
}

/* A close of the conn's own (shutdown, a slow consumer, a timeout)
 * still tells the peer why, as a close frame. */
static void ws_goodbye(struct lunet_conn *c, const char *reason) {
  struct lunet_ws *ws = ws_of(c);
  if (ws->close_sent) return;
  uint16_t code = strcmp(reason, "slow_consumer") == 0 ? 1008 : 1001;
  const char *why = code == 1008 ? "slow consumer" : "going away";
  set_close(ws, code, why, strlen(why));
  send_close(ws, code, why, strlen(why));
}

static void ws_drain(struct lunet_conn *c) {
  call_handler(ws_of(c), "on_drain", 0);
}

static void count_close(struct lunet_metrics *m, unsigned code) {
  static const unsigned codes[LUNET_WS_CLOSE_CODES - 1] = {
      1000, 1001, 1002, 1006, 1007, 1008, 1009, 1011};
  int i = 0;
  while (i < LUNET_WS_CLOSE_CODES - 1 && codes[i] != code) i++;
  m->ws_closed[i]++;
}

/* The conn is being freed: on_close(ws, code, reason), then the box lets
 * go of the state. */
static void ws_detach(struct lunet_conn *c) {
  struct lunet_ws *ws = ws_of(c);
  lua_State *L = c->svc->rt->L;
  if (ws == NULL) return;
  if (!ws->close_sent && !ws->close_received) ws->close_code = 1006;
  count_close(&c->svc->metrics, ws->close_code);
  lunet__ws_unsubscribe_all(ws);
  lunet__ws_cork_discard(ws);
  if (!c->svc->rt->tearing_down) {
    lua_pushinteger(L, ws->close_code);
    if (ws->close_reason != NULL)
      lua_pushstring(L, ws->close_reason);
    else
      lua_pushliteral(L, "");
    call_handler(ws, "on_close", 2);
  }
  ws->box->ws = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, ws->box_ref);
  c->proto_state = NULL;
  lunet_ws_parser_free(&ws->parser);
  free(ws->close_reason);
  free(ws);
}

const struct lunet_protocol lunet_proto_ws = {
    .name = "websocket",
    .feed = ws_feed,
    .eof = ws_eof,
    .timeouts = ws_timeouts,
    .detach = ws_detach,
    .goodbye = ws_goodbye,
    .drain = ws_drain,
};

/* }================================================================== */

/* {==================================================================
 * Attaching
 * =================================================================== */

static unsigned ms_field(lua_State *L, int idx, const char *name,
                         unsigned dflt) {
  int t = lua_getfield(L, idx, name);
  double s = t == LUA_TNIL ? dflt / 1000.0 : lua_tonumber(L, -1);
  if (t != LUA_TNIL && (t != LUA_TNUMBER || !(s >= 0) || s > 86400))
    luaL_error(L, "websocket %s must be a number of seconds", name);
  lua_pop(L, 1);
  return (unsigned)(s * 1000);
}

void lunet_ws_read_limits(lua_State *L, int idx, struct lunet_ws_limits *lim) {
  idx = lua_absindex(L, idx);
  int t = lua_getfield(L, idx, "max_message");
  lua_Integer max = t == LUA_TNIL ? WS_DEFAULT_MAX_MESSAGE : lua_tointeger(L, -1);
  if (t != LUA_TNIL && (!lua_isinteger(L, -1) || max <= 0))
    luaL_error(L, "websocket max_message must be a positive integer");
  lua_pop(L, 1);
  lim->max_message = (size_t)max;
  lim->ping_interval_ms = ms_field(L, idx, "ping_interval", WS_DEFAULT_PING_MS);
  lim->close_timeout_ms = ms_field(L, idx, "close_timeout", WS_DEFAULT_CLOSE_MS);
  lua_getfield(L, idx, "compression");
  lim->compression = (unsigned char)lua_toboolean(L, -1);
  lua_pop(L, 1);
}

/* A box for a socket still to be attached (lunet.websocket.connect's,
 * while it connects), with its handlers and path. */
void lunet__ws_push_box(lua_State *L, int hidx, const char *path) {
  hidx = lua_absindex(L, hidx);
  struct ws_box *b = lua_newuserdatauv(L, sizeof *b, WS_UV_COUNT);
  b->ws = NULL;
  b->id = 0;
  b->connecting = 1;
  luaL_setmetatable(L, WS_MT);
  lua_pushvalue(L, hidx);
  lua_setiuservalue(L, -2, WS_UV_HANDLERS);
  lua_pushstring(L, path);
  lua_setiuservalue(L, -2, WS_UV_PATH);
}

void lunet__ws_attach_box(lua_State *L, struct lunet_conn *c, int box_idx,
                          const struct lunet_ws_limits *lim, int client,
                          const char *protocol, int headers_idx,
                          const struct lunet_ws_deflate_params *deflate) {
  box_idx = lua_absindex(L, box_idx);
  struct ws_box *b = lua_touserdata(L, box_idx);
  struct lunet_ws *ws = calloc(1, sizeof *ws);
  if (ws == NULL) luaL_error(L, "out of memory");
  b->ws = ws;
  b->id = c->id;
  b->connecting = 0;
  if (headers_idx != 0) {
    lua_pushvalue(L, headers_idx);
    lua_setiuservalue(L, box_idx, WS_UV_REQUEST);
  }
  if (protocol != NULL) {
    lua_pushstring(L, protocol);
    lua_setiuservalue(L, box_idx, WS_UV_PROTOCOL);
  }
  lua_pushvalue(L, box_idx);
  ws->box_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  ws->box = b;
  ws->c = c;
  ws->lim = *lim;
  ws->client = (unsigned char)client;
  ws->handlers_version = c->svc->rt->version;
  ws->last_ping_ms = uv_now(&c->svc->rt->loop);
  lunet_list_init(&ws->subs);
  enum lunet_ws_role role = client ? LUNET_WS_CLIENT : LUNET_WS_SERVER;
  if (deflate != NULL) {
    struct ws_zip *zip = zip_of(c->svc->rt);
    if (zip == NULL) luaL_error(L, "out of memory");
    ws->compress = 1;
    lunet_ws_deflate_init(&ws->deflate, zip->z, deflate, role);
  }
  lunet_ws_parser_init(&ws->parser, role, lim->max_message, ws->compress);
  lunet_conn_switch(c, &lunet_proto_ws);
  c->proto_state = ws;
  c->svc->metrics.ws_opened++;
}

void lunet_ws_attach(lua_State *L, struct lunet_conn *c, int hidx,
                     const struct lunet_ws_limits *lim, int client,
                     const char *protocol, const char *path,
                     int headers_idx,
                     const struct lunet_ws_deflate_params *deflate) {
  if (headers_idx != 0) headers_idx = lua_absindex(L, headers_idx);
  lunet__ws_push_box(L, hidx, path);
  lunet__ws_attach_box(L, c, -1, lim, client, protocol, headers_idx,
                       deflate);
}

/* }================================================================== */

/* {==================================================================
 * The Lua object
 * =================================================================== */

static struct lunet_ws *check_ws(lua_State *L) {
  return ((struct ws_box *)luaL_checkudata(L, 1, WS_MT))->ws;
}

/* The open socket, or NULL with nil, "closed" pushed. */
static struct lunet_ws *open_ws(lua_State *L) {
  struct ws_box *b = luaL_checkudata(L, 1, WS_MT);
  struct lunet_ws *ws = b->ws;
  if (ws != NULL && ws->c->state == CONN_OPEN && !ws->close_sent) return ws;
  lua_pushnil(L);
  if (b->connecting)
    lua_pushliteral(L, "connecting");
  else
    lua_pushliteral(L, "closed");
  return NULL;
}

static int frame_op(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return LUNET_WS_TEXT;
  if (lua_isboolean(L, idx))
    return lua_toboolean(L, idx) ? LUNET_WS_BINARY : LUNET_WS_TEXT;
  static const char *const kinds[] = {"text", "binary", NULL};
  return luaL_checkoption(L, idx, NULL, kinds) ? LUNET_WS_BINARY
                                               : LUNET_WS_TEXT;
}

/* ws:send(data [, "binary"]) -> true, or false once the queue passed its
 * high-water mark (on_drain follows); nil, "closed". A text message must
 * be UTF-8 (a peer would fail the socket on anything else). */
static int ws_send(lua_State *L) {
  size_t n;
  struct lunet_ws *ws = open_ws(L);
  const char *p = luaL_checklstring(L, 2, &n);
  int op = frame_op(L, 3);
  if (ws == NULL) return 2;
  if (op == LUNET_WS_TEXT && !lunet_utf8_valid(p, n))
    return luaL_argerror(L, 2, "not UTF-8 (send it as \"binary\")");
  int r = lunet__ws_send_frame(ws, op, p, n, 2);
  if (r < 0) {
    lua_pushnil(L);
    lua_pushstring(L, uv_err_name(r));
    return 2;
  }
  ws->c->svc->metrics.ws_messages_out++;
  lua_pushboolean(L, !ws->c->paused_by_queue);
  return 1;
}

/* ws:close([code [, reason]]): the close handshake, bounded by
 * close_timeout; on_close follows once the conn is gone. */
static int ws_close(lua_State *L) {
  struct lunet_ws *ws = check_ws(L);
  lua_Integer code = luaL_optinteger(L, 2, 1000);
  size_t n = 0;
  const char *reason = luaL_optlstring(L, 3, "", &n);
  luaL_argcheck(L, code == 1000 || (code >= 3000 && code <= 4999) ||
                       lunet_ws_close_code_valid((unsigned)code),
                2, "not a close code a websocket may send");
  luaL_argcheck(L, n <= 123, 3, "longer than 123 bytes");
  luaL_argcheck(L, lunet_utf8_valid(reason, n), 3, "not UTF-8");
  if (ws == NULL || ws->close_sent || ws->c->state != CONN_OPEN) {
    lua_pushboolean(L, 0);
    return 1;
  }
  set_close(ws, (uint16_t)code, reason, n);
  send_close(ws, (uint16_t)code, reason, n);
  lua_pushboolean(L, 1);
  return 1;
}

/* ws:ping([data]): the pong is not reported (liveness is checked by
 * ping_interval). */
static int ws_ping(lua_State *L) {
  size_t n = 0;
  struct lunet_ws *ws = open_ws(L);
  const char *p = luaL_optlstring(L, 2, "", &n);
  luaL_argcheck(L, n <= 125, 2, "a ping carries at most 125 bytes");
  if (ws == NULL) return 2;
  lunet__ws_send_frame(ws, LUNET_WS_PING, p, n, 0);
  lua_pushboolean(L, 1);
  return 1;
}

static int ws_subscribe(lua_State *L) {
  luaL_checkstring(L, 2);
  struct lunet_ws *ws = open_ws(L);
  if (ws == NULL) return 2;
  return lunet__ws_subscribe(L, ws, 2);
}

static int ws_unsubscribe(lua_State *L) {
  luaL_checkstring(L, 2);
  struct lunet_ws *ws = check_ws(L);
  if (ws == NULL) return lua_pushboolean(L, 0), 1;
  return lunet__ws_unsubscribe(L, ws, 2);
}

static int push_data(lua_State *L) {
  if (lua_getiuservalue(L, 1, WS_UV_DATA) == LUA_TTABLE) return 1;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, 1, WS_UV_DATA);
  return 1;
}

static int push_headers(lua_State *L) {
  if (lua_getiuservalue(L, 1, WS_UV_REQUEST) == LUA_TNIL) {
    lua_newtable(L);
    return 1;
  }
  lua_getfield(L, -1, "headers");
  return 1;
}

static int push_peer(lua_State *L, struct lunet_ws *ws) {
  char peer[LUNET_ADDR_STRLEN];
  if (ws == NULL) return lua_pushnil(L), 1;
  lunet_addr_format(&ws->c->peer.sa, peer, sizeof peer);
  lua_pushstring(L, peer);
  return 1;
}

static int ws_index(lua_State *L) {
  struct ws_box *b = luaL_checkudata(L, 1, WS_MT);
  const char *k = luaL_checkstring(L, 2);
  if (strcmp(k, "id") == 0) return lua_pushinteger(L, (lua_Integer)b->id), 1;
  if (strcmp(k, "data") == 0) return push_data(L);
  if (strcmp(k, "path") == 0)
    return lua_getiuservalue(L, 1, WS_UV_PATH), 1;
  if (strcmp(k, "protocol") == 0)
    return lua_getiuservalue(L, 1, WS_UV_PROTOCOL), 1;
  if (strcmp(k, "headers") == 0) return push_headers(L);
  if (strcmp(k, "peer") == 0) return push_peer(L, b->ws);
  if (strcmp(k, "tls") == 0) {
    if (b->ws == NULL || !lunet_conn_push_tls(L, b->ws->c)) lua_pushnil(L);
    return 1;
  }
  if (strcmp(k, "closed") == 0)
    return lua_pushboolean(L, b->ws == NULL || b->ws->close_sent), 1;
  luaL_getmetatable(L, WS_MT);
  lua_getfield(L, -1, "methods");
  lua_getfield(L, -1, k);
  return 1;
}

static int ws_newindex(lua_State *L) {
  luaL_checkudata(L, 1, WS_MT);
  const char *k = luaL_checkstring(L, 2);
  if (strcmp(k, "data") != 0)
    return luaL_error(L, "websocket field '%s' is read-only", k);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_pushvalue(L, 3);
  lua_setiuservalue(L, 1, WS_UV_DATA);
  return 0;
}

static int ws_tostring(lua_State *L) {
  struct ws_box *b = luaL_checkudata(L, 1, WS_MT);
  lua_pushfstring(L, "websocket %I%s", (lua_Integer)b->id,
                  b->ws == NULL ? " (closed)" : "");
  return 1;
}

void lunet_ws_open(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"send", ws_send},           {"close", ws_close},
      {"ping", ws_ping},           {"subscribe", ws_subscribe},
      {"unsubscribe", ws_unsubscribe}, {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__index", ws_index},
                                  {"__newindex", ws_newindex},
                                  {"__tostring", ws_tostring},
                                  {NULL, NULL}};
  luaL_newmetatable(L, WS_MT);
  luaL_setfuncs(L, meta, 0);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "methods");
  lua_pop(L, 1);
}

/* }================================================================== */
