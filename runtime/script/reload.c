#include "reload.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <lauxlib.h>

#include "call.h"
#include "fsread.h"
#include "log.h"
#include "modules.h"
#include "loop.h"
#include "script.h"
#include "service.h"
#include "ratelimit.h"
#include "pubsub.h"
#include "timer.h"
#include "tls_load.h"

#define FOR_EACH_SERVICE(q, next, list) \
  for (q = (list)->next; next = q->next, q != (list); q = next)

static struct lunet_service *service_of(struct lunet_list *q) {
  return lunet_container_of(q, struct lunet_service, node);
}

/* {==================================================================
 * --listen overrides
 * =================================================================== */

static struct lunet_service *find_in(struct lunet_list *list,
                                     const char *name) {
  for (struct lunet_list *q = list->next; q != list; q = q->next) {
    struct lunet_service *svc = lunet_container_of(q, struct lunet_service,
                                                   node);
    if (strcmp(svc->name, name) == 0) return svc;
  }
  return NULL;
}

int lunet__reload_apply_overrides(struct lunet_runtime *rt,
                                  struct lunet_list *services, char *err,
                                  size_t errcap) {
  for (int i = 0; i < rt->cli->nlisten; i++) {
    const struct lunet_listen_override *o = &rt->cli->listen[i];
    struct lunet_service *svc = find_in(services, o->service);
    if (svc == NULL)
      return snprintf(err, errcap, "--listen: the script has no service "
                      "named '%s'", o->service), -1;
    if (lunet_service_set_addr(svc, o->addr) < 0)
      return snprintf(err, errcap, "--listen %s=%s: not an address like "
                      "127.0.0.1:0 or [::1]:0", o->service, o->addr), -1;
  }
  for (struct lunet_list *q = services->next; q != services; q = q->next)
    rt->up->resolve_port(lunet_container_of(q, struct lunet_service, node));
  return 0;
}

/* }================================================================== */

/* {==================================================================
 * Prepare: everything that can fail happens before the switch
 * =================================================================== */

static void free_loaded(struct lunet_list *loaded) {
  while (!lunet_list_empty(loaded)) {
    struct lunet_service *svc = service_of(loaded->next);
    lunet_service_unlisten(svc);
    lunet_service_free(svc);
  }
}

/* New services and moved addresses get their listener now, so a port that
 * cannot be bound rejects the reload instead of half-applying it. */
static int bind_listeners(struct lunet_runtime *rt, struct lunet_list *loaded,
                          char *err, size_t errcap) {
  struct lunet_list *q, *next;
  FOR_EACH_SERVICE(q, next, loaded) {
    struct lunet_service *nu = service_of(q);
    struct lunet_service *old = lunet_service_find(rt, nu->name);
    if (old != NULL && old->kind == nu->kind &&
        strcmp(old->addr_text, nu->addr_text) == 0)
      continue;
    int r = lunet_service_listen(nu);
    if (r < 0)
      return snprintf(err, errcap, "%s: service '%s': cannot listen on %s: "
                      "%s", rt->script_path, nu->name, nu->addr_text,
                      uv_strerror(r)), -1;
  }
  return 0;
}

/* 0: ready to switch; -1: the new version is broken (err says why); 1: it
 * requires module files not read yet (see reload_more_files). Anything
 * but 0 leaves the running version as it was. */
static int prepare(struct lunet_runtime *rt, struct lunet_list *loaded,
                   int *hook_ref, char *err, size_t errcap) {
  lunet_modules_detach(rt->L);
  int r = lunet_script_load(rt, loaded, hook_ref, err, errcap);
  /* Checked even after a successful load: pcall(require, ...) may have
   * swallowed the request for a file. */
  if (lunet_modules_wanted(rt->L) > 0) r = 1;
  else if (r == 0 &&
           lunet__reload_apply_overrides(rt, loaded, err, errcap) < 0)
    r = -1;
  /* Certificates not built yet: 1, built in the pool, then loaded again. */
  if (r == 0) r = lunet__tls_attach(rt, loaded, err, errcap);
  if (r == 0 && bind_listeners(rt, loaded, err, errcap) < 0) r = -1;
  if (r != 0) {
    luaL_unref(rt->L, LUA_REGISTRYINDEX, *hook_ref);
    free_loaded(loaded);
    lunet_timer_stop_others(rt, rt->version);
    lunet_pubsub_drop_others(rt, rt->version);
    lunet_modules_restore(rt->L);
    return r;
  }
  lunet_modules_commit(rt->L);
  return 0;
}

