#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <lauxlib.h>

#include "channel.h"
#include "cli.h"
#include "log.h"
#include "metrics.h"
#include "pubsub.h"
#include "reload.h"
#include "runtime.h"
#include "service.h"
#include "tls.h"
#include "worker_busy.h"

#define RELOADS_PENDING_MAX 32
#define HEARTBEAT_MS 1000

struct lunet_worker {
  struct lunet_channel ch;
  struct lunet_runtime *rt;
  uv_timer_t heartbeat; /* closed with the channel */
  struct lunet_worker_busy *busy;
  /* ids of reloads asked for, in order: reload.c answers in that order */
  unsigned long reload_ids[RELOADS_PENDING_MAX];
  int reloads_head, reloads_count;
};

static char worker_label[24]; /* the log field's value outlives main */
static char *known_ports;     /* LUNET_WORKER_PORTS, kept for reloads */

int lunet_worker_identify(struct lunet_cli *cli, char *err, size_t errcap) {
  const char *id = getenv("LUNET_WORKER"), *count = getenv("LUNET_WORKERS");
  char *end1 = NULL, *end2 = NULL;
  if (id == NULL) return 0;
  long n = strtol(id, &end1, 10), of = count ? strtol(count, &end2, 10) : 0;
  if (*id == '\0' || *end1 != '\0' || count == NULL || *end2 != '\0' || n < 1 ||
      of < n || of > LUNET_WORKERS_MAX)
    return snprintf(err, errcap,
                    "malformed LUNET_WORKER/LUNET_WORKERS "
                    "environment (set by the supervisor)"),
           -1;
  cli->worker_id = (int)n;
  cli->workers = (int)of;
  const char *ports = getenv("LUNET_WORKER_PORTS");
  known_ports = strdup(ports ? ports : "");
  /* Programs the script starts are not workers of ours. */
  unsetenv("LUNET_WORKER");
  unsetenv("LUNET_WORKERS");
  unsetenv("LUNET_WORKER_PORTS");
  snprintf(worker_label, sizeof worker_label, "%ld", n);
  lunet_log_set_process_field("worker", worker_label);
  return 0;
}

/* {==================================================================
 * Requests from the supervisor
 * =================================================================== */

static int channel_open(struct lunet_worker *w);

static void send_logged(struct lunet_worker *w, int type, const char *a,
                        size_t alen, const char *b, size_t blen) {
  if (!channel_open(w)) return; /* the supervisor is gone, or we stop */
  int r = lunet_channel_send(&w->ch, type, a, alen, b, blen);
  if (r < 0) {
    char t[2] = {(char)type, '\0'};
    lunet_channel_note_drop(&w->ch, t, "supervisor", r);
  }
}

static void reloaded(int status, const char *msg, void *ud) {
  struct lunet_worker *w = ud;
  char head[48];
  if (w->reloads_count == 0) return; /* cannot happen: one answer each */
  unsigned long id = w->reload_ids[w->reloads_head];
  w->reloads_head = (w->reloads_head + 1) % RELOADS_PENDING_MAX;
  w->reloads_count--;
  int n =
      snprintf(head, sizeof head, "%lu %s ", id, status == 0 ? "ok" : "error");
  send_logged(w, LUNET_FRAME_RELOADED, head, (size_t)n, msg, strlen(msg));
}

static void reload_asked(struct lunet_worker *w, const char *payload,
                         size_t len) {
  char id[24];
  snprintf(id, sizeof id, "%.*s", (int)(len < 23 ? len : 23), payload);
  if (w->reloads_count == RELOADS_PENDING_MAX) {
    char line[64];
    int n =
        snprintf(line, sizeof line, "%s error too many reloads pending", id);
    return send_logged(w, LUNET_FRAME_RELOADED, line, (size_t)n, NULL, 0);
  }
  int slot = (w->reloads_head + w->reloads_count) % RELOADS_PENDING_MAX;
  w->reload_ids[slot] = strtoul(id, NULL, 10);
  w->reloads_count++;
  lunet_reload_async(w->rt, "supervisor", reloaded, w);
}

/* Runs protected: building a large stats text may run out of memory. */
static int build_stats(lua_State *L) {
  struct lunet_runtime *rt = lunet_rt(L);
  const char *mode = lua_tostring(L, 1);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  if (strcmp(mode, "text") == 0)
    lunet_metrics_text(L, rt, &b);
  else if (strcmp(mode, "prometheus") == 0)
    lunet_metrics_prometheus(L, rt, &b);
  else
    lunet_metrics_json(L, rt, &b);
  luaL_pushresult(&b);
  return 1;
}

