#include "conn.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>

#include "addr.h"
#include "call.h"
#include "client.h"
#include "ipcount.h"
#include "log.h"
#include "protocol.h"
#include "loop.h"
#include "service.h"
#include "transport.h"
#include "write_queue.h"

#define CONN_MT "lunet.conn"
#define CONN_UV_DATA 1 /* uservalue slot of conn.data */

/* The Lua side holds only a pointer: the struct's lifetime is libuv's. */
struct conn_box {
  struct lunet_conn *c; /* NULL once the conn is freed */
  uint64_t id;          /* kept so conn.id still reads after close */
};

static void conn_set_reading(struct lunet_conn *c);
static void conn_log_lifecycle(struct lunet_conn *c, const char *what);

/* {==================================================================
 * Event dispatch into Lua
 * =================================================================== */

static struct lunet_call_ctx conn_ctx(const struct lunet_conn *c,
                                      enum lunet_handler h) {
  struct lunet_call_ctx ctx = {c->svc->name, lunet_handler_names[h], c->id,
                               &c->peer.sa, &c->svc->metrics};
  return ctx;
}

void lunet_conn_push(lua_State *L, const struct lunet_conn *c) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->self_ref);
}

/* Calls handler h with (conn, extra args already pushed). A handler error
 * costs this connection only. Returns the Lua status. */
static int conn_dispatch(struct lunet_conn *c, enum lunet_handler h,
                         int nextra) {
  lua_State *L = c->svc->rt->L;
  if (!lunet_service_push_handler(L, c->svc, h)) {
    lua_pop(L, nextra);
    return LUA_OK;
  }
  lua_insert(L, -1 - nextra);
  lunet_conn_push(L, c);
  lua_insert(L, -1 - nextra);
  struct lunet_call_ctx ctx = conn_ctx(c, h);
  if (h == LUNET_ON_DATA || h == LUNET_ON_MESSAGE) c->svc->metrics.messages++;
  int status = lunet_call(L, 1 + nextra, &ctx);
  if (status != LUA_OK && h != LUNET_ON_CLOSE)
    lunet_conn_close(c, "handler_error", 1);
  return status;
}

/* rate_limit on a stream: a peer over its budget of events is cut off
 * (there is no dropping part of a byte stream). */
static int conn_rate_ok(struct lunet_conn *c) {
  if (!(c->svc->opt.rate > 0)) return 1; /* no limit: no call */
  if (lunet_service_rate_ok(c->svc, &c->peer.sa)) return 1;
  lunet_conn_close(c, "rate_limited", 0);
  return 0;
}

/* The per-message path: handler(conn, bytes) pushed in call order, no
 * stack rotation. A handler error costs this connection only. */
static void conn_dispatch_bytes(struct lunet_conn *c, enum lunet_handler h,
                                const char *p, size_t n) {
  lua_State *L = c->svc->rt->L;
  int base = lua_gettop(L) + 1;
  struct lunet_call_ctx ctx = conn_ctx(c, h);
  lua_pushcfunction(L, lunet_traceback);
  lunet_service_push_handler(L, c->svc, h);
  lunet_conn_push(L, c);
  lua_pushlstring(L, p, n);
  c->svc->metrics.messages++;
  if (lunet_call_prepared(L, base, 2, &ctx) != LUA_OK)
    lunet_conn_close(c, "handler_error", 1);
}

void lunet_conn_message(struct lunet_conn *c, int h, const char *p, size_t n) {
  if (c->svc->handler_ref[h] == LUA_NOREF) return;
  if (!conn_rate_ok(c)) return;
  conn_dispatch_bytes(c, h, p, n);
}

/* }================================================================== */

/* {==================================================================
 * Input: the protocol consumes what it can, the conn keeps the rest
 * =================================================================== */

/* The protocol handed the conn to another in place after consuming off
 * bytes of buf: the rest goes to the new one at once. */
static size_t conn_deliver_switched(struct lunet_conn *c, const char *buf,
                                    size_t len, size_t off) {
  const struct lunet_protocol *p;
  do {
    p = c->proto;
    off += p->feed(c, buf + off, len - off);
  } while (c->proto != p && off < len && c->state == CONN_OPEN);
  return off;
}

/* Hands buf to the protocol; returns the bytes consumed (all of them once
 * the conn closes). */
static size_t conn_deliver(struct lunet_conn *c, const char *buf,
                           size_t len) {
  const struct lunet_protocol *p = c->proto;
  size_t off = p->feed(c, buf, len);
  if (off == len) return len;
  if (c->proto != p && c->state == CONN_OPEN)
    off = conn_deliver_switched(c, buf, len, off);
  return c->state == CONN_OPEN ? off : len;
}

