/* udp_echo_ceiling: the plain-C libuv UDP echo server that lunet's
 * examples/udp_echo.lua is measured against. It does what lunet's UDP
 * service does underneath, minus Lua: recvmmsg batches of 16 through
 * UV_UDP_RECVMMSG into one shared buffer, and a direct uv_udp_try_send of
 * each datagram back to its sender; only when the socket will not take it
 * at once is a copy queued (bounded by the same 4 MiB as lunet; past that
 * the datagram is dropped, as UDP allows).
 *
 * Usage: udp_echo_ceiling ADDR   (IP:PORT or [IPv6]:PORT; port 0 picks one)
 * Prints "listening service=udp_echo proto=udp addr=HOST:PORT" to stderr
 * once bound, and exits 0 on SIGTERM or SIGINT after closing every handle.
 * On exit it prints "udp_echo_ceiling: echoed=N queued=Q dropped=D". */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "common.h"

#define BATCH 16            /* datagrams per recvmmsg, as lunet */
#define DGRAM_MAX 65536     /* libuv's per-datagram slot */
#define MAX_QUEUE (4 << 20) /* bytes waiting for the socket, as lunet */

/* A copied datagram waiting in libuv's send queue; freed in send_cb. */
struct pending_send {
  uv_udp_send_t req;
  size_t len;
  char data[];
};

/* libuv splits a buffer of at least two slots into a recvmmsg batch; every
 * datagram is echoed (or copied) before recv_cb returns, so one buffer
 * serves the whole loop. */
static char recv_buf[BATCH * DGRAM_MAX];

static uv_udp_t sock;
static size_t queued_bytes;
static uint64_t echoed, queued, dropped;

/* {==================================================================
 * Echo
 * =================================================================== */

static void alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  (void)handle;
  (void)suggested;
  *buf = uv_buf_init(recv_buf, sizeof recv_buf);
}

static void send_cb(uv_udp_send_t *req, int status) {
  struct pending_send *p = (struct pending_send *)req;
  (void)status; /* a failed send is a lost datagram, which UDP allows */
  queued_bytes -= p->len;
  free(p);
}

/* The socket would not take it now: queue a copy, because recv_buf is
 * reused by the next batch. */
static void queue_copy(const char *data, size_t len,
                       const struct sockaddr *to) {
  if (queued_bytes + len > MAX_QUEUE) {
    dropped++;
    return;
  }
  struct pending_send *p = malloc(sizeof *p + len);
  if (p == NULL) {
    dropped++;
    return;
  }
  memcpy(p->data, data, len);
  p->len = len;
  uv_buf_t out = uv_buf_init(p->data, (unsigned int)len);
  if (uv_udp_send(&p->req, &sock, &out, 1, to, send_cb) < 0) {
    free(p);
    dropped++;
    return;
  }
  queued_bytes += len;
  queued++;
}

static void recv_cb(uv_udp_t *handle, ssize_t nread, const uv_buf_t *buf,
                    const struct sockaddr *from, unsigned flags) {
  (void)handle;
  /* nread 0 without an address: nothing more to read, or the end of a
   * recvmmsg batch (UV_UDP_MMSG_FREE); the buffer is static either way. */
  if (nread <= 0 || from == NULL) return;
  if (flags & UV_UDP_PARTIAL) {
    dropped++;
    return;
  }
  uv_buf_t out = uv_buf_init(buf->base, (unsigned int)nread);
  int r = uv_udp_try_send(&sock, &out, 1, from);
  if (r >= 0) {
    echoed++;
  } else if (r == UV_EAGAIN) {
    echoed++;
    queue_copy(buf->base, (size_t)nread, from);
  } else {
    dropped++;
  }
}

/* }================================================================== */

/* {==================================================================
 * Startup and shutdown
 * =================================================================== */

static int start_socket(uv_loop_t *loop, const char *text) {
  struct sockaddr_storage ss;
  int r;
  if (bench_parse_addr(text, 1, &ss) < 0) {
    fprintf(stderr, "udp_echo_ceiling: bad address '%s'\n", text);
    return UV_EINVAL;
  }
  /* recvmmsg where libuv has it (>= 1.37 on Linux), as lunet asks too */
  r = uv_udp_init_ex(loop, &sock, AF_UNSPEC | UV_UDP_RECVMMSG);
  if (r < 0) {
    fprintf(stderr, "udp_echo_ceiling: init: %s\n", uv_strerror(r));
    return r;
  }
  r = uv_udp_bind(&sock, (struct sockaddr *)&ss, 0);
  if (r == 0) r = uv_udp_recv_start(&sock, alloc_cb, recv_cb);
  if (r < 0)
    fprintf(stderr, "udp_echo_ceiling: bind %s: %s\n", text, uv_strerror(r));
  return r;
}

int main(int argc, char **argv) {
  uv_loop_t *loop = uv_default_loop();
  if (argc != 2) {
    fprintf(stderr, "usage: udp_echo_ceiling IP:PORT | [IPv6]:PORT\n");
    return 2;
  }
  if (start_socket(loop, argv[1]) < 0) {
    bench_close_all(loop, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    return 1;
  }
  bench_announce((uv_handle_t *)&sock, "udp_echo");
  /* Queued sends come back to send_cb with UV_ECANCELED and are freed. */
  bench_stop_on_signals(loop, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  fprintf(stderr,
          "udp_echo_ceiling: echoed=%" PRIu64 " queued=%" PRIu64
          " dropped=%" PRIu64 "\n",
          echoed, queued, dropped);
  int r = uv_loop_close(loop);
  if (r < 0)
    fprintf(stderr, "udp_echo_ceiling: loop close: %s\n", uv_strerror(r));
  return r < 0 ? 1 : 0;
}

/* }================================================================== */
