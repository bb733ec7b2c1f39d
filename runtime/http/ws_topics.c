/* Topics of websockets: lunet.publish(topic, msg) builds one frame and
 * writes it to every subscribed socket from C, without a Lua call per
 * recipient. A topic is a list of subscriptions in a hash table of the
 * runtime; each websocket also lists its own, so its close ends them all
 * in one walk. */
#include "ws_internal.h"

#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>

#include "conn.h"
#include "log.h"
#include "loop.h"
#include "service.h"
#include "write_queue.h"

struct ws_topic {
  struct ws_topic *next; /* in its bucket */
  struct lunet_list subs; /* struct ws_sub.topic_node, in order */
  size_t count;
  size_t len;
  char name[];
};

struct ws_sub {
  struct lunet_list topic_node;
  struct lunet_list ws_node;
  struct ws_topic *topic;
  struct lunet_ws *ws;
};

struct lunet_ws_topics {
  struct ws_topic **buckets;
  size_t nbuckets; /* a power of two */
  size_t ntopics;
};

/* {==================================================================
 * The table
 * =================================================================== */

static size_t hash(const char *s, size_t n) {
  size_t h = 1469598103934665603u; /* FNV-1a */
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211u;
  return h;
}

static struct ws_topic **slot(struct lunet_ws_topics *t, const char *name,
                              size_t len) {
  struct ws_topic **p = &t->buckets[hash(name, len) & (t->nbuckets - 1)];
  while (*p != NULL && ((*p)->len != len || memcmp((*p)->name, name, len)))
    p = &(*p)->next;
  return p;
}

static struct ws_topic *find(struct lunet_runtime *rt, const char *name,
                             size_t len) {
  struct lunet_ws_topics *t = rt->ws_topics;
  return t == NULL ? NULL : *slot(t, name, len);
}

static int grow(struct lunet_ws_topics *t) {
  size_t n = t->nbuckets ? t->nbuckets * 2 : 16;
  struct ws_topic **b = calloc(n, sizeof *b);
  if (b == NULL) return -1;
  for (size_t i = 0; i < t->nbuckets; i++) {
    struct ws_topic *x = t->buckets[i], *next;
    for (; x != NULL; x = next) {
      next = x->next;
      struct ws_topic **to = &b[hash(x->name, x->len) & (n - 1)];
      x->next = *to;
      *to = x;
    }
  }
  free(t->buckets);
  t->buckets = b, t->nbuckets = n;
  return 0;
}

static struct ws_topic *find_or_make(struct lunet_runtime *rt,
                                     const char *name, size_t len) {
  struct lunet_ws_topics *t = rt->ws_topics;
  if (t == NULL && (t = rt->ws_topics = calloc(1, sizeof *t)) == NULL)
    return NULL;
  if (t->ntopics >= t->nbuckets && grow(t) < 0) return NULL;
  struct ws_topic **p = slot(t, name, len);
  if (*p != NULL) return *p;
  struct ws_topic *x = malloc(sizeof *x + len + 1);
  if (x == NULL) return NULL;
  x->next = NULL;
  lunet_list_init(&x->subs);
  x->count = 0;
  x->len = len;
  memcpy(x->name, name, len);
  x->name[len] = '\0';
  *p = x;
  t->ntopics++;
  return x;
}

static void drop_topic(struct lunet_runtime *rt, struct ws_topic *x) {
  struct ws_topic **p = slot(rt->ws_topics, x->name, x->len);
  *p = x->next;
  rt->ws_topics->ntopics--;
  free(x);
}

void lunet__ws_topics_free(struct lunet_runtime *rt) {
  struct lunet_ws_topics *t = rt->ws_topics;
  if (t == NULL) return;
  for (size_t i = 0; i < t->nbuckets; i++) {
    struct ws_topic *x = t->buckets[i], *next;
    for (; x != NULL; x = next) {
      next = x->next;
      while (!lunet_list_empty(&x->subs)) {
        struct ws_sub *s = lunet_container_of(x->subs.next, struct ws_sub,
                                              topic_node);
        lunet_list_remove(&s->topic_node);
        lunet_list_remove(&s->ws_node);
        free(s);
      }
      free(x);
    }
  }
  free(t->buckets);
  free(t);
  rt->ws_topics = NULL;
}

/* }================================================================== */

/* {==================================================================
 * Subscriptions
 * =================================================================== */