/* }================================================================== */

/* {==================================================================
 * Switch: cannot fail
 * =================================================================== */

/* The live service takes the new handlers and options; its conns see
 * them on their next event. A moved service swaps in the new listener. */
static void adopt(struct lunet_service *old, struct lunet_service *nu) {
  lunet_service_set_handlers(old->rt->L, old, nu->handler_ref);
  for (int h = 0; h < LUNET_HANDLER_COUNT; h++)
    nu->handler_ref[h] = LUA_NOREF;
  /* Changed limits start afresh; unchanged ones keep their buckets. */
  if (old->opt.rate != nu->opt.rate || old->opt.burst != nu->opt.burst) {
    lunet_ratelimit_free(old->ratelimit);
    old->ratelimit = NULL;
  }
  old->opt = nu->opt;
  old->kind = nu->kind;
  lunet_service_take_transport(old, nu); /* new certificates, new conns */
  if (nu->listener != NULL || nu->udp != NULL)
    lunet_service_take_socket(old, nu);
}

static void switch_services(struct lunet_runtime *rt,
                            struct lunet_list *loaded, unsigned version) {
  struct lunet_list *q, *next;
  while (!lunet_list_empty(loaded)) {
    struct lunet_service *nu = service_of(loaded->next);
    struct lunet_service *old = lunet_service_find(rt, nu->name);
    lunet_list_remove(&nu->node);
    if (old == NULL) {
      nu->version = version;
      lunet_list_push(&rt->services, &nu->node);
      continue;
    }
    adopt(old, nu);
    old->version = version;
    lunet_service_free(nu);
  }
  FOR_EACH_SERVICE(q, next, &rt->services) {
    struct lunet_service *svc = service_of(q);
    if (svc->retired || svc->internal || svc->version == version) continue;
    lunet_log(LUNET_LOG_INFO, "service removed", "service", svc->name, NULL);
    lunet_service_retire(svc);
  }
}

static void run_hook(struct lunet_runtime *rt, int hook_ref, unsigned prev) {
  struct lunet_call_ctx ctx = {NULL, "on_reload", 0, NULL, NULL};
  if (hook_ref == LUA_NOREF) return;
  lua_rawgeti(rt->L, LUA_REGISTRYINDEX, hook_ref);
  luaL_unref(rt->L, LUA_REGISTRYINDEX, hook_ref);
  lua_pushinteger(rt->L, prev);
  lunet_call(rt->L, 1, &ctx); /* the switch stands; an error is logged */
}

/* }================================================================== */

static size_t live_conns(struct lunet_runtime *rt, size_t *nservices) {
  size_t n = 0;
  *nservices = 0;
  for (struct lunet_list *q = rt->services.next; q != &rt->services;
       q = q->next) {
    if (service_of(q)->retired) continue;
    n += service_of(q)->nconns;
    ++*nservices;
  }
  return n;
}

/* For lunet stats and top: when the last reload was and how it went. */
static void record_last(struct lunet_runtime *rt, const char *outcome,
                        const char *detail) {
  time_t now = time(NULL);
  struct tm tm;
  char when[32];
  gmtime_r(&now, &tm);
  strftime(when, sizeof when, "%H:%M:%SZ", &tm);
  snprintf(rt->last_reload, sizeof rt->last_reload, "%s at %s: %.100s",
           outcome, when, detail);
  for (char *p = rt->last_reload; *p; p++)
    if (*p == '\n') *p = ' ';
}

