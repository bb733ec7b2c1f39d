/* How the runtime paces Lua's garbage collector. Lua's default starts a
 * cycle when the heap doubles, which for a server's small heap (tens of
 * KB of handlers and conns) means a full mark of it every few dozen
 * messages: with 4 KiB messages that was 40% of the echo path's
 * instructions. So the pause follows the heap's size: a cycle starts once
 * the garbage reaches max(heap, 4 MiB), within Lua's bounds: from 200%
 * (its default) for heaps past 4 MiB to 1000% (its most) for heaps below
 * about 450 KB, whose garbage stays under 9 times their size. When the loop
 * has been quiet for a sweep, a heap that grew is collected in full and
 * the freed memory handed back to the system, so an idle server holds no
 * burst's garbage. */
#ifndef LUNET_GC_H
#define LUNET_GC_H

struct lunet_runtime;

/* From the once-a-second sweep; `quiet` says no event ran since the last
 * one. */
void lunet_gc_sweep(struct lunet_runtime *rt, int quiet);

/* A userdata with a __gc was made (+1) or finalized (-1): counted in
 * rt->gc_finalizers, so metrics show finalizers that pile up (the
 * collector runs each in its own step and frees the object a cycle
 * later, which is why conn boxes have none). */
void lunet__gc_finalizable(struct lunet_runtime *rt, int delta);

#endif
