#include "lunet.h"

#include <string.h>
#include <lauxlib.h>
#include <uv.h>

#include "client.h"
#include "conn.h"
#include "http.h"
#include "pubsub.h"
#include "ws.h"
#include "ratelimit.h"
#include "log.h"
#include "loop.h"
#include "script.h"
#include "service.h"
#include "timer.h"
#include "udp.h"

/* lunet.now(): monotonic milliseconds with sub-millisecond precision, read
 * fresh (not the loop's cached time) so handlers can time their own work. */
static int lunet_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)uv_hrtime() / 1e6);
  return 1;
}

/* lunet.connections(service) -> array of the service's open conns. */
static int lunet_connections(lua_State *L) {
  size_t len;
  const char *name = luaL_checklstring(L, 1, &len);
  /* Names are C strings in the runtime: one with a NUL names no service. */
  struct lunet_service *svc = memchr(name, '\0', len) != NULL
                                  ? NULL
                                  : lunet_service_find(lunet_rt(L), name);
  int i = 0;
  luaL_argcheck(L, svc != NULL, 1, "no such service");
  lua_createtable(L, (int)svc->nconns, 0);
  for (struct lunet_list *q = svc->conns.next; q != &svc->conns;
       q = q->next) {
    lunet_conn_push(L, lunet_container_of(q, struct lunet_conn, node));
    lua_rawseti(L, -2, ++i);
  }
  return 1;
}

static const char states_key = 'S'; /* registry: name -> state table */

/* lunet.state(name [, init]) -> the table registered under name, made on
 * first use from init (a table, or a function returning one). It lives in
 * the runtime, not in a script version, so it survives every reload. */
static int lunet_state(lua_State *L) {
  luaL_checkstring(L, 1);
  lua_settop(L, 2);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &states_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &states_key);
  }
  lua_pushvalue(L, 1);
  if (lua_rawget(L, 3) == LUA_TTABLE) return 1;
  lua_pop(L, 1);
  if (lua_isfunction(L, 2)) {
    lua_pushvalue(L, 2);
    lua_call(L, 0, 1);
  } else if (lua_isnil(L, 2)) {
    lua_newtable(L);
  } else {
    lua_pushvalue(L, 2);
  }
  luaL_argexpected(L, lua_istable(L, -1), 2, "table or function");
  lua_pushvalue(L, 1);
  lua_pushvalue(L, -2);
  lua_rawset(L, 3);
  return 1;
}

/* lunet.exit([code]): a graceful shutdown (queued writes flush, on_close
 * runs) after which the process exits with code. */
static int lunet_exit(lua_State *L) {
  struct lunet_runtime *rt = lunet_rt(L);
  lua_Integer code = luaL_optinteger(L, 1, 0);
  luaL_argcheck(L, code >= 0 && code <= 255, 1, "exit code must be 0-255");
  rt->exit_code = (int)code;
  if (!rt->shutting_down) rt->up->shutdown(rt, "lunet.exit");
  return 0;
}

/* lunet.connect: net/ checks the handlers table with script/'s rules. */
static int lunet_connect(lua_State *L) {
  return lunet_client_connect(L, lunet__service_check_table);
}

int lunet_open(lua_State *L) {
  static const luaL_Reg funcs[] = {{"after", lunet_timer_after},
                                   {"every", lunet_timer_every},
                                   {"now", lunet_now},
                                   {"connections", lunet_connections},
                                   {"state", lunet_state},
                                   {"connect", lunet_connect},
                                   {"publish", lunet_pubsub_publish},
                                   {"subscribe", lunet_pubsub_subscribe},
                                   {"topic_count", lunet_pubsub_topic_count},
                                   {"exit", lunet_exit},
                                   {"udp", lunet_udp_client},
                                   {"ratelimit", lunet_ratelimit_new_lua},
                                   {NULL, NULL}};
  lunet_conn_open(L);
  lunet_timer_open(L);
  lunet_pubsub_open(L);
  lunet_udp_open(L);
  lunet_http_open(L);
  lunet_ws_open(L);
  lunet_ratelimit_open(L);
  luaL_newlib(L, funcs);
  lunet_log_open(L);
  lua_setfield(L, -2, "log");
  lua_createtable(L, 0, 1); /* lunet.websocket */
  lua_getfield(L, -2, "connect");
  lua_pushcclosure(L, lunet_ws_connect, 1);
  lua_setfield(L, -2, "connect");
  lua_setfield(L, -2, "websocket");
  lua_pushliteral(L, LUNET_VERSION);
  lua_setfield(L, -2, "version");
  /* Which process of --workers N this is: 1..N; 1 of 1 without workers. */
  const struct lunet_cli *cli = lunet_rt(L)->cli;
  lua_pushinteger(L, cli->worker_id ? cli->worker_id : 1);
  lua_setfield(L, -2, "worker");
  lua_pushinteger(L, cli->workers ? cli->workers : 1);
  lua_setfield(L, -2, "workers");
  return 1;
}
