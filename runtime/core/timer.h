/* Timers for Lua: lunet.after(ms, fn) and lunet.every(ms, fn), returning a
 * "lunet.timer" with :stop(). A live timer is pinned by a registry self-ref
 * and freed only in its close_cb; the function lives in the box's uservalue.
 * A timer made while a script version loads belongs to that version. */
#ifndef LUNET_TIMER_H
#define LUNET_TIMER_H

#include <lua.h>

struct lunet_runtime;

/* Registers the "lunet.timer" metatable. */
void lunet_timer_open(lua_State *L);

/* lunet.after / lunet.every */
int lunet_timer_after(lua_State *L);
int lunet_timer_every(lua_State *L);

/* Stops the timers made while loading any version other than `keep`;
 * timers made by handlers run on. */
void lunet_timer_stop_others(struct lunet_runtime *rt, unsigned keep);

/* Stops every timer (teardown, shutdown timeout). */
void lunet_timer_stop_all(struct lunet_runtime *rt);

/* Graceful shutdown: stops periodic timers and those made at load; the
 * one-shot timers of handlers run on (a response may be waiting on one),
 * bounded by the shutdown timeout. */
void lunet_timer_stop_for_shutdown(struct lunet_runtime *rt);

#endif
