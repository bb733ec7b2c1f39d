#include "metrics.h"

#include <dirent.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <lauxlib.h>
#include <uv.h>

#include "framing.h"
#include "http.h"
#include "log.h"
#include "runtime.h"
#include "service.h"

/* The upper bound of the bucket holding quantile q, in seconds. */
static double quantile(const struct lunet_histogram *h, double q) {
  uint64_t want = (uint64_t)(q * (double)h->count + 0.999999), seen = 0;
  if (h->count == 0) return 0;
  for (int i = 0; i < LUNET_LATENCY_BUCKETS; i++) {
    seen += h->bucket[i];
    if (seen >= want) return lunet_latency_bounds[i];
  }
  return lunet_latency_bounds[LUNET_LATENCY_BUCKETS - 1];
}

/* Descriptors in use, from procfs (memory, not disk). */
static int open_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  int n = -1; /* the DIR's own descriptor */
  if (d == NULL) return 0;
  while (readdir(d) != NULL) n++;
  closedir(d);
  return n - 2; /* "." and ".." */
}

static const char *kind_name(const struct lunet_service *svc) {
  return svc->kind == LUNET_KIND_UDP    ? "udp"
         : svc->kind == LUNET_KIND_HTTP ? "http"
                                        : "tcp";
}

#define FOR_EACH_LIVE_SERVICE(svc, rt)                                   \
  for (struct lunet_list *q_ = (rt)->services.next; q_ != &(rt)->services; \
       q_ = q_->next)                                                    \
    if (((svc) = lunet_container_of(q_, struct lunet_service, node),     \
         !(svc)->retired))

/* {==================================================================
 * Prometheus text format
 * =================================================================== */

static void add_fmt(luaL_Buffer *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void add_fmt(luaL_Buffer *b, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n > 0) luaL_addlstring(b, line, (size_t)n < sizeof line ? (size_t)n
                                                              : sizeof line - 1);
}

/* A label value with \, " and newline escaped, as the format requires. */
static void add_label(luaL_Buffer *b, const char *s) {
  for (; *s; s++) {
    if (*s == '\\' || *s == '"') luaL_addchar(b, '\\');
    if (*s == '\n') {
      luaL_addstring(b, "\\n");
      continue;
    }
    luaL_addchar(b, *s);
  }
}

