/* tls_connect: a TLS client for loopback benchmarks, one epoll loop, two
 * modes.
 *
 * Rate (--duration S): --conns slots each run connections back to back
 * for S seconds: connect, full TLS handshake (or, with --resume, one that
 * offers the session ticket the slot's previous connection was given),
 * one "GET PATH HTTP/1.1" with "Connection: close", the whole response
 * (a 2xx status, the body by Content-Length), then read to the server's
 * close and close. OpenSSL, like browsers (RFC 8446 C.4), uses a TLS 1.3
 * ticket once: --resume offers the newest ticket the slot was given, so a
 * server that sends none after a resumption gets a full handshake next
 * time. --resume-first offers the slot's first ticket every time (a copy,
 * which stays resumable), so every connection after a slot's first one
 * resumes wherever the server's tickets may be reused: the cost of
 * resumption itself. At the end one line on stdout:
 *   done=N duration_s=S conns_per_s=R resumed=M conns=C sources=K
 * where N counts connections that completed inside the window (the ones
 * still in flight at its end are closed and not counted) and M how many
 * of them resumed a session.
 *
 * Hold (--hold N): N connections each handshake and complete one such
 * request with keep-alive (no Connection: close), then sit idle; once all
 * are up it prints, flushed,
 *   ready conns=N
 * and holds them until SIGTERM or SIGINT, or --max-seconds passed. A
 * server closing any of them while held is an error.
 *
 * Certificates are not verified (the benchmark made them; a chain check
 * is the client's cost, not the server's), but TLS 1.3 still has the
 * client check the server's CertificateVerify signature. The SNI sent is
 * --server-name (default localhost). Source addresses rotate over
 * 127.0.0.1 .. 127.0.0.K (--sources K) with the port picked at connect
 * time (IP_BIND_ADDRESS_NO_PORT), so many short connections do not run
 * out of ephemeral ports against one server address.
 *
 * Exit status 0; 1 if any connection failed (reason on stderr), 2 for bad
 * usage. An alarm ends it whatever happens. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common.h"

#define MAX_SLOTS 60000                      /* --hold: one conn per slot */
#define MAX_RATE_SLOTS 1024                  /* --conns in rate mode */
#define MAX_SOURCES 250                      /* 127.0.0.1 .. 127.0.0.250 */
#define CONN_TIMEOUT_NS (10 * 1000000000ULL) /* one connection's bound */
#define HOLD_WINDOW 256 /* --hold: handshakes in flight at once */
#define HOLD_GRACE_S 60 /* --hold: all must be up by then */
#define ALARM_SLACK_S 15
#define FD_SLACK 64
#define RESPONSE_HEAD_MAX 4096
#define READ_BUF_SIZE 16384
#define TICK_MS 100 /* how often deadlines are looked at */

/* {==================================================================
 * State
 * =================================================================== */

/* No state of its own for connect(2): the handshake's first write waits
 * (EAGAIN) until the socket is connected, and fails if it could not. */
enum cstate { C_IDLE, C_HANDSHAKE, C_WRITE, C_READ, C_DRAIN, C_HOLD };

/* One slot: in rate mode it runs connection after connection, keeping
 * the last session it was given; in hold mode it is one connection. */
struct conn {
  int fd;
  enum cstate state;
  SSL *ssl;
  SSL_SESSION *session; /* the ticket to offer: the newest, or the first */
  unsigned id;
  uint64_t started_ns;
  size_t sent; /* of the request */
  unsigned head_len;
  long body_left; /* -1 until the head is complete */
  char head[RESPONSE_HEAD_MAX + 1];
};

struct options {
  const char *addr_text;
  struct sockaddr_storage addr;
  double duration; /* rate mode when > 0 */
  unsigned hold;   /* hold mode when > 0 */
  unsigned conns;
  unsigned sources;
  int resume; /* 1: the newest ticket, 2: the first, again */
  double max_seconds;
  const char *path;
  const char *server_name;
};

