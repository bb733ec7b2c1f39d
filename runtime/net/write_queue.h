/* The write queue of a stream: the bytes a conn handed to uv_write that
 * the socket has not taken yet, one request per write.
 *
 * A write from Lua (conn:write(s)) pins the string it was given with a
 * registry ref instead of copying it: Lua strings never move, so the
 * queue points into the string until the socket took it, and N conns
 * writing one shared string hold it once. Bytes built in C (an HTTP
 * response head, a chunk header) are copied, since no Lua value owns
 * them. Either way the request, its copy and its pin are released in the
 * write callback on every status, UV_ECANCELED after uv_close included:
 * a conn that closes with data queued gives it back when libuv cancels
 * its writes, before its close_cb runs.
 *
 * Accounting and policy (per-conn and process-wide limits, who is
 * dropped) stay with the caller, which the done callback tells how many
 * bytes left the queue; lunet_wq_charge says what they cost in memory. */
#ifndef LUNET_WRITE_QUEUE_H
#define LUNET_WRITE_QUEUE_H

#include <stddef.h>
#include <lua.h>
#include <uv.h>

/* Called once per queued write, from the loop, after the request and
 * what it held are released. len is what the write queued. */
typedef void (*lunet_wq_done_cb)(uv_stream_t *s, size_t len, int status);

/* Queues the n bytes at p on s. With idx != 0, p points into the string
 * at absolute stack index idx of L (the runtime's state or one of its
 * coroutines), which is pinned until the write completes; with idx == 0
 * the bytes are copied. 0, or a negative UV error (nothing queued,
 * nothing held); raises only as luaL_ref does, before anything is
 * queued. */
int lunet_wq_write(lua_State *L, uv_stream_t *s, const char *p, size_t n,
                   int idx, lunet_wq_done_cb done);

/* What a write of n bytes holds while queued: its bytes and its request.
 * Limits count this, not n alone: a client pipelining requests for tiny
 * answers would otherwise hold several times the bound in requests. */
size_t lunet_wq_charge(size_t n);

/* Writes queued now on every stream of the process, each holding one
 * pin or one copy (tests check it falls back to 0). */
size_t lunet_wq_requests(void);

/* {==================================================================
 * The process-wide bound (--max-queued)
 * =================================================================== */

struct lunet_runtime;
struct lunet_conn;

/* Makes room for `adding` more bytes queued by `writer` under
 * rt->max_queued, which counts every open conn's unsent bytes (shared
 * strings once per conn: the bound holds whatever is shared). The conns
 * with the most queued are dropped first, logged with
 * reason=process_queue_limit and counted in rt->queue_drops. 0 when the
 * write may go ahead; UV_ENOBUFS when writer itself is the largest
 * (the caller drops it, after logging it the same way). */
int lunet__wq_make_room(struct lunet_runtime *rt, struct lunet_conn *writer,
                        size_t adding);

/* Logs one slow consumer dropped (writer's own queue limit or the
 * process-wide one). */
void lunet__wq_log_drop(struct lunet_conn *c, size_t queued,
                        const char *reason);

#endif
