/* Modules that a script requires from its own directory. They are found by
 * a searcher of ours, so we know which package.loaded entries to drop on a
 * reload (and which files --watch must follow); lualib and system modules
 * are left loaded. */
#ifndef LUNET_MODULES_H
#define LUNET_MODULES_H

#include <lua.h>

/* Installs the searcher for `dir`/?.lua and `dir`/?/init.lua ahead of
 * Lua's own. */
void lunet_modules_install(lua_State *L, const char *dir);

/* Before loading a new version: takes the local modules out of
 * package.loaded so the new version requires them afresh. */
void lunet_modules_detach(lua_State *L);

/* After a failed load: puts the previous modules back. */
void lunet_modules_restore(lua_State *L);

/* After a successful load: forgets the previous modules. */
void lunet_modules_commit(lua_State *L);

/* During a reload, a module file nobody has read yet makes require fail
 * and is noted, so the reload can read it off the loop and load again.
 * The number noted since the last take. */
int lunet_modules_wanted(lua_State *L);

/* Pushes the array of noted file names, forgets them, returns how many. */
int lunet_modules_take_wanted(lua_State *L);

/* Pushes an array of the file names of the loaded local modules. */
void lunet_modules_push_files(lua_State *L);

#endif