static struct options opt = {.conns = 16,
                             .sources = 8,
                             .max_seconds = 120.0,
                             .path = "/",
                             .server_name = "localhost"};
static SSL_CTX *ctx;
static int epfd = -1, sigfd = -1;
static struct conn *conns;
static unsigned nslots;
static char request[600];
static size_t request_len;
static char read_buf[READ_BUF_SIZE]; /* consumed before each step returns */

static int stopping;         /* the window ended, a signal came, or a failure */
static int measuring;        /* rate mode: inside the window */
static unsigned started, up; /* hold mode: connects begun, conns held */
static uint64_t done, resumed, connects;
static uint64_t window_start, window_end;

static void stop_all(void);

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* }================================================================== */

/* {==================================================================
 * OpenSSL
 * =================================================================== */

/* The first OpenSSL error's reason, or the errno a syscall failure left. */
static const char *ssl_reason(int err) {
  static char buf[160];
  unsigned long e = ERR_get_error();
  if (e != 0) {
    ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return buf;
  }
  if (err == SSL_ERROR_ZERO_RETURN) return "closed by the server";
  if (err == SSL_ERROR_SYSCALL)
    return errno != 0 ? strerror(errno) : "unexpected EOF";
  snprintf(buf, sizeof buf, "SSL error %d", err);
  return buf;
}

/* A TLS 1.3 ticket comes after the handshake, before the response: the
 * slot keeps the newest (a server may send several), or with
 * --resume-first its first. Returning 1 keeps the reference OpenSSL
 * handed over. */
static int new_session_cb(SSL *ssl, SSL_SESSION *sess) {
  struct conn *c = SSL_get_app_data(ssl);
  if (c == NULL || !opt.resume) return 0;
  if (opt.resume == 2 && c->session != NULL) return 0;
  if (c->session != NULL) SSL_SESSION_free(c->session);
  c->session = sess;
  return 1;
}

/* With SSL_VERIFY_NONE OpenSSL still builds and checks the chain and
 * only ignores the verdict; skipping it keeps the client's cost per
 * handshake down, which matters when client and server share 2 CPUs. */
static int skip_chain_cb(X509_STORE_CTX *store, void *arg) {
  (void)store;
  (void)arg;
  return 1;
}

static int ctx_init(void) {
  ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == NULL) return -1;
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  SSL_CTX_set_cert_verify_callback(ctx, skip_chain_cb, NULL);
  /* One read(2) for what the socket has, not two per record. */
  SSL_CTX_set_read_ahead(ctx, 1);
  /* Thousands of held conns: no idle record buffers on our side either. */
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_session_cache_mode(
      ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
  return 0;
}

/* }================================================================== */

/* {==================================================================
 * One connection
 * =================================================================== */

/* Ends the slot's connection; in rate mode, if it completed inside the
 * window it counts. Nothing is sent at close: the server closed first. */
static void conn_close(struct conn *c) {
  if (c->ssl != NULL) {
    SSL_set_app_data(c->ssl, NULL);
    SSL_free(c->ssl);
    c->ssl = NULL;
  }
  if (c->fd >= 0) close(c->fd); /* also drops it from the epoll set */
  c->fd = -1;
  c->state = C_IDLE;
}

static void conn_fail(struct conn *c, const char *what, const char *why) {
  bench_fail("conn %u: %s: %s", c->id, what, why);
  conn_close(c);
}

/* Sources 127.0.0.1 .. 127.0.0.K in turn, the port left to connect(). */
static int bind_source(int fd, unsigned n) {
  struct sockaddr_in src;
  int one = 1;
  if (opt.addr.ss_family != AF_INET || opt.sources <= 1) return 0;
  memset(&src, 0, sizeof src);
  src.sin_family = AF_INET;
  src.sin_addr.s_addr = htonl(0x7f000001u + n % opt.sources);
  if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one))
    return -1;
  return bind(fd, (struct sockaddr *)&src, sizeof src);
}

