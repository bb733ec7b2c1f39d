#include "worker_busy.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include <pthread.h>
#include <uv.h>

#include "budget.h"

#define LOOK_EVERY_NS 250000000ull   /* 250 ms */
#define REPORT_EVERY_NS 500000000ull /* at most twice a second */

struct lunet_worker_busy {
  const struct lunet_budget *budget;
  int fd;
  uv_thread_t thread;
  uv_mutex_t mu;
  uv_cond_t wake; /* stop */
  int stop;
  /* The thread's own: the event running at the last look, since when,
   * and what was said about it. */
  uint64_t seen, seen_since, reported_at;
  int over_reported;
};

/* Non-blocking: a supervisor that does not read loses reports, and the
 * thread never waits for it. */
static void report(struct lunet_worker_busy *r, char what) {
  ssize_t n;
  do n = write(r->fd, &what, 1);
  while (n < 0 && errno == EINTR);
}

/* The event counter is odd while an event runs (budget.h). An event is
 * judged from when this thread first saw it, so it counts as within its
 * budget for up to one look longer than the budget itself. */
static void busy_look(struct lunet_worker_busy *r) {
  uint64_t event =
      atomic_load_explicit(&r->budget->event, memory_order_relaxed);
  uint64_t now = uv_hrtime();
  if ((event & 1) == 0) return; /* between events the loop speaks itself */
  if (event != r->seen) {
    r->seen = event, r->seen_since = now;
    r->over_reported = 0;
  }
  if (now - r->seen_since < r->budget->time_ns) {
    if (now - r->reported_at < REPORT_EVERY_NS) return;
    r->reported_at = now;
    report(r, LUNET_BUSY_WITHIN);
  } else if (!r->over_reported) {
    r->over_reported = 1;
    report(r, LUNET_BUSY_OVER);
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
  fcntl(fd, F_SETFD, FD_CLOEXEC); /* not for programs the script starts */
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
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
  close(fd);
  free(r);
  return err;
}

void lunet_worker_busy_stop(struct lunet_worker_busy *r) {
  if (r == NULL) return;
  uv_mutex_lock(&r->mu);
  r->stop = 1;
  uv_cond_signal(&r->wake);
  uv_mutex_unlock(&r->mu);
  uv_thread_join(&r->thread);
  uv_cond_destroy(&r->wake);
  uv_mutex_destroy(&r->mu);
  close(r->fd);
  free(r);
}
