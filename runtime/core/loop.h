/* The loop's state: one libuv loop, one Lua state and what every layer
 * keeps on them. Only the type lives here, low, so that every layer may
 * read the fields it owns; making, loading, running and stopping a
 * runtime is runtime.h's (ops/). Pointers to the upper layers' parts are
 * opaque here, and the lower layers reach up only through `up`. */
#ifndef LUNET_LOOP_H
#define LUNET_LOOP_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <lua.h>
#include <uv.h>

#include "budget.h"
#include "addr.h"
#include "cli.h"
#include "list.h"

struct lunet_runtime;
struct lunet_service;

/* Calls from the lower layers up into ops/ (filled in by
 * lunet_runtime_new): net/ and script/ reach the worker and the shutdown
 * through these instead of including ops/ headers. */
struct lunet_upcalls {
  /* lunet_runtime_shutdown (lunet.exit) */
  void (*shutdown)(struct lunet_runtime *rt, const char *why);
  /* lunet_worker_share_port, _listening, _resolve_port, _publish
   * (worker.h): each does nothing outside a worker. */
  int (*share_port)(struct lunet_runtime *rt, uv_handle_t *h);
  void (*listening)(struct lunet_service *svc, const char *proto);
  void (*resolve_port)(struct lunet_service *svc);
  int (*publish)(struct lunet_runtime *rt, const char *topic, size_t tlen,
                 const char *msg, size_t mlen);
};

#define LUNET_READ_BUF_SIZE 65536

struct lunet_runtime {
  uv_loop_t loop;
  lua_State *L;
  struct lunet_budget budget; /* time and memory limits of script code */
  const struct lunet_cli *cli;
  char script_path[PATH_MAX];
  char script_dir[PATH_MAX];
  struct lunet_list services;    /* struct lunet_service.node */
  struct lunet_list clients;     /* services of lunet.connect conns */
  struct lunet_list udp_clients; /* sockets from lunet.udp */
  char *udp_buf; /* receive buffer shared by every udp socket, lazily */
  struct lunet_list draining; /* conns flushing their queue before close */
  struct lunet_list timers;   /* struct lunet_timer.node, every live timer */
  uv_timer_t sweep_timer;     /* enforces drain deadlines */
  uv_timer_t shutdown_timer;  /* bounds a graceful shutdown */
  uv_idle_t input_idle;       /* runs while pending_input is not empty */
  /* Parser states of conns between requests, for the next request of any
   * conn: a busy keep-alive conn costs no malloc per request, and an idle
   * one holds none (see http.c). */
  struct lunet_http *http_cache;
  int http_cached;
  struct lunet_ws_topics *ws_topics; /* websockets' topics (ws_topics.c) */
  struct ws_zip *ws_zip; /* their shared zlib streams (ws.c), lazily */
  uv_check_t ws_flush;   /* writes the turn's corked topic frames */
  struct lunet_list ws_corked; /* websockets with corked frames */
  int ws_flush_ready;    /* ws_flush initialized */
  struct lunet_list pending_input; /* conns with buffered messages */
  uint64_t last_conn_id;
  /* Unsent bytes of every open or draining conn (write_queue.h): a conn
   * that closes takes its bytes out at once. Past max_queued (bytes, 0:
   * no bound) the largest slow consumers are dropped. */
  size_t queued_bytes;
  size_t max_queued;
  uint64_t queue_drops;     /* conns dropped for max_queued */
  unsigned version;         /* script version serving now, from 1 */
  unsigned loading_version; /* version being loaded, 0 outside a load */
  int shutting_down;
  int tearing_down; /* lunet_runtime_free runs: nothing new may start */
  int fd_exhausted; /* the last probe found no free descriptor */
  int exit_code;
  struct lunet_control *control;    /* NULL when not listening */
  struct lunet_worker *worker;      /* the supervisor channel, in a worker */
  const struct lunet_upcalls *up;   /* set by lunet_runtime_new */
  struct lunet_watch *watch;        /* NULL without --watch */
  struct lunet_list reload_waiting; /* reload requests for the next batch */
  int reload_running;               /* a batch is reading its files */
  int reload_reads_on_loop; /* out of prefetch rounds: read new modules */
  struct lunet_tls_jobs *tls_jobs; /* certificates a load is building */
  uint64_t started_ns;      /* uv_hrtime() at start */
  uint64_t last_sweep_ms;   /* the sweep's own lag is the loop's lag */
  uint64_t loop_lag_ms;
  char last_reload[160]; /* outcome and time of the last reload */
  char metrics_addr[LUNET_ADDR_STRLEN]; /* the script's `metrics = ADDR` */
  int gc_pause;                         /* the collector's pause now (gc.c) */
  size_t gc_idle_heap; /* Lua heap after the last idle collection */
  /* Userdata the runtime made with a __gc that has not run yet (live or
   * awaiting collection; gc.h). Conns have none. */
  uint64_t gc_finalizers;
  uint64_t events_at_sweep; /* events counted at the last sweep */
  /* Registry refs of the HTTP request and response metatables, set once:
   * every request makes both, and lua_rawgeti costs a third of what
   * lua_rawgetp does. */
  int http_request_mt;
  int http_response_mt;
  uint64_t reloads_ok;
  uint64_t reloads_failed;
  /* Reads are delivered to Lua before the next read starts, so one buffer
   * per loop serves every connection and idle conns hold none. */
  char read_buf[LUNET_READ_BUF_SIZE];
};

/* The runtime lives in the Lua state's extra space: one load, no hashing. */
static inline struct lunet_runtime *lunet_rt(lua_State *L) {
  return *(struct lunet_runtime **)lua_getextraspace(L);
}

#endif