static int conn_socket(struct conn *c) {
  int one = 1;
  socklen_t len = opt.addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                 : sizeof(struct sockaddr_in);
  c->fd = socket(opt.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (c->fd < 0) return -1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (bind_source(c->fd, (unsigned)connects) < 0) return -1;
  if (connect(c->fd, (struct sockaddr *)&opt.addr, len) < 0 &&
      errno != EINPROGRESS)
    return -1;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET,
                           .data.ptr = c};
  return epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
}

static void conn_step(struct conn *c);

/* Once used, OpenSSL marks a TLS 1.3 session not resumable; a copy is
 * used up in its place when the first ticket is to be offered again. */
static void offer_session(struct conn *c) {
  SSL_SESSION *s = opt.resume == 2 ? SSL_SESSION_dup(c->session) : c->session;
  if (s == NULL) return; /* out of memory: a full handshake */
  SSL_set_session(c->ssl, s);
  if (s != c->session) SSL_SESSION_free(s); /* the SSL holds its own ref */
}

/* A new connection in slot c, offering the slot's session with --resume. */
static void conn_start(struct conn *c) {
  c->state = C_HANDSHAKE;
  c->started_ns = now_ns();
  c->sent = 0, c->head_len = 0, c->body_left = -1;
  connects++;
  if (conn_socket(c) < 0) {
    conn_fail(c, "connect", strerror(errno));
    return;
  }
  c->ssl = SSL_new(ctx);
  if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
    conn_fail(c, "SSL_new", ssl_reason(0));
    return;
  }
  SSL_set_app_data(c->ssl, c);
  SSL_set_tlsext_host_name(c->ssl, opt.server_name);
  if (opt.resume && c->session != NULL) offer_session(c);
  SSL_set_connect_state(c->ssl);
}

/* 0 when OpenSSL only waits for the socket, -1 (conn failed) otherwise. */
static int ssl_wait(struct conn *c, int r, const char *what) {
  int err = SSL_get_error(c->ssl, r);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return 0;
  conn_fail(c, what, ssl_reason(err));
  return -1;
}

/* Each step returns 1 to go on to the next state, 0 to wait for epoll. */
static int step_handshake(struct conn *c) {
  int r = SSL_do_handshake(c->ssl);
  if (r != 1) return ssl_wait(c, r, "handshake"), 0;
  c->state = C_WRITE;
  return 1;
}

static int step_write(struct conn *c) {
  int r = SSL_write(c->ssl, request + c->sent, (int)(request_len - c->sent));
  if (r <= 0) return ssl_wait(c, r, "request"), 0;
  c->sent += (size_t)r;
  if (c->sent < request_len) return 1;
  c->state = C_READ;
  return 1;
}

/* The response head so far is complete: a 2xx status and how much body
 * is still to come (what was read past the head counts). */
static int head_done(struct conn *c, size_t end) {
  const char *cl;
  if (strncmp(c->head, "HTTP/1.", 7) != 0 || c->head[9] != '2') {
    conn_fail(c, "response", "not a 2xx status");
    return -1;
  }
  cl = strcasestr(c->head, "\r\ncontent-length:");
  if (cl == NULL || cl > c->head + end) {
    conn_fail(c, "response", "no Content-Length");
    return -1;
  }
  c->body_left = strtol(cl + 17, NULL, 10) - (long)(c->head_len - end);
  return 0;
}

/* Takes n response bytes; 1 once the whole response is in, -1 failed. */
static int response_take(struct conn *c, const char *data, size_t n) {
  if (c->body_left >= 0) {
    c->body_left -= (long)n;
    return c->body_left <= 0;
  }
  if (c->head_len + n > RESPONSE_HEAD_MAX) {
    conn_fail(c, "response", "head too long");
    return -1;
  }
  memcpy(c->head + c->head_len, data, n);
  c->head_len += (unsigned)n;
  c->head[c->head_len] = '\0';
  char *end = strstr(c->head, "\r\n\r\n");
  if (end == NULL) return 0;
  if (head_done(c, (size_t)(end + 4 - c->head)) < 0) return -1;
  return c->body_left <= 0;
}

