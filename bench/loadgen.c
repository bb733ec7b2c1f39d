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
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#define CONNECT_GRACE_MS 5000 /* all connections must be up by then */
#define ALARM_SLACK_S 5       /* hard stop after the timers should have */
#define READ_BUF_SIZE (64 * 1024)
#define MAX_CONNS 10000
#define MAX_SIZE (16 * 1024 * 1024)
#define MAX_TOTAL_BYTES ((size_t)512 * 1024 * 1024) /* conns * size */
#define MAX_DURATION_S 120.0
#define MAX_WARMUP_S 60.0
#define SEQ_DIGITS 16

/* {==================================================================
 * Latency histogram: log-linear buckets, 64 per power of two (error under
 * 1.6%), over nanoseconds. Fixed size whatever the run length.
 * =================================================================== */

#define HIST_SUB_BITS 6
#define HIST_SUB (1 << HIST_SUB_BITS)
#define HIST_BUCKETS (HIST_SUB + (64 - HIST_SUB_BITS) * HIST_SUB)

struct hist {
  uint64_t count[HIST_BUCKETS];
  uint64_t total;
};

static int hist_index(uint64_t v) {
  if (v < HIST_SUB) return (int)v;
  int exp = 63 - __builtin_clzll(v); /* >= HIST_SUB_BITS */
  int shift = exp - HIST_SUB_BITS;
  int sub = (int)(v >> shift) - HIST_SUB;
  return HIST_SUB + shift * HIST_SUB + sub;
}

/* The midpoint of bucket i, inverting hist_index. */
static double hist_value(int i) {
  if (i < HIST_SUB) return i;
  int shift = (i - HIST_SUB) / HIST_SUB;
  int sub = (i - HIST_SUB) % HIST_SUB;
  double low = (double)((uint64_t)(HIST_SUB + sub) << shift);
  return low + (double)((uint64_t)1 << shift) / 2.0;
}

static void hist_add(struct hist *h, uint64_t v) {
  h->count[hist_index(v)]++;
  h->total++;
}

/* Nearest-rank percentile, q in (0, 1]. */
static double hist_percentile(const struct hist *h, double q) {
  uint64_t rank = (uint64_t)(q * (double)h->total + 0.999999);
  uint64_t seen = 0;
  if (h->total == 0) return 0.0;
  if (rank == 0) rank = 1;
  for (int i = 0; i < HIST_BUCKETS; i++) {
    seen += h->count[i];
    if (seen >= rank) return hist_value(i);
  }
  return hist_value(HIST_BUCKETS - 1);
}

/* }================================================================== */

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
};

static struct options opt = {NULL, {0}, 50, 64, 5.0, 1.0};
static uv_loop_t *loop;
static uv_timer_t phase_timer;
static struct conn *conns;
static struct hist latency;
static enum phase phase = PH_CONNECT;
static unsigned connected;
static uint64_t measure_start, measure_end;
static uint64_t msgs, total_msgs;
static unsigned errors;
static char reason[256];

static char read_buf[READ_BUF_SIZE]; /* consumed before read_cb returns */

static void stop_all(void);

/* Keeps the first reason only: later errors are usually its echoes. */
static void fail(const char *fmt, ...) {
  errors++;
  if (reason[0] == '\0') {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
  }
  stop_all();
}

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
}

static void msg_stamp(struct conn *c) {
  char seq[SEQ_DIGITS + 1];
  size_t n = opt.size < SEQ_DIGITS ? opt.size : SEQ_DIGITS;
  snprintf(seq, sizeof seq, "%016" PRIx64, c->seq);
  memcpy(c->msg, seq + SEQ_DIGITS - n, n); /* short messages: low digits */
}

static void write_cb(uv_write_t *req, int status) {
  free(req);
  if (status < 0 && status != UV_ECANCELED)
    fail("write: %s", uv_strerror(status));
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
    fail("write: %s", uv_strerror(r));
    return;
  }
  if (r > 0) {
    buf.base += r;
    buf.len -= (size_t)r;
  }
  uv_write_t *req = malloc(sizeof *req);
  if (req == NULL) {
    fail("out of memory");
    return;
  }
  if ((r = uv_write(req, (uv_stream_t *)&c->tcp, &buf, 1, write_cb)) < 0) {
    free(req);
    fail("write: %s", uv_strerror(r));
  }
}

