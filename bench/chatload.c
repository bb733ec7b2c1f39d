/* chatload: a fan-out load generator for examples/chat.lua (line protocol)
 * on loopback.
 *
 * --clients connections log in as c1..cN (/nick cK; the server answers
 * "you are cK; ..." and puts them in the lobby, telling everyone there
 * "* cK joined lobby"). Once every client has seen its own join notice,
 * c1 says "sync" and the run waits until every client got "[lobby] c1:
 * sync": TCP keeps each connection in order and the server handles one
 * event at a time, so by then every join notice has been drained. Then the
 * first --senders clients send messages "m<seq> xxx..." (--size bytes of
 * text) to the room:
 *   - with --rate 0 (the default) as fast as the fan-out goes: each sender
 *     keeps --window messages in flight, a message leaving the window when
 *     every client has received it;
 *   - with --rate R at a steady R messages/s in all (spread over the
 *     senders), never more than RING messages in flight per sender.
 * Every client counts the "[lobby] cS: m<seq> ..." lines it receives and
 * checks that each sender's messages arrive in order, without a gap, at
 * the length sent. Deliveries received after --warmup, for --duration,
 * count; then the senders stop and the run waits (at most DRAIN_MS) until
 * every message sent has reached every client.
 *
 * With --server-pid, the server's VmRSS is read from /proc before
 * connecting, once every client has joined and at the end, and its
 * utime+stime around the measured window.
 *
 * Output, one line on stdout (key=value):
 *   clients senders joined join_s secs sent delivered delivered_per_s
 *   sent_per_s p50_us p99_us (send to receipt, over every delivery of the
 *   window) in_flight (deliveries owed when the window closed) missing
 *   (owed after the drain) complete (deliveries / (sent * clients), over
 *   the whole run, after the drain) rss_before_kb rss_joined_kb rss_end_kb
 *   kb_per_client cpu_ticks cpu_us_per_delivery errors
 * Exit status 0, or 1 after a failed connection, a closed client, a wrong
 * or missing line, or a timeout (reason on stderr), or 2 for bad usage. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <uv.h>

#include "common.h"

#define MAX_CLIENTS 60000
#define MAX_SENDERS 256
#define MAX_WINDOW 1024
#define RING 4096 /* messages tracked per sender */
#define MIN_SIZE 16
#define MAX_SIZE 1024       /* text bytes of a message */
#define CONNECT_PARALLEL 64 /* connects under way at once */
#define JOIN_TIMEOUT_MS 60000
#define SYNC_TIMEOUT_MS 20000
#define DRAIN_MS 5000
#define ALARM_SLACK_S 10
#define READ_BUF_SIZE (64 * 1024)
#define LINE_MAX_BYTES (MAX_SIZE + 256)
#define TICK_MS 1 /* steady-rate sender period */

/* {==================================================================
 * State
 * =================================================================== */

enum phase { PH_JOIN, PH_SYNC, PH_WARMUP, PH_MEASURE, PH_DRAIN, PH_DONE };

/* Where a client is in its login: each step is one line from the server. */
enum cstate { CS_CONNECTING, CS_WELCOME, CS_NICK, CS_JOIN, CS_JOINED };

/* One client connection. The handle comes first so stream callbacks can
 * cast; the array is freed after the loop has closed them all. */
struct client {
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  unsigned id; /* 1-based: nick c<id> */
  enum cstate state;
  int synced;
  size_t len; /* bytes of an incomplete line in line[] */
  char line[LINE_MAX_BYTES];
};

/* A sender's messages: seq 1, 2, ...; got[seq % RING] counts the clients
 * that have received seq, sent_at[seq % RING] when it was written. */
struct sender {
  uint64_t sent;     /* highest seq written */
  uint64_t complete; /* every seq <= this reached every client */
  unsigned got[RING];
  uint64_t sent_at[RING];
};

struct options {
  const char *addr_text;
  struct sockaddr_storage addr;
  unsigned clients;
  unsigned senders;
  unsigned window;
  double rate;
  size_t size;
  double duration_s;
  double warmup_s;
  long server_pid;
};