static struct ws_sub *sub_of(struct lunet_ws *ws, const struct ws_topic *x) {
  struct lunet_list *q;
  for (q = ws->subs.next; q != &ws->subs; q = q->next) {
    struct ws_sub *s = lunet_container_of(q, struct ws_sub, ws_node);
    if (s->topic == x) return s;
  }
  return NULL;
}

static void unsubscribe(struct lunet_runtime *rt, struct ws_sub *s) {
  struct ws_topic *x = s->topic;
  lunet_list_remove(&s->topic_node);
  lunet_list_remove(&s->ws_node);
  free(s);
  if (--x->count == 0) drop_topic(rt, x);
}

/* ws:subscribe(topic) -> true (already subscribed: true as well). */
int lunet__ws_subscribe(lua_State *L, struct lunet_ws *ws, int topic_idx) {
  size_t len;
  const char *name = lua_tolstring(L, topic_idx, &len);
  struct lunet_runtime *rt = ws->c->svc->rt;
  luaL_argcheck(L, memchr(name, '\0', len) == NULL, topic_idx,
                "topic contains a NUL byte");
  struct ws_topic *x = find_or_make(rt, name, len);
  if (x == NULL) return luaL_error(L, "out of memory");
  if (sub_of(ws, x) == NULL) {
    struct ws_sub *s = malloc(sizeof *s);
    if (s == NULL) {
      if (x->count == 0) drop_topic(rt, x);
      return luaL_error(L, "out of memory");
    }
    s->topic = x;
    s->ws = ws;
    lunet_list_push(&x->subs, &s->topic_node);
    lunet_list_push(&ws->subs, &s->ws_node);
    x->count++;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* ws:unsubscribe(topic) -> true if it was subscribed. */
int lunet__ws_unsubscribe(lua_State *L, struct lunet_ws *ws, int topic_idx) {
  size_t len;
  const char *name = lua_tolstring(L, topic_idx, &len);
  struct lunet_runtime *rt = ws->c->svc->rt;
  struct ws_topic *x = find(rt, name, len);
  struct ws_sub *s = x != NULL ? sub_of(ws, x) : NULL;
  if (s != NULL) unsubscribe(rt, s);
  lua_pushboolean(L, s != NULL);
  return 1;
}

void lunet__ws_unsubscribe_all(struct lunet_ws *ws) {
  struct lunet_runtime *rt = ws->c->svc->rt;
  while (!lunet_list_empty(&ws->subs))
    unsubscribe(rt, lunet_container_of(ws->subs.next, struct ws_sub,
                                       ws_node));
}

size_t lunet_ws_topic_count(struct lunet_runtime *rt, const char *topic,
                            size_t tlen) {
  struct ws_topic *x = find(rt, topic, tlen);
  return x == NULL ? 0 : x->count;
}

/* }================================================================== */

/* {==================================================================
 * Fan-out
 * =================================================================== */

/* A frame this large is held once, as a Lua string every queue pins;
 * smaller ones are copied only into the queues of sockets that could not
 * take them at once. */
#define FRAME_PIN_MIN (16u << 10)

struct frame {
  const char *p;
  size_t n;
  int idx; /* the Lua string holding it, or 0 */
};

/* {==================================================================
 * Corking: a subscriber's frames of one loop turn go out in one write
 *
 * A server under load reads several publishes at once; written one by
 * one, each costs every subscriber a syscall. Frames of a turn are kept
 * per socket (at most CORK_MAX) and written together from the loop's
 * check phase, after the I/O callbacks of the turn: no later than that,
 * so no latency is added.
 * =================================================================== */

#define CORK_MAX (64u << 10)

void lunet__ws_cork_discard(struct lunet_ws *ws) {
  if (ws->cork == NULL) return;
  free(ws->cork);
  ws->cork = NULL;
  ws->cork_len = ws->cork_cap = 0;
  lunet_list_remove(&ws->cork_node);
}

void lunet__ws_uncork(struct lunet_ws *ws) {
  if (ws->cork == NULL) return;
  char *p = ws->cork;
  size_t n = ws->cork_len;
  ws->cork = NULL; /* a failing send may close the conn: nothing to redo */
  ws->cork_len = ws->cork_cap = 0;
  lunet_list_remove(&ws->cork_node);
  if (ws->c->state == CONN_OPEN) lunet_conn_send(ws->c, p, n);
  free(p);
}

static void flush_cb(uv_check_t *check) {
  struct lunet_runtime *rt = check->data;
  while (!lunet_list_empty(&rt->ws_corked))
    lunet__ws_uncork(lunet_container_of(rt->ws_corked.next, struct lunet_ws,
                                        cork_node));
  uv_check_stop(check);
}

static int cork(struct lunet_ws *ws, const char *p, size_t n) {
  struct lunet_runtime *rt = ws->c->svc->rt;
  if (ws->cork_len + n > ws->cork_cap) {
    size_t cap = ws->cork_cap ? ws->cork_cap * 2 : 512;
    while (cap < ws->cork_len + n) cap *= 2;
    char *q = realloc(ws->cork, cap);
    if (q == NULL) return UV_ENOMEM;
    if (ws->cork == NULL) {
      if (!rt->ws_flush_ready) {
        uv_check_init(&rt->loop, &rt->ws_flush);
        rt->ws_flush.data = rt;
        lunet_list_init(&rt->ws_corked);
        rt->ws_flush_ready = 1;
      }
      lunet_list_push(&rt->ws_corked, &ws->cork_node);
      uv_check_start(&rt->ws_flush, flush_cb);
    }
    ws->cork = q, ws->cork_cap = cap;
  }
  memcpy(ws->cork + ws->cork_len, p, n);
  ws->cork_len += n;
  if (ws->cork_len >= CORK_MAX) lunet__ws_uncork(ws);
  return 0;
}

void lunet_ws_stop(struct lunet_runtime *rt) {
  if (!rt->ws_flush_ready) return;
  while (!lunet_list_empty(&rt->ws_corked))
    lunet__ws_cork_discard(lunet_container_of(rt->ws_corked.next, struct lunet_ws,
                                    cork_node));
  uv_close((uv_handle_t *)&rt->ws_flush, NULL);
  rt->ws_flush_ready = 0;
}

/* }================================================================== */

/* One subscriber: its queue is bounded, and a socket that would pass it
 * is closed (1008) rather than let its backlog grow or slow the rest. */
static int deliver(struct lunet_ws *ws, const struct frame *f, int op,
                   const char *msg, size_t mlen) {
  struct lunet_conn *c = ws->c;
  if (c->state != CONN_OPEN || ws->close_sent) return 0;
  size_t pending = c->wq_bytes + ws->cork_len;
  if (pending > 0 &&
      pending + lunet_wq_charge(f->n) > c->svc->opt.max_write_queue) {
    c->svc->metrics.ws_slow_drops++;
    lunet__ws_log(ws, LUNET_LOG_WARN, "websocket slow consumer dropped", 1008,
                  "max_write_queue");
    lunet__ws_drop(ws, 1008, "slow consumer", "slow_consumer");
    return 0;
  }
  int r;
  if (ws->client) {
    r = lunet__ws_send_frame(ws, op, msg, mlen, 0); /* masked, each */
  } else if (f->idx) {
    lunet__ws_uncork(ws);
    r = lunet_conn_send_string(c, c->svc->rt->L, f->idx, f->p, f->n);
  } else {
    r = cork(ws, f->p, f->n);
  }
  if (r < 0) return 0;
  c->svc->metrics.ws_fanout++;
  return 1;
}

size_t lunet_ws_publish(struct lunet_runtime *rt, const char *topic,
                        size_t tlen, const char *msg, size_t mlen) {
  struct ws_topic *x = find(rt, topic, tlen);
  if (x == NULL) return 0;
  /* Text when it can be: a browser fails a socket on a text frame that
   * is not UTF-8, and most of what is published is text. */
  int op = lunet_utf8_valid(msg, mlen) ? LUNET_WS_TEXT : LUNET_WS_BINARY;
  unsigned char head[14];
  size_t hl = lunet_ws_frame_head(head, op, 1, mlen, NULL);
  lua_State *L = rt->L;
  struct frame f = {NULL, hl + mlen, 0};
  char small[14 + 4096];
  char *buf = f.n <= sizeof small ? small : malloc(f.n);
  if (buf == NULL) return 0;
  memcpy(buf, head, hl);
  memcpy(buf + hl, msg, mlen);
  f.p = buf;
  if (f.n >= FRAME_PIN_MIN) {
    lua_pushlstring(L, buf, f.n);
    free(buf);
    buf = small;
    f.p = lua_tostring(L, -1);
    f.idx = lua_gettop(L);
  }
  size_t sent = 0;
  struct lunet_list *q;
  for (q = x->subs.next; q != &x->subs; q = q->next)
    sent += (size_t)deliver(lunet_container_of(q, struct ws_sub, topic_node)->ws,
                            &f, op, msg, mlen);
  if (f.idx) lua_pop(L, 1);
  if (buf != small) free(buf);
  return sent;
}

/* }================================================================== */
