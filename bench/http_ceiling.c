/* http_ceiling: the plain-C HTTP/1.1 server that lunet's HTTP services are
 * measured against (`scripts/bench http` and `mem`): libuv and llhttp, no
 * Lua. It does the least an HTTP server with lunet's keep-alive behaviour
 * can do: one shared read buffer, responses of one read gathered into one
 * shared output buffer and sent with a single uv_try_write, a heap copy
 * only for what the kernel would not take at once, and a Date header
 * formatted once per second.
 *
 *   GET / (or HEAD /)  200 "Hello, World!" with Content-Length, Date,
 *                      Server and lunet's default Content-Type
 *   any other path     404, other methods 405; a parse error 400 + close
 *
 * HTTP/1.1 keep-alive (HTTP/1.0 and Connection: close are honoured), and
 * pipelined requests are answered in order.
 *
 * Usage: http_ceiling ADDR   (IP:PORT or [IPv6]:PORT; port 0 picks one)
 * Prints "listening service=hello proto=tcp addr=HOST:PORT" to stderr once
 * bound, and exits 0 on SIGTERM or SIGINT after closing every handle. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <llhttp.h>
#include <uv.h>

#include "common.h"

#define READ_BUF_SIZE (64 * 1024)
#define OUT_BUF_SIZE (64 * 1024) /* responses of one read; flushed if full */
#define WRITE_QUEUE_MAX (1024 * 1024) /* stop reading past this backlog */

static const char hello_body[] = "Hello, World!";

/* One accepted connection: the handle first (a handle pointer is a conn
 * pointer), the parser inline. The parser state is all a connection keeps
 * while idle, which is what the memory ceiling measures. */
struct conn {
  uv_tcp_t tcp;
  llhttp_t parser;
  unsigned url_len;      /* bytes of the request target seen so far */
  char url_first;        /* its first byte: "/" with url_len 1 is the root */
  unsigned char paused;  /* reading stopped until the write queue drains */
  unsigned char closing; /* answer, then close (no keep-alive, or 400) */
};

/* A copied remainder waiting in libuv's write queue; freed in write_cb. */
struct pending_write {
  uv_write_t req;
  char data[];
};

/* Reads land in read_buf and responses are built in out_buf; both are
 * used up before read_cb returns, so one of each serves every connection
 * of the single loop. */
static char read_buf[READ_BUF_SIZE];
static char out_buf[OUT_BUF_SIZE];
static size_t out_len;

static uv_tcp_t listener;
static llhttp_settings_t settings;

/* {==================================================================
 * Date header, formatted when the loop's second changes
 * =================================================================== */

static char date_line[64]; /* "Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n" */
static size_t date_len;
static time_t date_second = -1;

/* time() is a vDSO read, cheaper than formatting on every request. */
static void date_refresh(void) {
  time_t t = time(NULL);
  if (t == date_second) return;
  date_second = t;
  struct tm tm;
  gmtime_r(&t, &tm);
  date_len = strftime(date_line, sizeof date_line,
                      "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
}

/* }================================================================== */

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
  if (status < 0 || (c->closing && c->tcp.write_queue_size == 0)) {
    conn_close(c);
    return;
  }
  if (c->paused && c->tcp.write_queue_size == 0) {
    c->paused = 0;
    if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) < 0)
      conn_close(c);
  }
}

/* Copies what try_write could not send, because out_buf is reused by the
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

/* Sends out_buf: what the socket takes now, a copy of the rest. Closing a
 * conn marked closing is left to read_cb (or write_cb), once every
 * response of the read is out. */
static void conn_flush(struct conn *c) {
  size_t len = out_len;
  out_len = 0;
  if (len > 0) {
    int r = UV_EAGAIN;
    /* try_write would jump the queue if earlier output is still queued. */
    if (c->tcp.write_queue_size == 0) {
      uv_buf_t b = uv_buf_init(out_buf, (unsigned int)len);
      r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    }
    if (r < 0 && r != UV_EAGAIN) {
      conn_close(c);
      return;
    }
    if (r < 0) r = 0;
    if ((size_t)r < len) queue_copy(c, out_buf + r, len - (size_t)r);
  }
}

