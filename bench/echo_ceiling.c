/* echo_ceiling: the plain-C libuv TCP echo server that lunet's echo service
 * is measured against. It does the least work an echo server on libuv can
 * do: one shared read buffer, a direct uv_try_write of what was read, and a
 * heap copy only for the remainder the kernel would not take at once.
 *
 * Usage: echo_ceiling ADDR   (IP:PORT or [IPv6]:PORT; port 0 picks one)
 * Prints "listening service=echo proto=tcp addr=HOST:PORT" to stderr once
 * bound, and exits 0 on SIGTERM or SIGINT after closing every handle. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "common.h"

#define READ_BUF_SIZE (64 * 1024)
#define WRITE_QUEUE_MAX (1024 * 1024) /* stop reading past this backlog */

/* One accepted connection. The handle is the first member so a handle
 * pointer is a conn pointer; handle.data points back at the conn so the
 * shared close_cb can free it. */
struct conn {
  uv_tcp_t tcp;
  int paused; /* reading stopped until the write queue drains */
};

/* A copied remainder waiting in libuv's write queue; freed in write_cb. */
struct pending_write {
  uv_write_t req;
  char data[];
};

/* Every read lands here: the data is echoed (or copied) before read_cb
 * returns, so one buffer serves all connections of the single loop. */
static char read_buf[READ_BUF_SIZE];

static uv_tcp_t listener;

/* {==================================================================
 * Connections
 * =================================================================== */

/* Shared by every handle: conns carry their struct in data, the static
 * listener and signal handles carry NULL. */
static void close_cb(uv_handle_t *handle) {
  free(handle->data);
}

static void conn_close(struct conn *c) {
  if (!uv_is_closing((uv_handle_t *)&c->tcp))
    uv_close((uv_handle_t *)&c->tcp, close_cb);
}

static void alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  (void)handle;
  (void)suggested;
  *buf = uv_buf_init(read_buf, sizeof read_buf);
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void write_cb(uv_write_t *req, int status) {
  struct conn *c = req->handle->data;
  free(req); /* req is the first member of its pending_write */
  /* After uv_close libuv cancels queued writes before close_cb runs, so c
   * is still valid here; conn_close ignores a conn already closing. */
  if (status < 0) {
    conn_close(c);
    return;
  }
  if (c->paused && c->tcp.write_queue_size == 0) {
    c->paused = 0;
    if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) < 0)
      conn_close(c);
  }
}

/* Copies what try_write could not send, because read_buf is reused by the
 * next read. A peer that does not read gets its reads paused instead of an
 * unbounded queue. */
static void queue_copy(struct conn *c, const char *data, size_t len) {
  struct pending_write *w = malloc(sizeof *w + len);
  if (w == NULL) {
    conn_close(c);
    return;
  }
  memcpy(w->data, data, len);
  uv_buf_t out = uv_buf_init(w->data, (unsigned int)len);
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &out, 1, write_cb) < 0) {
    free(w);
    conn_close(c);
    return;
  }
  if (c->tcp.write_queue_size > WRITE_QUEUE_MAX) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->paused = 1;
  }
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  struct conn *c = stream->data;
  if (nread < 0) {
    conn_close(c); /* EOF or error: an echo server has nothing to flush */
    return;
  }
  if (nread == 0) return; /* EAGAIN */
  uv_buf_t out = uv_buf_init(buf->base, (unsigned int)nread);
  int r = uv_try_write(stream, &out, 1);
  if (r == nread) return;
  /* EAGAIN also means earlier data is still queued, so ordering holds. */
  if (r < 0 && r != UV_EAGAIN) {
    conn_close(c);
    return;
  }
  if (r < 0) r = 0;
  queue_copy(c, buf->base + r, (size_t)nread - (size_t)r);
}

static void connection_cb(uv_stream_t *server, int status) {
  if (status < 0) {
    fprintf(stderr, "echo_ceiling: accept: %s\n", uv_strerror(status));
    return;
  }
  struct conn *c = calloc(1, sizeof *c);
  if (c == NULL) return; /* the pending connection stays in the backlog */
  uv_tcp_init(server->loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0 ||
      uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) < 0) {
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
}

/* }================================================================== */

/* {==================================================================
 * Startup and shutdown
 * =================================================================== */

int main(int argc, char **argv) {
  uv_loop_t *loop = uv_default_loop();
  if (argc != 2) {
    fprintf(stderr, "usage: echo_ceiling IP:PORT | [IPv6]:PORT\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN); /* a vanished peer is an error code, not death */
  if (bench_tcp_listen(loop, &listener, argv[1], "echo_ceiling",
                       connection_cb) < 0) {
    bench_close_all(loop, close_cb);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    return 1;
  }
  bench_announce((uv_handle_t *)&listener, "echo");
  bench_stop_on_signals(loop, close_cb);
  uv_run(loop, UV_RUN_DEFAULT);
  int r = uv_loop_close(loop);
  if (r < 0) fprintf(stderr, "echo_ceiling: loop close: %s\n", uv_strerror(r));
  return r < 0 ? 1 : 0;
}

/* }================================================================== */
