#include "timer.h"

#include <math.h>
#include <stdlib.h>
#include <lauxlib.h>
#include <uv.h>

#include "call.h"
#include "list.h"
#include "loop.h"

#define TIMER_MT "lunet.timer"
#define TIMER_UV_FN 1

struct lunet_timer {
  uv_timer_t handle;
  struct lunet_list node; /* in rt->timers until closed */
  int self_ref;
  unsigned version; /* owning script version; 0: made by a handler */
  int closing;
};

struct timer_box {
  struct lunet_timer *t; /* NULL once stopped */
};

static void timer_close_cb(uv_handle_t *h) {
  struct lunet_timer *t = h->data;
  free(t);
}

/* Idempotent; the box stays valid for Lua and reads as stopped. */
static void timer_close(lua_State *L, struct lunet_timer *t) {
  if (t->closing) return;
  t->closing = 1;
  lunet_list_remove(&t->node);
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->self_ref);
  ((struct timer_box *)lua_touserdata(L, -1))->t = NULL;
  lua_pop(L, 1);
  luaL_unref(L, LUA_REGISTRYINDEX, t->self_ref);
  t->self_ref = LUA_NOREF;
  uv_close((uv_handle_t *)&t->handle, timer_close_cb);
}

static struct lunet_runtime *timer_rt(uv_timer_t *h) {
  return lunet_container_of(h->loop, struct lunet_runtime, loop);
}

static void timer_cb(uv_timer_t *h) {
  struct lunet_timer *t = h->data;
  lua_State *L = timer_rt(h)->L;
  struct lunet_call_ctx ctx = {NULL, "timer", 0, NULL, NULL};
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->self_ref);
  lua_getiuservalue(L, -1, TIMER_UV_FN);
  lua_insert(L, -2);
  lunet_call(L, 1, &ctx); /* an error is logged; a periodic timer goes on */
  if (uv_timer_get_repeat(h) == 0) timer_close(L, t);
}

static int timer_start(lua_State *L, int periodic) {
  struct lunet_runtime *rt = lunet_rt(L);
  lua_Number ms = luaL_checknumber(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  luaL_argcheck(L, ms >= (periodic ? 1 : 0) && ms <= 1e12, 1,
                periodic ? "period must be 1 to 1e12 ms" : "delay must be "
                "0 to 1e12 ms");
  /* An on_close run by the final teardown must not keep the loop alive. */
  if (rt->tearing_down) return luaL_error(L, "lunet is exiting");
  uint64_t delay = (uint64_t)ceil(ms);
  struct lunet_timer *t = calloc(1, sizeof *t);
  if (t == NULL) return luaL_error(L, "out of memory");
  struct timer_box *b = lua_newuserdatauv(L, sizeof *b, 1);
  b->t = t;
  luaL_setmetatable(L, TIMER_MT);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, -2, TIMER_UV_FN);
  lua_pushvalue(L, -1);
  t->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  t->version = rt->loading_version;
  uv_timer_init(&rt->loop, &t->handle);
  t->handle.data = t;
  /* The loop's cached time can be stale (a long script load, a slow
   * handler): refresh it so "after 200 ms" means 200 ms from now. */
  uv_update_time(&rt->loop);
  uv_timer_start(&t->handle, timer_cb, delay, periodic ? delay : 0);
  lunet_list_push(&rt->timers, &t->node);
  return 1;
}

int lunet_timer_after(lua_State *L) { return timer_start(L, 0); }
int lunet_timer_every(lua_State *L) { return timer_start(L, 1); }

enum stop_rule { STOP_ALL, STOP_OTHER_VERSIONS, STOP_FOR_SHUTDOWN };

static int should_stop(struct lunet_timer *t, enum stop_rule rule,
                       unsigned keep) {
  if (rule == STOP_ALL) return 1;
  if (rule == STOP_FOR_SHUTDOWN)
    return t->version != 0 || uv_timer_get_repeat(&t->handle) != 0;
  return t->version != 0 && t->version != keep;
}

static void stop_where(struct lunet_runtime *rt, enum stop_rule rule,
                       unsigned keep) {
  struct lunet_list *q, *next;
  for (q = rt->timers.next; q != &rt->timers; q = next) {
    struct lunet_timer *t = lunet_container_of(q, struct lunet_timer, node);
    next = q->next;
    if (should_stop(t, rule, keep)) timer_close(rt->L, t);
  }
}

void lunet_timer_stop_others(struct lunet_runtime *rt, unsigned keep) {
  stop_where(rt, STOP_OTHER_VERSIONS, keep);
}

void lunet_timer_stop_all(struct lunet_runtime *rt) {
  stop_where(rt, STOP_ALL, 0);
}

void lunet_timer_stop_for_shutdown(struct lunet_runtime *rt) {
  stop_where(rt, STOP_FOR_SHUTDOWN, 0);
}

static struct timer_box *timer_box(lua_State *L) {
  return luaL_checkudata(L, 1, TIMER_MT);
}

/* timer:stop() -> true if it was running, false if already stopped. */
static int timer_stop(lua_State *L) {
  struct timer_box *b = timer_box(L);
  lua_pushboolean(L, b->t != NULL);
  if (b->t != NULL) timer_close(L, b->t);
  return 1;
}

static int timer_active(lua_State *L) {
  lua_pushboolean(L, timer_box(L)->t != NULL);
  return 1;
}

static int timer_tostring(lua_State *L) {
  struct timer_box *b = timer_box(L);
  lua_pushfstring(L, "lunet.timer (%s)", b->t ? "active" : "stopped");
  return 1;
}

void lunet_timer_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"stop", timer_stop},
                                     {"active", timer_active},
                                     {NULL, NULL}};
  /* The self-ref pins a live timer, so __gc only meets stopped ones. */
  luaL_newmetatable(L, TIMER_MT);
  lua_pushcfunction(L, timer_tostring);
  lua_setfield(L, -2, "__tostring");
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}
