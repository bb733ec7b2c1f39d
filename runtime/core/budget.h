/* Limits on what script code may take from the process: a time budget per
 * event (a handler stuck in `while true do end` is stopped) and a memory
 * cap on the Lua state (an allocation bomb gets a memory error, not an OOM
 * kill). Both apply only inside protected calls into scripts: the
 * runtime's own small allocations outside them always succeed, so a full
 * heap can never make an unprotected Lua API call abort the process. */
#ifndef LUNET_BUDGET_H
#define LUNET_BUDGET_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <lua.h>

#include "block_cache.h"

struct budget_watchdog; /* budget.c */

struct lunet_budget {
  uint64_t time_ns; /* per event; 0: no time budget */
  size_t mem_limit; /* bytes of Lua heap; 0: no cap */
  size_t mem_used;
  struct lunet_block_cache blocks; /* freed mid-size blocks, for reuse */
  int depth;        /* nested protected calls; the outermost one counts */
  int expired;      /* the current event ran out of time */
  lua_State *main;  /* the state the hook is set on when an event overruns */
  /* Counts outermost events twice, at entry and at exit: odd while one
   * runs. Written by the loop thread, read by the watchdog. */
  _Atomic uint64_t event;
  _Atomic uint64_t overdue; /* the event the watchdog found over budget */
  struct budget_watchdog *watchdog;
};

/* The lua_Alloc of the runtime's state; ud is the struct lunet_budget. */
void *lunet_budget_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

/* Starts the time budget on a state with its libraries open (once, at
 * creation, on the loop thread); 0, or a negative libuv error. */
int lunet_budget_install(lua_State *L, struct lunet_budget *b);

/* Stops the watchdog; before the state is closed. */
void lunet_budget_stop(struct lunet_budget *b);

/* Around every protected call into a script. */
void lunet_budget_enter(lua_State *L, struct lunet_budget *b);
void lunet_budget_leave(lua_State *L, struct lunet_budget *b);

#endif