static struct options opt = {NULL, {0}, 1000, 1, 8, 0, 32, 5.0, 1.0, 0};
static uv_loop_t *loop;
static uv_timer_t phase_timer, tick_timer;
static struct client *clients;
static struct sender *senders;
static uint64_t *last_seq; /* [client][sender]: last seq received */
static struct bench_hist latency;
static enum phase phase = PH_JOIN;
static unsigned started, connected, joined, synced;
static uint64_t t_start, t_joined, measure_start, measure_end, steady_start;
static uint64_t sent_total, delivered_total, join_notices;
static uint64_t sent_at_measure, delivered_at_measure;
static uint64_t sent_m, delivered_m, in_flight_end;
static uint64_t steady_sent;
static long rss_before = -1, rss_joined = -1, rss_end = -1;
static long long cpu0 = -1, cpu1 = -1;
static char read_buf[READ_BUF_SIZE]; /* consumed before read_cb returns */
static char pad[MAX_SIZE];

/* Also what bench_fail calls: every failure ends the run. */
static void stop_all(void);

/* }================================================================== */

/* {==================================================================
 * The server process, from /proc
 * =================================================================== */

static long read_rss_kb(void) {
  char path[64], buf[256];
  long kb = -1;
  if (opt.server_pid <= 0) return -1;
  snprintf(path, sizeof path, "/proc/%ld/status", opt.server_pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  while (fgets(buf, sizeof buf, f) != NULL)
    if (sscanf(buf, "VmRSS: %ld kB", &kb) == 1) break;
  fclose(f);
  return kb;
}

/* utime + stime in clock ticks; the name in field 2 may hold spaces, so
 * fields are counted after its closing ')'. */
static long long read_cpu_ticks(void) {
  char path[64], buf[1024];
  if (opt.server_pid <= 0) return -1;
  snprintf(path, sizeof path, "/proc/%ld/stat", opt.server_pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  unsigned long long ut, st;
  if (p == NULL ||
      sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
             &ut, &st) != 2)
    return -1;
  return (long long)(ut + st);
}

/* }================================================================== */

/* {==================================================================
 * Writing
 * =================================================================== */

struct write_req {
  uv_write_t req;
  char data[];
};

/* Sends now what the socket takes, queues a copy of the rest. */
static void client_write(struct client *c, const char *p, size_t n) {
  uv_buf_t buf = uv_buf_init((char *)p, (unsigned int)n);
  int r = uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
  if (r == (int)n) return;
  if (r < 0 && r != UV_EAGAIN) {
    bench_fail("c%u: write: %s", c->id, uv_strerror(r));
    return;
  }
  if (r < 0) r = 0;
  struct write_req *w = malloc(sizeof *w + n - (size_t)r);
  if (w == NULL) {
    bench_fail("out of memory");
    return;
  }
  memcpy(w->data, p + r, n - (size_t)r);
  buf = uv_buf_init(w->data, (unsigned int)(n - (size_t)r));
  if ((r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, bench_write_cb)) <
      0) {
    free(w);
    bench_fail("c%u: write: %s", c->id, uv_strerror(r));
  }
}

/* Message seq of sender s (client s+1): "m<seq> " padded to --size. */
static void send_message(unsigned s) {
  struct sender *sd = &senders[s];
  char line[MAX_SIZE + 2];
  uint64_t seq = ++sd->sent;
  int k = snprintf(line, sizeof line, "m%" PRIu64 " ", seq);
  if ((size_t)k < opt.size) memcpy(line + k, pad, opt.size - (size_t)k);
  line[opt.size] = '\n';
  sd->got[seq % RING] = 0;
  sd->sent_at[seq % RING] = uv_hrtime();
  sent_total++;
  client_write(&clients[s], line, opt.size + 1);
}

/* Closed loop: keep --window messages in flight per sender. */
static void fill_window(unsigned s) {
  struct sender *sd = &senders[s];
  while (phase == PH_WARMUP || phase == PH_MEASURE) {
    if (sd->sent - sd->complete >= opt.window) return;
    send_message(s);
  }
}

/* Steady rate: as many messages as the clock says are due, round robin
 * over the senders, never more than RING - 1 in flight for one. */
static void tick_cb(uv_timer_t *timer) {
  (void)timer;
  if (phase != PH_WARMUP && phase != PH_MEASURE) return;
  double elapsed = (double)(uv_hrtime() - steady_start) / 1e9;
  uint64_t due = (uint64_t)(opt.rate * elapsed);
  while (steady_sent < due && phase != PH_DONE) {
    unsigned s = (unsigned)(steady_sent % opt.senders);
    struct sender *sd = &senders[s];
    if (sd->sent - sd->complete >= RING - 1) return; /* far behind */
    send_message(s);
    steady_sent++;
  }
}

