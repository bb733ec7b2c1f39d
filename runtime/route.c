/* match_greedy(root, path) -> node, params | nil: the router's common case
 * (see router.lua's Lua twin of the same name), walking the route tree
 * with the C API: one call from Lua instead of two per segment, which is
 * where the router's time went (a call from Lua into C costs more than
 * the rest of a segment's work). Nodes are router.lua's tables: static,
 * param = { name, node }, routed. */
#include "route.h"

#include <string.h>
#include <lauxlib.h>

#include "http.h"

#define NODE 3 /* stack slot of the node being walked */

/* node.param.name = seg into params (made on first use, at `*params`). */
static int take_param(lua_State *L, const char *seg, size_t n, int *params) {
  if (lua_getfield(L, NODE, "param") != LUA_TTABLE) return 0;
  if (*params == 0) {
    lua_createtable(L, 0, 2);
    lua_insert(L, -2);
    *params = lua_gettop(L) - 1;
  }
  lua_getfield(L, -1, "name");
  lua_pushlstring(L, seg, n);
  lua_rawset(L, *params);
  lua_getfield(L, -1, "node");
  lua_replace(L, NODE);
  lua_pop(L, 1);
  return 1;
}

/* Steps from the node at NODE to its child for seg: static, else param. */
static int step(lua_State *L, const char *seg, size_t n, int *params) {
  /* Not a node of router.lua (a table changed by hand): not this path. */
  if (lua_getfield(L, NODE, "static") != LUA_TTABLE) return 0;
  lua_pushlstring(L, seg, n);
  if (lua_rawget(L, -2) == LUA_TTABLE) {
    lua_replace(L, NODE);
    lua_pop(L, 1);
    return 1;
  }
  lua_pop(L, 2);
  return take_param(L, seg, n, params);
}

static int match_greedy(lua_State *L) {
  size_t len;
  const char *path = luaL_checklstring(L, 2, &len);
  int params = 0;
  luaL_checktype(L, 1, LUA_TTABLE);
  /* Left to the full search: not origin-form, or something to decode. */
  if (len == 0 || path[0] != '/' || memchr(path, '%', len) != NULL) return 0;
  lua_settop(L, 2);
  lua_pushvalue(L, 1);
  for (size_t pos = 1; pos < len;) {
    const char *slash = memchr(path + pos, '/', len - pos);
    size_t n = slash ? (size_t)(slash - path) - pos : len - pos;
    if (n == 0 || !step(L, path + pos, n, &params)) return 0; /* "//" */
    pos += n + 1;
  }
  if (lua_getfield(L, NODE, "routed") != LUA_TBOOLEAN || !lua_toboolean(L, -1))
    return 0;
  lua_pushvalue(L, NODE);
  if (params)
    lua_pushvalue(L, params);
  else
    lua_pushnil(L);
  return 2;
}

/* set_params(req, params): req.params = params, or, when req has params
 * already (a before hook set them, or read them and so made them), params
 * added to those. Reading req.params of a lunet request from Lua would
 * make a table only to find it empty, and the merge loop costs a call
 * into C per step: this was a sixth of a routed request. */
static int set_params(lua_State *L) {
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  if (!lunet_http_request_params(L, 1)) lua_getfield(L, 1, "params");
  if (lua_type(L, 3) != LUA_TTABLE) {
    lua_pushvalue(L, 2);
    lua_setfield(L, 1, "params");
    return 0;
  }
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_settable(L, 3);
  }
  return 0;
}

static int open_router_core(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"match_greedy", match_greedy}, {"set_params", set_params}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}

void lunet_route_preload(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, open_router_core);
  lua_setfield(L, -2, "lunet.router_core");
  lua_pop(L, 1);
}