/* A complete response: in rate mode count it (inside the window) and wait
 * for the server's close; in hold mode the connection is up. */
static void response_done(struct conn *c) {
  if (opt.hold > 0) {
    c->state = C_HOLD;
    up++;
    return;
  }
  if (measuring) {
    done++;
    if (SSL_session_reused(c->ssl)) resumed++;
  }
  c->state = C_DRAIN;
}

static int step_read(struct conn *c) {
  int r = SSL_read(c->ssl, read_buf, sizeof read_buf);
  if (r <= 0) return ssl_wait(c, r, "response"), 0;
  r = response_take(c, read_buf, (size_t)r);
  if (r < 0) return 0;
  if (r > 0) response_done(c);
  return 1;
}

/* After a Connection: close response the server closes; a close_notify,
 * a plain EOF or a reset all end the connection well. */
static int step_drain(struct conn *c) {
  int r = SSL_read(c->ssl, read_buf, sizeof read_buf);
  if (r > 0) return 1; /* nothing is expected; keep reading to the end */
  int err = SSL_get_error(c->ssl, r);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return 0;
  ERR_clear_error();
  /* Freed without a shutdown, OpenSSL marks the session not resumable;
   * the exchange completed, so say it ended well (no close_notify is
   * sent: the server has closed already). */
  SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  conn_close(c);
  if (!stopping) conn_start(c);
  return c->state != C_IDLE;
}

/* Held: nothing should come; the server closing it is an error. */
static int step_hold(struct conn *c) {
  int r = SSL_read(c->ssl, read_buf, sizeof read_buf);
  if (r > 0) return 1;
  ssl_wait(c, r, "held connection");
  return 0;
}

/* Runs the connection's state machine until it has to wait (epoll is
 * edge-triggered, so each step goes until OpenSSL wants the socket). */
static void conn_step(struct conn *c) {
  int go = 1;
  while (go && c->state != C_IDLE) {
    switch (c->state) {
      case C_HANDSHAKE:
        go = step_handshake(c);
        break;
      case C_WRITE:
        go = step_write(c);
        break;
      case C_READ:
        go = step_read(c);
        break;
      case C_DRAIN:
        go = step_drain(c);
        break;
      case C_HOLD:
        go = step_hold(c);
        break;
      case C_IDLE:
        go = 0;
        break;
    }
  }
}

/* }================================================================== */

/* {==================================================================
 * The loop
 * =================================================================== */

/* Hold mode: keeps HOLD_WINDOW connections on their way up. */
static void hold_next(void) {
  while (!stopping && started < opt.hold && started - up < HOLD_WINDOW) {
    struct conn *c = &conns[started++];
    conn_start(c);
    conn_step(c);
  }
  if (!stopping && up == opt.hold && window_start == 0) {
    window_start = now_ns();
    printf("ready conns=%u\n", up);
    fflush(stdout);
  }
}

/* A connection stuck longer than CONN_TIMEOUT_NS fails the run; a held
 * one is not stuck. */
static void check_timeouts(uint64_t now) {
  for (unsigned i = 0; i < nslots; i++) {
    struct conn *c = &conns[i];
    if (c->state == C_IDLE || c->state == C_HOLD) continue;
    if (now - c->started_ns > CONN_TIMEOUT_NS)
      conn_fail(c, "timeout",
                c->state == C_HANDSHAKE ? "in the handshake" : "no answer");
  }
}

/* The phases by the clock: rate mode's window; hold mode's grace for
 * getting every connection up, then --max-seconds of holding. */