static void start_sending(void) {
  if (opt.rate > 0) {
    steady_start = uv_hrtime();
    uv_timer_start(&tick_timer, tick_cb, TICK_MS, TICK_MS);
  } else {
    for (unsigned s = 0; s < opt.senders; s++) fill_window(s);
  }
}

/* }================================================================== */

/* {==================================================================
 * Phases: join -> sync -> warmup -> measure -> drain -> done
 * =================================================================== */

static void phase_cb(uv_timer_t *timer);

/* Deliveries still owed: every message sent, to every client. */
static uint64_t owed(void) {
  return sent_total * opt.clients - delivered_total;
}

static void begin_sync(void) {
  phase = PH_SYNC;
  t_joined = uv_hrtime();
  rss_joined = read_rss_kb();
  uv_timer_start(&phase_timer, phase_cb, SYNC_TIMEOUT_MS, 0);
  client_write(&clients[0], "sync\n", 5);
}

static void begin_warmup(void) {
  phase = PH_WARMUP;
  uv_timer_start(&phase_timer, phase_cb, bench_ms(opt.warmup_s), 0);
  start_sending();
}

static void begin_measure(void) {
  phase = PH_MEASURE;
  measure_start = uv_hrtime();
  sent_at_measure = sent_total;
  delivered_at_measure = delivered_total;
  cpu0 = read_cpu_ticks();
  uv_timer_start(&phase_timer, phase_cb, bench_ms(opt.duration_s), 0);
}

static void maybe_done_draining(void) {
  if (phase == PH_DRAIN && owed() == 0) stop_all();
}

static void begin_drain(void) {
  measure_end = uv_hrtime();
  cpu1 = read_cpu_ticks();
  sent_m = sent_total - sent_at_measure;
  delivered_m = delivered_total - delivered_at_measure;
  in_flight_end = owed();
  phase = PH_DRAIN;
  uv_timer_stop(&tick_timer);
  uv_timer_start(&phase_timer, phase_cb, DRAIN_MS, 0);
  maybe_done_draining();
}

static void phase_cb(uv_timer_t *timer) {
  (void)timer;
  switch (phase) {
    case PH_JOIN:
      bench_fail("join timeout: %u of %u connected, %u joined after %d ms",
                 connected, opt.clients, joined, JOIN_TIMEOUT_MS);
      break;
    case PH_SYNC:
      bench_fail("sync timeout: %u of %u clients got the sync line", synced,
                 opt.clients);
      break;
    case PH_WARMUP:
      begin_measure();
      break;
    case PH_MEASURE:
      begin_drain();
      break;
    case PH_DRAIN:
      stop_all();
      break; /* what is owed is reported missing */
    case PH_DONE:
      break;
  }
}

/* Closing every handle empties the loop, which ends uv_run in main.
 * Pending connects and writes come back with UV_ECANCELED. */
static void stop_all(void) {
  if (phase == PH_DONE) return;
  if (phase == PH_MEASURE || phase == PH_WARMUP) {
    measure_end = uv_hrtime();
    cpu1 = read_cpu_ticks();
  }
  phase = PH_DONE;
  rss_end = read_rss_kb();
  uv_close((uv_handle_t *)&phase_timer, NULL);
  uv_close((uv_handle_t *)&tick_timer, NULL);
  for (unsigned i = 0; clients != NULL && i < opt.clients; i++)
    if (!uv_is_closing((uv_handle_t *)&clients[i].tcp))
      uv_close((uv_handle_t *)&clients[i].tcp, NULL);
}

/* }================================================================== */

/* {==================================================================
 * Reading: one line from the server at a time
 * =================================================================== */

static int starts_with(const char *s, size_t n, const char *prefix) {
  size_t k = strlen(prefix);
  return n >= k && memcmp(s, prefix, k) == 0;
}

/* "* cK joined lobby" */
static void on_join_notice(struct client *c, const char *s, size_t n) {
  char want[48];
  join_notices++;
  if (c->state != CS_JOIN) return;
  int k = snprintf(want, sizeof want, "* c%u joined lobby", c->id);
  if ((size_t)k == n && memcmp(s, want, n) == 0) {
    c->state = CS_JOINED;
    if (++joined == opt.clients && phase == PH_JOIN) begin_sync();
  }
}