/* One log record and the one-line answer for whoever asked. */
static void log_success(struct lunet_runtime *rt, const char *trigger,
                        uint64_t start, char *msg, size_t msgcap) {
  char version[16], services[24], conns[24], ms[32];
  size_t nservices, nconns = live_conns(rt, &nservices);
  snprintf(version, sizeof version, "%u", rt->version);
  snprintf(services, sizeof services, "%zu", nservices);
  snprintf(conns, sizeof conns, "%zu", nconns);
  snprintf(ms, sizeof ms, "%.3f", (double)(uv_hrtime() - start) / 1e6);
  lunet_log(LUNET_LOG_INFO, "reloaded", "trigger", trigger, "version",
            version, "services", services, "conns", conns, "duration_ms", ms,
            NULL);
  snprintf(msg, msgcap, "version=%s services=%s conns=%s duration_ms=%s",
           version, services, conns, ms);
  record_last(rt, "ok", msg);
}

int lunet_reload(struct lunet_runtime *rt, const char *trigger, char *msg,
                 size_t msgcap) {
  struct lunet_list loaded;
  char version[16];
  int hook_ref = LUA_NOREF;
  uint64_t start = uv_hrtime();
  lunet_list_init(&loaded);
  int prepared = rt->shutting_down ? -1
                 : prepare(rt, &loaded, &hook_ref, msg, msgcap);
  if (rt->shutting_down) {
    snprintf(msg, msgcap, "shutting down");
  } else if (prepared == 1) {
    snprintf(msg, msgcap, "new module files to read first");
    return 1;
  } else if (prepared == 0) {
    unsigned prev = rt->version++;
    switch_services(rt, &loaded, rt->version);
    lunet_timer_stop_others(rt, rt->version);
    lunet_pubsub_drop_others(rt, rt->version);
    rt->reloads_ok++;
    log_success(rt, trigger, start, msg, msgcap);
    run_hook(rt, hook_ref, prev);
    return 0;
  }
  rt->reloads_failed++;
  record_last(rt, "failed", msg);
  snprintf(version, sizeof version, "%u", rt->version);
  lunet_log(LUNET_LOG_ERROR, "reload failed", "trigger", trigger,
            "version", version, "error", msg, NULL);
  return -1;
}

/* {==================================================================
 * Asynchronous front: files are read off the loop, then the reload runs
 * =================================================================== */

#define SCRIPT_SIZE_MAX (16 << 20)
#define PREFETCH_MAX 128
/* Rounds of "load, find the new modules it requires, read them": one per
 * level of new requires. Past this, new files are read on the loop. */
#define NEW_MODULE_ROUNDS 16

static const char prefetch_key = 'F'; /* registry: path -> contents */

struct reload_waiter {
  struct lunet_list node;
  const char *trigger;
  lunet_reload_cb cb;
  void *ud;
};

struct reload_batch {
  struct lunet_runtime *rt;
  struct lunet_list waiters;
  int rounds;
  int npaths;
  char *paths[PREFETCH_MAX];
};

const char *lunet__reload_prefetched(lua_State *L, const char *path,
                                     size_t *len) {
  const char *s = NULL;
  int top = lua_gettop(L);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &prefetch_key) == LUA_TTABLE &&
      lua_getfield(L, -1, path) == LUA_TSTRING)
    s = lua_tolstring(L, -1, len); /* anchored in the table until cleared */
  lua_settop(L, top);
  return s;
}

int lunet__reload_prefetch_lookup(lua_State *L, const char *path,
                                  const char **src, size_t *len) {
  int top = lua_gettop(L), r;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &prefetch_key) != LUA_TTABLE ||
      lunet_rt(L)->reload_reads_on_loop) {
    r = LUNET_PREFETCH_NONE;
  } else {
    int t = lua_getfield(L, -1, path);
    r = t == LUA_TSTRING ? LUNET_PREFETCH_FOUND
        : t == LUA_TNIL  ? LUNET_PREFETCH_UNKNOWN
                         : LUNET_PREFETCH_ABSENT;
    if (t == LUA_TSTRING) *src = lua_tolstring(L, -1, len); /* anchored */
  }
  lua_settop(L, top);
  return r;
}

/* 1 if path was added, 0 if it was there already or there is no room. */
static int add_path(struct reload_batch *b, const char *path) {
  for (int i = 0; i < b->npaths; i++)
    if (strcmp(b->paths[i], path) == 0) return 0;
  if (b->npaths < PREFETCH_MAX && (b->paths[b->npaths] = strdup(path)))
    return ++b->npaths, 1;
  return 0;
}

