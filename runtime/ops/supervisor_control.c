/* The supervisor's control socket and its fan-outs: a request that every
 * running worker answers over its channel (reload, stats), joined into one
 * reply once all have answered, exited, or the deadline passed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "strbuf.h"
#include "supervisor_internal.h"

/* Before `lunet reload` gives up waiting (30 s), so it hears why. */
#define FANOUT_DEADLINE_MS 25000
#define OUTCOME_MAX 2048

enum fanout_kind { FANOUT_RELOAD, FANOUT_STATS };

struct fanout {
  struct lunet_list node; /* in sup->fanouts */
  unsigned long id;
  int kind;
  uint64_t deadline_ms;
  int waiting;    /* answers still expected */
  char *asked;    /* per slot: asked and not answered yet */
  char **answers; /* per slot: malloc'd answer or NULL */
  long *pids;     /* per slot: the process that was asked */
  struct lunet_control_client *client; /* reload: who waits (or NULL) */
  lunet_fanout_done done;              /* stats */
  void *ud;
};

static void fanout_free(struct fanout *f, int nworkers) {
  for (int i = 0; i < nworkers; i++) free(f->answers[i]);
  free(f->answers);
  free(f->asked);
  free(f->pids);
  free(f);
}

/* {==================================================================
 * Finishing a fan-out
 * =================================================================== */

/* "worker 1: version=3 ...; worker 2 failed: file.lua:3: ..." */
static void reload_finish(struct lunet_supervisor *sup, struct fanout *f) {
  struct lunet_strbuf out = {0};
  int failed = 0, asked = 0;
  for (int i = 0; i < sup->nworkers; i++) {
    const char *a = f->answers[i];
    if (i > 0) lunet_strbuf_puts(&out, "; ");
    if (f->pids[i] == 0) {
      lunet_strbuf_printf(&out, "worker %d: not running", i + 1);
      continue;
    }
    asked++;
    int ok = a != NULL && strncmp(a, "ok ", 3) == 0;
    failed += !ok;
    const char *detail = a == NULL                      ? "no answer in time"
                         : ok                           ? a + 3
                         : strncmp(a, "error ", 6) == 0 ? a + 6
                                                        : a;
    lunet_strbuf_printf(&out, "worker %d%s: %s", i + 1, ok ? "" : " failed",
                        detail);
  }
  if (asked == 0) failed = 1;
  const char *text = out.failed ? "out of memory" : out.p ? out.p : "";
  lunet_log(failed ? LUNET_LOG_ERROR : LUNET_LOG_INFO,
            failed ? "reload failed" : "reloaded", "outcome", text, NULL);
  if (f->client != NULL)
    lunet_control_reply(f->client, failed ? "error" : "ok", text);
  lunet_strbuf_free(&out);
}

static void fanout_finish(struct lunet_supervisor *sup, struct fanout *f) {
  lunet_list_remove(&f->node);
  if (f->kind == FANOUT_RELOAD)
    reload_finish(sup, f);
  else
    f->done(f->ud, sup, f->answers);
  fanout_free(f, sup->nworkers);
}

static void fanout_settle(struct lunet_supervisor *sup, struct fanout *f,
                          int slot, char *answer) {
  if (!f->asked[slot]) return free(answer);
  f->asked[slot] = 0;
  f->answers[slot] = answer;
  if (--f->waiting == 0) fanout_finish(sup, f);
}

static struct fanout *fanout_find(struct lunet_supervisor *sup,
                                  unsigned long id) {
  for (struct lunet_list *q = sup->fanouts.next; q != &sup->fanouts;
       q = q->next) {
    struct fanout *f = lunet_container_of(q, struct fanout, node);
    if (f->id == id) return f;
  }
  return NULL;
}

void lunet__sup_answer(struct lunet_supervisor *sup,
                       struct lunet_worker_slot *w, int type,
                       const char *payload, size_t len) {
  char *end;
  unsigned long id = strtoul(payload, &end, 10);
  struct fanout *f = fanout_find(sup, id);
  if (f == NULL || end == payload || (size_t)(end - payload) >= len ||
      *end != ' ')
    return; /* late (expired) or malformed: nobody waits for it */
  if ((f->kind == FANOUT_RELOAD) != (type == LUNET_FRAME_RELOADED)) return;
  size_t n = len - (size_t)(end + 1 - payload);
  char *answer = malloc(n + 1);
  if (answer != NULL) {
    memcpy(answer, end + 1, n);
    answer[n] = '\0';
    if (f->kind == FANOUT_RELOAD) lunet_control_flatten(answer);
  }
  fanout_settle(sup, f, w->id - 1, answer);
}

