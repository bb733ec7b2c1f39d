#include "supervisor.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "supervisor_internal.h"
#include "worker.h"

#define TICK_MS 200
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 10000
#define STABLE_AFTER_MS 5000 /* a worker that lived this long crashed anew */
#define FORCED_EXIT_GRACE_MS 5000 /* past --shutdown-timeout */
#define PORTS_MAX 16384

extern char **environ;

const char *const lunet__replaced_names[LUNET_REPLACED_REASONS] = {
    "crashed", "unresponsive"};

static void slot_spawn(struct lunet_worker_slot *w);
static void sup_shutdown(struct lunet_supervisor *sup, const char *why);

static char *id_text(int id, char *buf) {
  snprintf(buf, 16, "%d", id);
  return buf;
}

/* {==================================================================
 * Messages from workers
 * =================================================================== */

/* First report of a name wins: workers started later bind its port. */
static void remember_port(struct lunet_supervisor *sup, const char *payload,
                          size_t len) {
  char line[256], name[128], proto[16], addr[96];
  snprintf(line, sizeof line, "%.*s", (int)(len < 255 ? len : 255), payload);
  if (sscanf(line, "%127s %15s %95s", name, proto, addr) != 3) return;
  size_t have = sup->ports ? strlen(sup->ports) : 0;
  size_t nlen = strlen(name);
  for (const char *p = sup->ports; p && (p = strstr(p, name)) != NULL; p++)
    if ((p == sup->ports || p[-1] == '\n') && p[nlen] == '=') return;
  size_t add = nlen + strlen(addr) + 2;
  if (have + add + 1 > PORTS_MAX) return;
  char *grown = realloc(sup->ports, have + add + 1);
  if (grown == NULL) return;
  sup->ports = grown;
  snprintf(sup->ports + have, add + 1, "%s=%s\n", name, addr);
}

static void spawn_the_rest(struct lunet_supervisor *sup) {
  for (int i = 1; i < sup->nworkers; i++)
    if (sup->slots[i].pid == 0) slot_spawn(&sup->slots[i]);
}

static void worker_ready(struct lunet_worker_slot *w) {
  struct lunet_supervisor *sup = w->sup;
  char id[16], pid[24];
  w->ready = 1;
  snprintf(pid, sizeof pid, "%ld", w->pid);
  lunet_log(LUNET_LOG_INFO, "worker ready", "id", id_text(w->id, id), "pid",
            pid, NULL);
  if (!sup->ever_ready) {
    sup->ever_ready = 1;
    spawn_the_rest(sup);
  }
  for (int i = 0; i < sup->nworkers; i++)
    if (!sup->slots[i].ready) return;
  if (sup->all_ready_logged) return;
  sup->all_ready_logged = 1;
  lunet_log(LUNET_LOG_INFO, "workers ready", "count",
            id_text(sup->nworkers, id), NULL);
}

/* Pub/sub across workers: everyone else with a channel gets a copy. */
static void relay_publish(struct lunet_worker_slot *from, const char *payload,
                          size_t len) {
  struct lunet_supervisor *sup = from->sup;
  for (int i = 0; i < sup->nworkers; i++) {
    struct lunet_worker_slot *to = &sup->slots[i];
    if (to == from || to->pid == 0) continue;
    int r =
        lunet_channel_send(&to->ch, LUNET_FRAME_DELIVER, payload, len, NULL, 0);
    if (r < 0) {
      char id[24];
      snprintf(id, sizeof id, "worker %d", to->id);
      lunet_channel_note_drop(&to->ch, "publish", id, r);
    }
  }
}

static void metrics_reported(struct lunet_supervisor *sup, const char *addr,
                             size_t len) {
  if (sup->metrics_addr[0] != '\0' || len >= sizeof sup->metrics_addr) return;
  memcpy(sup->metrics_addr, addr, len);
  sup->metrics_addr[len] = '\0';
  lunet__sup_metrics_start(sup);
}

