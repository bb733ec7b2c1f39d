/* common: the parts every benchmark tool had its own copy of. See common.h;
 * nothing here knows which tool it runs in beyond bench_prog. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "common.h"

#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *bench_prog = "bench";
unsigned bench_errors;
char bench_reason[256];

/* {==================================================================
 * Latency histogram
 * =================================================================== */

#define SUB_BITS BENCH_HIST_SUB_BITS
#define SUB BENCH_HIST_SUB

static int hist_index(uint64_t v) {
  if (v < SUB) return (int)v;
  int exp = 63 - __builtin_clzll(v); /* >= SUB_BITS */
  int shift = exp - SUB_BITS;
  int sub = (int)(v >> shift) - SUB;
  return SUB + shift * SUB + sub;
}

/* The midpoint of bucket i, inverting hist_index. */
static double hist_value(int i) {
  if (i < SUB) return i;
  int shift = (i - SUB) / SUB;
  int sub = (i - SUB) % SUB;
  double low = (double)((uint64_t)(SUB + sub) << shift);
  return low + (double)((uint64_t)1 << shift) / 2.0;
}

void bench_hist_add(struct bench_hist *h, uint64_t v) {
  h->count[hist_index(v)]++;
  h->total++;
}

/* Nearest-rank percentile, q in (0, 1]. */
double bench_hist_percentile(const struct bench_hist *h, double q) {
  uint64_t rank = (uint64_t)(q * (double)h->total + 0.999999);
  uint64_t seen = 0;
  if (h->total == 0) return 0.0;
  if (rank == 0) rank = 1;
  for (int i = 0; i < BENCH_HIST_BUCKETS; i++) {
    seen += h->count[i];
    if (seen >= rank) return hist_value(i);
  }
  return hist_value(BENCH_HIST_BUCKETS - 1);
}

/* }================================================================== */

/* {==================================================================
 * Addresses
 * =================================================================== */

/* Servers may ask for port 0 (the kernel picks); clients need a real one. */
static int parse_port(const char *s, int allow_port0, int *port) {
  int value = 0;
  size_t n = strlen(s);
  if (n == 0 || n > 5) return UV_EINVAL;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return UV_EINVAL;
    value = value * 10 + (s[i] - '0');
  }
  if ((value == 0 && !allow_port0) || value > 65535) return UV_EINVAL;
  *port = value;
  return 0;
}