void lunet_conn_switch(struct lunet_conn *c, const struct lunet_protocol *p) {
  if (c->proto->detach != NULL) c->proto->detach(c);
  c->proto = p;
  c->proto_state = NULL;
}

/* Appends to the conn's buffer; bounded because a protocol leaves at most
 * one incomplete message (max_message) or, one message per turn, what one
 * read brought (reading stops meanwhile). */
static int conn_keep(struct lunet_conn *c, const char *p, size_t n) {
  if (c->in_len + n > c->in_cap) {
    size_t cap = c->in_cap ? c->in_cap : 1024;
    while (cap < c->in_len + n) cap *= 2;
    char *in = realloc(c->in, cap);
    if (in == NULL) return UV_ENOMEM;
    c->in = in, c->in_cap = cap;
  }
  memcpy(c->in + c->in_len, p, n);
  c->in_len += n;
  return 0;
}

static void conn_schedule_input(struct lunet_conn *c);

/* A protocol that takes one message per turn (its answer may complete at
 * once) gets what follows on the next loop iteration, and no more is read
 * until it has consumed it: the buffered input stays one read however fast
 * a client pipelines. The bytes other protocols leave are an incomplete
 * message (bounded by max_message), and reading goes on to complete it. */
static void conn_note_backlog(struct lunet_conn *c) {
  unsigned char backlog = c->proto->one_message_per_turn && c->in_len > 0;
  if (backlog && lunet_conn_accepts_input(c) && !c->held)
    conn_schedule_input(c);
  if (backlog == c->paused_by_backlog) return;
  c->paused_by_backlog = backlog;
  conn_set_reading(c);
}

static void conn_end_input(struct lunet_conn *c);

static void conn_deliver_buffered(struct lunet_conn *c) {
  if (c->in_len > 0) {
    size_t used = conn_deliver(c, c->in, c->in_len);
    c->in_len -= used;
    if (c->in_len > 0) {
      memmove(c->in, c->in + used, c->in_len);
    } else {
      free(c->in); /* an idle conn holds no input buffer */
      c->in = NULL, c->in_cap = 0;
    }
    conn_note_backlog(c);
  }
  if (c->peer_eof) conn_end_input(c);
}

void lunet_conn_plaintext(struct lunet_conn *c, const char *p, size_t n) {
  if (c->state != CONN_OPEN) return; /* a transport's read may close it */
  if (c->held) {
    if (conn_keep(c, p, n) < 0) return lunet_conn_close(c, "ENOMEM", 0);
    c->paused_by_hold = 1; /* what is kept stays bounded: one read */
    return conn_set_reading(c);
  }
  if (c->in_len == 0) { /* straight from the read buffer */
    const struct lunet_protocol *proto = c->proto;
    size_t used = proto->feed(c, p, n); /* conn_deliver, kept inline */
    if (used < n && c->proto != proto && c->state == CONN_OPEN)
      used = conn_deliver_switched(c, p, n, used);
    if (used == n || c->state != CONN_OPEN) return;
    p += used, n -= used;
  }
  if (conn_keep(c, p, n) < 0) return lunet_conn_close(c, "ENOMEM", 0);
  if (c->in_len > n) return conn_deliver_buffered(c);
  conn_note_backlog(c);
}

/* Buffered messages are delivered from the loop, never inside the
 * conn:resume() (or write completion) that made the conn readable. */
static void conn_schedule_input(struct lunet_conn *c) {
  struct lunet_runtime *rt = c->svc->rt;
  if ((c->in_len == 0 && !c->peer_eof) || !lunet_list_empty(&c->pending))
    return;
  lunet_list_push(&rt->pending_input, &c->pending);
  uv_idle_start(&rt->input_idle, lunet_conn_pending_cb);
}

void lunet_conn_pending_cb(uv_idle_t *idle) {
  struct lunet_runtime *rt = lunet_container_of(idle, struct lunet_runtime,
                                                input_idle);
  struct lunet_list batch;
  lunet_list_init(&batch);
  while (!lunet_list_empty(&rt->pending_input)) {
    struct lunet_list *q = rt->pending_input.next;
    lunet_list_remove(q);
    lunet_list_push(&batch, q);
  }
  while (!lunet_list_empty(&batch)) {
    struct lunet_conn *c = lunet_container_of(batch.next, struct lunet_conn,
                                              pending);
    lunet_list_remove(&c->pending);
    if (lunet_conn_accepts_input(c) && !c->held) conn_deliver_buffered(c);
  }
  if (lunet_list_empty(&rt->pending_input)) uv_idle_stop(idle);
}

/* }================================================================== */

