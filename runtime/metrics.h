/* Counters and gauges kept in C, per service and per process, cheap
 * enough to be always on: plain increments on the hot path, a fixed-bucket
 * latency histogram per service. Rendered as Prometheus text (/metrics)
 * and as JSON (`lunet stats`, `lunet top`). */
#ifndef LUNET_METRICS_H
#define LUNET_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <lua.h>

struct lunet_runtime;

enum lunet_close_reason {
  CLOSE_EOF,
  CLOSE_CLOSED,
  CLOSE_SHUTDOWN,
  CLOSE_HANDLER_ERROR,
  CLOSE_SLOW_CONSUMER,
  CLOSE_MESSAGE_TOO_LONG,
  CLOSE_RATE_LIMITED,
  CLOSE_IDLE_TIMEOUT,
  CLOSE_WRITE_TIMEOUT,
  CLOSE_EOF_TRUNCATED,
  CLOSE_OTHER,
  CLOSE_REASONS
};

#define LUNET_LATENCY_BUCKETS 14

struct lunet_metrics {
  uint64_t accepted;
  uint64_t closed[CLOSE_REASONS];
  uint64_t bytes_in, bytes_out;
  uint64_t messages;  /* on_data/on_message calls, datagrams, requests */
  uint64_t responses[5]; /* http: 1xx .. 5xx */
  uint64_t handler_errors;
  uint64_t budget_aborts;
  uint64_t refused;   /* connection limits, rate limits, accept errors */
  uint64_t latency[LUNET_LATENCY_BUCKETS + 1]; /* per bucket, +Inf last */
  double latency_sum; /* seconds */
  uint64_t latency_count;
};

extern const char *const lunet_close_reason_names[CLOSE_REASONS];
extern const double lunet_latency_bounds[LUNET_LATENCY_BUCKETS]; /* s */

/* Maps a close reason string to its counter. */
enum lunet_close_reason lunet_metrics_reason(const char *reason);

/* Adds one observation of `seconds` to the histogram. */
void lunet_metrics_observe(struct lunet_metrics *m, double seconds);

/* Appends the Prometheus text exposition of everything to the buffer on
 * top of the stack (a luaL_Buffer the caller owns). */
void lunet_metrics_prometheus(lua_State *L, struct lunet_runtime *rt,
                              void *buffer);

/* Same figures as a table for people (lunet stats, lunet top). */
void lunet_metrics_text(lua_State *L, struct lunet_runtime *rt, void *buffer);

/* Starts an internal http service "metrics" answering GET /metrics with
 * the Prometheus text. 0, or a negative UV error (logged). */
int lunet_metrics_serve(struct lunet_runtime *rt, const char *addr);

/* Same figures as one JSON object. */
void lunet_metrics_json(lua_State *L, struct lunet_runtime *rt,
                        void *buffer);

#endif