/* Accepts IP:PORT and [IPv6]:PORT; nothing is resolved. */
int bench_parse_addr(const char *text, int allow_port0,
                     struct sockaddr_storage *out) {
  char host[64];
  const char *colon = strrchr(text, ':');
  const char *start = text;
  int port;
  if (colon == NULL || parse_port(colon + 1, allow_port0, &port) < 0)
    return UV_EINVAL;
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

/* A load generator aimed elsewhere is a flood tool, and thousands of idle
 * connections aimed elsewhere are an attack; only 127/8 and ::1. */
int bench_is_loopback(const struct sockaddr_storage *ss) {
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

/* The --addr of every client tool: parsed, then refused unless loopback,
 * before anything is opened or sent. */
int bench_parse_loopback(const char *text, struct sockaddr_storage *out) {
  if (bench_parse_addr(text, 0, out) < 0)
    return bench_bad_option("--addr", text,
                            "want IP:PORT or [IPv6]:PORT, port>0");
  if (!bench_is_loopback(out))
    return bench_bad_option("--addr", text, "only 127.0.0.0/8 and ::1 allowed");
  return 0;
}

static void format_addr(const struct sockaddr *sa, char *buf, size_t cap) {
  char host[64] = "?";
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    uv_ip6_name(in6, host, sizeof host);
    snprintf(buf, cap, "[%s]:%d", host, ntohs(in6->sin6_port));
  } else {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    uv_ip4_name(in, host, sizeof host);
    snprintf(buf, cap, "%s:%d", host, ntohs(in->sin_port));
  }
}

/* }================================================================== */

/* {==================================================================
 * Options
 * =================================================================== */

int bench_parse_number(const char *s, double min, double max, double *out) {
  char *end;
  double v = strtod(s, &end);
  if (end == s || *end != '\0' || !(v >= min && v <= max)) return -1;
  *out = v;
  return 0;
}

int bench_parse_count(const char *s, unsigned long min, unsigned long max,
                      unsigned long *out) {
  char *end;
  if (*s < '0' || *s > '9') return -1; /* strtoul would take "-1" */
  unsigned long v = strtoul(s, &end, 10);
  if (*end != '\0' || v < min || v > max) return -1;
  *out = v;
  return 0;
}

int bench_opt_count(const char *name, const char *v, unsigned long min,
                    unsigned long max, unsigned *out) {
  unsigned long n;
  char why[64];
  if (bench_parse_count(v, min, max, &n) == 0) return *out = (unsigned)n, 0;
  snprintf(why, sizeof why, "want an integer %lu..%lu", min, max);
  return bench_bad_option(name, v, why);
}

int bench_bad_option(const char *name, const char *value, const char *why) {
  fprintf(stderr, "%s: bad %s '%s': %s\n", bench_prog, name, value, why);
  return -1;
}

/* --duration and --warmup mean the same in every load generator: the
 * measured window, and the unmeasured run before it. */
int bench_parse_duration(const char *v, double *seconds) {
  if (bench_parse_number(v, 0.001, 120.0, seconds) < 0)
    return bench_bad_option("--duration", v, "want seconds in (0, 120]");
  return 0;
}

int bench_parse_warmup(const char *v, double *seconds) {
  if (bench_parse_number(v, 0, 60.0, seconds) < 0)
    return bench_bad_option("--warmup", v, "want seconds in [0, 60]");
  return 0;
}

/* Long options only. --help prints usage and exits 0 here; any other
 * option goes to parse_one. Returns -1 on the first bad one. */
int bench_getopt(int argc, char **argv, const struct option *longopts,
                 int (*parse_one)(int ch, const char *v),
                 void (*usage)(FILE *f)) {
  int ch;
  while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    if (ch == 'h') {
      usage(stdout);
      exit(0);
    }
    if (ch == '?' || parse_one(ch, optarg) < 0) return -1;
  }
  if (optind < argc)
    return bench_bad_option("argument", argv[optind], "unused");
  return 0;
}

/* }================================================================== */

/* {==================================================================
 * Failures, deadlines and limits
 * =================================================================== */

static void (*fail_stop)(void);

/* The tool's stop_all: every failure ends the run. */
void bench_on_fail(void (*stop)(void)) {
  fail_stop = stop;
}

/* Keeps the first reason only: later errors are usually its echoes. */
void bench_fail(const char *fmt, ...) {
  bench_errors++;
  if (bench_reason[0] == '\0') {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(bench_reason, sizeof bench_reason, fmt, ap);
    va_end(ap);
  }
  if (fail_stop != NULL) fail_stop();
}

/* For writes whose request (and data after it) is one malloc. Cancelled
 * writes are the run stopping, not an error. */
void bench_write_cb(uv_write_t *req, int status) {
  free(req);
  if (status < 0 && status != UV_ECANCELED)
    bench_fail("write: %s", uv_strerror(status));
}

uint64_t bench_ms(double seconds) {
  return (uint64_t)(seconds * 1000.0 + 0.5);
}

/* Built before the alarm is armed: the handler may only write(2). */
static char deadline_msg[128];
static size_t deadline_len;

/* The timers cannot stop a process stuck outside the loop; this can. */
static void alarm_handler(int sig) {
  (void)sig;
  ssize_t r = write(STDERR_FILENO, deadline_msg, deadline_len);
  (void)r;
  _exit(1);
}