static void check_clock(uint64_t now, uint64_t t0) {
  if (opt.duration > 0 && now - t0 >= (uint64_t)(opt.duration * 1e9)) {
    window_end = now;
    stop_all();
  } else if (opt.hold > 0 && window_start == 0 &&
             now - t0 > HOLD_GRACE_S * 1000000000ULL) {
    bench_fail("only %u of %u connections up after %d s", up, opt.hold,
               HOLD_GRACE_S);
  } else if (opt.hold > 0 && window_start != 0 &&
             now - window_start >= (uint64_t)(opt.max_seconds * 1e9)) {
    stop_all();
  }
}

static void stop_all(void) {
  stopping = 1;
  measuring = 0;
}

static void on_signal(void) {
  struct signalfd_siginfo si;
  if (read(sigfd, &si, sizeof si) != (ssize_t)sizeof si) return;
  if (opt.hold > 0 && window_start == 0)
    bench_fail("%s before all connections were up (%u of %u)",
               strsignal((int)si.ssi_signo), up, opt.hold);
  if (window_end == 0) window_end = now_ns();
  stop_all();
}

static void run(void) {
  struct epoll_event ev[256];
  uint64_t t0 = now_ns(), last_tick = t0;
  window_start = opt.hold > 0 ? 0 : t0;
  measuring = opt.hold == 0;
  if (opt.hold > 0)
    hold_next();
  else
    for (unsigned i = 0; i < nslots; i++) {
      conn_start(&conns[i]);
      conn_step(&conns[i]);
    }
  while (!stopping) {
    int n = epoll_wait(epfd, ev, 256, TICK_MS);
    if (n < 0 && errno != EINTR) bench_fail("epoll_wait: %s", strerror(errno));
    for (int i = 0; i < n && !stopping; i++) {
      if (ev[i].data.ptr == NULL)
        on_signal();
      else
        conn_step(ev[i].data.ptr);
    }
    if (opt.hold > 0) hold_next();
    uint64_t now = now_ns();
    check_clock(now, t0);
    if (now - last_tick >= TICK_MS * 1000000ULL) {
      check_timeouts(now);
      last_tick = now;
    }
  }
}

/* }================================================================== */

/* {==================================================================
 * Options and main
 * =================================================================== */

static void usage(FILE *f) {
  fprintf(f,
          "usage: tls_connect --addr IP:PORT (--duration S | --hold N)\n"
          "                   [--conns N (16)] [--resume | --resume-first]\n"
          "                   [--sources K (8)]\n"
          "                   [--path P (/)] [--server-name NAME (localhost)]"
          "\n                   [--max-seconds S (120, --hold)]\n"
          "Loopback only. --duration: new TLS connections back to back, one "
          "GET with\nConnection: close each, prints conns_per_s. --hold: N "
          "keep-alive TLS conns\nthat each served one GET, held idle; prints "
          "'ready conns=N'.\n");
}

static int parse_one(int ch, const char *v) {
  switch (ch) {
    case 'a':
      opt.addr_text = v;
      return bench_parse_loopback(v, &opt.addr);
    case 'd':
      return bench_parse_duration(v, &opt.duration);
    case 'H':
      return bench_opt_count("--hold", v, 1, MAX_SLOTS, &opt.hold);
    case 'c':
      return bench_opt_count("--conns", v, 1, MAX_RATE_SLOTS, &opt.conns);
    case 's':
      return bench_opt_count("--sources", v, 1, MAX_SOURCES, &opt.sources);
    case 'r':
      opt.resume = 1;
      return 0;
    case 'f':
      opt.resume = 2;
      return 0;
    case 'm':
      if (bench_parse_number(v, 0.001, 3600, &opt.max_seconds) < 0)
        return bench_bad_option("--max-seconds", v, "want (0, 3600]");
      return 0;
    case 'p':
      if (v[0] != '/' || strlen(v) > 256 || strpbrk(v, " \r\n") != NULL)
        return bench_bad_option("--path", v, "want /..., no spaces");
      opt.path = v;
      return 0;
    case 'n':
      if (strlen(v) == 0 || strlen(v) > 200)
        return bench_bad_option("--server-name", v, "want 1..200 bytes");
      opt.server_name = v;
      return 0;
  }
  return -1;
}