static void collect_paths(struct reload_batch *b) {
  lua_State *L = b->rt->L;
  add_path(b, b->rt->script_path);
  lunet_modules_push_files(L);
  for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TSTRING; i++) {
    add_path(b, lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
}

/* Returns -1 with msg set when the script itself could not be read. */
static int set_prefetch(lua_State *L, struct lunet_file *files, int n,
                        char *msg, size_t msgcap) {
  if (files[0].error < 0)
    return snprintf(msg, msgcap, "cannot read %s: %s", files[0].path,
                    uv_strerror(files[0].error)), -1;
  lua_createtable(L, 0, n);
  for (int i = 0; i < n; i++) {
    /* A file that cannot be read counts as absent: a module's searcher
     * then tries its next candidate, as it would on disk. */
    if (files[i].error < 0)
      lua_pushboolean(L, 0);
    else
      lua_pushlstring(L, files[i].data, files[i].len);
    lua_setfield(L, -2, files[i].path);
  }
  lua_rawsetp(L, LUA_REGISTRYINDEX, &prefetch_key);
  return 0;
}

static void reload_start_batch(struct lunet_runtime *rt);
static void batch_read_cb(struct lunet_file *files, int n, void *ud);

/* The new version requires modules that were not read: read them (off the
 * loop) and load it again. 0 when that started; -1 when no round is left,
 * and the next load reads what it needs on the loop. */
static int reload_more_files(struct reload_batch *b) {
  lua_State *L = b->rt->L;
  int added = 0, n = lunet_modules_take_wanted(L);
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    added += add_path(b, lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if (added == 0 || ++b->rounds > NEW_MODULE_ROUNDS) return -1;
  char count[16], round[16];
  snprintf(count, sizeof count, "%d", added);
  snprintf(round, sizeof round, "%d", b->rounds);
  lunet_log(LUNET_LOG_DEBUG, "reload reads new module files", "files", count,
            "round", round, "last", b->paths[b->npaths - 1], NULL);
  return lunet_fsread_start(&b->rt->loop, (const char *const *)b->paths,
                            b->npaths, SCRIPT_SIZE_MAX, batch_read_cb, b) == 0
             ? 0 : -1;
}

static void clear_prefetch(lua_State *L) {
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &prefetch_key);
}

static const char *batch_trigger(struct reload_batch *b) {
  return lunet_container_of(b->waiters.next, struct reload_waiter, node)
      ->trigger;
}

static void batch_finish(struct reload_batch *b, int r, const char *msg) {
  struct lunet_runtime *rt = b->rt;
  clear_prefetch(rt->L);
  lunet__tls_jobs_clear(rt);
  while (!lunet_list_empty(&b->waiters)) {
    struct reload_waiter *w = lunet_container_of(
        b->waiters.next, struct reload_waiter, node);
    lunet_list_remove(&w->node);
    if (w->cb) w->cb(r, msg, w->ud);
    free(w);
  }
  for (int i = 0; i < b->npaths; i++) free(b->paths[i]);
  free(b);
  rt->reload_running = 0;
  if (!lunet_list_empty(&rt->reload_waiting)) reload_start_batch(rt);
}

static void batch_after(struct reload_batch *b, int r, char *msg,
                        size_t msgcap);

/* The certificates are built: the same files load again and take them. */
static void tls_built_cb(void *ud) {
  struct reload_batch *b = ud;
  char msg[4096];
  int r = lunet_reload(b->rt, batch_trigger(b), msg, sizeof msg);
  batch_after(b, r, msg, sizeof msg);
}

/* After a load: done (r 0 or -1), or it wants certificates built or new
 * module files read first (r 1), and loads again once they are. */
static void batch_after(struct reload_batch *b, int r, char *msg,
                        size_t msgcap) {
  struct lunet_runtime *rt = b->rt;
  if (r == 1 && lunet__tls_wanted(rt)) {
    if (lunet__tls_build_async(rt, tls_built_cb, b) == 0) return;
    snprintf(msg, msgcap, "tls: cannot start building the certificates");
    lunet_log(LUNET_LOG_ERROR, "reload failed", "trigger", batch_trigger(b),
              "error", msg, NULL);
    r = -1;
  } else if (r == 1 && reload_more_files(b) == 0) {
    clear_prefetch(rt->L); /* batch_read_cb sets the new one */
    return;
  } else if (r == 1) { /* out of rounds: this last load reads on the loop */
    rt->reload_reads_on_loop = 1;
    r = lunet_reload(rt, batch_trigger(b), msg, msgcap);
    rt->reload_reads_on_loop = 0;
    if (r == 1 && lunet__tls_wanted(rt))
      return batch_after(b, r, msg, msgcap); /* certificates next */
    if (r == 1) {
      snprintf(msg, msgcap, "the script still wants files it cannot read");
      r = -1;
    }
  }
  batch_finish(b, r, msg);
}

static void batch_read_cb(struct lunet_file *files, int n, void *ud) {
  struct reload_batch *b = ud;
  char msg[4096];
  int r = set_prefetch(b->rt->L, files, n, msg, sizeof msg);
  if (r < 0) {
    lunet_log(LUNET_LOG_ERROR, "reload failed", "trigger", batch_trigger(b),
              "error", msg, NULL);
    return batch_finish(b, r, msg);
  }
  r = lunet_reload(b->rt, batch_trigger(b), msg, sizeof msg);
  batch_after(b, r, msg, sizeof msg);
}

static void fail_waiters(struct lunet_list *waiters, const char *msg) {
  while (!lunet_list_empty(waiters)) {
    struct reload_waiter *w = lunet_container_of(
        waiters->next, struct reload_waiter, node);
    lunet_list_remove(&w->node);
    if (w->cb) w->cb(-1, msg, w->ud);
    free(w);
  }
}

static void move_all(struct lunet_list *to, struct lunet_list *from) {
  while (!lunet_list_empty(from)) {
    struct lunet_list *q = from->next;
    lunet_list_remove(q);
    lunet_list_push(to, q);
  }
}

static void reload_start_batch(struct lunet_runtime *rt) {
  struct reload_batch *b = calloc(1, sizeof *b);
  struct lunet_list failed;
  lunet_list_init(&failed);
  if (b != NULL) {
    b->rt = rt;
    lunet_list_init(&b->waiters);
    collect_paths(b);
    move_all(&b->waiters, &rt->reload_waiting);
    if (lunet_fsread_start(&rt->loop, (const char *const *)b->paths,
                           b->npaths, SCRIPT_SIZE_MAX, batch_read_cb, b) == 0) {
      rt->reload_running = 1;
      return;
    }
    move_all(&failed, &b->waiters);
    for (int i = 0; i < b->npaths; i++) free(b->paths[i]);
    free(b);
  } else {
    move_all(&failed, &rt->reload_waiting);
  }
  lunet_log(LUNET_LOG_ERROR, "reload failed", "error", "out of memory", NULL);
  fail_waiters(&failed, "out of memory");
}

void lunet_reload_async(struct lunet_runtime *rt, const char *trigger,
                        lunet_reload_cb cb, void *ud) {
  struct reload_waiter *w = calloc(1, sizeof *w);
  if (w == NULL) {
    lunet_log(LUNET_LOG_ERROR, "reload failed", "trigger", trigger, "error",
              "out of memory", NULL);
    return; /* the requester's own timeout answers it */
  }
  w->trigger = trigger, w->cb = cb, w->ud = ud;
  lunet_list_push(&rt->reload_waiting, &w->node);
  if (!rt->reload_running) reload_start_batch(rt);
}

/* A running batch keeps the loop alive until it answers, so at teardown
 * nobody waits any more; this only frees what a failed start left. */
void lunet__reload_free_waiting(struct lunet_runtime *rt) {
  while (!lunet_list_empty(&rt->reload_waiting)) {
    struct lunet_list *q = rt->reload_waiting.next;
    lunet_list_remove(q);
    free(lunet_container_of(q, struct reload_waiter, node));
  }
}

/* }================================================================== */
