/* idle_conns: opens many idle TCP connections to a loopback server and holds
 * them, for benchmarks that need a server carrying a large idle population
 * (reload time with 10,000 open connections, say).
 *
 * Connects are non-blocking and at most CONNECT_WINDOW are in flight at a
 * time, so the server's listen backlog is not flooded. Once every connection
 * is up it prints one line on stdout (flushed):
 *   ready conns=N
 * then sends nothing and holds them until SIGTERM or SIGINT, or until
 * --max-seconds passed, closes them all and exits 0.
 *
 * With --request PATH each connection first sends one HTTP/1.1 keep-alive
 * request (GET PATH) and counts as up only once the whole response is in
 * (a 2xx status, the body by Content-Length): the server then holds idle
 * keep-alive connections that have each served one request, not fresh
 * ones. Memory for a response's headers exists only until it completes.
 *
 * A timer ends every phase and an alarm backs them up, so it always stops
 * by itself.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <uv.h>

#include "common.h"

#define CONNECT_GRACE_MS 30000 /* all connections must be up by then */
#define CONNECT_WINDOW 256     /* connects in flight at once */
#define ALARM_SLACK_S 10       /* hard stop after the timers should have */
#define FD_SLACK 64            /* descriptors besides the connections */
#define MAX_CONNS 60000        /* one source address, one port range */
#define MAX_SECONDS 3600.0
#define READ_BUF_SIZE 4096
#define RESPONSE_HEAD_MAX 4096 /* status line and headers of one response */

/* {==================================================================
 * State
 * =================================================================== */

enum phase { PH_CONNECT, PH_HOLD, PH_DONE };

/* One connection. The handle comes first so stream callbacks can cast. */
struct conn {
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  unsigned id;
  char *head; /* --request: response head so far, NULL when done */
  unsigned head_len;
  long body_left; /* -1 until the head is complete */
};

struct options {
  const char *addr_text;
  struct sockaddr_storage addr;
  unsigned conns;
  double max_seconds;
  const char *request_path; /* --request: NULL for plain idle connects */
};

static struct options opt = {NULL, {0}, 0, 120.0, NULL};
static uv_loop_t *loop;
static uv_timer_t phase_timer;
static uv_signal_t sigterm, sigint;
static struct conn *conns;
static enum phase phase = PH_CONNECT;
static unsigned started, connected, closed_by_server;
static unsigned up; /* connected, and with --request answered */
static char request[512];
static size_t request_len;
static uint64_t hold_start, hold_end;

static char read_buf[READ_BUF_SIZE]; /* consumed before read_cb returns */

/* Also what bench_fail calls: every failure ends the run. */
static void stop_all(void);

/* }================================================================== */

/* {==================================================================
 * Connections
 * =================================================================== */

static void alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  (void)handle;
  (void)suggested;
  *buf = uv_buf_init(read_buf, sizeof read_buf);
}

static void conn_up(void);

/* --request: the head is complete; its status must be 2xx and its
 * Content-Length says how much body follows (bytes already read count). */
static int response_head_done(struct conn *c, size_t end) {
  const char *cl;
  c->head[c->head_len] = '\0';
  if (strncmp(c->head, "HTTP/1.", 7) != 0 || c->head[9] != '2') {
    bench_fail("conn %u: response '%.40s'", c->id, c->head);
    return -1;
  }
  cl = strcasestr(c->head, "\r\ncontent-length:");
  if (cl == NULL || cl > c->head + end) {
    bench_fail("conn %u: response without Content-Length", c->id);
    return -1;
  }
  c->body_left = strtol(cl + 17, NULL, 10) - (long)(c->head_len - end);
  return 0;
}

/* --request: collects the response's head, then counts down its body; the
 * conn is up once the whole response is in. */
static void response_read(struct conn *c, const char *data, size_t len) {
  if (c->head == NULL) return; /* done: anything later is unexpected */
  if (c->body_left < 0) {
    size_t take = len;
    if (c->head_len + take > RESPONSE_HEAD_MAX) {
      bench_fail("conn %u: response head over %d bytes", c->id,
                 RESPONSE_HEAD_MAX);
      return;
    }
    memcpy(c->head + c->head_len, data, take);
    c->head_len += (unsigned)take;
    c->head[c->head_len] = '\0';
    char *end = strstr(c->head, "\r\n\r\n");
    if (end == NULL) return;
    if (response_head_done(c, (size_t)(end + 4 - c->head)) < 0) return;
  } else {
    c->body_left -= (long)len;
  }
  if (c->body_left > 0) return;
  free(c->head);
  c->head = NULL;
  conn_up();
}

