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
  void *p = realloc(ptr, nsize);
  if (p == NULL) return NULL;
  b->mem_used = b->mem_used - old + nsize;
  return p;
}

/* Once the budget is spent the hook fires on every line as well, so a
 * script that catches the error with pcall is stopped again at once. */
static void budget_hook(lua_State *L, lua_Debug *ar) {
  struct lunet_budget *b = &lunet_rt(L)->budget;
  if (!b->expired) {
    if (uv_hrtime() < b->deadline) return;
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

void lunet_budget_enter(lua_State *L, struct lunet_budget *b) {
  if (b->depth++ > 0 || b->time_ns == 0) return;
  b->expired = 0;
  b->deadline = uv_hrtime() + b->time_ns;
  lua_sethook(L, budget_hook, LUA_MASKCOUNT, BUDGET_CHECK_EVERY);
}

void lunet_budget_leave(lua_State *L, struct lunet_budget *b) {
  if (--b->depth > 0 || b->time_ns == 0) return;
  lua_sethook(L, NULL, 0, 0);
}