/* {==================================================================
 * The end of input: the peer shut its side
 * =================================================================== */

/* Runs once nothing more can be delivered (paused conns wait for their
 * resume, messages kept by a one-per-turn protocol for their turn): the
 * protocol says what the rest means, and the conn closes gracefully, so
 * what its handlers wrote still reaches the peer. */
static void conn_end_input(struct lunet_conn *c) {
  if (!lunet_conn_accepts_input(c)) return;
  if (c->paused_by_backlog && !c->held) return; /* the next one's turn */
  const char *reason = c->proto->eof != NULL ? c->proto->eof(c) : "eof";
  lunet_conn_close(c, reason, 1);
}

/* libuv has stopped reading at EOF; the conn stays open until what it
 * buffered has been delivered (a paused conn goes on once it is resumed:
 * conn_set_reading schedules it). */
static void conn_peer_eof(struct lunet_conn *c) {
  c->peer_eof = 1;
  c->reading = 0;
  if (lunet_conn_accepts_input(c)) conn_deliver_buffered(c);
}

void lunet_conn_input_end(struct lunet_conn *c) {
  if (c->state != CONN_OPEN) return;
  c->peer_eof = 1;
  conn_set_reading(c); /* stops the socket's reads */
  if (lunet_conn_accepts_input(c)) conn_deliver_buffered(c);
}

/* }================================================================== */

/* {==================================================================
 * libuv callbacks and the close path
 * =================================================================== */

static void conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct lunet_conn *c = h->data;
  (void)suggested;
  *buf = uv_buf_init(c->svc->rt->read_buf, sizeof c->svc->rt->read_buf);
}

static void conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct lunet_conn *c = s->data;
  if (c->state != CONN_OPEN) return;
  c->last_read_ms = uv_now(s->loop);
  if (nread > 0) c->svc->metrics.bytes_in += (uint64_t)nread;
  if (nread > 0)
    c->transport->read(c, buf->base, (size_t)nread);
  else if (nread == UV_EOF)
    conn_peer_eof(c);
  else if (nread < 0)
    lunet_conn_close(c, uv_err_name((int)nread), 0);
}

/* Through the loop's read buffer, as a socket read would be: a protocol
 * may rewrite what it is fed (protocol.h), and p may be read-only. */
void lunet__conn_feed(struct lunet_conn *c, const char *p, size_t n) {
  char *buf = c->svc->rt->read_buf;
  c->last_read_ms = uv_now(c->tcp.loop);
  do {
    size_t k = n < LUNET_READ_BUF_SIZE ? n : LUNET_READ_BUF_SIZE;
    memmove(buf, p, k);
    lunet_conn_plaintext(c, buf, k);
    p += k, n -= k;
  } while (n > 0 && c->state == CONN_OPEN);
}

/* Runs on_close while the struct is still valid, then frees it. */
static void conn_close_cb(uv_handle_t *h) {
  struct lunet_conn *c = h->data;
  lua_State *L = c->svc->rt->L;
  c->state = CONN_CLOSED;
  c->svc->metrics.closed[lunet_metrics_reason(c->close_reason)]++;
  conn_log_lifecycle(c, "conn closed");
  if (c->started || c->svc->client) { /* a handshake Lua never saw: none */
    lua_pushstring(L, c->close_reason);
    conn_dispatch(c, LUNET_ON_CLOSE, 1);
  }
  lunet_conn_push(L, c);
  ((struct conn_box *)lua_touserdata(L, -1))->c = NULL;
  lua_pop(L, 1);
  luaL_unref(L, LUA_REGISTRYINDEX, c->self_ref);
  c->self_ref = LUA_NOREF;
  lunet_list_remove(&c->pending);
  if (c->proto->detach != NULL) c->proto->detach(c);
  if (c->transport->detach != NULL) c->transport->detach(c);
  if (c->ip_counted) lunet_ipcount_release(c->svc->per_ip, &c->peer.sa);
  lunet_service_conn_gone(c->svc);
  free(c->in);
  free(c);
}

/* What is still queued leaves the process-wide count here, not when libuv
 * cancels the writes later in this iteration: a conn dropped to make
 * room has made it at once. */
static void conn_uv_close(struct lunet_conn *c) {
  lunet_list_remove(&c->node);
  c->svc->rt->queued_bytes -= c->wq_bytes;
  c->state = CONN_CLOSING;
  uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
}

