#include "budget.h"

#include <stdlib.h>
#include <lauxlib.h>
#include <uv.h>

#include "runtime.h"

#define BUDGET_CHECK_EVERY 10000 /* instructions between clock reads */

void *lunet_budget_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  struct lunet_budget *b = ud;
  size_t old = ptr != NULL ? osize : 0; /* osize is a type tag for NULL */
  if (nsize == 0) {
    free(ptr);
    b->mem_used -= old;
    return NULL;
  }
  if (nsize > old && b->mem_limit != 0 && b->depth > 0 &&
      b->mem_used + (nsize - old) > b->mem_limit)
    return NULL; /* Lua raises "not enough memory" in the script */
  /* malloc for a new block: realloc(NULL, n) takes a longer way there. */
  void *p = ptr != NULL ? realloc(ptr, nsize) : malloc(nsize);
  if (p == NULL) return NULL;
  b->mem_used = b->mem_used - old + nsize;
  return p;
}

/* The count hook stays installed: setting and clearing it around every
 * event, and reading the clock at each start, cost more than the event's
 * own dispatch. An event's deadline is set at the hook's first firing in
 * it instead (at most BUDGET_CHECK_EVERY instructions late), so events
 * shorter than that never read the clock. Once the budget is spent the
 * hook fires on every line as well, so a script that catches the error
 * with pcall is stopped again at once. */
static void budget_hook(lua_State *L, lua_Debug *ar) {
  struct lunet_budget *b = &lunet_rt(L)->budget;
  if (b->depth == 0 || !b->expired) {
    if (ar->event == LUA_HOOKLINE) /* a coroutine left from a spent event */
      lua_sethook(L, budget_hook, LUA_MASKCOUNT, BUDGET_CHECK_EVERY);
    if (b->depth == 0) return; /* the runtime's own calls: no budget */
    uint64_t now = uv_hrtime();
    if (b->deadline == 0) {
      b->deadline = now + b->time_ns;
      return;
    }
    if (now < b->deadline) return;
    b->expired = 1;
    lua_sethook(L, budget_hook, LUA_MASKCOUNT | LUA_MASKLINE,
                BUDGET_CHECK_EVERY);
  }
  /* The running function's file:line, which luaL_where cannot see here. */
  lua_getinfo(L, "Sl", ar);
  lua_pushfstring(L, "%s:%d: handler exceeded its %d ms budget", ar->short_src,
                  ar->currentline, (int)(b->time_ns / 1000000));
  lua_error(L);
}

void lunet_budget_install(lua_State *L, struct lunet_budget *b) {
  if (b->time_ns != 0)
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, BUDGET_CHECK_EVERY);
}

void lunet_budget_enter(lua_State *L, struct lunet_budget *b) {
  (void)L;
  if (b->depth++ > 0) return;
  b->expired = 0;
  b->deadline = 0; /* set by the hook's first firing */
}

void lunet_budget_leave(lua_State *L, struct lunet_budget *b) {
  if (--b->depth > 0 || !b->expired) return;
  lua_sethook(L, budget_hook, LUA_MASKCOUNT, BUDGET_CHECK_EVERY);
}
