#include "write_queue.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>

#include "conn.h"
#include "log.h"
#include "loop.h"
#include "service.h"

/* One uv_write: either a pin of a Lua string or a copy that follows the
 * struct. */
struct wq_req {
  uv_write_t req;
  lua_State *L;
  lunet_wq_done_cb done;
  size_t len;
  int ref; /* the pinned string, or LUA_NOREF for a copy */
  char copy[];
};

static size_t live_requests; /* the loop thread's only */

size_t lunet_wq_requests(void) {
  return live_requests;
}

/* 16: the allocator's header of the request's block. */
size_t lunet_wq_charge(size_t n) {
  return n + sizeof(struct wq_req) + 16;
}

static void wq_release(struct wq_req *w) {
  if (w->ref != LUA_NOREF) luaL_unref(w->L, LUA_REGISTRYINDEX, w->ref);
  w->ref = LUA_NOREF;
  live_requests--;
  free(w);
}

/* Every status, UV_ECANCELED included: what the write held goes first,
 * then the owner learns how much left its queue. */
static void wq_write_cb(uv_write_t *req, int status) {
  struct wq_req *w = (struct wq_req *)req;
  lunet_wq_done_cb done = w->done;
  uv_stream_t *s = req->handle;
  size_t len = w->len;
  wq_release(w);
  done(s, len, status);
}

/* The pin is taken before anything can fail after it, so an error path
 * only has to drop it: luaL_ref may raise (a full heap under the memory
 * cap) and must do so while nothing else is held. */
static struct wq_req *wq_new(lua_State *L, const char *p, size_t n, int idx) {
  int ref = LUA_NOREF;
  if (idx != 0) {
    lua_pushvalue(L, idx);
    ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  struct wq_req *w = malloc(sizeof *w + (idx != 0 ? 0 : n));
  if (w == NULL) {
    if (ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, ref);
    return NULL;
  }
  if (idx == 0) memcpy(w->copy, p, n);
  w->L = lunet_rt(L)->L; /* the main state: L may be a coroutine that dies */
  w->len = n;
  w->ref = ref;
  live_requests++;
  return w;
}

int lunet_wq_write(lua_State *L, uv_stream_t *s, const char *p, size_t n,
                   int idx, lunet_wq_done_cb done) {
  struct wq_req *w = wq_new(L, p, n, idx);
  if (w == NULL) return UV_ENOMEM;
  w->done = done;
  uv_buf_t buf = uv_buf_init(idx != 0 ? (char *)p : w->copy, (unsigned)n);
  int r = uv_write(&w->req, s, &buf, 1, wq_write_cb);
  if (r < 0) wq_release(w); /* no callback comes for a failed uv_write */
  return r;
}

/* {==================================================================
 * The process-wide bound
 * =================================================================== */

void lunet__wq_log_drop(struct lunet_conn *c, size_t queued,
                        const char *reason) {
  char id[24], bytes[24], peer[LUNET_ADDR_STRLEN] = "";
  snprintf(id, sizeof id, "%" PRIu64, c->id);
  snprintf(bytes, sizeof bytes, "%zu", queued);
  lunet_addr_format(&c->peer.sa, peer, sizeof peer);
  lunet_log(LUNET_LOG_WARN, "slow consumer dropped", "service", c->svc->name,
            "conn", id, "peer", peer, "queued", bytes, "reason", reason, NULL);
}

/* The open or draining conn of list with the most queued (writer counted
 * with what it is adding), if it beats *best_bytes. */
static void wq_largest_of(struct lunet_list *list, struct lunet_conn *writer,
                          size_t adding, struct lunet_conn **best,
                          size_t *best_bytes) {
  for (struct lunet_list *q = list->next; q != list; q = q->next) {
    struct lunet_conn *c = lunet_container_of(q, struct lunet_conn, node);
    size_t bytes = c->wq_bytes + (c == writer ? adding : 0);
    if (c->state > CONN_DRAINING || bytes <= *best_bytes) continue;
    *best = c, *best_bytes = bytes;
  }
}

static struct lunet_conn *wq_largest(struct lunet_runtime *rt,
                                     struct lunet_conn *writer, size_t adding) {
  struct lunet_conn *best = NULL;
  size_t best_bytes = 0;
  struct lunet_list *lists[] = {&rt->services, &rt->clients};
  for (int i = 0; i < 2; i++)
    for (struct lunet_list *q = lists[i]->next; q != lists[i]; q = q->next)
      wq_largest_of(&lunet_container_of(q, struct lunet_service, node)->conns,
                    writer, adding, &best, &best_bytes);
  wq_largest_of(&rt->draining, writer, adding, &best, &best_bytes);
  return best;
}

/* Each drop takes its conn's bytes out of rt->queued_bytes at once (see
 * conn.c's close path), so the loop ends: every round removes a conn
 * with something queued, or stops at the writer. */
int lunet__wq_make_room(struct lunet_runtime *rt, struct lunet_conn *writer,
                        size_t adding) {
  while (rt->max_queued != 0 && rt->queued_bytes + adding > rt->max_queued) {
    struct lunet_conn *c = wq_largest(rt, writer, adding);
    if (c == NULL || c == writer) return UV_ENOBUFS;
    lunet__wq_log_drop(c, c->wq_bytes, "process_queue_limit");
    rt->queue_drops++;
    lunet_conn_close(c, "slow_consumer", 0);
  }
  return 0;
}
