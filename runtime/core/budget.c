#include "budget.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <uv.h>

#include "loop.h"

#define BUDGET_CHECK_EVERY 10000     /* coroutine instructions between checks */
#define WATCH_TICK_MIN_NS 5000000ull /* 5 ms */
#define WATCH_TICK_MAX_NS 100000000ull /* 100 ms */

/* realloc where the old or the new size is one the block cache serves:
 * the same class keeps the block; another moves the bytes. */
static __attribute__((noinline)) void *realloc_cached(
    struct lunet_block_cache *c, void *ptr, size_t old, size_t nsize) {
  if (lunet_block_cached(old) && lunet_block_cached(nsize) &&
      lunet_block_capacity(old) == lunet_block_capacity(nsize))
    return ptr;
  void *p =
      lunet_block_cached(nsize) ? lunet_block_get(c, nsize) : malloc(nsize);
  if (p == NULL) return nsize <= old ? ptr : NULL; /* shrinking: keep it */
  memcpy(p, ptr, old < nsize ? old : nsize);
  if (lunet_block_cached(old))
    lunet_block_put(c, ptr, old);
  else
    free(ptr);
  return p;
}

void *lunet_budget_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  struct lunet_budget *b = ud;
  size_t old = ptr != NULL ? osize : 0; /* osize is a type tag for NULL */
  if (nsize == 0) {
    if (lunet_block_cached(old))
      lunet_block_put(&b->blocks, ptr, old);
    else
      free(ptr);
    b->mem_used -= old;
    return NULL;
  }
  if (nsize > old && b->mem_limit != 0 && b->depth > 0 &&
      b->mem_used + (nsize - old) > b->mem_limit)
    return NULL; /* Lua raises "not enough memory" in the script */
  void *p;
  if (ptr == NULL) /* malloc: realloc(NULL, n) takes a longer way there */
    p = lunet_block_cached(nsize) ? lunet_block_get(&b->blocks, nsize)
                                  : malloc(nsize);
  else if (lunet_block_cached(old) || lunet_block_cached(nsize))
    p = realloc_cached(&b->blocks, ptr, old, nsize);
  else
    p = realloc(ptr, nsize);
  if (p == NULL) return NULL;
  b->mem_used = b->mem_used - old + nsize;
  return p;
}

/* {==================================================================
 * The hook: raises in the script once its event is over budget
 *
 * No hook is installed while events keep to their budget: any hook puts
 * the Lua VM in its tracing mode, a check before every instruction, which
 * cost a fifth of a routed HTTP request. A watchdog thread notices an
 * event that runs too long and signals the loop thread, whose handler
 * sets the hook (lua_sethook may be called from a signal handler: lua.c
 * stops a script on Ctrl-C that way). Coroutines are the exception: the
 * signal reaches only the main state, so each coroutine gets a count hook
 * at creation that looks at the watchdog's verdict now and then.
 * =================================================================== */

static uint64_t event_of(struct lunet_budget *b) {
  return atomic_load_explicit(&b->event, memory_order_relaxed);
}

static int is_overdue(struct lunet_budget *b) {
  uint64_t event = event_of(b);
  return (event & 1) &&
         atomic_load_explicit(&b->overdue, memory_order_relaxed) == event;
}

static void budget_hook(lua_State *L, lua_Debug *ar);

static void hook_coroutine(lua_State *co) {
  lua_sethook(co, budget_hook, LUA_MASKCOUNT, BUDGET_CHECK_EVERY);
}

/* Not over budget (between events, or a late signal for an event that
 * ended): the main state goes back to no hook at all, a coroutine to its
 * count hook. */
static void budget_rest(lua_State *L, struct lunet_budget *b) {
  if (L == b->main)
    lua_sethook(L, NULL, 0, 0);
  else if (lua_gethookmask(L) != LUA_MASKCOUNT)
    hook_coroutine(L);
}

/* Once the budget is spent the hook fires on every line as well, so a
 * script that catches the error with pcall is stopped again at once. */
static void budget_hook(lua_State *L, lua_Debug *ar) {
  struct lunet_budget *b = &lunet_rt(L)->budget;
  if (b->depth == 0 || (!b->expired && !is_overdue(b)))
    return budget_rest(L, b);
  b->expired = 1;
  lua_sethook(L, budget_hook, LUA_MASKCOUNT | LUA_MASKLINE, BUDGET_CHECK_EVERY);
  /* Found in a coroutine, maybe before the signal reached the main
   * state: the handler that resumed it stops too, at its next line. */
  if (L != b->main)
    lua_sethook(b->main, budget_hook, LUA_MASKCOUNT | LUA_MASKLINE,
                BUDGET_CHECK_EVERY);
  /* At a call or return: raise at the next line, which has a file:line. */
  if (ar->event != LUA_HOOKLINE && ar->event != LUA_HOOKCOUNT) return;
  lua_getinfo(L, "Sl", ar);
  lua_pushfstring(L, "%s:%d: handler exceeded its %d ms budget", ar->short_src,
                  ar->currentline, (int)(b->time_ns / 1000000));
  lua_error(L);
}

/* }================================================================== */

/* {==================================================================
 * The watchdog thread and its signal
 * =================================================================== */

struct budget_watchdog {
  struct lunet_budget *b;
  pthread_t loop_thread;
  uv_thread_t thread;
  uv_mutex_t mu;
  uv_cond_t wake; /* stop */
  int stop;
  uint64_t seen; /* the running event at the last look, and since when */
  uint64_t seen_since;
};

