/* Workers whose loop falls silent are killed and replaced (--worker-timeout).
 *
 * Two things speak for a worker (worker.c, worker_busy.c): its loop sends
 * a heartbeat frame once a second (any frame counts), and while the loop
 * runs a handler a thread reports that handler as within its budget. A
 * worker is silent from the later of the two: a loop stuck in a C call
 * outside any handler stops at once, a handler blocked in a C call (a
 * `sleep` through os.execute, a blocking read) stops once its budget ran
 * out, and a stopped process stops both. A handler still within its
 * budget is busy, not silent: the budget stops it if it overruns. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "supervisor_internal.h"
#include "worker_busy.h"

/* A liveness check this much later than the last one: the supervisor's
 * own loop stalled (a loaded machine, a stopped supervisor), and the
 * heartbeats of that time wait unread in the pipes. */
#define STALLED_MS 1000

void lunet__sup_heard(struct lunet_worker_slot *w) {
  w->heard_ms = uv_now(&w->sup->loop);
  w->over_budget = 0; /* the loop runs: no handler is in the way */
}

static void busy_line(struct lunet_worker_slot *w, const char *line) {
  if (line[0] == LUNET_BUSY_WITHIN) {
    w->busy_ms = uv_now(&w->sup->loop);
    w->over_budget = 0;
  } else if (line[0] == LUNET_BUSY_OVER) {
    w->over_budget = 1;
    snprintf(w->where, sizeof w->where, "%s", line[1] == ' ' ? line + 2 : "");
  }
}

/* Reports are lines; one cut by a read waits in busy_line for its end. A
 * line longer than the buffer (no worker writes one) is cut. */
static void busy_report(struct lunet_worker_slot *w, const char *bytes,
                        size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (bytes[i] != '\n') {
      if (w->busy_len + 1 < sizeof w->busy_line)
        w->busy_line[w->busy_len++] = bytes[i];
      continue;
    }
    w->busy_line[w->busy_len] = '\0';
    busy_line(w, w->busy_line);
    w->busy_len = 0;
  }
}

/* {==================================================================
 * What an unresponsive worker was doing
 * =================================================================== */

/* The loop thread's state from /proc (procfs is memory, not disk: a
 * read here does not block the supervisor): "stopped" for a SIGSTOP,
 * "sleeping" with the kernel function it waits in (do_wait for a child,
 * hrtimer_nanosleep, a socket read ...) where the kernel says. */
static void proc_state(long pid, char *state, size_t scap, char *wchan,
                       size_t wcap) {
  char path[64], line[512];
  FILE *f;
  snprintf(state, scap, "unknown");
  wchan[0] = '\0';
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  if ((f = fopen(path, "r")) != NULL) {
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = '\0';
    const char *close = strrchr(line, ')'); /* the name may hold ')' */
    const char *names =
        "R"
        "running\0"
        "S"
        "sleeping\0"
        "D"
        "disk\0"
        "T"
        "stopped\0"
        "t"
        "traced\0"
        "Z"
        "zombie\0";
    if (close != NULL && close[1] == ' ')
      for (const char *q = names; *q; q += strlen(q) + 1)
        if (*q == close[2]) snprintf(state, scap, "%s", q + 1);
  }
  snprintf(path, sizeof path, "/proc/%ld/wchan", pid);
  if ((f = fopen(path, "r")) != NULL) {
    size_t n = fread(wchan, 1, wcap - 1, f);
    fclose(f);
    wchan[n] = '\0';
    if (strcmp(wchan, "0") == 0) wchan[0] = '\0'; /* not said, or running */
  }
}

/* "loop": its loop was last heard; "handler": a handler within its
 * budget was; "handler_past_budget": that handler then overran it and
 * never came back (blocked outside Lua, where the budget cannot stop it). */
static const char *last_seen(const struct lunet_worker_slot *w) {
  if (w->over_budget) return "handler_past_budget";
  return w->busy_ms > w->heard_ms ? "handler" : "loop";
}

/* The log record's pairs, those with a value only. */
static void log_unresponsive(const char *const *kv, size_t n) {
  const char *pairs[32];
  int np = 0;
  for (size_t i = 0; i + 1 < n && np < 16; i += 2) {
    if (kv[i + 1][0] == '\0') continue;
    pairs[2 * np] = kv[i];
    pairs[2 * np + 1] = kv[i + 1];
    np++;
  }
  lunet_log_pairs(LUNET_LOG_ERROR, "worker unresponsive", pairs, np);
}

static void kill_unresponsive(struct lunet_worker_slot *w, uint64_t silent) {
  char id[16], pid[24], secs[24], limit[24], state[16], wchan[64];
  char service[64] = "", handler[64] = "";
  snprintf(id, sizeof id, "%d", w->id);
  snprintf(pid, sizeof pid, "%ld", w->pid);
  snprintf(secs, sizeof secs, "%.1f", (double)silent / 1000);
  snprintf(limit, sizeof limit, "%g",
           (double)w->sup->cli->worker_timeout_ms / 1000);
  proc_state(w->pid, state, sizeof state, wchan, sizeof wchan);
  /* Where the handler that overran was, as the worker said. */
  if (!w->over_budget || sscanf(w->where, "%63s %63s", service, handler) != 2)
    service[0] = handler[0] = '\0';
  const char *kv[] = {
      "id",        id,      "pid",       pid,          "silent_s", secs,
      "timeout_s", limit,   "last_seen", last_seen(w), "service",  service,
      "handler",   handler, "state",     state,        "wchan",    wchan};
  log_unresponsive(kv, sizeof kv / sizeof *kv);
  w->unresponsive = 1;
  /* SIGKILL: a stopped process, or one blocked in a call, takes nothing
   * else. Its exit is replaced in slot_exited, as unresponsive. */
  kill((pid_t)w->pid, SIGKILL);
}

/* }================================================================== */

void lunet__sup_check_liveness(struct lunet_supervisor *sup, uint64_t now) {
  uint64_t last = sup->liveness_tick_ms, limit = sup->cli->worker_timeout_ms;
  sup->liveness_tick_ms = now;
  if (limit == 0 || sup->shutting_down) return;
  if (last != 0 && now - last > STALLED_MS) return; /* read the pipes first */
  for (int i = 0; i < sup->nworkers; i++) {
    struct lunet_worker_slot *w = &sup->slots[i];
    /* Starting workers are not watched: they serve nobody yet, and a
     * script's load runs under the budget already. */
    if (w->pid == 0 || !w->ready || w->unresponsive) continue;
    uint64_t seen = w->heard_ms > w->busy_ms ? w->heard_ms : w->busy_ms;
    if (now > seen && now - seen > limit) kill_unresponsive(w, now - seen);
  }
}

/* {==================================================================
 * The busy pipe
 * =================================================================== */

static void busy_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct lunet_worker_slot *w = h->data;
  (void)suggested;
  *buf = uv_buf_init(w->busy_buf, sizeof w->busy_buf);
}

/* EOF comes with the worker's exit, which slot_exited handles. */
static void busy_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct lunet_worker_slot *w = s->data;
  if (nread < 0) {
    uv_read_stop(s);
    return;
  }
  busy_report(w, buf->base, (size_t)nread);
}

int lunet__sup_busy_start(struct lunet_worker_slot *w) {
  return uv_read_start((uv_stream_t *)&w->busy, busy_alloc, busy_read);
}

/* }================================================================== */
