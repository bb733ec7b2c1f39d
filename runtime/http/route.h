/* require "lunet.router_core": the hot part of lualib/lunet/router.lua in
 * C. Its Lua twin in router.lua is what runs outside lunet (plain Lua,
 * busted) and the reference both are tested against. */
#ifndef LUNET_ROUTE_H
#define LUNET_ROUTE_H

#include <lua.h>

/* Registers the module in package.preload. */
void lunet_route_preload(lua_State *L);

#endif
