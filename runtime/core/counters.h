/* Counters and gauges kept in C, per service and per process, cheap
 * enough to be always on: plain increments on the hot path, a fixed-bucket
 * latency histogram per service. The types and the two updates every
 * layer makes are here (core/); rendering them is metrics.h's (ops/). */
#ifndef LUNET_COUNTERS_H
#define LUNET_COUNTERS_H

#include <stdint.h>

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

/* Close codes counted one by one (1000, 1001, 1002, 1006, 1007, 1008,
 * 1009, 1011), then every other code. */
#define LUNET_WS_CLOSE_CODES 9

/* Observations in fixed buckets (lunet_latency_bounds), +Inf last. */
struct lunet_histogram {
  uint64_t bucket[LUNET_LATENCY_BUCKETS + 1];
  double sum; /* seconds */
  uint64_t count;
};

enum lunet_tls_result { TLS_OK, TLS_FAILED, TLS_TIMEOUT, TLS_RESULTS };

struct lunet_metrics {
  uint64_t accepted;
  uint64_t closed[CLOSE_REASONS];
  uint64_t bytes_in, bytes_out;
  uint64_t messages;     /* on_data/on_message calls, datagrams, requests */
  uint64_t responses[5]; /* http: 1xx .. 5xx */
  uint64_t handler_errors;
  uint64_t budget_aborts;
  uint64_t refused; /* connection limits, rate limits, accept errors */
  struct lunet_histogram latency; /* http: request to response */
  uint64_t tls_handshakes[TLS_RESULTS];
  uint64_t tls_resumed;
  struct lunet_histogram tls_handshake; /* accept or connect to done */
  uint64_t ws_opened;   /* websockets: upgrades and connects done */
  uint64_t ws_closed[LUNET_WS_CLOSE_CODES]; /* by on_close's code */
  uint64_t ws_messages_in, ws_messages_out;
  uint64_t ws_fanout;     /* topic frames written to this service's sockets */
  uint64_t ws_slow_drops; /* subscribers closed 1008 by a publish */
};

extern const char *const lunet_close_reason_names[CLOSE_REASONS];
extern const double lunet_latency_bounds[LUNET_LATENCY_BUCKETS]; /* s */

/* Maps a close reason string to its counter. */
enum lunet_close_reason lunet_metrics_reason(const char *reason);

/* Adds one observation of `seconds` to the histogram. */
void lunet_histogram_observe(struct lunet_histogram *h, double seconds);

#endif
