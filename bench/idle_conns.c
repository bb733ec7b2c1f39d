/* idle_conns: opens many idle TCP connections to a loopback server and holds
 * them, for benchmarks that need a server carrying a large idle population
 * (reload time with 10,000 open connections, say).
 *
 * Connects are non-blocking and at most CONNECT_WINDOW are in flight at a
 * time, so the server's listen backlog is not flooded. Once every connection
 * is up it prints one line on stdout (flushed):
 *   ready conns=N
 * then sends nothing and holds them until SIGTERM or SIGINT, or until
 * --max-seconds passed, closes them all and exits 0. A timer ends every
 * phase and an alarm backs them up, so it always stops by itself.
 *
 * Exit status 0; 1 if the connections were not all up within
 * CONNECT_GRACE_MS, a connect failed, the server closed any of them while
 * held, or a signal came before all were up (reason on stderr); 2 for bad
 * usage. On exit stderr gets
 *   idle_conns: conns=N held_s=S closed_by_server=C */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <uv.h>

#define CONNECT_GRACE_MS 30000 /* all connections must be up by then */
#define CONNECT_WINDOW 256     /* connects in flight at once */
#define ALARM_SLACK_S 10       /* hard stop after the timers should have */
#define FD_SLACK 64            /* descriptors besides the connections */
#define MAX_CONNS 60000        /* one source address, one port range */
#define MAX_SECONDS 3600.0
#define READ_BUF_SIZE 4096

/* {==================================================================
 * State
 * =================================================================== */

enum phase { PH_CONNECT, PH_HOLD, PH_DONE };

/* One connection. The handle comes first so stream callbacks can cast. */
struct conn {
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  unsigned id;
};

struct options {
  const char *addr_text;
  struct sockaddr_storage addr;
  unsigned conns;
  double max_seconds;
};

static struct options opt = {NULL, {0}, 0, 120.0};
static uv_loop_t *loop;
static uv_timer_t phase_timer;
static uv_signal_t sigterm, sigint;
static struct conn *conns;
static enum phase phase = PH_CONNECT;
static unsigned started, connected, closed_by_server;
static uint64_t hold_start, hold_end;
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
 * Connections
 * =================================================================== */

static void alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  (void)handle;
  (void)suggested;
  *buf = uv_buf_init(read_buf, sizeof read_buf);
}

/* Nothing is expected: bytes are dropped, and a connection the server
 * closes is counted, since a benchmark holding them wants them all held.
 * Once none is left there is nothing to hold. */
static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  struct conn *c = (struct conn *)stream;
  (void)buf;
  if (phase == PH_DONE || nread >= 0) return;
  closed_by_server++;
  if (reason[0] == '\0')
    snprintf(reason, sizeof reason, "conn %u: %s while held", c->id,
             nread == UV_EOF ? "server closed it" : uv_strerror((int)nread));
  uv_close((uv_handle_t *)&c->tcp, NULL);
  if (phase == PH_HOLD && closed_by_server == opt.conns) stop_all();
}

static void begin_hold(void);
static void connect_next(void);

static void connect_cb(uv_connect_t *req, int status) {
  struct conn *c = (struct conn *)req->handle;
  if (status == UV_ECANCELED || phase == PH_DONE) return;
  if (status < 0) {
    fail("connect %s (conn %u of %u): %s", opt.addr_text, c->id + 1,
         opt.conns, uv_strerror(status));
    return;
  }
  int r = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
  if (r < 0) {
    fail("conn %u: read start: %s", c->id, uv_strerror(r));
    return;
  }
  if (++connected == opt.conns) {
    begin_hold();
    return;
  }
  connect_next();
}

/* Starts connects until CONNECT_WINDOW are in flight or all are started. */
static void connect_next(void) {
  while (phase == PH_CONNECT && started < opt.conns &&
         started - connected < CONNECT_WINDOW) {
    struct conn *c = &conns[started++];
    int r = uv_tcp_connect(&c->connect_req, &c->tcp,
                           (const struct sockaddr *)&opt.addr, connect_cb);
    if (r < 0) {
      fail("connect %s (conn %u of %u): %s", opt.addr_text, c->id + 1,
           opt.conns, uv_strerror(r));
      return;
    }
  }
}

/* Every handle is initialised before any can fail, so stop_all may close
 * the whole array whatever happened. */
static int conns_init(void) {
  conns = calloc(opt.conns, sizeof *conns);
  if (conns == NULL) return UV_ENOMEM;
  for (unsigned i = 0; i < opt.conns; i++) {
    conns[i].id = i;
    uv_tcp_init(loop, &conns[i].tcp);
  }
  return 0;
}

/* }================================================================== */

/* {==================================================================
 * Phases: connect -> hold -> done, each ended by phase_timer or a signal
 * =================================================================== */

static uint64_t ms(double seconds) {
  return (uint64_t)(seconds * 1000.0 + 0.5);
}

static void phase_cb(uv_timer_t *timer) {
  (void)timer;
  if (phase == PH_CONNECT)
    fail("connect timeout: %u of %u connections up after %d s", connected,
         opt.conns, CONNECT_GRACE_MS / 1000);
  else if (phase == PH_HOLD)
    stop_all();
}

static void begin_hold(void) {
  phase = PH_HOLD;
  hold_start = uv_hrtime();
  printf("ready conns=%u\n", connected);
  fflush(stdout);
  uv_timer_start(&phase_timer, phase_cb, ms(opt.max_seconds), 0);
}