static void frame_cb(struct lunet_channel *ch, int type, const char *payload,
                     size_t len) {
  struct lunet_worker_slot *w = ch->data;
  lunet__sup_heard(w);
  switch (type) {
    case LUNET_FRAME_LISTENING:
      remember_port(w->sup, payload, len);
      break;
    case LUNET_FRAME_READY:
      worker_ready(w);
      break;
    case LUNET_FRAME_PUBLISH:
      relay_publish(w, payload, len);
      break;
    case LUNET_FRAME_METRICS_ADDR:
      metrics_reported(w->sup, payload, len);
      break;
    case LUNET_FRAME_RELOADED:
    case LUNET_FRAME_STATS:
      lunet__sup_answer(w->sup, w, type, payload, len);
      break;
    default:
      break;
  }
}

/* EOF (or a reset: the worker closed with frames unread) comes with the
 * worker's exit, which exit_cb handles. A channel that breaks otherwise
 * (a bad frame) leaves a worker nobody can reach: it is stopped, and
 * replaced like any worker that exits. */
static void channel_end(struct lunet_channel *ch, int error) {
  struct lunet_worker_slot *w = ch->data;
  char id[16];
  if (w->pid == 0 || w->sup->shutting_down || error == UV_EOF ||
      error == UV_ECONNRESET)
    return;
  lunet_log(LUNET_LOG_ERROR, "worker channel broken, stopping the worker", "id",
            id_text(w->id, id), "why", uv_strerror(error), NULL);
  kill((pid_t)w->pid, SIGTERM);
}

/* }================================================================== */

/* {==================================================================
 * Starting, losing and replacing workers
 * =================================================================== */

/* environ without LUNET_WORKER*, plus this worker's identity. */
static char **worker_env(struct lunet_supervisor *sup, int id) {
  size_t n = 0, k = 0;
  while (environ[n] != NULL) n++;
  char **env = calloc(n + 4, sizeof *env);
  char *own = malloc(64);
  size_t plen = sup->ports ? strlen(sup->ports) : 0;
  char *ports = malloc(plen + 32);
  if (env == NULL || own == NULL || ports == NULL)
    return free(env), free(own), free(ports), NULL;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], "LUNET_WORKER", 12) != 0) env[k++] = environ[i];
  int len = snprintf(own, 64, "LUNET_WORKER=%d", id) + 1;
  snprintf(own + len, (size_t)(64 - len), "LUNET_WORKERS=%d", sup->nworkers);
  snprintf(ports, plen + 32, "LUNET_WORKER_PORTS=%s",
           sup->ports ? sup->ports : "");
  env[k++] = own;
  env[k++] = own + len;
  env[k++] = ports;
  return env;
}

static void free_env(char **env) {
  size_t n = 0;
  while (env[n] != NULL) n++;
  free(env[n - 3]); /* `own`: both identity strings */
  free(env[n - 1]);
  free(env);
}

static void slot_exited(uv_process_t *proc, int64_t status, int signum);

static void slot_handle_closed(uv_handle_t *h) {
  struct lunet_worker_slot *w = h->data;
  w->open_handles--;
}

static void slot_channel_closed(struct lunet_channel *ch) {
  struct lunet_worker_slot *w = ch->data;
  w->open_handles--;
}

static int spawn_process(struct lunet_worker_slot *w, char **env) {
  struct lunet_supervisor *sup = w->sup;
  uv_stdio_container_t stdio[5] = {
      {.flags = UV_IGNORE},
      {.flags = UV_INHERIT_FD, .data.fd = STDOUT_FILENO},
      {.flags = UV_INHERIT_FD, .data.fd = STDERR_FILENO},
      {.flags = UV_CREATE_PIPE | UV_READABLE_PIPE | UV_WRITABLE_PIPE,
       .data.stream = (uv_stream_t *)&w->ch.pipe},
      {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, /* LUNET_WORKER_BUSY_FD */
       .data.stream = (uv_stream_t *)&w->busy}};
  /* Own session: a terminal's Ctrl-C reaches the supervisor only, which
   * then stops each worker once (a second signal would force it). */
  uv_process_options_t o = {.exit_cb = slot_exited,
                            .file = sup->exe,
                            .args = sup->argv,
                            .env = env,
                            .flags = UV_PROCESS_DETACHED,
                            .stdio_count = 5,
                            .stdio = stdio};
  w->proc.data = w;
  return uv_spawn(&sup->loop, &w->proc, &o);
}

