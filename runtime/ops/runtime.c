#include "runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <lauxlib.h>
#include <lualib.h>

#include "conn.h"
#include "gc.h"
#include "http.h"
#include "ws.h"
#include "route.h"
#include "control.h"
#include "log.h"
#include "log_sink.h"
#include "lunet.h"
#include "modules.h"
#include "reload.h"
#include "tls_client.h"
#include "tls_load.h"
#include "script.h"
#include "service.h"
#include "worker.h"
#include "tcp.h"
#include "timer.h"
#include "udp.h"
#include "watch.h"

#define SWEEP_INTERVAL_MS 1000

/* {==================================================================
 * Lua state setup
 * =================================================================== */

static int is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* lualib/ next to an installed binary wins, then the source tree (a build
 * tree run), then the configured install prefix; $LUNET_LUALIB overrides. */
static int find_lualib(char *out, size_t cap) {
  char exe[PATH_MAX];
  size_t len = sizeof exe;
  const char *env = getenv("LUNET_LUALIB");
  if (env != NULL && is_dir(env)) return snprintf(out, cap, "%s", env), 0;
  if (uv_exepath(exe, &len) == 0) {
    snprintf(out, cap, "%s/../share/lunet/lualib", dirname(exe));
    if (is_dir(out)) return 0;
  }
  if (is_dir(LUNET_SOURCE_LUALIB))
    return snprintf(out, cap, "%s", LUNET_SOURCE_LUALIB), 0;
  if (is_dir(LUNET_INSTALL_LUALIB))
    return snprintf(out, cap, "%s", LUNET_INSTALL_LUALIB), 0;
  return -1;
}

/* lualib/ ahead of Lua's standard paths, which stay so Debian's modules
 * (cjson, socket) load in handlers. The script's own directory comes first
 * through lunet_modules_install. */
static void set_package_path(lua_State *L, const char *lualib) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", lualib, lualib,
                  lua_tostring(L, -1));
  lua_setfield(L, -3, "path");
  lua_pop(L, 2);
}

