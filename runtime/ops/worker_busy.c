#include "worker_busy.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "budget.h"
#include "call.h"

#define LOOK_EVERY_NS 250000000ull   /* 250 ms */
#define REPORT_EVERY_NS 500000000ull /* at most twice a second */
#define WHERE_SIGNAL (SIGRTMIN + 1)  /* SIGRTMIN is the budget's */
#define WHERE_MAX 136                /* "SERVICE HANDLER", each cut at 63 */

enum { WHERE_IDLE, WHERE_ASKED, WHERE_READY };

struct lunet_worker_busy {
  const struct lunet_budget *budget;
  int fd;
  pthread_t loop_thread;
  uv_thread_t thread;
  uv_mutex_t mu;
  uv_cond_t wake; /* stop */
  int stop;
  /* The thread's own: the event running at the last look, since when,
   * and what was said about it. */
  uint64_t seen, seen_since, reported_at;
  int over_reported;
  /* Where an overrunning handler is, as the loop thread's signal handler
   * found it: written there, then published by `where_state`. */
  _Atomic int where_state;
  char where[WHERE_MAX];
};

/* One worker per process: the signal handler's context. */
static struct lunet_worker_busy *_Atomic signalled;

/* {==================================================================
 * Where the loop is: asked of the loop thread itself
 *
 * Only the loop thread may read the context of the handler it runs
 * (call.h): the handler's frame is alive while it is interrupted there.
 * The budget's watchdog signals the loop thread at the same moment (an
 * overrun), so this adds no new kind of interruption: calls restart
 * (SA_RESTART) where the kernel allows.
 * =================================================================== */

/* Async-signal-safe: plain copies, names cut to letters, digits, '_',
 * '-', '.' and ':' so that the supervisor's log stays one word each. */
static size_t put_word(char *out, size_t at, size_t cap, const char *s) {
  for (size_t n = 0; s != NULL && *s && n < 63 && at + 1 < cap; s++, n++) {
    char c = *s;
    int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.' ||
                c == ':';
    out[at++] = plain ? c : '_';
  }
  return at;
}

static void where_signal(int sig) {
  struct lunet_worker_busy *r = atomic_load(&signalled);
  (void)sig;
  if (r == NULL || atomic_load(&r->where_state) != WHERE_ASKED) return;
  const struct lunet_call_ctx *ctx = lunet_call_current();
  size_t at = 0;
  if (ctx != NULL) {
    at = put_word(r->where, at, sizeof r->where,
                  ctx->service ? ctx->service : "-");
    r->where[at++] = ' ';
    at = put_word(r->where, at, sizeof r->where, ctx->handler);
  }
  r->where[at] = '\0';
  atomic_store_explicit(&r->where_state, WHERE_READY, memory_order_release);
}

static int where_install(void) {
  struct sigaction sa = {0};
  sa.sa_handler = where_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  return sigaction(WHERE_SIGNAL, &sa, NULL) < 0 ? uv_translate_sys_error(errno)
                                                : 0;
}

/* }================================================================== */

/* Non-blocking: a supervisor that does not read loses reports, and the
 * thread never waits for it. One line per report (worker_busy.h). */
static void report(struct lunet_worker_busy *r, char what, const char *where) {
  char line[WHERE_MAX + 4];
  int n = where != NULL && *where
              ? snprintf(line, sizeof line, "%c %s\n", what, where)
              : snprintf(line, sizeof line, "%c\n", what);
  ssize_t w;
  do w = write(r->fd, line, (size_t)n);
  while (w < 0 && errno == EINTR);
}

/* An overrun: first ask the loop thread where it is, then say it on the
 * next look, with the answer if the same event still runs. */
static void report_over(struct lunet_worker_busy *r) {
  int state = atomic_load_explicit(&r->where_state, memory_order_acquire);
  if (state == WHERE_IDLE) {
    atomic_store(&r->where_state, WHERE_ASKED);
    pthread_kill(r->loop_thread, WHERE_SIGNAL);
    return;
  }
  r->over_reported = 1;
  report(r, LUNET_BUSY_OVER, state == WHERE_READY ? r->where : NULL);
  atomic_store(&r->where_state, WHERE_IDLE);
}

/* The event counter is odd while an event runs (budget.h). An event is
 * judged from when this thread first saw it, so it counts as within its
 * budget for up to one look longer than the budget itself. */
static void busy_look(struct lunet_worker_busy *r) {
  uint64_t event =
      atomic_load_explicit(&r->budget->event, memory_order_relaxed);
  uint64_t now = uv_hrtime();
  if ((event & 1) == 0) { /* between events the loop speaks itself */
    atomic_store(&r->where_state, WHERE_IDLE);
    return;
  }
  if (event != r->seen) {
    r->seen = event, r->seen_since = now;
    r->over_reported = 0;
    atomic_store(&r->where_state, WHERE_IDLE); /* an answer about another */
  }
  if (now - r->seen_since < r->budget->time_ns) {
    if (now - r->reported_at < REPORT_EVERY_NS) return;
    r->reported_at = now;
    report(r, LUNET_BUSY_WITHIN, NULL);
  } else if (!r->over_reported) {
    report_over(r);
  }
}

static void busy_run(void *arg) {
  struct lunet_worker_busy *r = arg;
  sigset_t all;
  /* Signals are the loop thread's (libuv's handlers, the budget's). */
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  uv_mutex_lock(&r->mu);
  while (!r->stop)
    if (uv_cond_timedwait(&r->wake, &r->mu, LOOK_EVERY_NS) == UV_ETIMEDOUT)
      busy_look(r);
  uv_mutex_unlock(&r->mu);
}

int lunet_worker_busy_start(struct lunet_worker_busy **out,
                            const struct lunet_budget *b, int fd) {
  struct lunet_worker_busy *r;
  int err;
  *out = NULL;
  if (b->time_ns == 0) return close(fd), 0;
  if ((r = calloc(1, sizeof *r)) == NULL) return close(fd), UV_ENOMEM;
  r->budget = b;
  r->fd = fd;
  r->loop_thread = pthread_self();
  fcntl(fd, F_SETFD, FD_CLOEXEC); /* not for programs the script starts */
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  atomic_store(&signalled, r);
  if ((err = where_install()) < 0) goto fail;
  if ((err = uv_mutex_init(&r->mu)) < 0) goto fail;
  if ((err = uv_cond_init(&r->wake)) < 0) goto fail_mutex;
  if ((err = uv_thread_create(&r->thread, busy_run, r)) < 0) goto fail_cond;
  *out = r;
  return 0;
fail_cond:
  uv_cond_destroy(&r->wake);
fail_mutex:
  uv_mutex_destroy(&r->mu);
fail:
  atomic_store(&signalled, NULL);
  close(fd);
  free(r);
  return err;
}

/* The signal stays installed, finding no context: one may still be on
 * its way to the loop thread. */
void lunet_worker_busy_stop(struct lunet_worker_busy *r) {
  if (r == NULL) return;
  uv_mutex_lock(&r->mu);
  r->stop = 1;
  uv_cond_signal(&r->wake);
  uv_mutex_unlock(&r->mu);
  uv_thread_join(&r->thread);
  atomic_store(&signalled, NULL);
  uv_cond_destroy(&r->wake);
  uv_mutex_destroy(&r->mu);
  close(r->fd);
  free(r);
}
