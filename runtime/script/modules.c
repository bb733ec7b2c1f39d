#include "modules.h"

#include <string.h>
#include <lauxlib.h>

#include "reload.h"
#include "script.h"

/* Registry keys: addresses of statics are unique and need no hashing. */
static const char loaded_key = 'L';  /* name -> file of local modules */
static const char saved_key = 'S';   /* previous loaded_key table */
static const char stash_key = 'P';   /* name -> previous package.loaded */

static void push_table(lua_State *L, const void *key) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, key) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, key);
}

static const char wanted_key = 'W';  /* files a reload must read first */

static void want(lua_State *L, const char *path) {
  push_table(L, &wanted_key);
  lua_pushstring(L, path);
  lua_rawseti(L, -2, luaL_len(L, -2) + 1);
  lua_pop(L, 1);
}

int lunet_modules_wanted(lua_State *L) {
  push_table(L, &wanted_key);
  int n = (int)luaL_len(L, -1);
  lua_pop(L, 1);
  return n;
}

int lunet_modules_take_wanted(lua_State *L) {
  push_table(L, &wanted_key);
  lua_newtable(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &wanted_key);
  return (int)luaL_len(L, -1);
}

/* During a reload the files the previous version required were read off
 * the loop already. Looks `name` up there: FOUND pushes the file name and
 * sets *src; UNKNOWN notes the candidates not read yet; NONE (no reload)
 * and ABSENT push nothing. */
static int find_prefetched(lua_State *L, const char *name, const char **src,
                           size_t *len) {
  const char *modpath = luaL_gsub(L, name, ".", "/");
  const char *templates[2] = {"%s/%s.lua", "%s/%s/init.lua"};
  int unknown = 0;
  for (int i = 0; i < 2; i++) {
    const char *path = lua_pushfstring(
        L, templates[i], lua_tostring(L, lua_upvalueindex(2)), modpath);
    int r = lunet__reload_prefetch_lookup(L, path, src, len);
    if (r == LUNET_PREFETCH_NONE) return lua_pop(L, 2), r;
    if (r == LUNET_PREFETCH_FOUND && !unknown) return lua_remove(L, -2), r;
    if (r == LUNET_PREFETCH_UNKNOWN) want(L, path), unknown = 1;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return unknown ? LUNET_PREFETCH_UNKNOWN : LUNET_PREFETCH_ABSENT;
}

/* package.searchers entry: upvalue 1 is the script directory's path
 * template, upvalue 2 the directory. Returns the loader and file name, or
 * why nothing was found. During a reload it reads no file itself. */
static int local_searcher(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const char *src = NULL;
  size_t len = 0;
  int found = find_prefetched(L, name, &src, &len);
  if (found == LUNET_PREFETCH_UNKNOWN)
    return luaL_error(L, "module '%s': its file is read first (off the "
                      "loop), then the reload loads again", name);
  if (found == LUNET_PREFETCH_ABSENT) {
    lua_pushfstring(L, "no file for '%s' in the script directory", name);
    return 1;
  }
  if (found == LUNET_PREFETCH_NONE) {
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "searchpath");
    lua_pushvalue(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_call(L, 2, 2);
    if (lua_isnil(L, -2)) return 1; /* the "no file ..." message */
    lua_pop(L, 1);
  }
  const char *file = lua_tostring(L, -1);
  int status = src != NULL ? lunet__load_buffer(L, src, len, file)
                           : luaL_loadfilex(L, file, "t");
  if (status != LUA_OK)
    return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s",
                      name, file, lua_tostring(L, -1));
  push_table(L, &loaded_key);
  lua_pushvalue(L, 1);
  lua_pushstring(L, file);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  lua_pushstring(L, file);
  return 2;
}

/* require(name, ...) in front of Lua's own, whose C code reads the name up
 * to its first NUL: require "mod\0x" would load mod.lua. Upvalue 1 is
 * Lua's require. */
static int checked_require(lua_State *L) {
  size_t len;
  const char *name = luaL_checklstring(L, 1, &len);
  if (memchr(name, '\0', len) != NULL)
    return luaL_error(L, "module '%s': the name holds a NUL byte", name);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

void lunet_modules_install(lua_State *L, const char *dir) {
  lua_getglobal(L, "require");
  lua_pushcclosure(L, checked_require, 1);
  lua_setglobal(L, "require");
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchers");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", dir, dir);
  lua_pushstring(L, dir);
  lua_pushcclosure(L, local_searcher, 2);
  /* Position 2: after package.preload, before Lua's own file searcher. */
  for (lua_Integer i = luaL_len(L, -2); i >= 2; i--) {
    lua_rawgeti(L, -2, i);
    lua_rawseti(L, -3, i + 1);
  }
  lua_rawseti(L, -2, 2);
  lua_pop(L, 2);
}

void lunet_modules_detach(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  push_table(L, &loaded_key);
  lua_newtable(L); /* stash */
  lua_pushnil(L);
  while (lua_next(L, -3) != 0) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_rawget(L, -5); /* package.loaded[name] */
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, -4); /* stash[name] = it */
    lua_pushvalue(L, -1);
    lua_pushnil(L);
    lua_rawset(L, -6); /* package.loaded[name] = nil */
  }
  lua_rawsetp(L, LUA_REGISTRYINDEX, &stash_key);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &saved_key);
  lua_newtable(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &loaded_key);
  lua_pop(L, 1);
}

/* Sets package.loaded[name] = value for every pair of the table on top. */
static void copy_into_loaded(lua_State *L, int loaded) {
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, loaded);
  }
}

void lunet_modules_restore(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  int loaded = lua_gettop(L);
  push_table(L, &loaded_key); /* what the failed load required */
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_pushnil(L);
    lua_rawset(L, loaded);
  }
  lua_pop(L, 1);
  push_table(L, &stash_key);
  copy_into_loaded(L, loaded);
  lua_pop(L, 1);
  push_table(L, &saved_key);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &loaded_key);
  lunet_modules_commit(L);
  lua_pop(L, 1);
}

void lunet_modules_commit(lua_State *L) {
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &saved_key);
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &stash_key);
}

void lunet_modules_push_files(lua_State *L) {
  int n = 0;
  lua_newtable(L);
  push_table(L, &loaded_key);
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) lua_rawseti(L, -4, ++n);
  lua_pop(L, 1);
}
