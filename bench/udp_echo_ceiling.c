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
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

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
static uv_signal_t sigterm_handle, sigint_handle;
static size_t queued_bytes;
static uint64_t echoed, queued, dropped;

/* {==================================================================
 * Addresses
 * =================================================================== */

static int parse_port(const char *s, int *port) {
  int value = 0;
  size_t n = strlen(s);
  if (n == 0 || n > 5) return UV_EINVAL;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return UV_EINVAL;
    value = value * 10 + (s[i] - '0');
  }
  if (value > 65535) return UV_EINVAL;
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

static void close_walk_cb(uv_handle_t *handle, void *arg) {
  (void)arg;
  if (!uv_is_closing(handle)) uv_close(handle, NULL);
}

/* Closing every handle lets uv_run return, so main can close the loop;
 * queued sends come back to send_cb with UV_ECANCELED and are freed. */
static void signal_cb(uv_signal_t *handle, int signum) {
  (void)signum;
  uv_walk(handle->loop, close_walk_cb, NULL);
}

static int start_socket(uv_loop_t *loop, const char *text) {
  struct sockaddr_storage ss;
  int r;
  if (parse_addr(text, &ss) < 0) {
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

/* The benchmark script waits for this exact line to learn the port. */
static void announce(void) {
  struct sockaddr_storage ss;
  int len = sizeof ss;
  char addr[80] = "?";
  if (uv_udp_getsockname(&sock, (struct sockaddr *)&ss, &len) == 0)
    format_addr((struct sockaddr *)&ss, addr, sizeof addr);
  fprintf(stderr, "listening service=udp_echo proto=udp addr=%s\n", addr);
  fflush(stderr);
}

static void start_signals(uv_loop_t *loop) {
  uv_signal_init(loop, &sigterm_handle);
  uv_signal_init(loop, &sigint_handle);
  uv_signal_start(&sigterm_handle, signal_cb, SIGTERM);
  uv_signal_start(&sigint_handle, signal_cb, SIGINT);
}

int main(int argc, char **argv) {
  uv_loop_t *loop = uv_default_loop();
  if (argc != 2) {
    fprintf(stderr, "usage: udp_echo_ceiling IP:PORT | [IPv6]:PORT\n");
    return 2;
  }
  if (start_socket(loop, argv[1]) < 0) {
    uv_walk(loop, close_walk_cb, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    return 1;
  }
  announce();
  start_signals(loop);
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