/* "ID MODE" -> "ID BODY" */
static void stats_asked(struct lunet_worker *w, const char *payload,
                        size_t len) {
  lua_State *L = w->rt->L;
  char line[64], *mode;
  snprintf(line, sizeof line, "%.*s", (int)(len < 63 ? len : 63), payload);
  if ((mode = strchr(line, ' ')) == NULL) return;
  *mode++ = '\0';
  lua_pushcfunction(L, build_stats);
  lua_pushstring(L, mode);
  int ok = lua_pcall(L, 1, 1, 0) == LUA_OK;
  size_t blen = 0;
  /* Failed (out of memory): an empty answer of the asked kind. */
  const char *body = ok                          ? lua_tolstring(L, -1, &blen)
                     : strcmp(mode, "json") == 0 ? "null"
                                                 : "";
  if (!ok) blen = strlen(body);
  char head[32];
  int n = snprintf(head, sizeof head, "%s ", line);
  send_logged(w, LUNET_FRAME_STATS, head, (size_t)n, body, blen);
  lua_pop(L, 1);
}

static void frame_cb(struct lunet_channel *ch, int type, const char *payload,
                     size_t len) {
  struct lunet_worker *w = ch->data;
  const char *nul;
  switch (type) {
    case LUNET_FRAME_DELIVER:
      if ((nul = memchr(payload, '\0', len)) == NULL) break;
      lunet_pubsub_deliver(w->rt, payload, (size_t)(nul - payload), nul + 1,
                           len - (size_t)(nul - payload) - 1);
      break;
    case LUNET_FRAME_RELOAD:
      reload_asked(w, payload, len);
      break;
    case LUNET_FRAME_STATS_ASK:
      stats_asked(w, payload, len);
      break;
    case LUNET_FRAME_TICKET_KEYS:
      if (len == 2 * LUNET_TLS_TICKET_KEY_SIZE)
        lunet_tls_tickets_set((const unsigned char *)payload,
                              (const unsigned char *)payload +
                                  LUNET_TLS_TICKET_KEY_SIZE);
      else if (len == LUNET_TLS_TICKET_KEY_SIZE)
        lunet_tls_tickets_set((const unsigned char *)payload, NULL);
      break;
    default:
      break; /* a newer supervisor's frame: ignore it */
  }
}

/* Without the supervisor nobody can replace, reload or stop this worker:
 * it stops by itself, gracefully. */
static void channel_end(struct lunet_channel *ch, int error) {
  struct lunet_worker *w = ch->data;
  if (w->rt->shutting_down) return;
  lunet_log(LUNET_LOG_WARN, "supervisor gone, shutting down", "why",
            error == UV_EOF ? "channel closed" : uv_strerror(error), NULL);
  lunet_runtime_shutdown(w->rt, "supervisor gone");
}

/* }================================================================== */

/* {==================================================================
 * Liveness: the supervisor replaces a worker that falls silent
 * =================================================================== */

/* From a loop timer, so that a loop stuck in any call (or a stopped
 * process) stops sending: that silence is what --worker-timeout
 * measures. Handlers that keep the loop busy within their budget are
 * reported by the busy thread instead. */
static void heartbeat_cb(uv_timer_t *t) {
  send_logged(t->data, LUNET_FRAME_HEARTBEAT, "", 0, NULL, 0);
}

static void liveness_start(struct lunet_worker *w) {
  int r;
  uv_timer_start(&w->heartbeat, heartbeat_cb, HEARTBEAT_MS, HEARTBEAT_MS);
  uv_unref((uv_handle_t *)&w->heartbeat); /* must not keep a stop waiting */
  /* A supervisor without the busy pipe (none on descriptor 4) gets the
   * heartbeat alone. */
  if (fcntl(LUNET_WORKER_BUSY_FD, F_GETFD) < 0) return;
  r = lunet_worker_busy_start(&w->busy, &w->rt->budget, LUNET_WORKER_BUSY_FD);
  if (r < 0)
    lunet_log(LUNET_LOG_WARN, "cannot report busy handlers", "error",
              uv_strerror(r), NULL);
}

/* }================================================================== */

int lunet_worker_attach(struct lunet_runtime *rt) {
  struct lunet_worker *w = calloc(1, sizeof *w);
  int r;
  if (w == NULL) return UV_ENOMEM;
  w->rt = rt;
  rt->worker = w; /* freed with the runtime, whatever happens next */
  uv_timer_init(&rt->loop, &w->heartbeat);
  w->heartbeat.data = w;
  lunet_channel_init(&w->ch, &rt->loop, frame_cb, channel_end);
  w->ch.data = w;
  /* Programs the script starts must not hold the channel open. */
  fcntl(LUNET_WORKER_CHANNEL_FD, F_SETFD, FD_CLOEXEC);
  if ((r = lunet_channel_open(&w->ch, LUNET_WORKER_CHANNEL_FD)) < 0 ||
      (r = lunet_channel_start(&w->ch)) < 0) {
    lunet_log(LUNET_LOG_ERROR, "cannot open the supervisor channel", "error",
              uv_strerror(r), NULL);
    lunet_channel_close(&w->ch);
    return r;
  }
  /* The channel alone must not keep a stopping worker alive. */
  uv_unref((uv_handle_t *)&w->ch.pipe);
  liveness_start(w);
  return 0;
}