void lunet_conn_close(struct lunet_conn *c, const char *reason,
                      int graceful) {
  if (c->state == CONN_CONNECTING) {
    if (c->connect_req != NULL) lunet__connect_abandon(c->connect_req);
    c->close_reason = reason;
    conn_uv_close(c);
  }
  if (c->state == CONN_DRAINING && !graceful) conn_uv_close(c);
  if (c->state != CONN_OPEN) return;
  if (graceful && c->proto->goodbye != NULL) {
    c->proto->goodbye(c, reason);
    if (c->state != CONN_OPEN) return; /* its write failed: closing now */
  }
  c->close_reason = reason;
  if (graceful && c->transport->shutdown != NULL) c->transport->shutdown(c);
  c->state = CONN_DRAINING;
  conn_set_reading(c);
  lunet_list_remove(&c->node);
  if (!graceful || c->wq_bytes == 0) {
    conn_uv_close(c);
    return;
  }
  struct lunet_runtime *rt = c->svc->rt;
  c->drain_deadline = uv_now(&rt->loop) + c->svc->opt.drain_timeout_ms;
  lunet_list_push(&rt->draining, &c->node);
}

void lunet_conn_sweep(struct lunet_runtime *rt, int force) {
  uint64_t now = uv_now(&rt->loop);
  struct lunet_list *q, *next;
  for (q = rt->draining.next; q != &rt->draining; q = next) {
    struct lunet_conn *c = lunet_container_of(q, struct lunet_conn, node);
    char id[24], queued[24];
    next = q->next;
    if (!force && now < c->drain_deadline) continue;
    snprintf(id, sizeof id, "%" PRIu64, c->id);
    snprintf(queued, sizeof queued, "%zu", c->wq_bytes);
    lunet_log(LUNET_LOG_WARN, "drain timeout, dropping queued data",
              "service", c->svc->name, "conn", id, "queued", queued, NULL);
    conn_uv_close(c);
  }
}

/* Reading runs only while the conn accepts input, the peer has not shut
 * its side and no pipelined request waits in `in`. A conn that accepts
 * input is scheduled to deliver what it kept (and, after EOF, to end). */
static void conn_set_reading(struct lunet_conn *c) {
  int accepts = lunet_conn_accepts_input(c);
  int want = accepts && !c->peer_eof && !c->paused_by_backlog;
  if (want != c->reading) {
    if (want)
      uv_read_start((uv_stream_t *)&c->tcp, conn_alloc_cb, conn_read_cb);
    else
      uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = (unsigned char)want;
  }
  if (accepts) conn_schedule_input(c);
}

/* Called after every completed write: finishes a drain, lifts queue
 * backpressure once the queue is below half the high-water mark. */
static void conn_after_write(struct lunet_conn *c) {
  if (c->state == CONN_DRAINING && c->wq_bytes == 0) {
    conn_uv_close(c);
    return;
  }
  if (c->state != CONN_OPEN || !c->paused_by_queue) return;
  if (c->wq_bytes > c->svc->opt.write_high_water / 2) return;
  c->paused_by_queue = 0;
  conn_set_reading(c);
  if (c->proto->drain != NULL)
    c->proto->drain(c);
  else
    conn_dispatch(c, LUNET_ON_DRAIN, 0);
}

/* Every status, UV_ECANCELED after uv_close included: the write queue
 * has released the request and what it held. */
static void conn_write_done(uv_stream_t *s, size_t len, int status) {
  struct lunet_conn *c = s->data;
  size_t charge = lunet_wq_charge(len);
  c->wq_bytes -= charge;
  if (c->state < CONN_CLOSING) c->svc->rt->queued_bytes -= charge;
  c->write_stalled_ms = uv_now(s->loop); /* it moved */
  if (status < 0 && status != UV_ECANCELED && c->state <= CONN_DRAINING)
    lunet_conn_close(c, uv_err_name(status), 0);
  if (status >= 0) conn_after_write(c);
}

/* }================================================================== */

/* {==================================================================
 * Accept
 * =================================================================== */

static void free_handle_cb(uv_handle_t *h) { free(h->data); }