/* Settling may finish and free a fan-out: step before each one. */
void lunet__sup_worker_gone(struct lunet_supervisor *sup,
                            struct lunet_worker_slot *w) {
  struct lunet_list *q, *next;
  for (q = sup->fanouts.next; q != &sup->fanouts; q = next) {
    next = q->next;
    struct fanout *f = lunet_container_of(q, struct fanout, node);
    if (f->asked[w->id - 1])
      fanout_settle(sup, f, w->id - 1, strdup("error worker exited"));
  }
}

void lunet__sup_expire(struct lunet_supervisor *sup, uint64_t now_ms) {
  struct lunet_list *q, *next;
  for (q = sup->fanouts.next; q != &sup->fanouts; q = next) {
    next = q->next;
    struct fanout *f = lunet_container_of(q, struct fanout, node);
    if (now_ms >= f->deadline_ms) fanout_finish(sup, f);
  }
}

/* }================================================================== */

/* {==================================================================
 * Starting a fan-out
 * =================================================================== */

static struct fanout *fanout_new(struct lunet_supervisor *sup, int kind) {
  struct fanout *f = calloc(1, sizeof *f);
  if (f == NULL) return NULL;
  f->asked = calloc((size_t)sup->nworkers, 1);
  f->answers = calloc((size_t)sup->nworkers, sizeof *f->answers);
  f->pids = calloc((size_t)sup->nworkers, sizeof *f->pids);
  if (f->asked == NULL || f->answers == NULL || f->pids == NULL) {
    fanout_free(f, 0);
    return NULL;
  }
  f->id = ++sup->last_fanout_id;
  f->kind = kind;
  f->deadline_ms = uv_now(&sup->loop) + FANOUT_DEADLINE_MS;
  lunet_list_push(&sup->fanouts, &f->node);
  return f;
}

/* Sends "ID[ ARG]" to every worker with a running process; finishes the
 * fan-out at once when nobody could be asked. */
static void fanout_send(struct lunet_supervisor *sup, struct fanout *f,
                        int type, const char *arg) {
  char line[64];
  int n = arg ? snprintf(line, sizeof line, "%lu %s", f->id, arg)
              : snprintf(line, sizeof line, "%lu", f->id);
  for (int i = 0; i < sup->nworkers; i++) {
    struct lunet_worker_slot *w = &sup->slots[i];
    if (w->pid == 0 ||
        lunet_channel_send(&w->ch, type, line, (size_t)n, NULL, 0) < 0)
      continue;
    f->asked[i] = 1;
    f->pids[i] = w->pid;
    f->waiting++;
  }
  if (f->waiting == 0) fanout_finish(sup, f);
}

void lunet__sup_reload(struct lunet_supervisor *sup,
                       struct lunet_control_client *client) {
  struct fanout *f = fanout_new(sup, FANOUT_RELOAD);
  if (f == NULL) {
    if (client != NULL) lunet_control_reply(client, "error", "out of memory");
    return;
  }
  f->client = client;
  lunet_log(LUNET_LOG_INFO, "reloading workers", "trigger",
            client ? "control" : "SIGHUP", NULL);
  fanout_send(sup, f, LUNET_FRAME_RELOAD, NULL);
}

void lunet__sup_ask_stats(struct lunet_supervisor *sup, const char *mode,
                          lunet_fanout_done done, void *ud) {
  struct fanout *f = fanout_new(sup, FANOUT_STATS);
  if (f == NULL) return done(ud, sup, NULL);
  f->done = done;
  f->ud = ud;
  fanout_send(sup, f, LUNET_FRAME_STATS_ASK, mode);
}

/* }================================================================== */

/* {==================================================================
 * Control commands
 * =================================================================== */

/* "last_restart":"unresponsive" (or null: never replaced) */
static void json_worker(struct lunet_strbuf *out,
                        const struct lunet_worker_slot *w, const char *stats) {
  lunet_strbuf_printf(out, "{\"worker\":%d,\"pid\":%ld,\"restarts\":%llu,",
                      w->id, w->pid, (unsigned long long)w->replaced);
  if (w->last_replaced < 0)
    lunet_strbuf_puts(out, "\"last_restart\":null,");
  else
    lunet_strbuf_printf(out, "\"last_restart\":\"%s\",",
                        lunet__replaced_names[w->last_replaced]);
  lunet_strbuf_printf(out, "\"stats\":%s}", stats ? stats : "null");
}