static void set_arg_table(lua_State *L, const struct lunet_cli *cli) {
  lua_createtable(L, cli->script_argc, 1);
  lua_pushstring(L, cli->script);
  lua_rawseti(L, -2, 0);
  for (int i = 0; i < cli->script_argc; i++) {
    lua_pushstring(L, cli->script_argv[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setglobal(L, "arg");
}

static void install_lunet_module(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lunet_open(L);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "lunet");
  lua_setglobal(L, "lunet");
  lua_pop(L, 1);
}

/* Only reached by a bug (an unprotected call that raised): say where. */
static int runtime_panic(lua_State *L) {
  lunet_log(LUNET_LOG_ERROR, "lua panic", "error", lua_tostring(L, -1), NULL);
  lunet_log_sink_flush(); /* Lua aborts next: the record must be out */
  return 0; /* Lua aborts */
}

static int runtime_open_lua(struct lunet_runtime *rt, char *err,
                            size_t errcap) {
  char lualib[PATH_MAX];
  int have_lualib = find_lualib(lualib, sizeof lualib) == 0;
  rt->budget.time_ns = (uint64_t)rt->cli->budget_ms * 1000000;
  rt->budget.mem_limit = (size_t)rt->cli->memory_limit_mb << 20;
  rt->max_queued = (size_t)rt->cli->max_queued_mb << 20;
  rt->L = lua_newstate(lunet_budget_alloc, &rt->budget);
  if (rt->L == NULL) return snprintf(err, errcap, "out of memory"), -1;
  lua_atpanic(rt->L, runtime_panic);
  lunet_gc_sweep(rt, 0); /* the pause for a small heap, from the start */
  *(struct lunet_runtime **)lua_getextraspace(rt->L) = rt;
  luaL_openlibs(rt->L);
  int status = lunet_budget_install(rt->L, &rt->budget);
  if (status < 0)
    return snprintf(err, errcap, "time budget: %s", uv_strerror(status)), -1;
  if (have_lualib) set_package_path(rt->L, lualib);
  lunet_modules_install(rt->L, rt->script_dir);
  lunet_route_preload(rt->L);
  if (!have_lualib)
    lunet_log(LUNET_LOG_WARN, "lualib not found, require \"lunet.*\" will "
              "fail", "tried", LUNET_SOURCE_LUALIB, NULL);
  set_arg_table(rt->L, rt->cli);
  install_lunet_module(rt->L);
  return 0;
}

/* }================================================================== */

/* libuv survives EMFILE by itself (a reserve descriptor accepts and drops
 * what it cannot keep, so the loop does not spin), but silently: probe for
 * headroom once a second and say when the process runs out and when it
 * has descriptors again. */
static void check_descriptors(struct lunet_runtime *rt) {
  int fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0);
  if (fd >= 0) {
    close(fd);
    if (rt->fd_exhausted)
      lunet_log(LUNET_LOG_INFO, "file descriptors available again", NULL);
    rt->fd_exhausted = 0;
    return;
  }
  if ((errno != EMFILE && errno != ENFILE) || rt->fd_exhausted) return;
  rt->fd_exhausted = 1;
  struct rlimit rl;
  char limit[24] = "?";
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
    snprintf(limit, sizeof limit, "%llu", (unsigned long long)rl.rlim_cur);
  lunet_log(LUNET_LOG_WARN, "out of file descriptors, new connections are "
            "dropped until some close", "limit", limit, "error",
            strerror(errno), NULL);
}

/* Per-second rates for `lunet top`, from the last snapshot. */
static void update_rates(struct lunet_service *svc) {
  const struct lunet_metrics *m = &svc->metrics, *l = &svc->last;
  svc->rate_messages = (double)(m->messages - l->messages);
  svc->rate_bytes_in = (double)(m->bytes_in - l->bytes_in);
  svc->rate_bytes_out = (double)(m->bytes_out - l->bytes_out);
  svc->rate_errors = (double)(m->handler_errors - l->handler_errors);
  svc->last = *m;
}

static void sweep_cb(uv_timer_t *h) {
  struct lunet_runtime *rt = lunet_container_of(h->loop, struct lunet_runtime,
                                                loop);
  struct lunet_list *q, *next;
  uint64_t now = uv_now(h->loop);
  if (rt->last_sweep_ms != 0 && now - rt->last_sweep_ms > SWEEP_INTERVAL_MS)
    rt->loop_lag_ms = now - rt->last_sweep_ms - SWEEP_INTERVAL_MS;
  else
    rt->loop_lag_ms = 0;
  rt->last_sweep_ms = now;
  check_descriptors(rt);
  lunet_conn_sweep(rt, 0);
  uint64_t events = 0;
  for (q = rt->services.next; q != &rt->services; q = next) {
    struct lunet_service *svc = lunet_container_of(q, struct lunet_service,
                                                   node);
    next = q->next;
    events += svc->metrics.messages + svc->metrics.accepted;
    update_rates(svc);
    lunet_conn_timeouts(svc, uv_now(h->loop));
  }
  /* lunet.connect conns: their handshake, write and idle deadlines (a
   * client service is freed only in its conn's close callback). */
  for (q = rt->clients.next; q != &rt->clients; q = next) {
    next = q->next;
    lunet_conn_timeouts(lunet_container_of(q, struct lunet_service, node),
                        uv_now(h->loop));
  }
  lunet_gc_sweep(rt, events == rt->events_at_sweep);
  rt->events_at_sweep = events;
}

static int runtime_set_paths(struct lunet_runtime *rt, char *err,
                             size_t errcap) {
  char real[PATH_MAX];
  if (strlen(rt->cli->script) >= sizeof rt->script_path ||
      realpath(rt->cli->script, real) == NULL)
    return snprintf(err, errcap, "cannot read '%s': %s", rt->cli->script,
                    strerror(errno)), -1;
  /* Messages name the script as the user wrote it; modules resolve from
   * its real directory whatever the working directory is. */
  strcpy(rt->script_path, rt->cli->script);
  snprintf(rt->script_dir, sizeof rt->script_dir, "%s", dirname(real));
  return 0;
}

/* What the layers below reach of ops/ (loop.h): the calls they made
 * directly when they could include these headers. */
static const struct lunet_upcalls upcalls = {
    .shutdown = lunet_runtime_shutdown,
    .share_port = lunet_worker_share_port,
    .listening = lunet_worker_listening,
    .resolve_port = lunet_worker_resolve_port,
    .publish = lunet_worker_publish,
};

struct lunet_runtime *lunet_runtime_new(const struct lunet_cli *cli,
                                        char *err, size_t errcap) {
  struct lunet_runtime *rt = calloc(1, sizeof *rt);
  if (rt == NULL) return snprintf(err, errcap, "out of memory"), NULL;
  rt->cli = cli;
  rt->up = &upcalls;
  rt->started_ns = uv_hrtime();
  snprintf(rt->last_reload, sizeof rt->last_reload, "none");
  lunet_list_init(&rt->services);
  lunet_list_init(&rt->clients);
  lunet_list_init(&rt->udp_clients);
  lunet_list_init(&rt->draining);
  lunet_list_init(&rt->timers);
  lunet_list_init(&rt->reload_waiting);
  lunet_list_init(&rt->pending_input);
  if (runtime_set_paths(rt, err, errcap) < 0) {
    free(rt);
    return NULL;
  }
  int r = uv_loop_init(&rt->loop);
  if (r < 0) {
    snprintf(err, errcap, "cannot create the event loop: %s", uv_strerror(r));
    free(rt);
    return NULL;
  }
  uv_timer_init(&rt->loop, &rt->sweep_timer);
  uv_timer_start(&rt->sweep_timer, sweep_cb, SWEEP_INTERVAL_MS,
                 SWEEP_INTERVAL_MS);
  uv_unref((uv_handle_t *)&rt->sweep_timer);
  uv_timer_init(&rt->loop, &rt->shutdown_timer);
  uv_idle_init(&rt->loop, &rt->input_idle);
  if (runtime_open_lua(rt, err, errcap) < 0) {
    lunet_runtime_free(rt);
    return NULL;
  }
  return rt;
}

/* The first version: no hook runs (on_reload is for reloads only). */
int lunet_runtime_load(struct lunet_runtime *rt, char *err, size_t errcap,
                       int *usage) {
  struct lunet_list *q;
  int hook_ref;
  *usage = 0;
  if (lunet_script_load(rt, &rt->services, &hook_ref, err, errcap) < 0)
    return -1;
  luaL_unref(rt->L, LUA_REGISTRYINDEX, hook_ref);
  rt->version++;
  for (q = rt->services.next; q != &rt->services; q = q->next)
    lunet_container_of(q, struct lunet_service, node)->version = rt->version;
  if (lunet__reload_apply_overrides(rt, &rt->services, err, errcap) < 0)
    return *usage = 1, -1;
  /* Before the loop runs, so on this thread: nothing is served yet. */
  int r;
  while ((r = lunet__tls_attach(rt, &rt->services, err, errcap)) == 1)
    lunet__tls_build_now(rt);
  lunet__tls_jobs_clear(rt);
  return r;
}

int lunet_runtime_listen(struct lunet_runtime *rt) {
  struct lunet_list *q;
  for (q = rt->services.next; q != &rt->services; q = q->next) {
    int r = lunet_service_listen(lunet_container_of(q, struct lunet_service,
                                                    node));
    if (r < 0) return r;
  }
  return 0;
}

int lunet_runtime_run(struct lunet_runtime *rt) {
  uv_run(&rt->loop, UV_RUN_DEFAULT);
  return rt->exit_code;
}

/* {==================================================================
 * Shutdown and teardown
 * =================================================================== */

static void close_conns_of(struct lunet_list *services, int graceful) {
  struct lunet_list *s, *snext, *q, *next;
  /* A client service goes with its conn: step before closing. */
  for (s = services->next; s != services; s = snext) {
    struct lunet_service *svc = lunet_container_of(s, struct lunet_service,
                                                   node);
    snext = s->next;
    lunet_service_unlisten(svc);
    for (q = svc->conns.next; q != &svc->conns; q = next) {
      struct lunet_conn *c = lunet_container_of(q, struct lunet_conn, node);
      next = q->next;
      /* A request being answered finishes first; its response closes. */
      if (graceful && lunet_conn_in_flight(c)) continue;
      lunet_conn_close(c, "shutdown", graceful);
    }
  }
}

static void close_all_conns(struct lunet_runtime *rt, int graceful) {
  close_conns_of(&rt->services, graceful);
  close_conns_of(&rt->clients, graceful);
  lunet_udp_close_clients(rt);
  if (!graceful) lunet_conn_sweep(rt, 1);
}

/* Whatever outlived the grace period (queues that would not drain, timers
 * that on_close handlers made) is closed now. */
static void shutdown_timeout_cb(uv_timer_t *h) {
  struct lunet_runtime *rt = lunet_container_of(h->loop, struct lunet_runtime,
                                                loop);
  lunet_log(LUNET_LOG_WARN, "shutdown timeout, closing what is left", NULL);
  close_all_conns(rt, 0);
  lunet_timer_stop_all(rt);
}

static size_t count_conns(struct lunet_runtime *rt) {
  size_t n = 0;
  for (struct lunet_list *s = rt->services.next; s != &rt->services;
       s = s->next)
    n += lunet_container_of(s, struct lunet_service, node)->nconns;
  return n;
}

void lunet_runtime_shutdown(struct lunet_runtime *rt, const char *why) {
  char conns[24];
  snprintf(conns, sizeof conns, "%zu", count_conns(rt));
  if (rt->shutting_down) {
    lunet_log(LUNET_LOG_WARN, "forced shutdown", "by", why, "conns", conns,
              NULL);
    rt->exit_code = 1;
    close_all_conns(rt, 0);
    lunet_timer_stop_all(rt);
    return;
  }
  rt->shutting_down = 1;
  lunet_control_stop(rt);
  lunet_watch_stop(rt);
  close_all_conns(rt, 1);
  /* Logged once the listeners are closed: whoever reads the record (the
   * log is written by its own thread) finds the port refusing. */
  lunet_log(LUNET_LOG_INFO, "shutting down", "by", why, "conns", conns,
            NULL);
  lunet_timer_stop_for_shutdown(rt);
  uv_timer_start(&rt->shutdown_timer, shutdown_timeout_cb,
                 rt->cli->shutdown_timeout_ms, 0);
  uv_unref((uv_handle_t *)&rt->shutdown_timer);
}

static void report_stray_handle(uv_handle_t *h, void *arg) {
  (void)arg;
  if (uv_is_closing(h)) return;
  lunet_log(LUNET_LOG_ERROR, "handle left open at exit", "type",
            uv_handle_type_name(uv_handle_get_type(h)), NULL);
  uv_close(h, NULL);
}

void lunet_runtime_free(struct lunet_runtime *rt) {
  rt->tearing_down = 1;
  lunet_control_stop(rt);
  lunet_watch_stop(rt);
  lunet_worker_detach(rt);
  if (rt->L != NULL) {
    close_all_conns(rt, 0);
    lunet_timer_stop_all(rt);
  }
  uv_close((uv_handle_t *)&rt->sweep_timer, NULL);
  uv_close((uv_handle_t *)&rt->shutdown_timer, NULL);
  uv_close((uv_handle_t *)&rt->input_idle, NULL);
  lunet_ws_stop(rt);
  uv_walk(&rt->loop, report_stray_handle, NULL);
  uv_run(&rt->loop, UV_RUN_DEFAULT); /* runs every pending close_cb */
  lunet__reload_free_waiting(rt);
  lunet_tls_client_forget();
  lunet__tls_jobs_clear(rt);
  while (!lunet_list_empty(&rt->services))
    lunet_service_free(lunet_container_of(rt->services.next,
                                          struct lunet_service, node));
  lunet_http_cache_free(rt);
  lunet_ws_free(rt);
  lunet_worker_free(rt);
  lunet_budget_stop(&rt->budget);
  if (rt->L != NULL) lua_close(rt->L);
  lunet_block_flush(&rt->budget.blocks);
  if (uv_loop_close(&rt->loop) != 0)
    lunet_log(LUNET_LOG_ERROR, "loop not empty at exit", NULL);
  free(rt->udp_buf);
  free(rt);
}

/* }================================================================== */
