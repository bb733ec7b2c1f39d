#include "counters.h"

#include <string.h>

const char *const lunet_close_reason_names[CLOSE_REASONS] = {
    "eof",           "closed",           "shutdown",     "handler_error",
    "slow_consumer", "message_too_long", "rate_limited", "idle_timeout",
    "write_timeout", "eof_truncated",    "other"};

const double lunet_latency_bounds[LUNET_LATENCY_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025,  0.05,    0.1,    0.25,  0.5,    1,     5};

enum lunet_close_reason lunet_metrics_reason(const char *reason) {
  for (int i = 0; i < CLOSE_OTHER; i++)
    if (strcmp(reason, lunet_close_reason_names[i]) == 0) return i;
  return CLOSE_OTHER;
}

void lunet_histogram_observe(struct lunet_histogram *h, double seconds) {
  int i = 0;
  while (i < LUNET_LATENCY_BUCKETS && seconds > lunet_latency_bounds[i]) i++;
  h->bucket[i]++;
  h->sum += seconds;
  h->count++;
}