/* Nothing is expected beyond --request's response: bytes are dropped, and
 * a connection the server closes is counted, since a benchmark holding
 * them wants them all held. Once none is left there is nothing to hold. */
static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  struct conn *c = (struct conn *)stream;
  if (phase == PH_DONE) return;
  if (nread > 0 && opt.request_path != NULL && phase == PH_CONNECT) {
    response_read(c, buf->base, (size_t)nread);
    return;
  }
  if (nread >= 0) return;
  closed_by_server++;
  if (bench_reason[0] == '\0')
    snprintf(bench_reason, sizeof bench_reason, "conn %u: %s while held", c->id,
             nread == UV_EOF ? "server closed it" : uv_strerror((int)nread));
  uv_close((uv_handle_t *)&c->tcp, NULL);
  if (phase == PH_HOLD && closed_by_server == opt.conns) stop_all();
}

static void begin_hold(void);
static void connect_next(void);
static void send_request(struct conn *c);

static void connect_cb(uv_connect_t *req, int status) {
  struct conn *c = (struct conn *)req->handle;
  if (status == UV_ECANCELED || phase == PH_DONE) return;
  if (status < 0) {
    bench_fail("connect %s (conn %u of %u): %s", opt.addr_text, c->id + 1,
               opt.conns, uv_strerror(status));
    return;
  }
  int r = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
  if (r < 0) {
    bench_fail("conn %u: read start: %s", c->id, uv_strerror(r));
    return;
  }
  connected++;
  if (opt.request_path == NULL) {
    conn_up();
    return;
  }
  send_request(c);
}

/* The request is a few hundred bytes on a fresh socket: the kernel takes
 * it whole or something is wrong. */
static void send_request(struct conn *c) {
  uv_buf_t b = uv_buf_init(request, (unsigned int)request_len);
  int r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (r != (int)request_len) {
    bench_fail("conn %u: request write: %s", c->id,
               r < 0 ? uv_strerror(r) : "partial");
    return;
  }
  c->head = malloc(RESPONSE_HEAD_MAX + 1);
  if (c->head == NULL) bench_fail("conn %u: out of memory", c->id);
  c->head_len = 0;
  c->body_left = -1;
}

/* One more connection is up (and answered, with --request). */
static void conn_up(void) {
  if (++up == opt.conns) {
    begin_hold();
    return;
  }
  connect_next();
}

/* Starts connects until CONNECT_WINDOW are in flight (connecting, or with
 * --request waiting for the answer) or all are started. */