static void restart_cb(uv_timer_t *t) {
  slot_spawn(t->data);
}

static void schedule_restart(struct lunet_worker_slot *w, unsigned delay) {
  char id[16], ms[24];
  snprintf(ms, sizeof ms, "%u", delay);
  lunet_log(LUNET_LOG_INFO, "restarting worker", "id", id_text(w->id, id),
            "in_ms", ms, NULL);
  uv_timer_start(&w->restart_timer, restart_cb, delay, 0);
}

static unsigned next_backoff(struct lunet_worker_slot *w, uint64_t lived) {
  if (lived >= STABLE_AFTER_MS) return w->backoff_ms = 0;
  w->backoff_ms = w->backoff_ms == 0 ? BACKOFF_FIRST_MS : w->backoff_ms * 2;
  if (w->backoff_ms > BACKOFF_MAX_MS) w->backoff_ms = BACKOFF_MAX_MS;
  return w->backoff_ms;
}

/* The slot's previous process and channel must have closed: the restart
 * is scheduled from their close callbacks' side (see slot_exited). */
static void slot_spawn(struct lunet_worker_slot *w) {
  struct lunet_supervisor *sup = w->sup;
  char id[16], pid[24];
  if (sup->shutting_down || w->pid != 0) return;
  if (w->open_handles > 0) return schedule_restart(w, BACKOFF_FIRST_MS);
  char **env = worker_env(sup, w->id);
  lunet_channel_init(&w->ch, &sup->loop, frame_cb, channel_end);
  w->ch.data = w;
  w->ch.on_closed = slot_channel_closed;
  uv_pipe_init(&sup->loop, &w->busy, 0);
  w->busy.data = w;
  int r = env != NULL ? spawn_process(w, env) : UV_ENOMEM;
  w->open_handles = env != NULL ? 3 : 2;
  if (env != NULL) free_env(env);
  if (r < 0) {
    lunet_log(LUNET_LOG_ERROR, "cannot start worker", "id", id_text(w->id, id),
              "error", uv_strerror(r), NULL);
    /* A failed uv_spawn leaves its handle initialized: it is closed too. */
    if (env != NULL) uv_close((uv_handle_t *)&w->proc, slot_handle_closed);
    lunet_channel_close(&w->ch);
    uv_close((uv_handle_t *)&w->busy, slot_handle_closed);
    return schedule_restart(w, next_backoff(w, 0));
  }
  w->pid = w->proc.pid;
  w->ready = 0;
  w->started_ms = uv_now(&sup->loop);
  w->heard_ms = w->started_ms;
  w->busy_ms = 0;
  w->over_budget = w->unresponsive = 0;
  w->busy_len = 0;
  lunet_channel_start(&w->ch);
  lunet__sup_tickets_send(w); /* first, before its listeners take conns */
  lunet__sup_busy_start(w);
  snprintf(pid, sizeof pid, "%ld", w->pid);
  lunet_log(LUNET_LOG_INFO, "worker started", "id", id_text(w->id, id), "pid",
            pid, NULL);
}

static void log_exit(struct lunet_worker_slot *w, int64_t status, int signum) {
  char id[16], pid[24], how[48];
  snprintf(pid, sizeof pid, "%ld", w->pid);
  if (signum != 0)
    snprintf(how, sizeof how, "signal %s", strsignal(signum));
  else
    snprintf(how, sizeof how, "code %lld", (long long)status);
  int quiet = w->sup->shutting_down && status == 0 && signum == 0;
  lunet_log(quiet ? LUNET_LOG_INFO : LUNET_LOG_WARN, "worker exited", "id",
            id_text(w->id, id), "pid", pid, "status", how, NULL);
}

static int all_exited(struct lunet_supervisor *sup) {
  for (int i = 0; i < sup->nworkers; i++)
    if (sup->slots[i].pid != 0) return 0;
  return 1;
}

static void sup_close(struct lunet_supervisor *sup);

/* A worker's exit while serving is a crash (replaced) unless it was
 * clean: a script calling lunet.exit(0) stops the whole server. Before
 * any worker has served, an exit means the script cannot start. */
