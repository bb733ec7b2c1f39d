/* udp_loadgen: a closed-loop UDP echo load generator for loopback
 * benchmarks.
 *
 * --flows UDP sockets (each its own port, so the server sees that many
 * peers), each keeping exactly --window datagrams of --size bytes in
 * flight. Every datagram names its flow, a slot of the window and that
 * slot's generation; an echo that matches the slot (and is byte-identical)
 * completes a round trip and the slot is sent again at once. A slot whose
 * echo has not come back after --loss-timeout-ms is counted lost and sent
 * again with a new generation, so the window never shrinks; an echo that
 * arrives for an old generation is counted late and otherwise ignored.
 * Only round trips completed after --warmup count; every phase is ended by a
 * timer and an alarm backs them up, so the run always stops by itself.
 *
 * I/O is batched the way a fast client would: the loop (libuv) polls the
 * sockets, replies are read with recvmmsg and the slots they free are sent
 * with one sendmmsg per socket, so the generator costs as little CPU per
 * datagram as it can and the server is what saturates.
 *
 * Output, one line on stdout:
 *   dgrams=N secs=S dgrams_per_s=X mb_per_s=Y p50_us=A p99_us=B sent=T
 *   lost=L late=K loss_pct=P in_flight=I errors=E
 * (one line; dgrams, sent and lost count the measured window, in_flight is
 * what was still out when it ended; mb_per_s is echoed payload in one
 * direction, 10^6 bytes per second). On success stderr also gets
 * "udp_loadgen: total_dgrams=T ..." counting round trips of the whole run
 * (warmup included) for whoever samples server CPU around it. Exit status 0,
 * or 1 after a socket error, a wrong echo or a flow that got nothing back in
 * the measured window (reason on stderr), or 2 for bad usage. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "common.h"

#define ALARM_SLACK_S 5 /* hard stop after the timers should have */
#define MAX_FLOWS 1024
#define MAX_WINDOW 1024
#define MIN_SIZE 16 /* the header */
#define MAX_SIZE 65507
#define MAX_TOTAL_BYTES ((size_t)256 * 1024 * 1024) /* flows*window*size */
#define MMSG_BATCH 64    /* datagrams per recvmmsg / sendmmsg */
#define READ_ROUNDS 4    /* recvmmsg calls per wakeup, for fairness */
#define MAGIC 0x4c504455 /* "UDPL" */

/* {==================================================================
 * State
 * =================================================================== */

enum phase { PH_WARMUP, PH_MEASURE, PH_DONE };

/* The first bytes of every datagram; the rest is a per-flow pattern. */
struct header {
  uint32_t magic;
  uint32_t flow;
  uint32_t slot;
  uint32_t gen;
};

/* One datagram of the window: in flight (busy) from its send until its echo
 * or its loss timeout; queued while it waits in the flow's pending list. */
struct slot {
  uint64_t sent_at; /* uv_hrtime() of its sendmmsg; 0 while not sent */
  uint32_t gen;
  uint8_t busy;
};

/* One socket. The poll handle comes first so callbacks can cast. */
struct flow {
  uv_poll_t poll;
  int fd;
  unsigned id;
  int events;         /* what poll watches now */
  struct slot *slots; /* window of them */
  char *bufs;         /* window * size bytes: each slot's datagram */
  unsigned *pending;  /* slots armed but not yet handed to the kernel */
  unsigned npending;
  uint64_t done; /* round trips completed in the measured window */
};

struct options {
  const char *addr_text;
  struct sockaddr_storage addr;
  unsigned flows;
  unsigned window;
  size_t size;
  double duration_s;
  double warmup_s;
  double loss_timeout_ms;
};

static struct options opt = {NULL, {0}, 16, 4, 64, 5.0, 1.0, 200.0};
static uv_loop_t *loop;
static uv_timer_t phase_timer, sweep_timer;
static struct flow *flows;
static struct bench_hist latency;
static enum phase phase = PH_WARMUP;
static uint64_t measure_start, measure_end;
static uint64_t dgrams, sent, lost, late; /* measured window */
static uint64_t total_dgrams;             /* whole run */

