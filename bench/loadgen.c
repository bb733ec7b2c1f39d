/* loadgen: a closed-loop TCP echo load generator for loopback benchmarks.
 *
 * Each of --conns connections keeps exactly one message of --size bytes in
 * flight: send it, wait until every byte came back (in any chunking), check
 * the echo is byte-identical, record the round trip, send the next. Only
 * round trips completed after --warmup count. Every phase is ended by a
 * timer and an alarm backs them up, so the run always stops by itself.
 *
 * Output, one line on stdout:
 *   msgs=N secs=S msgs_per_s=X mb_per_s=Y p50_us=A p99_us=B errors=E
 * mb_per_s is echoed payload in one direction, in 10^6 bytes per second.
 * On success stderr also gets "loadgen: total_msgs=T ..." counting round
 * trips of the whole run (warmup included) for whoever samples server CPU
 * around it. Exit status 0, or 1 after a failed connection or a mismatch
 * (reason on stderr), or 2 for bad usage. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "common.h"

#define CONNECT_GRACE_MS 5000 /* all connections must be up by then */
#define ALARM_SLACK_S 5       /* hard stop after the timers should have */
#define READ_BUF_SIZE (64 * 1024)
#define MAX_CONNS 10000
#define MAX_SIZE (16 * 1024 * 1024)
#define MAX_TOTAL_BYTES ((size_t)512 * 1024 * 1024) /* conns * size */
#define SEQ_DIGITS 16

/* {==================================================================
 * State
 * =================================================================== */

enum phase { PH_CONNECT, PH_WARMUP, PH_MEASURE, PH_DONE };

/* One client connection. The handle comes first so stream callbacks can
 * cast; the array of conns is freed after the loop has closed them all. */
struct conn {
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  unsigned id;
  uint64_t seq;     /* sequence number of the message in flight */
  uint64_t sent_at; /* uv_hrtime() when it was handed to the kernel */
  size_t got;       /* bytes of it echoed so far */
  uint64_t done;    /* round trips completed in the measured window */
  char *msg;        /* the message in flight, kept until fully echoed */
};

struct options {
  const char *addr_text;
  struct sockaddr_storage addr;
  unsigned conns;
  size_t size;
  double duration_s;
  double warmup_s;
  int newline;
};

static struct options opt = {NULL, {0}, 50, 64, 5.0, 1.0, 0};
static uv_loop_t *loop;
static uv_timer_t phase_timer;
static struct conn *conns;
static struct bench_hist latency;
static enum phase phase = PH_CONNECT;
static unsigned connected;
static uint64_t measure_start, measure_end;
static uint64_t msgs, total_msgs;

static char read_buf[READ_BUF_SIZE]; /* consumed before read_cb returns */

/* Also what bench_fail calls: every failure ends the run. */
static void stop_all(void);

/* }================================================================== */

/* {==================================================================
 * Messages
 * =================================================================== */

/* Printable bytes shifted per connection, so a reply from the wrong
 * connection or offset does not match; the sequence number is stamped in
 * the first bytes for each message. */
static void msg_init(struct conn *c) {
  for (size_t i = 0; i < opt.size; i++)
    c->msg[i] = (char)('a' + (i + c->id) % 26);
  if (opt.newline) c->msg[opt.size - 1] = '\n'; /* a line service's line */
}

static void msg_stamp(struct conn *c) {
  char seq[SEQ_DIGITS + 1];
  size_t room = opt.size - (size_t)opt.newline; /* keep the "\n" */
  size_t n = room < SEQ_DIGITS ? room : SEQ_DIGITS;
  snprintf(seq, sizeof seq, "%016" PRIx64, c->seq);
  memcpy(c->msg, seq + SEQ_DIGITS - n, n); /* short messages: low digits */
}

/* The message buffer stays untouched until its echo is complete, by which
 * time the kernel has taken every byte, so the remainder needs no copy. */
static void msg_send(struct conn *c) {
  uv_buf_t buf = uv_buf_init(c->msg, (unsigned int)opt.size);
  msg_stamp(c);
  c->got = 0;
  c->sent_at = uv_hrtime();
  int r = uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
  if (r == (int)opt.size) return;
  if (r < 0 && r != UV_EAGAIN) {
    bench_fail("write: %s", uv_strerror(r));
    return;
  }
  if (r > 0) {
    buf.base += r;
    buf.len -= (size_t)r;
  }
  uv_write_t *req = malloc(sizeof *req);
  if (req == NULL) {
    bench_fail("out of memory");
    return;
  }
  if ((r = uv_write(req, (uv_stream_t *)&c->tcp, &buf, 1, bench_write_cb)) <
      0) {
    free(req);
    bench_fail("write: %s", uv_strerror(r));
  }
}