static void slot_exited(uv_process_t *proc, int64_t status, int signum) {
  struct lunet_worker_slot *w = proc->data;
  struct lunet_supervisor *sup = w->sup;
  uint64_t lived = uv_now(&sup->loop) - w->started_ms;
  log_exit(w, status, signum);
  lunet__sup_worker_gone(sup, w);
  w->pid = 0;
  w->ready = 0;
  uv_close((uv_handle_t *)proc, slot_handle_closed);
  uv_close((uv_handle_t *)&w->busy, slot_handle_closed);
  lunet_channel_close(&w->ch);
  if (sup->shutting_down) {
    if (status != 0 || signum != 0) sup->exit_code = 1;
    if (all_exited(sup)) sup_close(sup);
  } else if (!sup->ever_ready) {
    sup->exit_code = status != 0 ? (int)status : 1;
    sup_shutdown(sup, "the first worker could not start");
  } else if (status == 0 && signum == 0) {
    sup_shutdown(sup, "a worker exited cleanly");
  } else {
    int why =
        w->unresponsive ? LUNET_REPLACED_UNRESPONSIVE : LUNET_REPLACED_CRASHED;
    sup->restarts++;
    sup->replaced[why]++;
    w->replaced++;
    w->last_replaced = why;
    schedule_restart(w, next_backoff(w, lived));
  }
}

/* }================================================================== */

/* {==================================================================
 * Signals and shutdown
 * =================================================================== */

static void signal_workers(struct lunet_supervisor *sup, int signum) {
  for (int i = 0; i < sup->nworkers; i++)
    if (sup->slots[i].pid != 0) kill((pid_t)sup->slots[i].pid, signum);
}

/* First call: SIGTERM to every worker (each shuts down gracefully within
 * --shutdown-timeout), then SIGKILL to any left after a grace period.
 * Second call (a second Ctrl-C): SIGTERM again, which workers take as
 * "exit now". */
static void sup_shutdown(struct lunet_supervisor *sup, const char *why) {
  if (sup->shutting_down) {
    lunet_log(LUNET_LOG_WARN, "forcing workers to exit", "why", why, NULL);
    return signal_workers(sup, SIGTERM);
  }
  sup->shutting_down = 1;
  lunet_log(LUNET_LOG_INFO, "shutting down", "why", why, NULL);
  sup->kill_at_ms =
      uv_now(&sup->loop) + sup->cli->shutdown_timeout_ms + FORCED_EXIT_GRACE_MS;
  for (int i = 0; i < sup->nworkers; i++)
    uv_timer_stop(&sup->slots[i].restart_timer);
  lunet__sup_control_stop(sup);
  signal_workers(sup, SIGTERM);
  if (all_exited(sup)) sup_close(sup);
}