/* "[lobby] cS: m<seq> xxx" from a sender, or "[lobby] c1: sync". */
static void on_room_line(struct client *c, const char *s, size_t n) {
  const char *p = s + 9, *end = s + n; /* after "[lobby] c" */
  unsigned long from = 0;
  while (p < end && *p >= '0' && *p <= '9')
    from = from * 10 + (unsigned)(*p++ - '0');
  if (end - p < 2 || p[0] != ':' || p[1] != ' ') {
    bench_fail("c%u: unexpected line: %.*s", c->id, (int)n, s);
    return;
  }
  p += 2;
  if (end - p == 4 && memcmp(p, "sync", 4) == 0 && from == 1) {
    if (phase != PH_SYNC || c->synced) {
      bench_fail("c%u: sync line out of place", c->id);
      return;
    }
    c->synced = 1;
    if (++synced == opt.clients) begin_warmup();
    return;
  }
  if (from < 1 || from > opt.senders || (size_t)(end - p) != opt.size ||
      *p != 'm') {
    bench_fail("c%u: unexpected line: %.*s", c->id, (int)n, s);
    return;
  }
  uint64_t seq = strtoull(p + 1, NULL, 10);
  unsigned sidx = (unsigned)from - 1;
  uint64_t *last = &last_seq[(size_t)(c->id - 1) * opt.senders + sidx];
  struct sender *sd = &senders[sidx];
  if (seq != *last + 1 || seq > sd->sent) {
    bench_fail("c%u: from c%lu got m%" PRIu64 " after m%" PRIu64
               " (sent up to %" PRIu64 ")",
               c->id, from, seq, *last, sd->sent);
    return;
  }
  *last = seq;
  delivered_total++;
  if (phase == PH_MEASURE)
    bench_hist_add(&latency, uv_hrtime() - sd->sent_at[seq % RING]);
  if (++sd->got[seq % RING] == opt.clients) {
    while (sd->complete < sd->sent &&
           sd->got[(sd->complete + 1) % RING] == opt.clients)
      sd->complete++;
    if (opt.rate == 0) fill_window(sidx);
  }
  maybe_done_draining();
}

static void on_line(struct client *c, const char *s, size_t n) {
  char want[64];
  int k;
  if (n > 0 && s[n - 1] == '\r') n--;
  if (starts_with(s, n, "[lobby] c")) {
    on_room_line(c, s, n);
    return;
  }
  if (starts_with(s, n, "* ") && n > 13 &&
      memcmp(s + n - 13, " joined lobby", 13) == 0) {
    on_join_notice(c, s, n);
    return;
  }
  switch (c->state) {
    case CS_WELCOME:
      if (!starts_with(s, n, "welcome")) break;
      c->state = CS_NICK;
      k = snprintf(want, sizeof want, "/nick c%u\n", c->id);
      client_write(c, want, (size_t)k);
      return;
    case CS_NICK:
      k = snprintf(want, sizeof want, "you are c%u; /join ROOM", c->id);
      if (!starts_with(s, n, want)) break;
      c->state = CS_JOIN;
      return;
    default:
      break;
  }
  bench_fail("c%u: unexpected line: %.*s", c->id, (int)n, s);
}

static void alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  (void)handle;
  (void)suggested;
  *buf = uv_buf_init(read_buf, sizeof read_buf);
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  struct client *c = (struct client *)stream;
  if (phase == PH_DONE) return;
  if (nread == UV_EOF) {
    bench_fail("c%u: server closed the connection", c->id);
    return;
  }
  if (nread < 0) {
    bench_fail("c%u: read: %s", c->id, uv_strerror((int)nread));
    return;
  }
  const char *p = buf->base, *end = buf->base + nread;
  while (p < end && phase != PH_DONE) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
    if (c->len + n > sizeof c->line) {
      bench_fail("c%u: line over %zu bytes", c->id, sizeof c->line);
      return;
    }
    if (nl && c->len == 0) {
      on_line(c, p, n); /* whole line in the buffer: no copy */
    } else {
      memcpy(c->line + c->len, p, n);
      c->len += n;
      if (nl) {
        on_line(c, c->line, c->len);
        c->len = 0;
      }
    }
    p += n + (nl != NULL);
  }
}

/* }================================================================== */

/* {==================================================================
 * Connections
 * =================================================================== */

static void start_next(void);