static void msg_complete(struct conn *c) {
  total_msgs++;
  if (phase == PH_MEASURE) {
    bench_hist_add(&latency, uv_hrtime() - c->sent_at);
    msgs++;
    c->done++;
  }
  c->seq++;
  msg_send(c);
}

/* Checks one chunk of echo against the same bytes of the message sent. */
static void msg_check(struct conn *c, const char *data, size_t n) {
  if (n > opt.size - c->got) {
    bench_fail("conn %u: %zu bytes more than sent (seq %" PRIu64 ")", c->id,
               n - (opt.size - c->got), c->seq);
    return;
  }
  if (memcmp(c->msg + c->got, data, n) != 0) {
    size_t at = 0;
    while (c->msg[c->got + at] == data[at]) at++;
    bench_fail("conn %u: echo mismatch at byte %zu of seq %" PRIu64, c->id,
               c->got + at, c->seq);
    return;
  }
  c->got += n;
  if (c->got == opt.size) msg_complete(c);
}

/* }================================================================== */

/* {==================================================================
 * Connections
 * =================================================================== */

static void alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  (void)handle;
  (void)suggested;
  *buf = uv_buf_init(read_buf, sizeof read_buf);
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  struct conn *c = (struct conn *)stream;
  if (phase == PH_DONE) return;
  if (nread == UV_EOF) {
    bench_fail("conn %u: server closed the connection", c->id);
  } else if (nread < 0) {
    bench_fail("conn %u: read: %s", c->id, uv_strerror((int)nread));
  } else if (nread > 0) {
    msg_check(c, buf->base, (size_t)nread);
  }
}

static void begin_warmup(void);

