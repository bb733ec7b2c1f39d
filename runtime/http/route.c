/* lunet.router_core: the router's common case in C (see router.lua, whose
 * Lua twins of these are the reference and what runs outside lunet).
 *
 * resolve(root, req) routes a lunet request in one call: it reads the
 * method and path from the request object itself, walks the route tree
 * and sets req.params. In Lua the same took three reads of req through
 * its __index, a path string, a table lookup and a call for the walk, a
 * fifth of a routed request (callgrind). match_greedy(root, path) is the
 * walk alone, for the Lua search's first try. Nodes are router.lua's
 * tables: static, param = { name, node }, routed, handlers. */
#include "route.h"

#include <string.h>
#include <lauxlib.h>

#include "http.h"

/* The node fields, as upvalues: a raw get with a string already made is
 * a third of lua_getfield's cost, which makes its key from a C string. */
enum key { K_STATIC = 1, K_PARAM, K_NAME, K_NODE, K_ROUTED, K_HANDLERS };
static const char *const key_names[] = {"static", "param",  "name",
                                        "node",   "routed", "handlers"};
#define KEY_COUNT (sizeof key_names / sizeof key_names[0])

/* The walk's stack slots, above the two arguments. */
#define NODE 3   /* the node reached so far */
#define PARAMS 4 /* its params table, nil until a parameter matched */

/* Pushes t[key] for the table at idx (a positive index), raw: nodes are
 * router.lua's plain tables. */
static int get_key(lua_State *L, int idx, enum key k) {
  lua_pushvalue(L, lua_upvalueindex(k));
  return lua_rawget(L, idx);
}

/* With the segment on top (popped): node.param.name = seg into PARAMS
 * (made on first use), and NODE becomes node.param.node. */
static int take_param(lua_State *L) {
  int param = lua_gettop(L) + 1;
  if (get_key(L, NODE, K_PARAM) != LUA_TTABLE ||
      get_key(L, param, K_NODE) != LUA_TTABLE) {
    lua_settop(L, param - 2);
    return 0;
  }
  if (lua_isnil(L, PARAMS)) {
    lua_createtable(L, 0, 2);
    lua_replace(L, PARAMS);
  }
  lua_replace(L, NODE);
  get_key(L, param, K_NAME);
  lua_pushvalue(L, param - 1);
  lua_rawset(L, PARAMS);
  lua_settop(L, param - 2);
  return 1;
}

/* Steps from NODE to its child for seg: static, else the parameter. */
static int step(lua_State *L, const char *seg, size_t n) {
  int statics = lua_gettop(L) + 1;
  /* Not a node of router.lua (a table changed by hand): not this path. */
  if (get_key(L, NODE, K_STATIC) != LUA_TTABLE) {
    lua_pop(L, 1);
    return 0;
  }
  lua_pushlstring(L, seg, n);
  lua_pushvalue(L, -1);
  if (lua_rawget(L, statics) == LUA_TTABLE) {
    lua_replace(L, NODE);
    lua_settop(L, statics - 1);
    return 1;
  }
  lua_pop(L, 1);
  lua_remove(L, statics);
  return take_param(L);
}

/* Walks path from the root at 1 into NODE and PARAMS: static where there
 * is one, else the parameter. 1 when it ends on a routed node; 0 leaves
 * the path to router.lua's full search (backtracking, wildcards, "//",
 * something to decode, not origin-form). */
static int walk(lua_State *L, const char *path, size_t len) {
  lua_settop(L, 2);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  if (len == 0 || path[0] != '/' || memchr(path, '%', len) != NULL) return 0;
  for (size_t pos = 1; pos < len;) {
    const char *slash = memchr(path + pos, '/', len - pos);
    size_t n = slash ? (size_t)(slash - path) - pos : len - pos;
    if (n == 0 || !step(L, path + pos, n)) return 0; /* "//" */
    pos += n + 1;
  }
  int routed =
      get_key(L, NODE, K_ROUTED) == LUA_TBOOLEAN && lua_toboolean(L, -1);
  lua_pop(L, 1);
  return routed;
}

/* match_greedy(root, path) -> node, params | nil */
static int match_greedy(lua_State *L) {
  size_t len;
  const char *path = luaL_checklstring(L, 2, &len);
  luaL_checktype(L, 1, LUA_TTABLE);
  if (!walk(L, path, len)) return 0;
  return 2;
}

/* Adds the params at index params to those of the request at index req,
 * or makes them req.params when it has none (neither set by a before hook
 * nor made by reading req.params, which makes an empty table). */
static void add_params(lua_State *L, int req, int params) {
  int have = lua_gettop(L) + 1;
  if (!lunet_http_request_params(L, req)) lua_getfield(L, req, "params");
  if (lua_type(L, have) != LUA_TTABLE) {
    lua_pushvalue(L, params);
    if (!lunet_http_request_set_params(L, req)) lua_setfield(L, req, "params");
  } else {
    lua_pushnil(L);
    while (lua_next(L, params)) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_settable(L, have);
    }
  }
  lua_settop(L, have - 1);
}

/* resolve(root, req) -> handler, node: req routed, its params set;
 * false, node: the route has no handler for the method (405);
 * nothing: not decided here (a path for the full search, a method or
 * path a before hook replaced, or req not a lunet request). */
static int resolve(lua_State *L) {
  const char *method, *path;
  size_t len;
  luaL_checktype(L, 1, LUA_TTABLE);
  if (!lunet_http_request_target(L, 2, &method, &path, &len) ||
      !walk(L, path, len) || get_key(L, NODE, K_HANDLERS) != LUA_TTABLE)
    return 0;
  int handlers = lua_gettop(L);
  lua_getfield(L, handlers, method);
  if (!lua_toboolean(L, -1) && strcmp(method, "HEAD") == 0) {
    lua_pop(L, 1);
    lua_getfield(L, handlers, "GET");
  }
  if (!lua_toboolean(L, -1)) {
    lua_pushboolean(L, 0);
    lua_pushvalue(L, NODE);
    return 2;
  }
  if (!lua_isnil(L, PARAMS)) add_params(L, 2, PARAMS);
  lua_pushvalue(L, NODE);
  return 2;
}

/* set_params(req, params): req.params = params, or params added to the
 * ones req has (a before hook set them, or read them and so made them).
 * Reading req.params of a lunet request from Lua would make a table only
 * to find it empty, and the merge loop costs a call into C per step. */
static int set_params(lua_State *L) {
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  add_params(L, 1, 2);
  return 0;
}

static int open_router_core(lua_State *L) {
  static const luaL_Reg funcs[] = {{"match_greedy", match_greedy},
                                   {"resolve", resolve},
                                   {"set_params", set_params},
                                   {NULL, NULL}};
  luaL_newlibtable(L, funcs);
  for (size_t k = 0; k < KEY_COUNT; k++) lua_pushstring(L, key_names[k]);
  luaL_setfuncs(L, funcs, (int)KEY_COUNT);
  return 1;
}

void lunet_route_preload(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, open_router_core);
  lua_setfield(L, -2, "lunet.router_core");
  lua_pop(L, 1);
}
