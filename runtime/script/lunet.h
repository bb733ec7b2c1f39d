/* The `lunet` module handed to scripts (global and require "lunet"). */
#ifndef LUNET_LUNET_H
#define LUNET_LUNET_H

#include <lua.h>

/* Pushes the lunet table; registers the metatables it needs. */
int lunet_open(lua_State *L);

#endif