static int parse_options(int argc, char **argv) {
  static const struct option longopts[] = {
      {"addr", required_argument, NULL, 'a'},
      {"duration", required_argument, NULL, 'd'},
      {"hold", required_argument, NULL, 'H'},
      {"conns", required_argument, NULL, 'c'},
      {"sources", required_argument, NULL, 's'},
      {"resume", no_argument, NULL, 'r'},
      {"resume-first", no_argument, NULL, 'f'},
      {"max-seconds", required_argument, NULL, 'm'},
      {"path", required_argument, NULL, 'p'},
      {"server-name", required_argument, NULL, 'n'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  if (bench_getopt(argc, argv, longopts, parse_one, usage) < 0) return -1;
  if (opt.addr_text == NULL || (opt.duration > 0) == (opt.hold > 0)) {
    fprintf(stderr, "tls_connect: --addr and one of --duration, --hold\n");
    return -1;
  }
  request_len = (size_t)snprintf(
      request, sizeof request,
      "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tls_connect\r\n%s\r\n",
      opt.path, opt.server_name, opt.hold > 0 ? "" : "Connection: close\r\n");
  return 0;
}

/* SIGTERM and SIGINT arrive as readable data on sigfd, a loop event like
 * any other (its epoll entry's pointer is NULL). */
static int loop_init(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) return -1;
  sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (sigfd < 0 || epfd < 0) return -1;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  return epoll_ctl(epfd, EPOLL_CTL_ADD, sigfd, &ev);
}

static int slots_init(void) {
  nslots = opt.hold > 0 ? opt.hold : opt.conns;
  conns = calloc(nslots, sizeof *conns);
  if (conns == NULL) return -1;
  for (unsigned i = 0; i < nslots; i++) conns[i].fd = -1, conns[i].id = i;
  return 0;
}

static int check_nofile(void) {
  struct rlimit rl;
  if (bench_raise_nofile(&rl) == -1) return -1;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < nslots + FD_SLACK) {
    fprintf(stderr, "tls_connect: open-file limit %llu < %u needed\n",
            (unsigned long long)rl.rlim_cur, nslots + FD_SLACK);
    return -1;
  }
  return 0;
}

static void report(void) {
  if (opt.duration > 0 && bench_errors == 0) {
    double secs = (double)(window_end - window_start) / 1e9;
    printf(
        "done=%llu duration_s=%.3f conns_per_s=%.1f resumed=%llu "
        "conns=%u sources=%u\n",
        (unsigned long long)done, secs, secs > 0 ? (double)done / secs : 0,
        (unsigned long long)resumed, opt.conns, opt.sources);
  }
  fprintf(stderr, "tls_connect: connects=%llu done=%llu resumed=%llu up=%u\n",
          (unsigned long long)connects, (unsigned long long)done,
          (unsigned long long)resumed, up);
  if (bench_errors > 0) fprintf(stderr, "tls_connect: %s\n", bench_reason);
}

static void free_all(void) {
  for (unsigned i = 0; conns != NULL && i < nslots; i++) {
    conn_close(&conns[i]);
    if (conns[i].session != NULL) SSL_SESSION_free(conns[i].session);
  }
  free(conns);
  SSL_CTX_free(ctx);
}

int main(int argc, char **argv) {
  bench_prog = "tls_connect";
  bench_on_fail(stop_all);
  if (parse_options(argc, argv) < 0) {
    usage(stderr);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  bench_deadline((unsigned)(opt.duration + (opt.hold ? HOLD_GRACE_S : 0) +
                            (opt.hold ? opt.max_seconds : 0)) +
                 ALARM_SLACK_S);
  if (slots_init() < 0 || check_nofile() < 0) return 1;
  if (loop_init() < 0 || ctx_init() < 0) {
    perror("tls_connect: setup");
    return 1;
  }
  run();
  report();
  free_all();
  return bench_errors > 0 ? 1 : 0;
}

/* }================================================================== */