static int conn_box_new(lua_State *L, struct lunet_conn *c) {
  struct conn_box *b = lua_newuserdatauv(L, sizeof *b, 1);
  b->c = c;
  b->id = c->id;
  luaL_setmetatable(L, CONN_MT);
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

static void conn_log_accept_error(struct lunet_service *svc, int r) {
  lunet_service_refused(svc, uv_err_name(r));
}

static struct lunet_conn *conn_alloc(struct lunet_service *svc) {
  struct lunet_conn *c = calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  uv_tcp_init(&svc->rt->loop, &c->tcp);
  c->tcp.data = c;
  c->svc = svc;
  c->proto = lunet_service_protocol(svc);
  c->transport = lunet_service_transport(svc);
  c->max_message = svc->opt.max_message;
  c->close_reason = "closed";
  lunet_list_init(&c->pending);
  return c;
}

/* From here the conn is the loop's: pinned, listed, counted. */
static void conn_register(struct lunet_conn *c, enum lunet_conn_state state) {
  struct lunet_runtime *rt = c->svc->rt;
  c->id = ++rt->last_conn_id;
  c->state = state;
  c->self_ref = conn_box_new(rt->L, c);
  lunet_list_push(&c->svc->conns, &c->node);
  c->svc->nconns++;
  c->svc->metrics.accepted++;
}

/* --log-level debug: one record when a conn opens and one when it is
 * gone, each with service, conn and peer. */
static void conn_log_lifecycle(struct lunet_conn *c, const char *what) {
  char id[24], peer[LUNET_ADDR_STRLEN] = "";
  if (!lunet_log_enabled(LUNET_LOG_DEBUG)) return;
  snprintf(id, sizeof id, "%" PRIu64, c->id);
  lunet_addr_format(&c->peer.sa, peer, sizeof peer);
  lunet_log(LUNET_LOG_DEBUG, what, "service", c->svc->name, "conn", id,
            "peer", peer, "reason", c->state == CONN_CLOSED ? c->close_reason
                                                            : "", NULL);
}

static void conn_start(struct lunet_conn *c) {
  int len = sizeof c->peer;
  uv_tcp_getpeername(&c->tcp, &c->peer.sa, &len);
  uv_tcp_nodelay(&c->tcp, 1);
  c->last_read_ms = uv_now(c->tcp.loop);
  conn_log_lifecycle(c, "conn open");
  c->state = CONN_OPEN;
  conn_set_reading(c);
  if (c->transport->start != NULL && c->transport->start(c) != 0) return;
  lunet_conn_ready(c);
}

void lunet_conn_ready(struct lunet_conn *c) {
  if (c->state != CONN_OPEN) return;
  c->started = 1;
  conn_dispatch(c, LUNET_ON_CONNECT, 0);
}

/* Over a limit the new conn is closed at once (its protocol may say why
 * first: HTTP answers 503); existing conns are untouched. One log record
 * a second says how many were refused. */
static void conn_refuse(struct lunet_conn *c, const char *why) {
  if (c->proto->refusal != NULL) {
    uv_buf_t buf =
        uv_buf_init((char *)c->proto->refusal, (unsigned)c->proto->refusal_len);
    uv_try_write((uv_stream_t *)&c->tcp, &buf, 1); /* best effort */
  }
  lunet_service_refused(c->svc, why);
  uv_close((uv_handle_t *)&c->tcp, free_handle_cb);
}

/* 0 if the conn may stay, else the limit it is over. */
static const char *conn_over_limit(struct lunet_conn *c) {
  struct lunet_service *svc = c->svc;
  int len = sizeof c->peer;
  if (svc->opt.max_connections && svc->nconns >= svc->opt.max_connections)
    return "max_connections";
  if (svc->opt.max_connections_per_ip == 0) return NULL;
  uv_tcp_getpeername(&c->tcp, &c->peer.sa, &len);
  if (svc->per_ip == NULL && (svc->per_ip = lunet_ipcount_new()) == NULL)
    return "ENOMEM";
  int r = lunet_ipcount_take(svc->per_ip, &c->peer.sa,
                             svc->opt.max_connections_per_ip);
  if (r <= 0) return r == 0 ? "max_connections_per_ip" : "ENOMEM";
  c->ip_counted = 1;
  return NULL;
}

void lunet_conn_accept(struct lunet_service *svc, uv_stream_t *server) {
  struct lunet_conn *c = conn_alloc(svc);
  const char *over;
  int r;
  if (c == NULL) return conn_log_accept_error(svc, UV_ENOMEM);
  if ((r = uv_accept(server, (uv_stream_t *)&c->tcp)) < 0) {
    uv_close((uv_handle_t *)&c->tcp, free_handle_cb);
    return conn_log_accept_error(svc, r);
  }
  if ((over = conn_over_limit(c)) != NULL) return conn_refuse(c, over);
  conn_register(c, CONN_OPEN);
  conn_start(c);
}

/* write_timeout: output queued and not moving (the peer stopped reading):
 * dropped. Then the protocol's own deadlines, or idle_timeout: no input
 * for that long (graceful: what is queued goes). */
static void conn_check_timeouts(struct lunet_conn *c, uint64_t now) {
  const struct lunet_service_options *o = &c->svc->opt;
  if (c->state != CONN_OPEN) return;
  if (o->write_timeout_ms && c->wq_bytes > 0 &&
      now - c->write_stalled_ms >= o->write_timeout_ms)
    return lunet_conn_close(c, "write_timeout", 0);
  if (c->transport->timeouts != NULL && c->transport->timeouts(c, now))
    return;
  if (c->proto->timeouts != NULL) return c->proto->timeouts(c, now);
  if (o->idle_timeout_ms && now - c->last_read_ms >= o->idle_timeout_ms)
    lunet_conn_close(c, "idle_timeout", 1);
}

void lunet_conn_timeouts(struct lunet_service *svc, uint64_t now) {
  struct lunet_list *q, *next;
  const struct lunet_transport *t = lunet_service_transport(svc);
  if (t->tick != NULL) t->tick(svc, now);
  if (!svc->opt.write_timeout_ms && !svc->opt.idle_timeout_ms &&
      lunet_service_protocol(svc)->timeouts == NULL && t->timeouts == NULL)
    return;
  for (q = svc->conns.next; q != &svc->conns; q = next) {
    next = q->next;
    conn_check_timeouts(lunet_container_of(q, struct lunet_conn, node), now);
  }
}

int lunet_conn_in_flight(const struct lunet_conn *c) {
  return c->proto->in_flight != NULL && c->proto->in_flight(c);
}

struct lunet_conn *lunet__conn_adopt(struct lunet_service *svc, int fd) {
  struct lunet_conn *c = conn_alloc(svc);
  if (c == NULL) return NULL;
  if (uv_tcp_open(&c->tcp, fd) < 0) {
    uv_close((uv_handle_t *)&c->tcp, free_handle_cb);
    return NULL;
  }
  conn_register(c, CONN_OPEN);
  conn_start(c);
  return c;
}

struct lunet_conn *lunet_conn_new_client(struct lunet_service *svc) {
  struct lunet_conn *c = conn_alloc(svc);
  if (c != NULL) conn_register(c, CONN_CONNECTING);
  return c;
}

void lunet_conn_connected(struct lunet_conn *c) { conn_start(c); }

/* }================================================================== */

/* {==================================================================
 * Lua methods
 * =================================================================== */

/* Every method and metamethod has the metatable as upvalue 1. */
#define CONN_UP_MT lua_upvalueindex(1)
#define CONN_UP_METHODS lua_upvalueindex(2) /* __index only */

struct lunet_conn *lunet_conn_of(lua_State *L, int idx) {
  struct conn_box *b = luaL_checkudata(L, idx, CONN_MT);
  return b->c;
}

/* luaL_checkudata without a registry lookup on every method call: the
 * metatable to compare with is an upvalue. */
static struct conn_box *conn_box(lua_State *L) {
  struct conn_box *b = lua_touserdata(L, 1);
  int ok = b != NULL && lua_getmetatable(L, 1);
  if (ok) {
    ok = lua_topointer(L, -1) == lua_topointer(L, CONN_UP_MT);
    lua_pop(L, 1);
  }
  if (!ok) luaL_typeerror(L, 1, CONN_MT);
  return b;
}

/* A client whose connect (and its transport's handshake: the socket is
 * open, but nothing may be written through TLS yet) has not completed. */
static int is_connecting(const struct lunet_conn *c) {
  return c != NULL && (c->state == CONN_CONNECTING ||
                       (c->state == CONN_OPEN && !c->started));
}

/* The conn if it is open, else NULL with (nil, "closed") pushed, or
 * (nil, "connecting") for a client that is not connected yet. */
static struct lunet_conn *open_conn(lua_State *L) {
  struct lunet_conn *c = conn_box(L)->c;
  if (c != NULL && c->state == CONN_OPEN && c->started) return c;
  luaL_pushfail(L);
  if (is_connecting(c))
    lua_pushliteral(L, "connecting");
  else
    lua_pushliteral(L, "closed");
  return NULL;
}

static int push_uv_error(lua_State *L, int r) {
  luaL_pushfail(L);
  lua_pushfstring(L, "%s: %s", uv_err_name(r), uv_strerror(r));
  lua_pushstring(L, uv_err_name(r));
  return 3;
}

/* Over the process-wide bound other conns may be dropped first to make
 * room (write_queue.h). Past write_high_water the conn takes no more
 * input (no reads, nothing of its buffered input delivered) until the
 * queue is below half of it: every protocol's output and every
 * transport's bytes count, so none can make the queue grow by reading. */
int lunet_conn_sock_write(struct lunet_conn *c, const char *p, size_t n,
                          lua_State *L, int idx) {
  uv_buf_t buf = uv_buf_init((char *)p, (unsigned)n);
  struct lunet_runtime *rt = c->svc->rt;
  c->svc->metrics.bytes_out += n;
  if (c->wq_bytes == 0) {
    int r = uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
    if (r == (int)n) return 0;
    if (r < 0 && r != UV_EAGAIN) return r;
    if (r > 0) p += r, n -= (size_t)r;
  }
  size_t charge = lunet_wq_charge(n);
  if (c->wq_bytes + charge > c->svc->opt.max_write_queue) return UV_ENOBUFS;
  int r = lunet__wq_make_room(rt, c, charge);
  if (r == 0)
    r = lunet_wq_write(L, (uv_stream_t *)&c->tcp, p, n, idx, conn_write_done);
  if (r < 0) return r == UV_ENOBUFS ? UV_EOVERFLOW : r;
  if (c->wq_bytes == 0) c->write_stalled_ms = uv_now(c->tcp.loop);
  c->wq_bytes += charge;
  rt->queued_bytes += charge;
  if (c->wq_bytes > c->svc->opt.write_high_water && !c->paused_by_queue) {
    c->paused_by_queue = 1; /* no more input until the peer takes this */
    conn_set_reading(c);
  }
  return 0;
}

/* A write that failed drops its conn: a slow consumer (UV_ENOBUFS: its
 * own queue limit; UV_EOVERFLOW: the process-wide one) or a socket
 * error. */
static void conn_write_failed(struct lunet_conn *c, int r, size_t adding) {
  if (r == UV_ENOBUFS || r == UV_EOVERFLOW) {
    lunet__wq_log_drop(
        c, c->wq_bytes + adding,
        r == UV_ENOBUFS ? "max_write_queue" : "process_queue_limit");
    if (r == UV_EOVERFLOW) c->svc->rt->queue_drops++;
    lunet_conn_close(c, "slow_consumer", 0);
  } else {
    lunet_conn_close(c, uv_err_name(r), 0);
  }
}

/* Plaintext from C (an HTTP response, a framing error line), through the
 * transport: copied (idx 0) or pinned. */
static int conn_send(struct lunet_conn *c, const char *p, size_t n,
                     lua_State *L, int idx) {
  if (c->state != CONN_OPEN) return UV_EPIPE;
  int r = c->transport->write(c, p, n, L, idx);
  if (r < 0) conn_write_failed(c, r, n);
  return r == UV_EOVERFLOW ? UV_ENOBUFS : r;
}

int lunet_conn_send(struct lunet_conn *c, const char *p, size_t n) {
  return conn_send(c, p, n, c->svc->rt->L, 0);
}

int lunet_conn_send_string(struct lunet_conn *c, lua_State *L, int idx,
                           const char *p, size_t n) {
  return conn_send(c, p, n, L, lua_absindex(L, idx));
}

void lunet_conn_hold(struct lunet_conn *c, int hold) {
  c->held = (unsigned char)(hold != 0);
  if (hold) return;
  c->paused_by_hold = 0;
  conn_set_reading(c); /* restarts reading if input had stopped it */
  conn_schedule_input(c);
}

/* conn:write(s) -> true, or false once the queue passed its high-water mark
 * (reading pauses until it drains); nil, "closed" on a closed conn. */
static int conn_write(lua_State *L) {
  size_t n;
  struct lunet_conn *c = open_conn(L);
  const char *p = luaL_checklstring(L, 2, &n);
  if (c == NULL) return 2;
  if (n == 0) return lua_pushboolean(L, 1), 1;
  int r = c->transport->write(c, p, n, L, 2); /* s may be pinned */
  if (r < 0) conn_write_failed(c, r, n);
  if (r < 0) return push_uv_error(L, r == UV_EOVERFLOW ? UV_ENOBUFS : r);
  lua_pushboolean(L, !c->paused_by_queue);
  return 1;
}

/* conn:close(): queued writes flush first; on_close follows from the loop. */
static int conn_close(lua_State *L) {
  struct lunet_conn *c = conn_box(L)->c;
  if (is_connecting(c)) {
    lunet_conn_close(c, "closed", 0); /* aborts the connect */
    lua_pushboolean(L, 1);
    return 1;
  }
  if ((c = open_conn(L)) == NULL) return 2;
  lunet_conn_close(c, "closed", 1);
  lua_pushboolean(L, 1);
  return 1;
}

static int conn_pause(lua_State *L) {
  struct lunet_conn *c = open_conn(L);
  if (c == NULL) return 2;
  c->paused_by_user = 1;
  conn_set_reading(c);
  lua_pushboolean(L, 1);
  return 1;
}

static int conn_resume(lua_State *L) {
  struct lunet_conn *c = open_conn(L);
  if (c == NULL) return 2;
  c->paused_by_user = 0;
  conn_set_reading(c);
  lua_pushboolean(L, 1);
  return 1;
}

static int push_data(lua_State *L) {
  if (lua_getiuservalue(L, 1, CONN_UV_DATA) != LUA_TNIL) return 1;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, 1, CONN_UV_DATA);
  return 1;
}