/* One loop and one Lua state per process: the signal handler's context. */
static struct lunet_budget *volatile signalled;

static void overdue_signal(int sig) {
  (void)sig;
  struct lunet_budget *b = signalled;
  if (b != NULL)
    lua_sethook(b->main, budget_hook,
                LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT, 1);
}

/* Called every tick: an event seen running for the whole budget is
 * marked overdue and the loop thread is signalled, once per event. */
static void watchdog_look(struct budget_watchdog *w) {
  struct lunet_budget *b = w->b;
  uint64_t event = event_of(b), now = uv_hrtime();
  if ((event & 1) == 0) return; /* no event runs */
  if (event != w->seen) {
    w->seen = event, w->seen_since = now;
    return;
  }
  if (now - w->seen_since < b->time_ns ||
      atomic_load_explicit(&b->overdue, memory_order_relaxed) == event)
    return;
  atomic_store_explicit(&b->overdue, event, memory_order_relaxed);
  pthread_kill(w->loop_thread, SIGRTMIN);
}

/* A tick of a tenth of the budget: an event is stopped between 1 and 1.2
 * budgets after it started. */
static void watchdog_run(void *arg) {
  struct budget_watchdog *w = arg;
  uint64_t tick = w->b->time_ns / 10;
  if (tick < WATCH_TICK_MIN_NS) tick = WATCH_TICK_MIN_NS;
  if (tick > WATCH_TICK_MAX_NS) tick = WATCH_TICK_MAX_NS;
  uv_mutex_lock(&w->mu);
  while (!w->stop) {
    if (uv_cond_timedwait(&w->wake, &w->mu, tick) == UV_ETIMEDOUT)
      watchdog_look(w);
  }
  uv_mutex_unlock(&w->mu);
}

static int watchdog_start(struct lunet_budget *b) {
  struct budget_watchdog *w = calloc(1, sizeof *w);
  struct sigaction sa = {0};
  int err;
  if (w == NULL) return UV_ENOMEM;
  w->b = b;
  w->loop_thread = pthread_self();
  sa.sa_handler = overdue_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGRTMIN, &sa, NULL) < 0) {
    err = uv_translate_sys_error(errno);
    return free(w), err;
  }
  signalled = b;
  if ((err = uv_mutex_init(&w->mu)) < 0) return free(w), err;
  if ((err = uv_cond_init(&w->wake)) < 0) {
    uv_mutex_destroy(&w->mu);
    return free(w), err;
  }
  if ((err = uv_thread_create(&w->thread, watchdog_run, w)) < 0) {
    uv_cond_destroy(&w->wake);
    uv_mutex_destroy(&w->mu);
    return free(w), err;
  }
  b->watchdog = w;
  return 0;
}

void lunet_budget_stop(struct lunet_budget *b) {
  struct budget_watchdog *w = b->watchdog;
  if (w == NULL) return;
  uv_mutex_lock(&w->mu);
  w->stop = 1;
  uv_cond_signal(&w->wake);
  uv_mutex_unlock(&w->mu);
  uv_thread_join(&w->thread);
  signalled = NULL;
  uv_cond_destroy(&w->wake);
  uv_mutex_destroy(&w->mu);
  free(w);
  b->watchdog = NULL;
}

/* }================================================================== */

/* {==================================================================
 * Coroutines: hooked at creation
 * =================================================================== */

/* coroutine.create(f), then the hook on the new coroutine. */
static int budget_cocreate(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  if (lua_type(L, -1) == LUA_TTHREAD) hook_coroutine(lua_tothread(L, -1));
  return 1;
}

/* coroutine.wrap(f): its function's one upvalue is the coroutine. */
static int budget_cowrap(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  if (lua_getupvalue(L, -1, 1) != NULL) {
    if (lua_type(L, -1) == LUA_TTHREAD) hook_coroutine(lua_tothread(L, -1));
    lua_pop(L, 1);
  }
  return 1;
}

static void wrap_coroutine_lib(lua_State *L) {
  if (lua_getglobal(L, "coroutine") == LUA_TTABLE) {
    lua_getfield(L, -1, "create");
    lua_pushcclosure(L, budget_cocreate, 1);
    lua_setfield(L, -2, "create");
    lua_getfield(L, -1, "wrap");
    lua_pushcclosure(L, budget_cowrap, 1);
    lua_setfield(L, -2, "wrap");
  }
  lua_pop(L, 1);
}

/* }================================================================== */

int lunet_budget_install(lua_State *L, struct lunet_budget *b) {
  b->main = L;
  if (b->time_ns == 0) return 0;
  wrap_coroutine_lib(L);
  return watchdog_start(b);
}

void lunet_budget_enter(lua_State *L, struct lunet_budget *b) {
  (void)L;
  if (b->depth++ > 0) return;
  b->expired = 0;
  atomic_store_explicit(&b->event, event_of(b) + 1, memory_order_relaxed);
}

/* The hook goes with the event that overran, from the main state; a
 * coroutine drops its line hook at its next count. */
void lunet_budget_leave(lua_State *L, struct lunet_budget *b) {
  (void)L;
  if (--b->depth > 0) return;
  atomic_store_explicit(&b->event, event_of(b) + 1, memory_order_relaxed);
  if (b->expired) lua_sethook(b->main, NULL, 0, 0);
}
