#include "tls_load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "log.h"
#include "loop.h"
#include "service.h"
#include "tls.h"

struct tls_job {
  struct lunet_tls_config *cfg; /* a copy: the service asking may go */
  struct lunet_tls_ctx *prev;   /* the live service's, to keep if same */
  struct lunet_tls_ctx *built;
  unsigned char prev_digest[32];
  int has_prev, unchanged, done, logged;
  char err[512];
};

struct lunet_tls_jobs {
  struct tls_job *job;
  int n, cap;
  int running; /* the pool has them */
  uv_work_t work;
  void (*cb)(void *ud);
  void *ud;
};

static struct lunet_tls_jobs *jobs_of(struct lunet_runtime *rt) {
  if (rt->tls_jobs == NULL) rt->tls_jobs = calloc(1, sizeof *rt->tls_jobs);
  return rt->tls_jobs;
}

static struct tls_job *find_job(struct lunet_tls_jobs *j,
                                const struct lunet_tls_config *cfg) {
  for (int i = 0; i < j->n; i++)
    if (lunet_tls_config_same(j->job[i].cfg, cfg)) return &j->job[i];
  return NULL;
}

static int add_job(struct lunet_runtime *rt, struct lunet_tls_jobs *j,
                   const struct lunet_service *svc) {
  if (j->n == j->cap) {
    int cap = j->cap ? 2 * j->cap : 4;
    struct tls_job *more = realloc(j->job, (size_t)cap * sizeof *more);
    if (more == NULL) return -1;
    j->job = more, j->cap = cap;
  }
  struct tls_job *job = &j->job[j->n];
  memset(job, 0, sizeof *job);
  if ((job->cfg = lunet_tls_config_copy(svc->tls_config)) == NULL) return -1;
  const struct lunet_service *live = lunet_service_find(rt, svc->name);
  if (live != NULL && live != svc && live->transport_ctx != NULL) {
    job->prev = lunet_tls_ctx_ref(live->transport_ctx);
    memcpy(job->prev_digest, job->prev->digest, sizeof job->prev_digest);
    job->has_prev = 1;
  }
  j->n++;
  return 0;
}

/* The context job made for svc: the built one, or the live one when
 * nothing changed. */
static struct lunet_tls_ctx *job_result(struct tls_job *job,
                                        const char *service) {
  if (job->unchanged) return lunet_tls_ctx_ref(job->prev);
  if (!job->logged) lunet_tls_log_loaded(job->built, service);
  job->logged = 1;
  return lunet_tls_ctx_ref(job->built);
}

int lunet__tls_attach(struct lunet_runtime *rt, struct lunet_list *services,
                      char *err, size_t errcap) {
  struct lunet_tls_jobs *j = jobs_of(rt);
  int wanted = 0;
  if (j == NULL) return snprintf(err, errcap, "tls: out of memory"), -1;
  for (struct lunet_list *q = services->next; q != services; q = q->next) {
    struct lunet_service *svc = lunet_container_of(q, struct lunet_service,
                                                   node);
    if (svc->tls_config == NULL) continue;
    struct tls_job *job = find_job(j, svc->tls_config);
    if (job == NULL) {
      if (add_job(rt, j, svc) < 0)
        return snprintf(err, errcap, "tls: out of memory"), -1;
      wanted = 1;
    } else if (job->done && job->built == NULL && !job->unchanged) {
      return snprintf(err, errcap, "%s: service '%s': %s", rt->script_path,
                      svc->name, job->err), -1;
    } else if (job->done) {
      lunet_service_set_tls(svc, job_result(job, svc->name));
    } else {
      wanted = 1;
    }
  }
  return wanted;
}

int lunet__tls_wanted(const struct lunet_runtime *rt) {
  const struct lunet_tls_jobs *j = rt->tls_jobs;
  if (j == NULL) return 0;
  for (int i = 0; i < j->n; i++)
    if (!j->job[i].done) return 1;
  return 0;
}

/* Any thread. */
static void run_jobs(struct lunet_tls_jobs *j) {
  for (int i = 0; i < j->n; i++) {
    struct tls_job *job = &j->job[i];
    if (job->done) continue;
    job->built = lunet_tls_build(job->cfg,
                                 job->has_prev ? job->prev_digest : NULL,
                                 &job->unchanged, job->err, sizeof job->err);
  }
}

static void mark_done(struct lunet_tls_jobs *j) {
  for (int i = 0; i < j->n; i++) j->job[i].done = 1;
}

static void work_cb(uv_work_t *w) { run_jobs(w->data); }

static void after_work_cb(uv_work_t *w, int status) {
  struct lunet_tls_jobs *j = w->data;
  (void)status; /* a cancelled build finds no ctx: the reload fails */
  mark_done(j);
  j->running = 0;
  j->cb(j->ud);
}

int lunet__tls_build_async(struct lunet_runtime *rt, void (*cb)(void *ud),
                           void *ud) {
  struct lunet_tls_jobs *j = rt->tls_jobs;
  if (j == NULL || j->running) return UV_EBUSY;
  j->cb = cb, j->ud = ud;
  j->work.data = j;
  int r = uv_queue_work(&rt->loop, &j->work, work_cb, after_work_cb);
  if (r == 0) j->running = 1;
  return r;
}

void lunet__tls_build_now(struct lunet_runtime *rt) {
  if (rt->tls_jobs == NULL) return;
  run_jobs(rt->tls_jobs);
  mark_done(rt->tls_jobs);
}

void lunet__tls_jobs_clear(struct lunet_runtime *rt) {
  struct lunet_tls_jobs *j = rt->tls_jobs;
  if (j == NULL || j->running) return;
  for (int i = 0; i < j->n; i++) {
    lunet_tls_config_free(j->job[i].cfg);
    lunet_tls_ctx_unref(j->job[i].prev);
    lunet_tls_ctx_unref(j->job[i].built);
  }
  free(j->job);
  free(j);
  rt->tls_jobs = NULL;
}