int lunet_conn_push_tls(lua_State *L, const struct lunet_conn *c) {
  if (c->state > CONN_DRAINING || c->transport->push_info == NULL) return 0;
  return c->transport->push_info(L, c);
}

static int push_peer(lua_State *L, const struct lunet_conn *c) {
  char peer[LUNET_ADDR_STRLEN];
  if (c == NULL || lunet_addr_format(&c->peer.sa, peer, sizeof peer) < 0)
    return 0;
  lua_pushstring(L, peer);
  return 1;
}

/* Methods come from upvalue 2, looked up first: conn:write(s) is the
 * per-message path, and a method checks its own argument when called.
 * data, id, peer and service are fields. */
static int conn_index(lua_State *L) {
  lua_settop(L, 2);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, CONN_UP_METHODS) != LUA_TNIL) return 1;
  struct conn_box *b = conn_box(L);
  size_t len;
  const char *key = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &len)
                                                  : NULL;
  if (key == NULL || strlen(key) != len) return 0; /* "peer\0x" is none */
  if (strcmp(key, "data") == 0) return push_data(L);
  if (strcmp(key, "id") == 0) return lua_pushinteger(L, (lua_Integer)b->id), 1;
  if (strcmp(key, "peer") == 0) return push_peer(L, b->c);
  if (strcmp(key, "service") == 0 && b->c != NULL)
    return lua_pushstring(L, b->c->svc->name), 1;
  if (strcmp(key, "tls") == 0 && b->c != NULL)
    return lunet_conn_push_tls(L, b->c);
  return 0;
}

