#include "log_sink.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "log.h"

/* Double buffering: the loop appends to `fill` while the thread writes
 * `drain`; the thread swaps them when it has written its buffer. */
static struct {
  uv_mutex_t mu;
  uv_cond_t wake;    /* the thread: something to write, or stop */
  uv_cond_t written; /* flushers: the thread finished a buffer */
  uv_thread_t thread;
  char *fill, *drain;
  size_t fill_len;
  int writing; /* the thread holds a swapped buffer */
  uint64_t dropped;
  int running, stopping;
} sink;

static void write_all(const char *p, size_t n) {
  while (n > 0) {
    ssize_t r = write(STDERR_FILENO, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return; /* stderr is gone: nowhere better to report it */
    p += r, n -= (size_t)r;
  }
}

/* Writes whole records in pieces of at most PIPE_BUF where possible. */
static void write_records(const char *p, size_t n) {
  while (n > 0) {
    size_t take = n;
    if (n > PIPE_BUF) {
      const char *end = memrchr(p, '\n', PIPE_BUF);
      const char *one = memchr(p, '\n', n);
      take = end ? (size_t)(end - p) + 1 : one ? (size_t)(one - p) + 1 : n;
    }
    write_all(p, take);
    p += take, n -= take;
  }
}

void lunet_log_sink_write(const char *record, size_t n) {
  if (!sink.running) return write_all(record, n);
  uv_mutex_lock(&sink.mu);
  if (sink.fill_len + n > LUNET_LOG_QUEUE_SIZE) {
    sink.dropped++;
  } else {
    memcpy(sink.fill + sink.fill_len, record, n);
    sink.fill_len += n;
    uv_cond_signal(&sink.wake);
  }
  uv_mutex_unlock(&sink.mu);
}

/* Written by the writer thread itself, not queued: a queue full again by
 * now would drop the report and lose the count. */
static void report_dropped(uint64_t dropped) {
  char count[24], line[512];
  const char *kv[] = {"count", count};
  snprintf(count, sizeof count, "%llu", (unsigned long long)dropped);
  if (!lunet_log_enabled(LUNET_LOG_WARN)) return;
  write_all(line,
            lunet__log_record(line, sizeof line, LUNET_LOG_WARN,
                              "log records dropped: stderr too slow", kv, 1));
}

static void writer_main(void *arg) {
  (void)arg;
  uv_mutex_lock(&sink.mu);
  for (;;) {
    while (sink.fill_len == 0 && sink.dropped == 0 && !sink.stopping)
      uv_cond_wait(&sink.wake, &sink.mu);
    if (sink.fill_len == 0 && sink.dropped == 0) break; /* stopping */
    char *buf = sink.fill;
    size_t len = sink.fill_len;
    uint64_t dropped = sink.dropped;
    sink.fill = sink.drain, sink.drain = buf;
    sink.fill_len = 0, sink.dropped = 0, sink.writing = 1;
    uv_mutex_unlock(&sink.mu);
    write_records(buf, len);
    if (dropped > 0) report_dropped(dropped);
    uv_mutex_lock(&sink.mu);
    sink.writing = 0;
    uv_cond_broadcast(&sink.written);
  }
  uv_mutex_unlock(&sink.mu);
}

void lunet_log_sink_flush(void) {
  if (!sink.running) return;
  uv_mutex_lock(&sink.mu);
  while (sink.fill_len > 0 || sink.dropped > 0 || sink.writing)
    uv_cond_wait(&sink.written, &sink.mu);
  uv_mutex_unlock(&sink.mu);
}

/* At exit: everything queued is written, then the thread ends. */
static void sink_stop(void) {
  if (!sink.running) return;
  uv_mutex_lock(&sink.mu);
  sink.stopping = 1;
  uv_cond_signal(&sink.wake);
  uv_mutex_unlock(&sink.mu);
  uv_thread_join(&sink.thread);
  sink.running = 0;
  free(sink.fill);
  free(sink.drain);
}

int lunet_log_sink_start(void) {
  int r;
  if (sink.running) return 0;
  sink.fill = malloc(LUNET_LOG_QUEUE_SIZE);
  sink.drain = malloc(LUNET_LOG_QUEUE_SIZE);
  if (sink.fill == NULL || sink.drain == NULL) {
    free(sink.fill), free(sink.drain);
    return UV_ENOMEM;
  }
  if ((r = uv_mutex_init(&sink.mu)) < 0) return r;
  uv_cond_init(&sink.wake);
  uv_cond_init(&sink.written);
  if ((r = uv_thread_create(&sink.thread, writer_main, NULL)) < 0) return r;
  sink.running = 1;
  atexit(sink_stop);
  return 0;
}