/* Appends one response to out_buf (flushing first if it would not fit). */
static void respond(struct conn *c, const char *status, const char *body,
                    size_t body_len, int head) {
  char len_text[24];
  int n = snprintf(len_text, sizeof len_text, "%zu", body_len);
  size_t need = 160 + date_len + (size_t)n + body_len;
  if (out_len + need > sizeof out_buf) conn_flush(c);
  if (uv_is_closing((uv_handle_t *)&c->tcp)) return;
  char *p = out_buf + out_len;
  p += sprintf(p, "HTTP/1.1 %s\r\nServer: ceiling\r\n", status);
  memcpy(p, date_line, date_len);
  p += date_len;
  p += sprintf(p,
               "Content-Type: text/plain; charset=utf-8\r\n"
               "Content-Length: %s\r\n%s\r\n",
               len_text, c->closing ? "Connection: close\r\n" : "");
  if (!head) {
    memcpy(p, body, body_len);
    p += body_len;
  }
  out_len = (size_t)(p - out_buf);
}

/* }================================================================== */

/* {==================================================================
 * llhttp callbacks: the parser's data pointer is the conn
 * =================================================================== */

static int on_message_begin(llhttp_t *p) {
  struct conn *c = p->data;
  c->url_len = 0;
  c->url_first = 0;
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  struct conn *c = p->data;
  if (c->url_len == 0 && len > 0) c->url_first = at[0];
  c->url_len += (unsigned)len;
  return 0;
}

/* The only answer worth measuring is the 200; the others keep the server
 * honest about what it serves. */
static int on_message_complete(llhttp_t *p) {
  struct conn *c = p->data;
  int method = llhttp_get_method(p);
  if (!llhttp_should_keep_alive(p)) c->closing = 1;
  if (method != HTTP_GET && method != HTTP_HEAD) {
    static const char msg[] = "Method Not Allowed";
    respond(c, "405 Method Not Allowed", msg, sizeof msg - 1, 0);
  } else if (c->url_len == 1 && c->url_first == '/') {
    respond(c, "200 OK", hello_body, sizeof hello_body - 1,
            method == HTTP_HEAD);
  } else {
    static const char msg[] = "Not Found";
    respond(c, "404 Not Found", msg, sizeof msg - 1, method == HTTP_HEAD);
  }
  /* No request after a close is answered. */
  return c->closing ? HPE_PAUSED : 0;
}

/* }================================================================== */

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  struct conn *c = stream->data;
  if (nread < 0) {
    conn_close(c); /* EOF or error: a response in flight is lost anyway */
    return;
  }
  if (nread == 0 || c->closing) return; /* EAGAIN, or input after a close */
  date_refresh();
  llhttp_errno_t err = llhttp_execute(&c->parser, buf->base, (size_t)nread);
  if (err != HPE_OK && err != HPE_PAUSED) {
    static const char msg[] = "Bad Request";
    c->closing = 1;
    respond(c, "400 Bad Request", msg, sizeof msg - 1, 0);
  }
  if (!uv_is_closing((uv_handle_t *)&c->tcp)) conn_flush(c);
  if (c->closing && c->tcp.write_queue_size == 0) conn_close(c);
}

static void connection_cb(uv_stream_t *server, int status) {
  if (status < 0) {
    fprintf(stderr, "http_ceiling: accept: %s\n", uv_strerror(status));
    return;
  }
  struct conn *c = calloc(1, sizeof *c);
  if (c == NULL) return; /* the pending connection stays in the backlog */
  uv_tcp_init(server->loop, &c->tcp);
  c->tcp.data = c;
  llhttp_init(&c->parser, HTTP_REQUEST, &settings);
  c->parser.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0 ||
      uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) < 0) {
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
}

/* {==================================================================
 * Startup and shutdown
 * =================================================================== */

int main(int argc, char **argv) {
  uv_loop_t *loop = uv_default_loop();
  if (argc != 2) {
    fprintf(stderr, "usage: http_ceiling IP:PORT | [IPv6]:PORT\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN); /* a vanished peer is an error code, not death */
  llhttp_settings_init(&settings);
  settings.on_message_begin = on_message_begin;
  settings.on_url = on_url;
  settings.on_message_complete = on_message_complete;
  if (bench_tcp_listen(loop, &listener, argv[1], "http_ceiling",
                       connection_cb) < 0) {
    bench_close_all(loop, close_cb);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    return 1;
  }
  bench_announce((uv_handle_t *)&listener, "hello");
  bench_stop_on_signals(loop, close_cb);
  uv_run(loop, UV_RUN_DEFAULT);
  int r = uv_loop_close(loop);
  if (r < 0) fprintf(stderr, "http_ceiling: loop close: %s\n", uv_strerror(r));
  return r < 0 ? 1 : 0;
}

/* }================================================================== */