/* A key for an error message, as given: a NUL shows as \0. */
static const char *push_shown_key(lua_State *L, const char *key, size_t len) {
  luaL_Buffer shown;
  luaL_buffinit(L, &shown);
  for (size_t i = 0; i < len; i++)
    if (key[i] == '\0')
      luaL_addstring(&shown, "\\0");
    else
      luaL_addchar(&shown, key[i]);
  luaL_pushresult(&shown);
  return lua_tostring(L, -1);
}

/* Only conn.data is assignable, and only to a table. */
static int conn_newindex(lua_State *L) {
  size_t len;
  conn_box(L);
  const char *key = luaL_checklstring(L, 2, &len);
  if (len != 4 || memcmp(key, "data", 4) != 0)
    return luaL_error(L, "cannot set field '%s' of lunet.conn",
                      push_shown_key(L, key, len));
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  lua_setiuservalue(L, 1, CONN_UV_DATA);
  return 0;
}

static int conn_tostring(lua_State *L) {
  struct conn_box *b = conn_box(L);
  char peer[LUNET_ADDR_STRLEN] = "closed";
  if (b->c != NULL && b->c->state == CONN_OPEN)
    lunet_addr_format(&b->c->peer.sa, peer, sizeof peer);
  lua_pushfstring(L, "lunet.conn %I (%s)", (lua_Integer)b->id, peer);
  return 1;
}

