/* Limits on what script code may take from the process: a time budget per
 * event (a handler stuck in `while true do end` is stopped) and a memory
 * cap on the Lua state (an allocation bomb gets a memory error, not an OOM
 * kill). Both apply only inside protected calls into scripts: the
 * runtime's own small allocations outside them always succeed, so a full
 * heap can never make an unprotected Lua API call abort the process. */
#ifndef LUNET_BUDGET_H
#define LUNET_BUDGET_H

#include <stddef.h>
#include <stdint.h>
#include <lua.h>

struct lunet_budget {
  uint64_t time_ns;   /* per event; 0: no time budget */
  size_t mem_limit;   /* bytes of Lua heap; 0: no cap */
  size_t mem_used;
  int depth;          /* nested protected calls; the outermost one counts */
  uint64_t deadline;  /* uv_hrtime() when the current event runs out; 0:
                         not known yet (set by the hook) */
  int expired;
};

/* The lua_Alloc of the runtime's state; ud is the struct lunet_budget. */
void *lunet_budget_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

/* Installs the time budget's hook on the state (once, at creation). */
void lunet_budget_install(lua_State *L, struct lunet_budget *b);

/* Around every protected call into a script. */
void lunet_budget_enter(lua_State *L, struct lunet_budget *b);
void lunet_budget_leave(lua_State *L, struct lunet_budget *b);

#endif