static void signal_cb(uv_signal_t *h, int signum) {
  struct lunet_supervisor *sup = h->data;
  if (signum == SIGHUP)
    lunet__sup_reload(sup, NULL);
  else
    sup_shutdown(sup, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

static void tick_cb(uv_timer_t *t) {
  struct lunet_supervisor *sup = t->data;
  uint64_t now = uv_now(&sup->loop);
  lunet__sup_expire(sup, now);
  lunet__sup_check_liveness(sup, now);
  lunet__sup_tickets_tick(sup, now);
  if (sup->shutting_down && now >= sup->kill_at_ms && !all_exited(sup)) {
    lunet_log(LUNET_LOG_ERROR, "workers did not stop in time, killing them",
              NULL);
    signal_workers(sup, SIGKILL);
    sup->exit_code = 1;
    sup->kill_at_ms = UINT64_MAX;
  }
}

static void start_signal(uv_signal_t *h, int signum) {
  int r = uv_signal_start(h, signal_cb, signum);
  if (r < 0)
    lunet_log(LUNET_LOG_ERROR, "cannot watch a signal", "signal",
              strsignal(signum), "error", uv_strerror(r), NULL);
}

/* Every worker is gone: close what is left so the loop ends. */
static void sup_close(struct lunet_supervisor *sup) {
  uv_close((uv_handle_t *)&sup->sigint, NULL);
  uv_close((uv_handle_t *)&sup->sigterm, NULL);
  uv_close((uv_handle_t *)&sup->sighup, NULL);
  uv_close((uv_handle_t *)&sup->tick, NULL);
  lunet__sup_metrics_stop(sup);
  for (int i = 0; i < sup->nworkers; i++)
    uv_close((uv_handle_t *)&sup->slots[i].restart_timer, NULL);
}

/* }================================================================== */

static int sup_init(struct lunet_supervisor *sup, const struct lunet_cli *cli,
                    char **argv) {
  size_t size = sizeof sup->exe;
  int r;
  sup->cli = cli;
  sup->argv = argv;
  sup->nworkers = cli->workers;
  lunet_list_init(&sup->fanouts);
  if ((r = uv_exepath(sup->exe, &size)) < 0) return r;
  if ((r = uv_loop_init(&sup->loop)) < 0) return r;
  sup->slots = calloc((size_t)sup->nworkers, sizeof *sup->slots);
  if (sup->slots == NULL) return UV_ENOMEM;
  uv_signal_t *sigs[] = {&sup->sigint, &sup->sigterm, &sup->sighup};
  for (int i = 0; i < 3; i++) {
    uv_signal_init(&sup->loop, sigs[i]);
    sigs[i]->data = sup;
  }
  uv_timer_init(&sup->loop, &sup->tick);
  sup->tick.data = sup;
  for (int i = 0; i < sup->nworkers; i++) {
    sup->slots[i].sup = sup;
    sup->slots[i].id = i + 1;
    sup->slots[i].last_replaced = -1;
    uv_timer_init(&sup->loop, &sup->slots[i].restart_timer);
    sup->slots[i].restart_timer.data = &sup->slots[i];
  }
  if (cli->metrics != NULL)
    snprintf(sup->metrics_addr, sizeof sup->metrics_addr, "%s", cli->metrics);
  return 0;
}

/* Before the loop runs: blocking file writes are harmless here. */
static int sup_start(struct lunet_supervisor *sup) {
  char n[16];
  if (sup->cli->pidfile != NULL && lunet_pidfile_write(sup->cli->pidfile) < 0) {
    lunet_log(LUNET_LOG_ERROR, "cannot write pidfile", "path",
              sup->cli->pidfile, "error", strerror(errno), NULL);
    return -1;
  }
  if (lunet__sup_control_start(sup) < 0) return -1;
  if (sup->metrics_addr[0] != '\0' && lunet__sup_metrics_start(sup) < 0)
    return -1;
  start_signal(&sup->sigint, SIGINT);
  start_signal(&sup->sigterm, SIGTERM);
  start_signal(&sup->sighup, SIGHUP);
  uv_timer_start(&sup->tick, tick_cb, TICK_MS, TICK_MS);
  lunet_log(LUNET_LOG_INFO, "supervisor started", "workers",
            id_text(sup->nworkers, n), NULL);
  /* One worker first: its port-0 listeners decide the ports the others
   * share, and a script that cannot load fails once, not N times. */
  slot_spawn(&sup->slots[0]);
  return 0;
}

int lunet_supervisor_run(const struct lunet_cli *cli, char **argv) {
  struct lunet_supervisor sup = {0};
  int r = sup_init(&sup, cli, argv);
  if (r < 0) {
    lunet_log(LUNET_LOG_ERROR, "supervisor cannot start", "error",
              uv_strerror(r), NULL);
    return 1;
  }
  if (sup_start(&sup) < 0) {
    sup.exit_code = 1;
    sup.shutting_down = 1;
    lunet__sup_control_stop(&sup);
    sup_close(&sup);
  }
  uv_run(&sup.loop, UV_RUN_DEFAULT);
  if (cli->pidfile != NULL) unlink(cli->pidfile);
  if (uv_loop_close(&sup.loop) != 0)
    lunet_log(LUNET_LOG_ERROR, "supervisor loop not empty at exit", NULL);
  free(sup.slots);
  free(sup.ports);
  char code[8];
  snprintf(code, sizeof code, "%d", sup.exit_code);
  lunet_log(LUNET_LOG_INFO, "exited", "code", code, NULL);
  return sup.exit_code;
}
