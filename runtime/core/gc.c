#include "gc.h"

#include <malloc.h>
#include <lua.h>

#include "loop.h"

#define GARBAGE_FLOOR ((size_t)4 << 20)     /* garbage any heap may hold */
#define PAUSE_MIN 200                       /* Lua's default */
#define PAUSE_MAX 1000                      /* the most Lua 5.4 can store */
#define IDLE_COLLECT_MAX ((size_t)64 << 20) /* a larger heap: no full pass */
#define IDLE_GROWTH_MIN ((size_t)256 << 10)

/* The heap in use now bounds its live part from above, so the pause is
 * at most what the live heap deserves (the safe side). */
static int pause_for(size_t heap) {
  size_t allowance = heap > GARBAGE_FLOOR ? heap : GARBAGE_FLOOR;
  size_t pause = heap ? 100 + 100 * allowance / heap : PAUSE_MAX;
  return pause < PAUSE_MIN   ? PAUSE_MIN
         : pause > PAUSE_MAX ? PAUSE_MAX
                             : (int)pause;
}

void lunet__gc_finalizable(struct lunet_runtime *rt, int delta) {
  rt->gc_finalizers += (uint64_t)(int64_t)delta;
}

void lunet_gc_sweep(struct lunet_runtime *rt, int quiet) {
  size_t heap = rt->budget.mem_used;
  int pause = pause_for(heap);
  if (pause != rt->gc_pause) {
    lua_gc(rt->L, LUA_GCINC, pause, 0, 0);
    rt->gc_pause = pause;
  }
  if (!quiet || heap > IDLE_COLLECT_MAX ||
      heap < rt->gc_idle_heap + IDLE_GROWTH_MIN)
    return;
  lua_gc(rt->L, LUA_GCCOLLECT);
  lunet_block_flush(&rt->budget.blocks);
  malloc_trim(0); /* the burst's freed memory, back to the system */
  rt->gc_idle_heap = rt->budget.mem_used;
}