static void connect_next(void) {
  while (phase == PH_CONNECT && started < opt.conns &&
         started - up < CONNECT_WINDOW) {
    struct conn *c = &conns[started++];
    int r = uv_tcp_connect(&c->connect_req, &c->tcp,
                           (const struct sockaddr *)&opt.addr, connect_cb);
    if (r < 0) {
      bench_fail("connect %s (conn %u of %u): %s", opt.addr_text, c->id + 1,
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

static void phase_cb(uv_timer_t *timer) {
  (void)timer;
  if (phase == PH_CONNECT)
    bench_fail(
        "connect timeout: %u of %u connections up (%u connected) "
        "after %d s",
        up, opt.conns, connected, CONNECT_GRACE_MS / 1000);
  else if (phase == PH_HOLD)
    stop_all();
}

static void begin_hold(void) {
  phase = PH_HOLD;
  hold_start = uv_hrtime();
  printf("ready conns=%u answered=%u\n", up, opt.request_path != NULL ? up : 0);
  fflush(stdout);
  uv_timer_start(&phase_timer, phase_cb, bench_ms(opt.max_seconds), 0);
}

static void signal_cb(uv_signal_t *handle, int signum) {
  (void)handle;
  if (phase == PH_CONNECT)
    bench_fail("%s before all connections were up (%u of %u)",
               strsignal(signum), up, opt.conns);
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
  /* Closing the handles restored the default action, and timeout(1)
   * forwards a TERM to its whole process group, so a second copy could
   * kill us mid-close: from here the hard deadline is the backstop. */
  signal(SIGTERM, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  for (unsigned i = 0; conns != NULL && i < opt.conns; i++)
    if (!uv_is_closing((uv_handle_t *)&conns[i].tcp))
      uv_close((uv_handle_t *)&conns[i].tcp, NULL);
}

/* Every connection is a descriptor: take the whole hard limit, and say so
 * up front if even that is too small. */
static int raise_nofile(void) {
  struct rlimit rl;
  int r = bench_raise_nofile(&rl);
  if (r < 0) {
    perror(r == -1 ? "idle_conns: getrlimit(RLIMIT_NOFILE)"
                   : "idle_conns: setrlimit(RLIMIT_NOFILE)");
    return -1;
  }
  if (rl.rlim_cur != RLIM_INFINITY &&
      rl.rlim_cur < (rlim_t)opt.conns + FD_SLACK) {
    fprintf(stderr,
            "idle_conns: open-file limit %llu too small for %u connections "
            "(need %u; raise the hard limit, ulimit -Hn)\n",
            (unsigned long long)rl.rlim_cur, opt.conns, opt.conns + FD_SLACK);
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
          "[--max-seconds S] [--request PATH]\n"
          "Loopback only. Holds N idle connections until SIGTERM/SIGINT or "
          "S seconds\n(default 120) pass; prints 'ready conns=N' once all "
          "are up.\nWith --request, each first sends GET PATH (HTTP/1.1 "
          "keep-alive) and is up\nonce the whole response is in.\n");
}

static int parse_one(int ch, const char *v) {
  switch (ch) {
    case 'a':
      opt.addr_text = v;
      return bench_parse_loopback(v, &opt.addr);
    case 'c':
      return bench_opt_count("--conns", v, 1, MAX_CONNS, &opt.conns);
    case 'm':
      if (bench_parse_number(v, 0.001, MAX_SECONDS, &opt.max_seconds) < 0)
        return bench_bad_option("--max-seconds", v,
                                "want seconds in (0, 3600]");
      return 0;
    case 'r':
      if (v[0] != '/' || strlen(v) > 256 || strpbrk(v, " \r\n") != NULL)
        return bench_bad_option("--request", v,
                                "want a path: /..., no spaces, <= 256 bytes");
      opt.request_path = v;
      return 0;
  }
  return -1;
}

static int parse_options(int argc, char **argv) {
  static const struct option longopts[] = {
      {"addr", required_argument, NULL, 'a'},
      {"conns", required_argument, NULL, 'c'},
      {"max-seconds", required_argument, NULL, 'm'},
      {"request", required_argument, NULL, 'r'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  if (bench_getopt(argc, argv, longopts, parse_one, usage) < 0) return -1;
  if (opt.addr_text == NULL || opt.conns == 0) {
    fprintf(stderr, "idle_conns: --addr and --conns are required\n");
    return -1;
  }
  if (opt.request_path != NULL)
    request_len = (size_t)snprintf(request, sizeof request,
                                   "GET %s HTTP/1.1\r\nHost: %s\r\n"
                                   "User-Agent: idle_conns\r\n\r\n",
                                   opt.request_path, opt.addr_text);
  return 0;
}

/* }================================================================== */

/* {==================================================================
 * Main
 * =================================================================== */

static void report(void) {
  double held =
      hold_end > hold_start ? (double)(hold_end - hold_start) / 1e9 : 0.0;
  if (closed_by_server > 0 && bench_errors == 0) bench_errors++;
  fprintf(stderr,
          "idle_conns: conns=%u up=%u held_s=%.3f closed_by_server=%u\n",
          connected, up, held, closed_by_server);
  if (bench_errors > 0) fprintf(stderr, "idle_conns: %s\n", bench_reason);
}

int main(int argc, char **argv) {
  bench_prog = "idle_conns";
  bench_on_fail(stop_all);
  if (parse_options(argc, argv) < 0) {
    usage(stderr);
    return 2;
  }
  if (raise_nofile() < 0) return 1;
  signal(SIGPIPE, SIG_IGN);
  bench_deadline((unsigned)(CONNECT_GRACE_MS / 1000 + opt.max_seconds + 0.999) +
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
    bench_fail("setup: %s", uv_strerror(r));
  else
    connect_next();
  uv_run(loop, UV_RUN_DEFAULT);
  r = uv_loop_close(loop);
  if (r < 0 && bench_errors == 0) bench_fail("loop close: %s", uv_strerror(r));
  report();
  for (unsigned i = 0; conns != NULL && i < opt.conns; i++) free(conns[i].head);
  free(conns);
  return bench_errors > 0 ? 1 : 0;
}

/* }================================================================== */