static char recv_bufs[MMSG_BATCH][MAX_SIZE + 1]; /* +1: spots oversize */

/* Also what bench_fail calls: every failure ends the run. */
static void stop_all(void);

/* }================================================================== */

/* {==================================================================
 * Sending
 * =================================================================== */

static char *slot_buf(struct flow *f, unsigned s) {
  return f->bufs + (size_t)s * opt.size;
}

/* A new generation of slot s, queued for the next flush. */
static void slot_arm(struct flow *f, unsigned s) {
  struct slot *sl = &f->slots[s];
  struct header h = {MAGIC, f->id, s, ++sl->gen};
  memcpy(slot_buf(f, s), &h, sizeof h);
  sl->busy = 1;
  sl->sent_at = 0;
  f->pending[f->npending++] = s;
}

static void poll_cb(uv_poll_t *handle, int status, int events);

static void flow_watch(struct flow *f, int events) {
  if (f->events == events || phase == PH_DONE) return;
  f->events = events;
  int r = uv_poll_start(&f->poll, events, poll_cb);
  if (r < 0) bench_fail("flow %u: poll: %s", f->id, uv_strerror(r));
}

/* Hands the pending slots to the kernel, MMSG_BATCH per sendmmsg. A full
 * socket keeps the rest pending until it is writable again. */