/* __close (a to-be-closed variable) closes gracefully. The box has no
 * __gc, unlike liolib's files: the self-ref keeps an open conn's box
 * alive and close_cb frees the struct, so a finalizer would only ever
 * meet a freed conn. Without one a closed conn's box is plain garbage,
 * swept in the cycle that finds it dead; with one, each box waited for
 * a finalizer call and a second cycle, and under churn the incremental
 * collector fell behind by ~57 bytes per closed conn (34 MiB of heap
 * after 600,000 conns, freed only when the loop went quiet). */
static int conn_close_var(lua_State *L) {
  struct lunet_conn *c = conn_box(L)->c;
  if (c != NULL) lunet_conn_close(c, "closed", 1);
  return 0;
}

void lunet_conn_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"write", conn_write},
                                     {"close", conn_close},
                                     {"pause", conn_pause},
                                     {"resume", conn_resume},
                                     {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__newindex", conn_newindex},
                                  {"__tostring", conn_tostring},
                                  {"__close", conn_close_var},
                                  {NULL, NULL}};
  luaL_newmetatable(L, CONN_MT);
  lua_pushvalue(L, -1);
  luaL_setfuncs(L, meta, 1);
  luaL_newlibtable(L, methods);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, methods, 1);
  lua_pushvalue(L, -2); /* upvalue 1: the metatable */
  lua_insert(L, -2);    /* upvalue 2: the methods */
  lua_pushcclosure(L, conn_index, 2);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

/* }================================================================== */