static void connect_cb(uv_connect_t *req, int status) {
  struct conn *c = (struct conn *)req->handle;
  if (status == UV_ECANCELED || phase == PH_DONE) return;
  if (status < 0) {
    bench_fail("connect %s: %s", opt.addr_text, uv_strerror(status));
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  int r = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
  if (r < 0) {
    bench_fail("conn %u: read start: %s", c->id, uv_strerror(r));
    return;
  }
  msg_send(c);
  if (++connected == opt.conns && phase == PH_CONNECT) begin_warmup();
}

/* Every handle is initialised before any can fail, so stop_all may close
 * the whole array whatever happened. */
static int conns_start(void) {
  conns = calloc(opt.conns, sizeof *conns);
  if (conns == NULL) return UV_ENOMEM;
  for (unsigned i = 0; i < opt.conns; i++) {
    conns[i].id = i;
    uv_tcp_init(loop, &conns[i].tcp);
  }
  for (unsigned i = 0; i < opt.conns; i++) {
    struct conn *c = &conns[i];
    if ((c->msg = malloc(opt.size)) == NULL) return UV_ENOMEM;
    msg_init(c);
    int r = uv_tcp_connect(&c->connect_req, &c->tcp,
                           (const struct sockaddr *)&opt.addr, connect_cb);
    if (r < 0) return r;
  }
  return 0;
}

static void conns_free(void) {
  for (unsigned i = 0; conns != NULL && i < opt.conns; i++) free(conns[i].msg);
  free(conns);
}

/* }================================================================== */

/* {==================================================================
 * Phases: connect -> warmup -> measure -> done, each ended by phase_timer
 * =================================================================== */

static void phase_cb(uv_timer_t *timer);

static void begin_measure(void) {
  phase = PH_MEASURE;
  measure_start = uv_hrtime();
  uv_timer_start(&phase_timer, phase_cb, bench_ms(opt.duration_s), 0);
}

static void begin_warmup(void) {
  phase = PH_WARMUP;
  uv_timer_start(&phase_timer, phase_cb, bench_ms(opt.warmup_s), 0);
}

static void phase_cb(uv_timer_t *timer) {
  (void)timer;
  if (phase == PH_CONNECT)
    bench_fail("connect timeout: %u of %u connections up after %d ms",
               connected, opt.conns, CONNECT_GRACE_MS);
  else if (phase == PH_WARMUP)
    begin_measure();
  else if (phase == PH_MEASURE)
    stop_all();
}

/* Closing every handle empties the loop, which ends uv_run in main. Pending
 * connects and writes come back with UV_ECANCELED, which is not an error. */
static void stop_all(void) {
  if (phase == PH_DONE) return;
  if (phase == PH_MEASURE) measure_end = uv_hrtime();
  phase = PH_DONE;
  if (!uv_is_closing((uv_handle_t *)&phase_timer))
    uv_close((uv_handle_t *)&phase_timer, NULL);
  for (unsigned i = 0; conns != NULL && i < opt.conns; i++)
    if (!uv_is_closing((uv_handle_t *)&conns[i].tcp))
      uv_close((uv_handle_t *)&conns[i].tcp, NULL);
}

/* }================================================================== */

/* {==================================================================
 * Options
 * =================================================================== */

static void usage(FILE *f) {
  fprintf(
      f,
      "usage: loadgen --addr IP:PORT|[::1]:PORT [--conns N] [--size BYTES]"
      "\n               [--duration SECONDS] [--warmup SECONDS] "
      "[--newline]\n"
      "Loopback only. Defaults: --conns 50 --size 64 --duration 5 "
      "--warmup 1.\n"
      "--newline ends each message with \"\\n\" (for framing = \"line\").\n");
}

static int parse_one(int ch, const char *v) {
  unsigned long n;
  switch (ch) {
    case 'a':
      opt.addr_text = v;
      return bench_parse_loopback(v, &opt.addr);
    case 'c':
      return bench_opt_count("--conns", v, 1, MAX_CONNS, &opt.conns);
    case 's':
      if (bench_parse_count(v, 1, MAX_SIZE, &n) < 0)
        return bench_bad_option("--size", v, "want an integer 1..16777216");
      opt.size = n;
      return 0;
    case 'd':
      return bench_parse_duration(v, &opt.duration_s);
    case 'w':
      return bench_parse_warmup(v, &opt.warmup_s);
    case 'n':
      opt.newline = 1;
      return 0;
  }
  return -1;
}

static int parse_options(int argc, char **argv) {
  static const struct option longopts[] = {
      {"addr", required_argument, NULL, 'a'},
      {"conns", required_argument, NULL, 'c'},
      {"size", required_argument, NULL, 's'},
      {"duration", required_argument, NULL, 'd'},
      {"warmup", required_argument, NULL, 'w'},
      {"newline", no_argument, NULL, 'n'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  if (bench_getopt(argc, argv, longopts, parse_one, usage) < 0) return -1;
  if (opt.addr_text == NULL) {
    fprintf(stderr, "loadgen: --addr is required\n");
    return -1;
  }
  if (opt.size * opt.conns > MAX_TOTAL_BYTES)
    return bench_bad_option("--size", "* --conns",
                            "more than 512 MiB in flight");
  return 0;
}

/* }================================================================== */

/* {==================================================================
 * Main
 * =================================================================== */

/* A connection that completed nothing while others did means the server
 * starved it; the averages would hide that, so it fails the run. */
static void check_stalls(void) {
  if (bench_errors > 0 || measure_end == 0) return;
  for (unsigned i = 0; i < opt.conns; i++)
    if (conns[i].done == 0) {
      bench_errors++;
      snprintf(bench_reason, sizeof bench_reason,
               "conn %u completed no round trip in the measured %.3f s", i,
               (double)(measure_end - measure_start) / 1e9);
      return;
    }
}

static void report(void) {
  double secs = (double)(measure_end - measure_start) / 1e9;
  double rate = secs > 0 ? (double)msgs / secs : 0.0;
  printf("msgs=%" PRIu64
         " secs=%.3f msgs_per_s=%.0f mb_per_s=%.3f "
         "p50_us=%.1f p99_us=%.1f errors=%u\n",
         msgs, secs, rate, rate * (double)opt.size / 1e6,
         bench_hist_percentile(&latency, 0.50) / 1e3,
         bench_hist_percentile(&latency, 0.99) / 1e3, bench_errors);
  fflush(stdout);
  if (bench_errors > 0)
    fprintf(stderr, "loadgen: %s\n", bench_reason);
  else
    fprintf(stderr, "loadgen: total_msgs=%" PRIu64 " conns=%u size=%zu\n",
            total_msgs, opt.conns, opt.size);
}

int main(int argc, char **argv) {
  bench_prog = "loadgen";
  bench_on_fail(stop_all);
  if (parse_options(argc, argv) < 0) {
    usage(stderr);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN); /* a vanished server is an error code */
  bench_deadline((unsigned)(CONNECT_GRACE_MS / 1000 + opt.warmup_s +
                            opt.duration_s + ALARM_SLACK_S));
  loop = uv_default_loop();
  uv_timer_init(loop, &phase_timer);
  uv_timer_start(&phase_timer, phase_cb, CONNECT_GRACE_MS, 0);
  int r = conns_start();
  if (r < 0) bench_fail("setup: %s", uv_strerror(r));
  uv_run(loop, UV_RUN_DEFAULT);
  r = uv_loop_close(loop);
  if (r < 0 && bench_errors == 0) bench_fail("loop close: %s", uv_strerror(r));
  check_stalls();
  report();
  conns_free();
  return bench_errors > 0 ? 1 : 0;
}

/* }================================================================== */