static void flow_flush(struct flow *f) {
  struct mmsghdr msgs[MMSG_BATCH];
  struct iovec iov[MMSG_BATCH];
  unsigned done = 0;
  while (done < f->npending && phase != PH_DONE) {
    unsigned n = f->npending - done;
    if (n > MMSG_BATCH) n = MMSG_BATCH;
    memset(msgs, 0, sizeof msgs[0] * n);
    for (unsigned i = 0; i < n; i++) {
      iov[i].iov_base = slot_buf(f, f->pending[done + i]);
      iov[i].iov_len = opt.size;
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    uint64_t now = uv_hrtime();
    int k = sendmmsg(f->fd, msgs, n, MSG_DONTWAIT);
    if (k < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) break;
      bench_fail("flow %u: send: %s", f->id, strerror(errno));
      return;
    }
    for (int i = 0; i < k; i++) f->slots[f->pending[done + i]].sent_at = now;
    if (phase == PH_MEASURE) sent += (uint64_t)k;
    done += (unsigned)k;
    if ((unsigned)k < n) break;
  }
  if (done > 0) {
    memmove(f->pending, f->pending + done,
            (f->npending - done) * sizeof f->pending[0]);
    f->npending -= done;
  }
  flow_watch(f, f->npending > 0 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
}

/* }================================================================== */

/* {==================================================================
 * Receiving
 * =================================================================== */

/* One echo: must be the size sent, for this flow, and byte-identical to
 * the slot's datagram; an old generation is late, not wrong. */
static void on_reply(struct flow *f, const char *p, size_t n, uint64_t now) {
  struct header h;
  if (n != opt.size) {
    bench_fail("flow %u: echo of %zu bytes, sent %zu", f->id, n, opt.size);
    return;
  }
  memcpy(&h, p, sizeof h);
  if (h.magic != MAGIC || h.flow != f->id || h.slot >= opt.window) {
    bench_fail("flow %u: echo with a foreign header", f->id);
    return;
  }
  struct slot *sl = &f->slots[h.slot];
  if (!sl->busy || h.gen != sl->gen || sl->sent_at == 0) {
    if (phase == PH_MEASURE) late++;
    return;
  }
  if (memcmp(p, slot_buf(f, h.slot), n) != 0) {
    size_t at = 0;
    while (p[at] == slot_buf(f, h.slot)[at]) at++;
    bench_fail("flow %u: echo mismatch at byte %zu", f->id, at);
    return;
  }
  total_dgrams++;
  if (phase == PH_MEASURE) {
    bench_hist_add(&latency, now - sl->sent_at);
    dgrams++;
    f->done++;
  }
  slot_arm(f, h.slot);
}

static void flow_read(struct flow *f) {
  struct mmsghdr msgs[MMSG_BATCH];
  struct iovec iov[MMSG_BATCH];
  for (int round = 0; round < READ_ROUNDS && phase != PH_DONE; round++) {
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < MMSG_BATCH; i++) {
      iov[i].iov_base = recv_bufs[i];
      iov[i].iov_len = sizeof recv_bufs[i];
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int k = recvmmsg(f->fd, msgs, MMSG_BATCH, MSG_DONTWAIT, NULL);
    if (k < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
      bench_fail("flow %u: receive: %s", f->id, strerror(errno));
      return;
    }
    uint64_t now = uv_hrtime();
    for (int i = 0; i < k && phase != PH_DONE; i++)
      on_reply(f, recv_bufs[i], msgs[i].msg_len, now);
    if (k < MMSG_BATCH) return;
  }
}

static void poll_cb(uv_poll_t *handle, int status, int events) {
  struct flow *f = (struct flow *)handle;
  if (phase == PH_DONE) return;
  if (status < 0) {
    /* libuv reports a socket error (POLLERR) as UV_EBADF: the socket
     * knows the real one, e.g. ECONNREFUSED when nothing listens. */
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(f->fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0)
      bench_fail("flow %u: %s", f->id, strerror(err));
    else
      bench_fail("flow %u: poll: %s", f->id, uv_strerror(status));
    return;
  }
  if (events & UV_READABLE) flow_read(f);
  if (phase != PH_DONE) flow_flush(f);
}

/* }================================================================== */

/* {==================================================================
 * Flows
 * =================================================================== */

/* A connected socket: the kernel filters out anything not from the
 * server, and a server that is gone shows up as ECONNREFUSED. */
static int flow_open(struct flow *f, unsigned id) {
  f->id = id;
  f->fd =
      socket(opt.addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (f->fd < 0) return -errno;
  socklen_t len = opt.addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                 : sizeof(struct sockaddr_in);
  if (connect(f->fd, (struct sockaddr *)&opt.addr, len) < 0) return -errno;
  f->slots = calloc(opt.window, sizeof *f->slots);
  f->bufs = malloc(opt.window * opt.size);
  f->pending = malloc(opt.window * sizeof *f->pending);
  if (f->slots == NULL || f->bufs == NULL || f->pending == NULL) return -ENOMEM;
  /* Printable bytes shifted per flow, so an echo sent to the wrong flow
   * does not match; slot_arm stamps the header. */
  for (unsigned s = 0; s < opt.window; s++)
    for (size_t i = 0; i < opt.size; i++)
      slot_buf(f, s)[i] = (char)('a' + (i + id) % 26);
  int r = uv_poll_init_socket(loop, &f->poll, f->fd);
  if (r < 0) return r;
  f->poll.data = f;
  return 0;
}

static int flows_start(void) {
  flows = calloc(opt.flows, sizeof *flows);
  if (flows == NULL) return UV_ENOMEM;
  for (unsigned i = 0; i < opt.flows; i++) flows[i].fd = -1;
  for (unsigned i = 0; i < opt.flows; i++) {
    int r = flow_open(&flows[i], i);
    if (r < 0) return r; /* stop_all closes the polls opened so far */
  }
  for (unsigned i = 0; i < opt.flows; i++) {
    for (unsigned s = 0; s < opt.window; s++) slot_arm(&flows[i], s);
    flow_flush(&flows[i]);
  }
  return 0;
}

static void flows_free(void) {
  for (unsigned i = 0; flows != NULL && i < opt.flows; i++) {
    if (flows[i].fd >= 0) close(flows[i].fd);
    free(flows[i].slots);
    free(flows[i].bufs);
    free(flows[i].pending);
  }
  free(flows);
}

/* Slots out for longer than the loss timeout are lost: sent again with a
 * new generation. */
static void sweep_cb(uv_timer_t *timer) {
  (void)timer;
  uint64_t now = uv_hrtime();
  uint64_t limit = (uint64_t)(opt.loss_timeout_ms * 1e6);
  for (unsigned i = 0; i < opt.flows && phase != PH_DONE; i++) {
    struct flow *f = &flows[i];
    unsigned before = f->npending;
    for (unsigned s = 0; s < opt.window; s++) {
      struct slot *sl = &f->slots[s];
      if (sl->busy && sl->sent_at != 0 && now - sl->sent_at > limit) {
        if (phase == PH_MEASURE) lost++;
        slot_arm(f, s);
      }
    }
    if (f->npending != before) flow_flush(f);
  }
}

/* }================================================================== */

/* {==================================================================
 * Phases: warmup -> measure -> done, each ended by phase_timer
 * =================================================================== */

static void phase_cb(uv_timer_t *timer) {
  (void)timer;
  if (phase == PH_WARMUP) {
    phase = PH_MEASURE;
    measure_start = uv_hrtime();
    uv_timer_start(&phase_timer, phase_cb, bench_ms(opt.duration_s), 0);
  } else if (phase == PH_MEASURE) {
    stop_all();
  }
}

/* Closing every handle empties the loop, which ends uv_run in main; the
 * sockets themselves are closed after it. */
static void stop_all(void) {
  if (phase == PH_DONE) return;
  if (phase == PH_MEASURE) measure_end = uv_hrtime();
  phase = PH_DONE;
  uv_close((uv_handle_t *)&phase_timer, NULL);
  uv_close((uv_handle_t *)&sweep_timer, NULL);
  for (unsigned i = 0; flows != NULL && i < opt.flows; i++)
    if (flows[i].poll.type == UV_POLL &&
        !uv_is_closing((uv_handle_t *)&flows[i].poll))
      uv_close((uv_handle_t *)&flows[i].poll, NULL);
}

/* }================================================================== */

/* {==================================================================
 * Options
 * =================================================================== */

static void usage(FILE *f) {
  fprintf(f,
          "usage: udp_loadgen --addr IP:PORT|[::1]:PORT [--flows N] "
          "[--window N]\n"
          "                   [--size BYTES] [--duration SECONDS] "
          "[--warmup SECONDS]\n"
          "                   [--loss-timeout-ms MS]\n"
          "Loopback only. Defaults: --flows 16 --window 4 --size 64 "
          "--duration 5\n"
          "--warmup 1 --loss-timeout-ms 200.\n");
}

static int parse_one(int ch, const char *v) {
  unsigned long n;
  switch (ch) {
    case 'a':
      opt.addr_text = v;
      return bench_parse_loopback(v, &opt.addr);
    case 'f':
      return bench_opt_count("--flows", v, 1, MAX_FLOWS, &opt.flows);
    case 'W':
      return bench_opt_count("--window", v, 1, MAX_WINDOW, &opt.window);
    case 's':
      if (bench_parse_count(v, MIN_SIZE, MAX_SIZE, &n) < 0)
        return bench_bad_option("--size", v, "want an integer 16..65507");
      opt.size = n;
      return 0;
    case 'd':
      return bench_parse_duration(v, &opt.duration_s);
    case 'w':
      return bench_parse_warmup(v, &opt.warmup_s);
    case 'l':
      if (bench_parse_number(v, 1, 10000, &opt.loss_timeout_ms) < 0)
        return bench_bad_option("--loss-timeout-ms", v,
                                "want ms in [1, 10000]");
      return 0;
  }
  return -1;
}

static int parse_options(int argc, char **argv) {
  static const struct option longopts[] = {
      {"addr", required_argument, NULL, 'a'},
      {"flows", required_argument, NULL, 'f'},
      {"window", required_argument, NULL, 'W'},
      {"size", required_argument, NULL, 's'},
      {"duration", required_argument, NULL, 'd'},
      {"warmup", required_argument, NULL, 'w'},
      {"loss-timeout-ms", required_argument, NULL, 'l'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  if (bench_getopt(argc, argv, longopts, parse_one, usage) < 0) return -1;
  if (opt.addr_text == NULL) {
    fprintf(stderr, "udp_loadgen: --addr is required\n");
    return -1;
  }
  if ((size_t)opt.flows * opt.window * opt.size > MAX_TOTAL_BYTES)
    return bench_bad_option("--size", "* --flows * --window",
                            "more than 256 MiB of datagrams");
  return 0;
}

/* }================================================================== */

/* {==================================================================
 * Main
 * =================================================================== */

/* A flow that got nothing back while others did means the server starved
 * it (or dropped all it sent); the averages would hide that. */
static void check_stalls(void) {
  if (bench_errors > 0 || measure_end == 0) return;
  for (unsigned i = 0; i < opt.flows; i++)
    if (flows[i].done == 0) {
      bench_errors++;
      snprintf(bench_reason, sizeof bench_reason,
               "flow %u completed no round trip in the measured %.3f s", i,
               (double)(measure_end - measure_start) / 1e9);
      return;
    }
}

static void report(void) {
  double secs = (double)(measure_end - measure_start) / 1e9;
  double rate = secs > 0 ? (double)dgrams / secs : 0.0;
  unsigned in_flight = 0;
  for (unsigned i = 0; flows != NULL && i < opt.flows; i++)
    for (unsigned s = 0; s < opt.window; s++)
      if (flows[i].slots != NULL && flows[i].slots[s].busy &&
          flows[i].slots[s].sent_at != 0)
        in_flight++;
  printf("dgrams=%" PRIu64
         " secs=%.3f dgrams_per_s=%.0f mb_per_s=%.3f "
         "p50_us=%.1f p99_us=%.1f sent=%" PRIu64 " lost=%" PRIu64
         " late=%" PRIu64 " loss_pct=%.4f in_flight=%u errors=%u\n",
         dgrams, secs, rate, rate * (double)opt.size / 1e6,
         bench_hist_percentile(&latency, 0.50) / 1e3,
         bench_hist_percentile(&latency, 0.99) / 1e3, sent, lost, late,
         sent > 0 ? 100.0 * (double)lost / (double)sent : 0.0, in_flight,
         bench_errors);
  fflush(stdout);
  if (bench_errors > 0)
    fprintf(stderr, "udp_loadgen: %s\n", bench_reason);
  else
    fprintf(stderr,
            "udp_loadgen: total_dgrams=%" PRIu64
            " flows=%u window=%u size=%zu\n",
            total_dgrams, opt.flows, opt.window, opt.size);
}

int main(int argc, char **argv) {
  bench_prog = "udp_loadgen";
  bench_on_fail(stop_all);
  if (parse_options(argc, argv) < 0) {
    usage(stderr);
    return 2;
  }
  bench_deadline((unsigned)(opt.warmup_s + opt.duration_s + ALARM_SLACK_S));
  loop = uv_default_loop();
  uv_timer_init(loop, &phase_timer);
  uv_timer_init(loop, &sweep_timer);
  uv_timer_start(&phase_timer, phase_cb, bench_ms(opt.warmup_s), 0);
  uint64_t period = (uint64_t)(opt.loss_timeout_ms / 4);
  uv_timer_start(&sweep_timer, sweep_cb, period ? period : 1,
                 period ? period : 1);
  int r = flows_start();
  if (r < 0) bench_fail("setup: %s", uv_strerror(r));
  uv_run(loop, UV_RUN_DEFAULT);
  r = uv_loop_close(loop);
  if (r < 0 && bench_errors == 0) bench_fail("loop close: %s", uv_strerror(r));
  check_stalls();
  report();
  flows_free();
  return bench_errors > 0 ? 1 : 0;
}

/* }================================================================== */