static void family(luaL_Buffer *b, const char *name, const char *type,
                   const char *help) {
  add_fmt(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(luaL_Buffer *b, const char *name,
                   const struct lunet_service *svc, const char *extra,
                   double value) {
  luaL_addstring(b, name);
  luaL_addstring(b, "{service=\"");
  add_label(b, svc->name);
  luaL_addchar(b, '"');
  if (extra) luaL_addstring(b, extra);
  add_fmt(b, "} %.17g\n", value);
}

/* The plain per-service counters: one table, read by offset. */
struct counter {
  const char *name, *help;
  size_t offset; /* of a uint64_t in struct lunet_metrics */
};

#define COUNTER(name, field, help) \
  {name, help, offsetof(struct lunet_metrics, field)}

static const struct counter counters[] = {
    COUNTER("lunet_connections_accepted_total", accepted,
            "Connections accepted."),
    COUNTER("lunet_bytes_received_total", bytes_in, "Bytes read from peers."),
    COUNTER("lunet_bytes_sent_total", bytes_out, "Bytes written to peers."),
    COUNTER("lunet_messages_total", messages,
            "Data events, messages, datagrams or requests handled."),
    COUNTER("lunet_handler_errors_total", handler_errors,
            "Handler calls that raised."),
    COUNTER("lunet_budget_aborts_total", budget_aborts,
            "Handler calls stopped by the time budget."),
    COUNTER("lunet_refused_total", refused,
            "Connections or messages refused by a limit."),
};

static void counter_families(luaL_Buffer *b, struct lunet_runtime *rt) {
  struct lunet_service *svc;
  for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
    const struct counter *k = &counters[i];
    family(b, k->name, "counter", k->help);
    FOR_EACH_LIVE_SERVICE(svc, rt) {
      const char *m = (const char *)&svc->metrics;
      sample(b, k->name, svc, NULL, (double)*(const uint64_t *)(m + k->offset));
    }
  }
  family(b, "lunet_connections_active", "gauge", "Connections open now.");
  FOR_EACH_LIVE_SERVICE(svc, rt)
    sample(b, "lunet_connections_active", svc, NULL, (double)svc->nconns);
}

static void closed_by_reason(luaL_Buffer *b, struct lunet_runtime *rt) {
  struct lunet_service *svc;
  char extra[64];
  family(b, "lunet_connections_closed_total", "counter",
         "Connections closed, by reason.");
  FOR_EACH_LIVE_SERVICE(svc, rt) {
    if (svc->kind == LUNET_KIND_UDP) continue;
    for (int r = 0; r < CLOSE_REASONS; r++) {
      snprintf(extra, sizeof extra, ",reason=\"%s\"",
               lunet_close_reason_names[r]);
      sample(b, "lunet_connections_closed_total", svc, extra,
             (double)svc->metrics.closed[r]);
    }
  }
}

static void histogram(luaL_Buffer *b, const char *name,
                      const struct lunet_service *svc,
                      const struct lunet_histogram *h) {
  char extra[64], metric[96];
  uint64_t cumulative = 0;
  snprintf(metric, sizeof metric, "%s_bucket", name);
  for (int i = 0; i <= LUNET_LATENCY_BUCKETS; i++) {
    cumulative += h->bucket[i];
    if (i < LUNET_LATENCY_BUCKETS)
      snprintf(extra, sizeof extra, ",le=\"%g\"", lunet_latency_bounds[i]);
    else
      snprintf(extra, sizeof extra, ",le=\"+Inf\"");
    sample(b, metric, svc, extra, (double)cumulative);
  }
  snprintf(metric, sizeof metric, "%s_sum", name);
  sample(b, metric, svc, NULL, h->sum);
  snprintf(metric, sizeof metric, "%s_count", name);
  sample(b, metric, svc, NULL, (double)h->count);
}

static void http_families(luaL_Buffer *b, struct lunet_runtime *rt) {
  struct lunet_service *svc;
  char extra[64];
  family(b, "lunet_http_responses_total", "counter",
         "HTTP responses, by status class.");
  FOR_EACH_LIVE_SERVICE(svc, rt) {
    if (svc->kind != LUNET_KIND_HTTP) continue;
    for (int c = 0; c < 5; c++) {
      snprintf(extra, sizeof extra, ",class=\"%dxx\"", c + 1);
      sample(b, "lunet_http_responses_total", svc, extra,
             (double)svc->metrics.responses[c]);
    }
  }
  family(b, "lunet_http_request_duration_seconds", "histogram",
         "Time from a whole request to its whole response.");
  FOR_EACH_LIVE_SERVICE(svc, rt)
    if (svc->kind == LUNET_KIND_HTTP)
      histogram(b, "lunet_http_request_duration_seconds", svc,
                &svc->metrics.latency);
}

/* HTTP services count their websockets. */
static void ws_families(luaL_Buffer *b, struct lunet_runtime *rt) {
  static const char *const codes[LUNET_WS_CLOSE_CODES] = {
      "1000", "1001", "1002", "1006", "1007", "1008", "1009", "1011",
      "other"};
  struct lunet_service *svc;
  char extra[64];
  family(b, "lunet_websockets_open", "gauge", "Websockets open now.");
  FOR_EACH_LIVE_SERVICE(svc, rt) {
    if (svc->kind != LUNET_KIND_HTTP) continue;
    uint64_t closed = 0;
    for (int i = 0; i < LUNET_WS_CLOSE_CODES; i++)
      closed += svc->metrics.ws_closed[i];
    sample(b, "lunet_websockets_open", svc, NULL,
           (double)(svc->metrics.ws_opened - closed));
  }
  family(b, "lunet_websocket_messages_total", "counter",
         "Websocket messages, by direction (out: ws:send).");
  FOR_EACH_LIVE_SERVICE(svc, rt) {
    if (svc->kind != LUNET_KIND_HTTP) continue;
    sample(b, "lunet_websocket_messages_total", svc, ",direction=\"in\"",
           (double)svc->metrics.ws_messages_in);
    sample(b, "lunet_websocket_messages_total", svc, ",direction=\"out\"",
           (double)svc->metrics.ws_messages_out);
  }
  family(b, "lunet_websocket_closes_total", "counter",
         "Websockets closed, by the code on_close saw.");
  FOR_EACH_LIVE_SERVICE(svc, rt) {
    if (svc->kind != LUNET_KIND_HTTP) continue;
    for (int i = 0; i < LUNET_WS_CLOSE_CODES; i++) {
      snprintf(extra, sizeof extra, ",code=\"%s\"", codes[i]);
      sample(b, "lunet_websocket_closes_total", svc, extra,
             (double)svc->metrics.ws_closed[i]);
    }
  }
  family(b, "lunet_websocket_fanout_total", "counter",
         "Topic frames written to websockets by lunet.publish.");
  FOR_EACH_LIVE_SERVICE(svc, rt)
    if (svc->kind == LUNET_KIND_HTTP)
      sample(b, "lunet_websocket_fanout_total", svc, NULL,
             (double)svc->metrics.ws_fanout);
  family(b, "lunet_websocket_slow_drops_total", "counter",
         "Subscribers closed 1008 because a publish would pass their "
         "max_write_queue.");
  FOR_EACH_LIVE_SERVICE(svc, rt)
    if (svc->kind == LUNET_KIND_HTTP)
      sample(b, "lunet_websocket_slow_drops_total", svc, NULL,
             (double)svc->metrics.ws_slow_drops);
}

/* Services with a TLS transport (they count handshakes). */
static int is_tls(const struct lunet_service *svc) {
  return svc->transport_ctx != NULL;
}

static void tls_families(luaL_Buffer *b, struct lunet_runtime *rt) {
  static const char *const results[TLS_RESULTS] = {"ok", "failed", "timeout"};
  struct lunet_service *svc;
  char extra[64];
  family(b, "lunet_tls_handshakes_total", "counter",
         "TLS handshakes, by result.");
  FOR_EACH_LIVE_SERVICE(svc, rt) {
    if (!is_tls(svc)) continue;
    for (int r = 0; r < TLS_RESULTS; r++) {
      snprintf(extra, sizeof extra, ",result=\"%s\"", results[r]);
      sample(b, "lunet_tls_handshakes_total", svc, extra,
             (double)svc->metrics.tls_handshakes[r]);
    }
  }
  family(b, "lunet_tls_resumed_total", "counter",
         "TLS handshakes that resumed a session.");
  FOR_EACH_LIVE_SERVICE(svc, rt)
    if (is_tls(svc))
      sample(b, "lunet_tls_resumed_total", svc, NULL,
             (double)svc->metrics.tls_resumed);
  family(b, "lunet_tls_handshake_duration_seconds", "histogram",
         "Time from accept to a completed TLS handshake.");
  FOR_EACH_LIVE_SERVICE(svc, rt)
    if (is_tls(svc))
      histogram(b, "lunet_tls_handshake_duration_seconds", svc,
                &svc->metrics.tls_handshake);
}

static void process_families(luaL_Buffer *b, struct lunet_runtime *rt) {
  family(b, "lunet_info", "gauge", "Build and script version.");
  add_fmt(b, "lunet_info{version=\"%s\"} 1\n", LUNET_VERSION);
  family(b, "lunet_uptime_seconds", "gauge", "Seconds since start.");
  add_fmt(b, "lunet_uptime_seconds %.3f\n",
          (double)(uv_hrtime() - rt->started_ns) / 1e9);
  family(b, "lunet_script_version", "gauge", "Script version serving now.");
  add_fmt(b, "lunet_script_version %u\n", rt->version);
  family(b, "lunet_reloads_total", "counter", "Reloads, by outcome.");
  add_fmt(b, "lunet_reloads_total{result=\"ok\"} %" PRIu64 "\n",
          rt->reloads_ok);
  add_fmt(b, "lunet_reloads_total{result=\"failed\"} %" PRIu64 "\n",
          rt->reloads_failed);
  family(b, "lunet_lua_memory_bytes", "gauge", "Lua heap in use.");
  add_fmt(b, "lunet_lua_memory_bytes %zu\n", rt->budget.mem_used);
  family(b, "lunet_lua_finalizers_pending", "gauge",
         "Userdata with a finalizer that has not run yet.");
  add_fmt(b, "lunet_lua_finalizers_pending %" PRIu64 "\n", rt->gc_finalizers);
  family(b, "lunet_write_queue_bytes", "gauge",
         "Bytes queued for writing on every open connection together.");
  add_fmt(b, "lunet_write_queue_bytes %zu\n", rt->queued_bytes);
  family(b, "lunet_write_queue_limit_bytes", "gauge",
         "The bound on lunet_write_queue_bytes (--max-queued; 0: none).");
  add_fmt(b, "lunet_write_queue_limit_bytes %zu\n", rt->max_queued);
  family(b, "lunet_write_queue_drops_total", "counter",
         "Slow consumers dropped to keep within --max-queued.");
  add_fmt(b, "lunet_write_queue_drops_total %" PRIu64 "\n", rt->queue_drops);
  family(b, "lunet_loop_lag_seconds", "gauge",
         "How late the last once-a-second tick ran.");
  add_fmt(b, "lunet_loop_lag_seconds %.6f\n", (double)rt->loop_lag_ms / 1e3);
  family(b, "lunet_open_fds", "gauge", "File descriptors in use.");
  add_fmt(b, "lunet_open_fds %d\n", open_fds());
}

void lunet_metrics_prometheus(lua_State *L, struct lunet_runtime *rt,
                              void *buffer) {
  luaL_Buffer *b = buffer;
  (void)L;
  process_families(b, rt);
  counter_families(b, rt);
  closed_by_reason(b, rt);
  http_families(b, rt);
  tls_families(b, rt);
  ws_families(b, rt);
}

/* }================================================================== */

/* {==================================================================
 * JSON for lunet stats / lunet top
 * =================================================================== */

static void json_service(luaL_Buffer *b, const struct lunet_service *svc) {
  const struct lunet_metrics *m = &svc->metrics;
  luaL_addstring(b, "{\"name\":\"");
  add_label(b, svc->name); /* the same escapes serve JSON here */
  add_fmt(b, "\",\"kind\":\"%s\",\"addr\":\"%s\",\"active\":%zu,"
          "\"accepted\":%" PRIu64 ",\"bytes_in\":%" PRIu64
          ",\"bytes_out\":%" PRIu64 ",\"messages\":%" PRIu64
          ",\"handler_errors\":%" PRIu64 ",\"budget_aborts\":%" PRIu64
          ",\"refused\":%" PRIu64 ",", kind_name(svc), svc->bound,
          svc->nconns, m->accepted, m->bytes_in, m->bytes_out, m->messages,
          m->handler_errors, m->budget_aborts, m->refused);
  add_fmt(b, "\"rates\":{\"messages\":%.1f,\"bytes_in\":%.1f,"
          "\"bytes_out\":%.1f,\"errors\":%.1f},", svc->rate_messages,
          svc->rate_bytes_in, svc->rate_bytes_out, svc->rate_errors);
  luaL_addstring(b, "\"closed\":{");
  for (int r = 0; r < CLOSE_REASONS; r++)
    add_fmt(b, "%s\"%s\":%" PRIu64, r ? "," : "",
            lunet_close_reason_names[r], m->closed[r]);
  add_fmt(b, "},\"responses\":{\"1xx\":%" PRIu64 ",\"2xx\":%" PRIu64
          ",\"3xx\":%" PRIu64 ",\"4xx\":%" PRIu64 ",\"5xx\":%" PRIu64 "},",
          m->responses[0], m->responses[1], m->responses[2], m->responses[3],
          m->responses[4]);
  add_fmt(b, "\"latency\":{\"count\":%" PRIu64 ",\"sum\":%.6f,\"p50\":%g,"
          "\"p99\":%g}", m->latency.count, m->latency.sum,
          quantile(&m->latency, 0.5), quantile(&m->latency, 0.99));
  add_fmt(b, ",\"websocket\":{\"opened\":%" PRIu64 ",\"messages_in\":%"
          PRIu64 ",\"messages_out\":%" PRIu64 ",\"fanout\":%" PRIu64
          ",\"slow_drops\":%" PRIu64 "}", m->ws_opened, m->ws_messages_in,
          m->ws_messages_out, m->ws_fanout, m->ws_slow_drops);
  add_fmt(b, ",\"tls\":{\"ok\":%" PRIu64 ",\"failed\":%" PRIu64
          ",\"timeout\":%" PRIu64 ",\"resumed\":%" PRIu64
          ",\"handshake_p99\":%g}}", m->tls_handshakes[TLS_OK],
          m->tls_handshakes[TLS_FAILED], m->tls_handshakes[TLS_TIMEOUT],
          m->tls_resumed, quantile(&m->tls_handshake, 0.99));
}

void lunet_metrics_json(lua_State *L, struct lunet_runtime *rt,
                        void *buffer) {
  luaL_Buffer *b = buffer;
  struct lunet_service *svc;
  int first = 1;
  (void)L;
  add_fmt(b, "{\"pid\":%ld,\"version\":\"%s\",\"script\":\"", (long)getpid(),
          LUNET_VERSION);
  add_label(b, rt->script_path);
  add_fmt(b, "\",\"script_version\":%u,\"uptime\":%.3f,\"reloads_ok\":%"
          PRIu64 ",\"reloads_failed\":%" PRIu64 ",\"last_reload\":\"",
          rt->version, (double)(uv_hrtime() - rt->started_ns) / 1e9,
          rt->reloads_ok, rt->reloads_failed);
  add_label(b, rt->last_reload);
  add_fmt(b,
          "\",\"lua_memory\":%zu,\"lua_finalizers_pending\":%" PRIu64
          ",\"queued_bytes\":%zu,\"max_queued\":%zu,\"queue_drops\":%" PRIu64
          ",\"loop_lag_ms\":%" PRIu64 ",\"open_fds\":%d,\"services\":[",
          rt->budget.mem_used, rt->gc_finalizers, rt->queued_bytes,
          rt->max_queued, rt->queue_drops, rt->loop_lag_ms, open_fds());
  FOR_EACH_LIVE_SERVICE(svc, rt) {
    if (!first) luaL_addchar(b, ',');
    first = 0;
    json_service(b, svc);
  }
  luaL_addstring(b, "]}");
}

/* }================================================================== */

/* {==================================================================
 * A table for people
 * =================================================================== */

static void text_header(luaL_Buffer *b, struct lunet_runtime *rt) {
  uint64_t up = (uv_hrtime() - rt->started_ns) / 1000000000u;
  add_fmt(b, "lunet %s  pid %ld  %s (version %u)  up %" PRIu64 "h%02" PRIu64
          "m%02" PRIu64 "s\n", LUNET_VERSION, (long)getpid(),
          rt->script_path, rt->version, up / 3600, up / 60 % 60, up % 60);
  add_fmt(b, "reloads: %" PRIu64 " ok, %" PRIu64 " failed; last: %s\n",
          rt->reloads_ok, rt->reloads_failed, rt->last_reload);
  add_fmt(b,
          "lua memory %.1f MiB  queued %.1f MiB  loop lag %" PRIu64
          " ms  open fds %d\n\n",
          (double)rt->budget.mem_used / 1048576.0,
          (double)rt->queued_bytes / 1048576.0, rt->loop_lag_ms, open_fds());
  add_fmt(b, "%-14s %-4s %-22s %7s %9s %9s %9s %9s %7s %7s %7s\n",
          "SERVICE", "KIND", "ADDR", "ACTIVE", "ACCEPTED", "MSG/S",
          "IN KB/S", "OUT KB/S", "ERRORS", "REFUSED", "P99 MS");
}

static void text_service(luaL_Buffer *b, const struct lunet_service *svc) {
  const struct lunet_metrics *m = &svc->metrics;
  char p99[16] = "-";
  if (svc->kind == LUNET_KIND_HTTP && m->latency.count > 0)
    snprintf(p99, sizeof p99, "%g", quantile(&m->latency, 0.99) * 1000);
  add_fmt(b, "%-14.14s %-4s %-22.22s %7zu %9" PRIu64 " %9.1f %9.1f %9.1f "
          "%7" PRIu64 " %7" PRIu64 " %7s\n", svc->name, kind_name(svc),
          svc->bound, svc->nconns, m->accepted, svc->rate_messages,
          svc->rate_bytes_in / 1024, svc->rate_bytes_out / 1024,
          m->handler_errors, m->refused, p99);
}

/* Handshakes of the services that speak TLS, under the table. */
static void text_tls(luaL_Buffer *b, struct lunet_runtime *rt) {
  struct lunet_service *svc;
  int header = 0;
  FOR_EACH_LIVE_SERVICE(svc, rt) {
    const struct lunet_metrics *m = &svc->metrics;
    if (!is_tls(svc)) continue;
    if (!header++)
      add_fmt(b, "\n%-14s %9s %9s %9s %9s %13s\n", "TLS SERVICE",
              "HANDSHAKE", "FAILED", "TIMEOUT", "RESUMED", "HANDSHAKE P99");
    char p99[16] = "-";
    if (m->tls_handshake.count > 0)
      snprintf(p99, sizeof p99, "%g ms",
               quantile(&m->tls_handshake, 0.99) * 1000);
    add_fmt(b, "%-14.14s %9" PRIu64 " %9" PRIu64 " %9" PRIu64 " %9" PRIu64
            " %13s\n", svc->name, m->tls_handshakes[TLS_OK],
            m->tls_handshakes[TLS_FAILED], m->tls_handshakes[TLS_TIMEOUT],
            m->tls_resumed, p99);
  }
}

void lunet_metrics_text(lua_State *L, struct lunet_runtime *rt,
                        void *buffer) {
  luaL_Buffer *b = buffer;
  struct lunet_service *svc;
  (void)L;
  text_header(b, rt);
  FOR_EACH_LIVE_SERVICE(svc, rt) text_service(b, svc);
  text_tls(b, rt);
}

/* }================================================================== */

/* {==================================================================
 * GET /metrics
 * =================================================================== */

/* handler(req, res) of the metrics service, in C. */
static int metrics_handler(lua_State *L) {
  struct lunet_runtime *rt = lunet_rt(L);
  luaL_Buffer b;
  lua_getfield(L, 1, "path");
  int found = strcmp(luaL_optstring(L, -1, ""), "/metrics") == 0;
  lua_getfield(L, 2, "send");
  lua_pushvalue(L, 2);
  lua_pushinteger(L, found ? 200 : 404);
  luaL_buffinit(L, &b);
  if (found)
    lunet_metrics_prometheus(L, rt, &b);
  else
    luaL_addstring(&b, "Not Found (try /metrics)\n");
  luaL_pushresult(&b);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "text/plain; version=0.0.4; charset=utf-8");
  lua_setfield(L, -2, "Content-Type");
  lua_call(L, 4, 0);
  return 0;
}

int lunet_metrics_serve(struct lunet_runtime *rt, const char *addr) {
  struct lunet_service *svc = lunet_service_new(rt, "metrics");
  int refs[LUNET_HANDLER_COUNT];
  if (svc == NULL) return UV_ENOMEM;
  svc->kind = LUNET_KIND_HTTP;
  svc->internal = 1;
  lunet_service_set_framing(svc, LUNET_FRAMING_HTTP, &lunet_proto_http1);
  if (lunet_service_set_addr(svc, addr) < 0) {
    lunet_log(LUNET_LOG_ERROR, "metrics: not an address", "addr", addr, NULL);
    lunet_service_free(svc);
    return UV_EINVAL;
  }
  for (int h = 0; h < LUNET_HANDLER_COUNT; h++) refs[h] = LUA_NOREF;
  lua_pushcfunction(rt->L, metrics_handler);
  refs[LUNET_ON_REQUEST] = luaL_ref(rt->L, LUA_REGISTRYINDEX);
  lunet_service_set_handlers(rt->L, svc, refs);
  lunet_list_push(&rt->services, &svc->node);
  return lunet_service_listen(svc);
}

/* }================================================================== */