static void connect_cb(uv_connect_t *req, int status) {
  struct client *c = (struct client *)req->handle;
  if (status == UV_ECANCELED || phase == PH_DONE) return;
  if (status < 0) {
    bench_fail("c%u: connect %s: %s", c->id, opt.addr_text,
               uv_strerror(status));
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  int r = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
  if (r < 0) {
    bench_fail("c%u: read start: %s", c->id, uv_strerror(r));
    return;
  }
  c->state = CS_WELCOME;
  connected++;
  start_next();
}

static void start_next(void) {
  while (started < opt.clients && started - connected < CONNECT_PARALLEL &&
         phase != PH_DONE) {
    struct client *c = &clients[started++];
    int r = uv_tcp_connect(&c->connect_req, &c->tcp,
                           (const struct sockaddr *)&opt.addr, connect_cb);
    if (r < 0) {
      bench_fail("c%u: connect: %s", c->id, uv_strerror(r));
      return;
    }
  }
}

/* Every handle is initialised before any can fail, so stop_all may close
 * the whole array whatever happened. */
static int clients_start(void) {
  clients = calloc(opt.clients, sizeof *clients);
  senders = calloc(opt.senders, sizeof *senders);
  last_seq = calloc((size_t)opt.clients * opt.senders, sizeof *last_seq);
  if (clients == NULL || senders == NULL || last_seq == NULL) return UV_ENOMEM;
  for (unsigned i = 0; i < opt.clients; i++) {
    clients[i].id = i + 1;
    uv_tcp_init(loop, &clients[i].tcp);
  }
  start_next();
  return 0;
}

/* }================================================================== */

/* {==================================================================
 * Options
 * =================================================================== */

static void usage(FILE *f) {
  fprintf(f,
          "usage: chatload --addr IP:PORT|[::1]:PORT [--clients N] "
          "[--senders N]\n"
          "                [--rate MSGS_PER_S | --window N] [--size BYTES]\n"
          "                [--duration SECONDS] [--warmup SECONDS] "
          "[--server-pid PID]\n"
          "Loopback only. Defaults: --clients 1000 --senders 1 --rate 0 "
          "(as fast as\n"
          "delivered, --window 8 per sender) --size 32 --duration 5 "
          "--warmup 1.\n");
}

static int parse_one(int ch, const char *v) {
  unsigned long n;
  switch (ch) {
    case 'a':
      opt.addr_text = v;
      return bench_parse_loopback(v, &opt.addr);
    case 'c':
      return bench_opt_count("--clients", v, 1, MAX_CLIENTS, &opt.clients);
    case 'S':
      return bench_opt_count("--senders", v, 1, MAX_SENDERS, &opt.senders);
    case 'W':
      return bench_opt_count("--window", v, 1, MAX_WINDOW, &opt.window);
    case 'r':
      if (bench_parse_number(v, 0, 1e7, &opt.rate) < 0)
        return bench_bad_option("--rate", v, "want messages/s in [0, 1e7]");
      return 0;
    case 's':
      if (bench_parse_count(v, MIN_SIZE, MAX_SIZE, &n) < 0)
        return bench_bad_option("--size", v, "want an integer 16..1024");
      opt.size = n;
      return 0;
    case 'd':
      return bench_parse_duration(v, &opt.duration_s);
    case 'w':
      return bench_parse_warmup(v, &opt.warmup_s);
    case 'p':
      if (bench_parse_count(v, 1, 1UL << 22, &n) < 0)
        return bench_bad_option("--server-pid", v, "want a process id");
      opt.server_pid = (long)n;
      return 0;
  }
  return -1;
}

static int parse_options(int argc, char **argv) {
  static const struct option longopts[] = {
      {"addr", required_argument, NULL, 'a'},
      {"clients", required_argument, NULL, 'c'},
      {"senders", required_argument, NULL, 'S'},
      {"window", required_argument, NULL, 'W'},
      {"rate", required_argument, NULL, 'r'},
      {"size", required_argument, NULL, 's'},
      {"duration", required_argument, NULL, 'd'},
      {"warmup", required_argument, NULL, 'w'},
      {"server-pid", required_argument, NULL, 'p'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  if (bench_getopt(argc, argv, longopts, parse_one, usage) < 0) return -1;
  if (opt.addr_text == NULL) {
    fprintf(stderr, "chatload: --addr is required\n");
    return -1;
  }
  if (opt.senders > opt.clients)
    return bench_bad_option("--senders", "> --clients", "senders are clients");
  if (opt.window >= RING) return bench_bad_option("--window", "", "too large");
  return 0;
}

/* Each client is a descriptor: take the hard limit, and say so if even
 * that is too low. Unlike idle_conns, a limit that cannot be read or set is
 * not an error here; a refused setrlimit is checked as if it had worked. */
static int raise_nofile(void) {
  struct rlimit rl;
  if (bench_raise_nofile(&rl) == -1) return 0;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < opt.clients + 64) {
    fprintf(stderr,
            "chatload: open-file limit %llu is too low for %u clients\n",
            (unsigned long long)rl.rlim_cur, opt.clients);
    return -1;
  }
  return 0;
}

/* }================================================================== */

/* {==================================================================
 * Main
 * =================================================================== */

static void report(void) {
  double secs = (double)(measure_end - measure_start) / 1e9;
  if (measure_start == 0 || measure_end < measure_start) secs = 0;
  double join_s = t_joined ? (double)(t_joined - t_start) / 1e9 : 0;
  uint64_t missing = owed();
  double complete = sent_total > 0 ? (double)delivered_total /
                                         ((double)sent_total * opt.clients)
                                   : 0.0;
  double per_client = rss_joined >= 0 && rss_before >= 0
                          ? (double)(rss_joined - rss_before) / opt.clients
                          : -1;
  long long ticks = cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1;
  double cpu_us = ticks >= 0 && delivered_m > 0
                      ? (double)ticks * 1e6 / (double)sysconf(_SC_CLK_TCK) /
                            (double)delivered_m
                      : -1;
  printf("clients=%u senders=%u joined=%u join_s=%.3f secs=%.3f sent=%" PRIu64
         " delivered=%" PRIu64
         " delivered_per_s=%.0f sent_per_s=%.1f "
         "p50_us=%.1f p99_us=%.1f in_flight=%" PRIu64 " missing=%" PRIu64
         " complete=%.6f join_notices=%" PRIu64
         " rss_before_kb=%ld rss_joined_kb=%ld rss_end_kb=%ld "
         "kb_per_client=%.2f cpu_ticks=%lld cpu_us_per_delivery=%.4f "
         "errors=%u\n",
         opt.clients, opt.senders, joined, join_s, secs, sent_m, delivered_m,
         secs > 0 ? (double)delivered_m / secs : 0.0,
         secs > 0 ? (double)sent_m / secs : 0.0,
         bench_hist_percentile(&latency, 0.50) / 1e3,
         bench_hist_percentile(&latency, 0.99) / 1e3, in_flight_end, missing,
         complete, join_notices, rss_before, rss_joined, rss_end, per_client,
         ticks, cpu_us, bench_errors);
  fflush(stdout);
  if (bench_errors > 0) fprintf(stderr, "chatload: %s\n", bench_reason);
}

int main(int argc, char **argv) {
  bench_prog = "chatload";
  bench_on_fail(stop_all);
  if (parse_options(argc, argv) < 0) {
    usage(stderr);
    return 2;
  }
  if (raise_nofile() < 0) return 1;
  memset(pad, 'x', sizeof pad);
  signal(SIGPIPE, SIG_IGN); /* a vanished server is an error code */
  bench_deadline(
      (unsigned)((JOIN_TIMEOUT_MS + SYNC_TIMEOUT_MS + DRAIN_MS) / 1000 +
                 opt.warmup_s + opt.duration_s + ALARM_SLACK_S));
  loop = uv_default_loop();
  uv_timer_init(loop, &phase_timer);
  uv_timer_init(loop, &tick_timer);
  uv_timer_start(&phase_timer, phase_cb, JOIN_TIMEOUT_MS, 0);
  rss_before = read_rss_kb();
  t_start = uv_hrtime();
  int r = clients_start();
  if (r < 0) bench_fail("setup: %s", uv_strerror(r));
  uv_run(loop, UV_RUN_DEFAULT);
  r = uv_loop_close(loop);
  if (r < 0 && bench_errors == 0) bench_fail("loop close: %s", uv_strerror(r));
  if (bench_errors == 0 && owed() > 0) {
    bench_errors++;
    snprintf(bench_reason, sizeof bench_reason,
             "%" PRIu64 " deliveries still missing %d ms after the window",
             owed(), DRAIN_MS);
  }
  report();
  free(clients);
  free(senders);
  free(last_seq);
  return bench_errors > 0 ? 1 : 0;
}

/* }================================================================== */