static void msg_complete(struct conn *c) {
  total_msgs++;
  if (phase == PH_MEASURE) {
    hist_add(&latency, uv_hrtime() - c->sent_at);
    msgs++;
    c->done++;
  }
  c->seq++;
  msg_send(c);
}

/* Checks one chunk of echo against the same bytes of the message sent. */
static void msg_check(struct conn *c, const char *data, size_t n) {
  if (n > opt.size - c->got) {
    fail("conn %u: %zu bytes more than sent (seq %" PRIu64 ")", c->id,
         n - (opt.size - c->got), c->seq);
    return;
  }
  if (memcmp(c->msg + c->got, data, n) != 0) {
    size_t at = 0;
    while (c->msg[c->got + at] == data[at]) at++;
    fail("conn %u: echo mismatch at byte %zu of seq %" PRIu64, c->id,
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
    fail("conn %u: server closed the connection", c->id);
  } else if (nread < 0) {
    fail("conn %u: read: %s", c->id, uv_strerror((int)nread));
  } else if (nread > 0) {
    msg_check(c, buf->base, (size_t)nread);
  }
}

static void begin_warmup(void);

static void connect_cb(uv_connect_t *req, int status) {
  struct conn *c = (struct conn *)req->handle;
  if (status == UV_ECANCELED || phase == PH_DONE) return;
  if (status < 0) {
    fail("connect %s: %s", opt.addr_text, uv_strerror(status));
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  int r = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
  if (r < 0) {
    fail("conn %u: read start: %s", c->id, uv_strerror(r));
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

static uint64_t ms(double seconds) {
  return (uint64_t)(seconds * 1000.0 + 0.5);
}

static void phase_cb(uv_timer_t *timer);

static void begin_measure(void) {
  phase = PH_MEASURE;
  measure_start = uv_hrtime();
  uv_timer_start(&phase_timer, phase_cb, ms(opt.duration_s), 0);
}

static void begin_warmup(void) {
  phase = PH_WARMUP;
  uv_timer_start(&phase_timer, phase_cb, ms(opt.warmup_s), 0);
}

static void phase_cb(uv_timer_t *timer) {
  (void)timer;
  if (phase == PH_CONNECT)
    fail("connect timeout: %u of %u connections up after %d ms", connected,
         opt.conns, CONNECT_GRACE_MS);
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

/* The timers cannot stop a process stuck outside the loop; this can. */
static void alarm_handler(int sig) {
  static const char msg[] = "loadgen: hard deadline passed, aborting\n";
  (void)sig;
  ssize_t r = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)r;
  _exit(1);
}

/* }================================================================== */

/* {==================================================================
 * Options
 * =================================================================== */

static void usage(FILE *f) {
  fprintf(f,
          "usage: loadgen --addr IP:PORT|[::1]:PORT [--conns N] [--size BYTES]"
          "\n               [--duration SECONDS] [--warmup SECONDS]\n"
          "Loopback only. Defaults: --conns 50 --size 64 --duration 5 "
          "--warmup 1.\n");
}

static int parse_port(const char *s, int *port) {
  int value = 0;
  size_t n = strlen(s);
  if (n == 0 || n > 5) return UV_EINVAL;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return UV_EINVAL;
    value = value * 10 + (s[i] - '0');
  }
  if (value == 0 || value > 65535) return UV_EINVAL;
  *port = value;
  return 0;
}

/* Accepts IP:PORT and [IPv6]:PORT; nothing is resolved. */
static int parse_addr(const char *text, struct sockaddr_storage *out) {
  char host[64];
  const char *colon = strrchr(text, ':');
  const char *start = text;
  int port;
  if (colon == NULL || parse_port(colon + 1, &port) < 0) return UV_EINVAL;
  size_t hlen = (size_t)(colon - text);
  int v6 = text[0] == '[';
  if (v6) {
    if (hlen < 3 || text[hlen - 1] != ']') return UV_EINVAL;
    start++;
    hlen -= 2;
  }
  if (hlen == 0 || hlen >= sizeof host) return UV_EINVAL;
  memcpy(host, start, hlen);
  host[hlen] = '\0';
  memset(out, 0, sizeof *out);
  if (v6) return uv_ip6_addr(host, port, (struct sockaddr_in6 *)out);
  return uv_ip4_addr(host, port, (struct sockaddr_in *)out);
}

/* A load generator aimed elsewhere is a flood tool; only 127/8 and ::1. */
static int is_loopback(const struct sockaddr_storage *ss) {
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
    return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
  }
  return 0;
}

static int parse_number(const char *s, double min, double max, double *out) {
  char *end;
  double v = strtod(s, &end);
  if (end == s || *end != '\0' || !(v >= min && v <= max)) return -1;
  *out = v;
  return 0;
}

static int parse_count(const char *s, unsigned long max, unsigned long *out) {
  char *end;
  if (*s < '0' || *s > '9') return -1; /* strtoul would take "-1" */
  unsigned long v = strtoul(s, &end, 10);
  if (*end != '\0' || v < 1 || v > max) return -1;
  *out = v;
  return 0;
}

static int bad_option(const char *name, const char *value, const char *why) {
  fprintf(stderr, "loadgen: bad %s '%s': %s\n", name, value, why);
  return -1;
}

static int parse_one(int ch, const char *v) {
  unsigned long n;
  switch (ch) {
    case 'a':
      opt.addr_text = v;
      if (parse_addr(v, &opt.addr) < 0)
        return bad_option("--addr", v, "want IP:PORT or [IPv6]:PORT, port>0");
      if (!is_loopback(&opt.addr))
        return bad_option("--addr", v, "only 127.0.0.0/8 and ::1 allowed");
      return 0;
    case 'c':
      if (parse_count(v, MAX_CONNS, &n) < 0)
        return bad_option("--conns", v, "want an integer 1..10000");
      opt.conns = (unsigned)n;
      return 0;
    case 's':
      if (parse_count(v, MAX_SIZE, &n) < 0)
        return bad_option("--size", v, "want an integer 1..16777216");
      opt.size = n;
      return 0;
    case 'd':
      if (parse_number(v, 0.001, MAX_DURATION_S, &opt.duration_s) < 0)
        return bad_option("--duration", v, "want seconds in (0, 120]");
      return 0;
    case 'w':
      if (parse_number(v, 0, MAX_WARMUP_S, &opt.warmup_s) < 0)
        return bad_option("--warmup", v, "want seconds in [0, 60]");
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
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    if (ch == 'h') {
      usage(stdout);
      exit(0);
    }
    if (ch == '?' || parse_one(ch, optarg) < 0) return -1;
  }
  if (optind < argc) return bad_option("argument", argv[optind], "unused");
  if (opt.addr_text == NULL) {
    fprintf(stderr, "loadgen: --addr is required\n");
    return -1;
  }
  if (opt.size * opt.conns > MAX_TOTAL_BYTES)
    return bad_option("--size", "* --conns", "more than 512 MiB in flight");
  return 0;
}

/* }================================================================== */

/* {==================================================================
 * Main
 * =================================================================== */

/* A connection that completed nothing while others did means the server
 * starved it; the averages would hide that, so it fails the run. */
static void check_stalls(void) {
  if (errors > 0 || measure_end == 0) return;
  for (unsigned i = 0; i < opt.conns; i++)
    if (conns[i].done == 0) {
      errors++;
      snprintf(reason, sizeof reason,
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
         hist_percentile(&latency, 0.50) / 1e3,
         hist_percentile(&latency, 0.99) / 1e3, errors);
  fflush(stdout);
  if (errors > 0)
    fprintf(stderr, "loadgen: %s\n", reason);
  else
    fprintf(stderr, "loadgen: total_msgs=%" PRIu64 " conns=%u size=%zu\n",
            total_msgs, opt.conns, opt.size);
}

int main(int argc, char **argv) {
  if (parse_options(argc, argv) < 0) {
    usage(stderr);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN); /* a vanished server is an error code */
  signal(SIGALRM, alarm_handler);
  alarm((unsigned)(CONNECT_GRACE_MS / 1000 + opt.warmup_s + opt.duration_s +
                   ALARM_SLACK_S));
  loop = uv_default_loop();
  uv_timer_init(loop, &phase_timer);
  uv_timer_start(&phase_timer, phase_cb, CONNECT_GRACE_MS, 0);
  int r = conns_start();
  if (r < 0) fail("setup: %s", uv_strerror(r));
  uv_run(loop, UV_RUN_DEFAULT);
  r = uv_loop_close(loop);
  if (r < 0 && errors == 0) fail("loop close: %s", uv_strerror(r));
  check_stalls();
  report();
  conns_free();
  return errors > 0 ? 1 : 0;
}

/* }================================================================== */