static void stats_json_done(void *ud, struct lunet_supervisor *sup,
                            char *const *answers) {
  struct lunet_strbuf out = {0};
  lunet_strbuf_printf(&out,
                      "{\"supervisor\":{\"pid\":%ld,\"workers\":%d,"
                      "\"worker_timeout_s\":%g,\"restarts\":%llu,"
                      "\"restarts_by_reason\":{",
                      (long)getpid(), sup->nworkers,
                      (double)sup->cli->worker_timeout_ms / 1000,
                      (unsigned long long)sup->restarts);
  for (int r = 0; r < LUNET_REPLACED_REASONS; r++)
    lunet_strbuf_printf(&out, "%s\"%s\":%llu", r ? "," : "",
                        lunet__replaced_names[r],
                        (unsigned long long)sup->replaced[r]);
  lunet_strbuf_puts(&out, "}},\"workers\":[");
  for (int i = 0; i < sup->nworkers; i++) {
    if (i > 0) lunet_strbuf_puts(&out, ",");
    json_worker(&out, &sup->slots[i], answers ? answers[i] : NULL);
  }
  lunet_strbuf_puts(&out, "]}");
  lunet_control_reply(ud, out.failed ? "error" : "ok",
                      out.failed ? "out of memory" : out.p);
  lunet_strbuf_free(&out);
}

static void stats_text_done(void *ud, struct lunet_supervisor *sup,
                            char *const *answers) {
  struct lunet_strbuf out = {0};
  lunet_strbuf_printf(&out, "supervisor pid %ld, %d workers, %llu restarts",
                      (long)getpid(), sup->nworkers,
                      (unsigned long long)sup->restarts);
  for (int r = 0; r < LUNET_REPLACED_REASONS; r++)
    lunet_strbuf_printf(&out, "%s%s %llu", r ? ", " : " (",
                        lunet__replaced_names[r],
                        (unsigned long long)sup->replaced[r]);
  lunet_strbuf_puts(&out, ")\n");
  for (int i = 0; i < sup->nworkers; i++) {
    const struct lunet_worker_slot *w = &sup->slots[i];
    lunet_strbuf_printf(&out, "\n== worker %d (pid %ld", i + 1, w->pid);
    if (w->last_replaced >= 0)
      lunet_strbuf_printf(&out, "; replaced %llu, last: %s",
                          (unsigned long long)w->replaced,
                          lunet__replaced_names[w->last_replaced]);
    lunet_strbuf_printf(&out, ") ==\n%s\n",
                        answers && answers[i] ? answers[i] : "(no answer)");
  }
  lunet_control_reply(ud, out.failed ? "error" : "ok",
                      out.failed ? "out of memory" : out.p);
  lunet_strbuf_free(&out);
}

static void sup_reload(struct lunet_control_client *c, void *ud) {
  lunet__sup_reload(ud, c);
}

static void sup_stats(struct lunet_control_client *c, void *ud, int text) {
  if (text)
    lunet__sup_ask_stats(ud, "text", stats_text_done, c);
  else
    lunet__sup_ask_stats(ud, "json", stats_json_done, c);
}

static void sup_ping(void *ud, char *out, size_t cap) {
  snprintf(out, cap, "pid=%ld workers=%d", (long)getpid(),
           ((struct lunet_supervisor *)ud)->nworkers);
}

static void sup_command(struct lunet_control_client *c, const char *request,
                        void *ud) {
  static const struct lunet_control_commands cmds = {sup_reload, sup_stats,
                                                     sup_ping};
  lunet_control_dispatch(c, request, &cmds, ud);
}

int lunet__sup_control_start(struct lunet_supervisor *sup) {
  return lunet_control_listen(&sup->loop, sup->cli->control, sup_command, sup,
                              &sup->control) < 0
             ? -1
             : 0;
}

void lunet__sup_control_stop(struct lunet_supervisor *sup) {
  if (sup->control == NULL) return;
  lunet_control_close(sup->control);
  sup->control = NULL;
}

/* }================================================================== */
