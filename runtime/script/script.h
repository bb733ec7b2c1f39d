/* Loading a handler script: compile, run in a fresh environment, validate
 * the returned table of services. Nothing is switched here; the caller
 * installs the services only once the whole script loaded. */
#ifndef LUNET_SCRIPT_H
#define LUNET_SCRIPT_H

#include <stddef.h>
#include <lua.h>

#include "list.h"

struct lunet_runtime;

/* Loads rt->script_path as version rt->version + 1 and appends the new,
 * not yet listening services to `out`; *hook_ref gets the script's
 * on_reload function (or LUA_NOREF). Returns 0, or -1 with a message naming
 * file:line (or the service at fault) in err, `out` untouched and every
 * timer the failed version made stopped. */
int lunet_script_load(struct lunet_runtime *rt, struct lunet_list *out,
                      int *hook_ref, char *err, size_t errcap);

struct lunet_service;

/* Applies a lunet.connect handlers table (on top of the stack) to svc,
 * with the checks a service table gets. 0, or -1 with err set. */
int lunet__service_check_table(lua_State *L, struct lunet_service *svc,
                               const char *where, char *err, size_t errcap);

/* Loads a text chunk from memory under the name luaL_loadfilex would give
 * the file at path. */
int lunet__load_buffer(lua_State *L, const char *src, size_t len,
                       const char *path);

#endif