static void signal_cb(uv_signal_t *handle, int signum) {
  (void)handle;
  if (phase == PH_CONNECT)
    fail("%s before all connections were up (%u of %u)", strsignal(signum),
         connected, opt.conns);
  else
    stop_all();
}

/* Closing every handle empties the loop, which ends uv_run in main. Pending
 * connects come back with UV_ECANCELED, which is not an error. */
static void stop_all(void) {
  if (phase == PH_DONE) return;
  if (phase == PH_HOLD) hold_end = uv_hrtime();
  phase = PH_DONE;
  uv_close((uv_handle_t *)&phase_timer, NULL);
  uv_close((uv_handle_t *)&sigterm, NULL);
  uv_close((uv_handle_t *)&sigint, NULL);
  for (unsigned i = 0; conns != NULL && i < opt.conns; i++)
    if (!uv_is_closing((uv_handle_t *)&conns[i].tcp))
      uv_close((uv_handle_t *)&conns[i].tcp, NULL);
}

/* The timers cannot stop a process stuck outside the loop; this can. */
static void alarm_handler(int sig) {
  static const char msg[] = "idle_conns: hard deadline passed, aborting\n";
  (void)sig;
  ssize_t r = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)r;
  _exit(1);
}

/* Every connection is a descriptor: take the whole hard limit, and say so
 * up front if even that is too small. */
static int raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
    perror("idle_conns: getrlimit(RLIMIT_NOFILE)");
    return -1;
  }
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
      perror("idle_conns: setrlimit(RLIMIT_NOFILE)");
      return -1;
    }
  }
  if (rl.rlim_cur != RLIM_INFINITY &&
      rl.rlim_cur < (rlim_t)opt.conns + FD_SLACK) {
    fprintf(stderr,
            "idle_conns: open-file limit %llu too small for %u connections "
            "(need %u; raise the hard limit, ulimit -Hn)\n",
            (unsigned long long)rl.rlim_cur, opt.conns,
            opt.conns + FD_SLACK);
    return -1;
  }
  return 0;
}

/* }================================================================== */

/* {==================================================================
 * Options
 * =================================================================== */

static void usage(FILE *f) {
  fprintf(f,
          "usage: idle_conns --addr IP:PORT|[::1]:PORT --conns N "
          "[--max-seconds S]\n"
          "Loopback only. Holds N idle connections until SIGTERM/SIGINT or "
          "S seconds\n(default 120) pass; prints 'ready conns=N' once all "
          "are up.\n");
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

/* Thousands of connections aimed elsewhere are an attack; only 127/8 and
 * ::1. */
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
  fprintf(stderr, "idle_conns: bad %s '%s': %s\n", name, value, why);
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
        return bad_option("--conns", v, "want an integer 1..60000");
      opt.conns = (unsigned)n;
      return 0;
    case 'm':
      if (parse_number(v, 0.001, MAX_SECONDS, &opt.max_seconds) < 0)
        return bad_option("--max-seconds", v, "want seconds in (0, 3600]");
      return 0;
  }
  return -1;
}

static int parse_options(int argc, char **argv) {
  static const struct option longopts[] = {
      {"addr", required_argument, NULL, 'a'},
      {"conns", required_argument, NULL, 'c'},
      {"max-seconds", required_argument, NULL, 'm'},
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
  if (opt.addr_text == NULL || opt.conns == 0) {
    fprintf(stderr, "idle_conns: --addr and --conns are required\n");
    return -1;
  }
  return 0;
}

/* }================================================================== */

/* {==================================================================
 * Main
 * =================================================================== */

static void report(void) {
  double held = hold_end > hold_start
                    ? (double)(hold_end - hold_start) / 1e9 : 0.0;
  if (closed_by_server > 0 && errors == 0) errors++;
  fprintf(stderr, "idle_conns: conns=%u held_s=%.3f closed_by_server=%u\n",
          connected, held, closed_by_server);
  if (errors > 0) fprintf(stderr, "idle_conns: %s\n", reason);
}

int main(int argc, char **argv) {
  if (parse_options(argc, argv) < 0) {
    usage(stderr);
    return 2;
  }
  if (raise_nofile() < 0) return 1;
  signal(SIGPIPE, SIG_IGN);
  signal(SIGALRM, alarm_handler);
  alarm((unsigned)(CONNECT_GRACE_MS / 1000 + opt.max_seconds + 0.999) +
        ALARM_SLACK_S);
  loop = uv_default_loop();
  uv_timer_init(loop, &phase_timer);
  uv_signal_init(loop, &sigterm);
  uv_signal_init(loop, &sigint);
  uv_signal_start(&sigterm, signal_cb, SIGTERM);
  uv_signal_start(&sigint, signal_cb, SIGINT);
  uv_timer_start(&phase_timer, phase_cb, CONNECT_GRACE_MS, 0);
  int r = conns_init();
  if (r < 0)
    fail("setup: %s", uv_strerror(r));
  else
    connect_next();
  uv_run(loop, UV_RUN_DEFAULT);
  r = uv_loop_close(loop);
  if (r < 0 && errors == 0) fail("loop close: %s", uv_strerror(r));
  report();
  free(conns);
  return errors > 0 ? 1 : 0;
}

/* }================================================================== */