/* Exits 1 with "PROG: hard deadline passed, aborting" after seconds. */
void bench_deadline(unsigned seconds) {
  int n = snprintf(deadline_msg, sizeof deadline_msg,
                   "%s: hard deadline passed, aborting\n", bench_prog);
  deadline_len =
      n < (int)sizeof deadline_msg ? (size_t)n : sizeof deadline_msg - 1;
  signal(SIGALRM, alarm_handler);
  alarm(seconds);
}

/* Every connection is a descriptor: take the whole hard limit. rl gets the
 * limits, its soft one raised even if setrlimit refused. Returns 0, -1 if
 * getrlimit failed or -2 if setrlimit did (errno says why); the tool
 * decides what is fatal and what it needs. */
int bench_raise_nofile(struct rlimit *rl) {
  if (getrlimit(RLIMIT_NOFILE, rl) < 0) return -1;
  if (rl->rlim_cur < rl->rlim_max) {
    rl->rlim_cur = rl->rlim_max;
    if (setrlimit(RLIMIT_NOFILE, rl) < 0) return -2;
  }
  return 0;
}

/* }================================================================== */

/* {==================================================================
 * Servers
 * =================================================================== */

static uv_signal_t sigterm_handle, sigint_handle;
static uv_close_cb stop_close_cb;

/* The benchmark script waits for this exact line to learn the port:
 * "listening service=SERVICE proto=tcp|udp addr=HOST:PORT" on stderr. */
int bench_tcp_listen(uv_loop_t *loop, uv_tcp_t *listener, const char *text,
                     const char *who, uv_connection_cb cb) {
  struct sockaddr_storage ss;
  int r;
  if (bench_parse_addr(text, 1, &ss) < 0) {
    fprintf(stderr, "%s: bad address '%s'\n", who, text);
    return UV_EINVAL;
  }
  uv_tcp_init(loop, listener);
  r = uv_tcp_bind(listener, (struct sockaddr *)&ss, 0);
  if (r == 0) r = uv_listen((uv_stream_t *)listener, 1024, cb);
  if (r < 0) fprintf(stderr, "%s: listen %s: %s\n", who, text, uv_strerror(r));
  return r;
}

void bench_announce(uv_handle_t *handle, const char *service) {
  struct sockaddr_storage ss;
  struct sockaddr *sa = (struct sockaddr *)&ss;
  int len = sizeof ss;
  int udp = handle->type == UV_UDP;
  char addr[80] = "?";
  int r = udp ? uv_udp_getsockname((uv_udp_t *)handle, sa, &len)
              : uv_tcp_getsockname((uv_tcp_t *)handle, sa, &len);
  if (r == 0) format_addr(sa, addr, sizeof addr);
  fprintf(stderr, "listening service=%s proto=%s addr=%s\n", service,
          udp ? "udp" : "tcp", addr);
  fflush(stderr);
}

static void close_walk_cb(uv_handle_t *handle, void *arg) {
  uv_close_cb close_cb = *(uv_close_cb *)arg;
  if (!uv_is_closing(handle)) uv_close(handle, close_cb);
}

/* Closing every handle lets uv_run return, so main can close the loop. */
void bench_close_all(uv_loop_t *loop, uv_close_cb close_cb) {
  uv_walk(loop, close_walk_cb, &close_cb);
}

static void signal_cb(uv_signal_t *handle, int signum) {
  (void)signum;
  bench_close_all(handle->loop, stop_close_cb);
}

/* SIGTERM or SIGINT closes every handle with close_cb (NULL for none). */
void bench_stop_on_signals(uv_loop_t *loop, uv_close_cb close_cb) {
  stop_close_cb = close_cb;
  uv_signal_init(loop, &sigterm_handle);
  uv_signal_init(loop, &sigint_handle);
  uv_signal_start(&sigterm_handle, signal_cb, SIGTERM);
  uv_signal_start(&sigint_handle, signal_cb, SIGINT);
}

/* }================================================================== */