/* The struct outlives its channel: a reload that finishes during the
 * teardown still calls back with it (and finds the channel closed). */
void lunet_worker_detach(struct lunet_runtime *rt) {
  struct lunet_worker *w = rt->worker;
  if (w == NULL) return;
  lunet_channel_close(&w->ch);
  if (!uv_is_closing((uv_handle_t *)&w->heartbeat))
    uv_close((uv_handle_t *)&w->heartbeat, NULL);
  lunet_worker_busy_stop(w->busy);
  w->busy = NULL;
}

/* After detach, once the loop has run empty (the timer's close is done). */
void lunet_worker_free(struct lunet_runtime *rt) {
  free(rt->worker);
  rt->worker = NULL;
}

static int channel_open(struct lunet_worker *w) {
  return !w->ch.ended && !uv_is_closing((uv_handle_t *)&w->ch.pipe);
}

void lunet_worker_ready(struct lunet_runtime *rt, const char *metrics_addr) {
  struct lunet_worker *w = rt->worker;
  if (w == NULL) return;
  if (metrics_addr != NULL && *metrics_addr)
    send_logged(w, LUNET_FRAME_METRICS_ADDR, metrics_addr, strlen(metrics_addr),
                NULL, 0);
  send_logged(w, LUNET_FRAME_READY, "", 0, NULL, 0);
}

void lunet_worker_listening(struct lunet_service *svc, const char *proto) {
  struct lunet_worker *w = svc->rt->worker;
  char line[LUNET_SERVICE_NAME_MAX + LUNET_ADDR_STRLEN + 16];
  if (w == NULL || svc->internal) return;
  int n = snprintf(line, sizeof line, "%s %s %s", svc->name, proto, svc->bound);
  if (n > 0 && (size_t)n < sizeof line)
    send_logged(w, LUNET_FRAME_LISTENING, line, (size_t)n, NULL, 0);
}

static uint16_t *port_of(struct sockaddr_storage *ss) {
  return ss->ss_family == AF_INET6 ? &((struct sockaddr_in6 *)ss)->sin6_port
                                   : &((struct sockaddr_in *)ss)->sin_port;
}

/* LUNET_WORKER_PORTS is "NAME=ADDR\n..." from the supervisor. */
void lunet_worker_resolve_port(struct lunet_service *svc) {
  const char *map = known_ports;
  size_t nlen = strlen(svc->name);
  struct sockaddr_storage known;
  char addr[LUNET_ADDR_STRLEN];
  if (svc->rt->cli->worker_id == 0 || map == NULL || *port_of(&svc->addr) != 0)
    return;
  for (const char *line = map; *line; line = strchr(line, '\n') + 1) {
    const char *eol = strchr(line, '\n');
    if (eol == NULL) return; /* every entry ends with a newline */
    if (strncmp(line, svc->name, nlen) != 0 || line[nlen] != '=') continue;
    snprintf(addr, sizeof addr, "%.*s", (int)(eol - line - (long)nlen - 1),
             line + nlen + 1);
    if (lunet_addr_parse(addr, &known) == 0)
      *port_of(&svc->addr) = *port_of(&known);
    return;
  }
}

int lunet_worker_share_port(struct lunet_runtime *rt, uv_handle_t *h) {
  uv_os_fd_t fd;
  int on = 1, r;
  if (rt->cli->worker_id == 0) return 0;
  if ((r = uv_fileno(h, &fd)) < 0) return r;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) < 0)
    return uv_translate_sys_error(errno);
  return 0;
}

int lunet_worker_publish(struct lunet_runtime *rt, const char *topic,
                         size_t tlen, const char *msg, size_t mlen) {
  struct lunet_worker *w = rt->worker;
  if (w == NULL || !channel_open(w)) return 0;
  /* The NUL after the topic travels as the separator. */
  int r = lunet_channel_send(&w->ch, LUNET_FRAME_PUBLISH, topic, tlen + 1, msg,
                             mlen);
  if (r < 0) lunet_channel_note_drop(&w->ch, "publish", "supervisor", r);
  return r;
}
