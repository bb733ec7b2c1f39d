/* GET /metrics under --workers: the supervisor asks every worker for its
 * Prometheus text and serves one exposition in which each family appears
 * once, every sample labelled worker="ID". Each reply is one request on
 * one connection (Connection: close); requests are bounded in size and
 * time like any other input. */
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "log.h"
#include "strbuf.h"
#include "supervisor_internal.h"

#define REQUEST_MAX 4096
#define REQUEST_TIMEOUT_MS 10000
#define FAMILIES_MAX 512

struct lunet_metrics_proxy {
  uv_tcp_t server;
};

struct mclient {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_write_t write_req;
  struct lunet_supervisor *sup;
  int open_handles;
  size_t len;
  char request[REQUEST_MAX];
  struct lunet_strbuf out;
};

/* {==================================================================
 * Merging expositions
 * =================================================================== */

struct family {
  char name[128];
  const char *help, *type; /* lines in a worker's answer, up to '\n' */
  size_t help_len, type_len;
  struct lunet_strbuf samples;
};

struct merge {
  struct family *f;
  int n;
};

static struct family *family_of(struct merge *m, const char *name, size_t len) {
  for (int i = 0; i < m->n; i++)
    if (strlen(m->f[i].name) == len && memcmp(m->f[i].name, name, len) == 0)
      return &m->f[i];
  if (m->n == FAMILIES_MAX || len >= sizeof m->f->name) return NULL;
  struct family *f = &m->f[m->n++];
  memcpy(f->name, name, len);
  f->name[len] = '\0';
  return f;
}

/* "# HELP name ..." or "# TYPE name ...": the family it opens. */
static struct family *comment_line(struct merge *m, const char *line,
                                   size_t len) {
  int help = len > 7 && memcmp(line, "# HELP ", 7) == 0;
  int type = len > 7 && memcmp(line, "# TYPE ", 7) == 0;
  if (!help && !type) return NULL;
  const char *name = line + 7, *end = memchr(name, ' ', len - 7);
  struct family *f = family_of(m, name, end ? (size_t)(end - name) : len - 7);
  if (f != NULL && help && f->help == NULL) f->help = line, f->help_len = len;
  if (f != NULL && type && f->type == NULL) f->type = line, f->type_len = len;
  return f;
}

/* name{labels} value  ->  name{worker="ID",labels} value */
static void sample_line(struct family *f, const char *line, size_t len,
                        int id) {
  size_t name_len = strcspn(line, "{ ");
  char label[32];
  if (name_len > len) name_len = len;
  int n = snprintf(label, sizeof label, "worker=\"%d\"", id);
  lunet_strbuf_add(&f->samples, line, name_len);
  lunet_strbuf_puts(&f->samples, "{");
  lunet_strbuf_add(&f->samples, label, (size_t)n);
  if (name_len < len && line[name_len] == '{') {
    name_len++;
    if (name_len < len && line[name_len] != '}')
      lunet_strbuf_puts(&f->samples, ",");
  } else {
    lunet_strbuf_puts(&f->samples, "}");
  }
  lunet_strbuf_add(&f->samples, line + name_len, len - name_len);
  lunet_strbuf_puts(&f->samples, "\n");
}

/* Whether a sample named name[0..len) is one of family f's: its name, or
 * a histogram's or summary's series of it. */
static int belongs_to(const struct family *f, const char *name, size_t len) {
  static const char *const suffixes[] = {"", "_bucket", "_sum", "_count"};
  size_t flen = strlen(f->name);
  if (len < flen || memcmp(name, f->name, flen) != 0) return 0;
  for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++)
    if (len - flen == strlen(suffixes[i]) &&
        memcmp(name + flen, suffixes[i], len - flen) == 0)
      return 1;
  return 0;
}

/* A sample belongs to the family opened last when it is one of its
 * series, else to the family of its own name. */
static void merge_answer(struct merge *m, const char *text, int id) {
  struct family *current = NULL;
  for (const char *line = text; *line;) {
    const char *eol = strchr(line, '\n');
    size_t len = eol ? (size_t)(eol - line) : strlen(line);
    if (len > 0 && line[0] == '#') {
      struct family *f = comment_line(m, line, len);
      if (f != NULL) current = f;
    } else if (len > 0) {
      size_t name_len = strcspn(line, "{ ");
      if (name_len > len) name_len = len;
      struct family *f = current;
      if (f == NULL || !belongs_to(f, line, name_len))
        f = family_of(m, line, name_len);
      if (f != NULL) sample_line(f, line, len, id);
    }
    line += len + (eol != NULL);
  }
}

static void merge_write(struct merge *m, struct lunet_strbuf *out) {
  for (int i = 0; i < m->n; i++) {
    struct family *f = &m->f[i];
    if (f->help) lunet_strbuf_add(out, f->help, f->help_len);
    if (f->help) lunet_strbuf_puts(out, "\n");
    if (f->type) lunet_strbuf_add(out, f->type, f->type_len);
    if (f->type) lunet_strbuf_puts(out, "\n");
    if (f->samples.p) lunet_strbuf_add(out, f->samples.p, f->samples.len);
    out->failed |= f->samples.failed;
    lunet_strbuf_free(&f->samples);
  }
}

static void supervisor_families(struct lunet_supervisor *sup,
                                struct lunet_strbuf *out) {
  int running = 0;
  for (int i = 0; i < sup->nworkers; i++) running += sup->slots[i].pid != 0;
  lunet_strbuf_printf(out,
                      "# HELP lunet_workers Worker processes running.\n"
                      "# TYPE lunet_workers gauge\n"
                      "lunet_workers %d\n"
                      "# HELP lunet_worker_restarts_total Workers replaced, "
                      "by reason.\n"
                      "# TYPE lunet_worker_restarts_total counter\n",
                      running);
  for (int r = 0; r < LUNET_REPLACED_REASONS; r++)
    lunet_strbuf_printf(out,
                        "lunet_worker_restarts_total{reason=\"%s\"} %llu\n",
                        lunet__replaced_names[r],
                        (unsigned long long)sup->replaced[r]);
}

/* }================================================================== */

/* {==================================================================
 * The HTTP side: one request, one answer, close
 * =================================================================== */

static void client_closed(uv_handle_t *h) {
  struct mclient *c = h->data;
  if (--c->open_handles > 0) return;
  lunet_strbuf_free(&c->out);
  free(c);
}

static void client_close(struct mclient *c) {
  if (!uv_is_closing((uv_handle_t *)&c->tcp))
    uv_close((uv_handle_t *)&c->tcp, client_closed);
  if (!uv_is_closing((uv_handle_t *)&c->timer))
    uv_close((uv_handle_t *)&c->timer, client_closed);
}

static void client_written(uv_write_t *req, int status) {
  (void)status; /* closing either way */
  client_close(req->data);
}

static void respond(struct mclient *c, const char *status, const char *type,
                    const char *body, size_t len) {
  struct lunet_strbuf head = {0};
  lunet_strbuf_printf(&head,
                      "HTTP/1.1 %s\r\nContent-Type: %s\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      status, type, len);
  lunet_strbuf_add(&head, body, len);
  if (head.failed) {
    lunet_strbuf_free(&head);
    return client_close(c);
  }
  c->out = head;
  uv_buf_t buf = uv_buf_init(c->out.p, (unsigned)c->out.len);
  c->write_req.data = c;
  if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &buf, 1, client_written) <
      0)
    client_close(c);
}

static void metrics_done(void *ud, struct lunet_supervisor *sup,
                         char *const *answers) {
  struct mclient *c = ud;
  struct lunet_strbuf body = {0};
  struct merge m = {calloc(FAMILIES_MAX, sizeof(struct family)), 0};
  if (answers == NULL || m.f == NULL) {
    free(m.f);
    static const char oom[] = "out of memory\n";
    return respond(c, "503 Service Unavailable", "text/plain", oom,
                   sizeof oom - 1);
  }
  supervisor_families(sup, &body);
  for (int i = 0; i < sup->nworkers; i++)
    if (answers[i] != NULL) merge_answer(&m, answers[i], i + 1);
  merge_write(&m, &body);
  free(m.f);
  respond(c, body.failed ? "503 Service Unavailable" : "200 OK",
          "text/plain; version=0.0.4; charset=utf-8", body.failed ? "" : body.p,
          body.failed ? 0 : body.len);
  lunet_strbuf_free(&body);
}

static void client_request(struct mclient *c) {
  static const char missing[] = "not found: try GET /metrics\n";
  uv_read_stop((uv_stream_t *)&c->tcp);
  uv_timer_stop(&c->timer);
  if (strncmp(c->request, "GET /metrics ", 13) == 0 ||
      strncmp(c->request, "GET /metrics?", 13) == 0)
    return lunet__sup_ask_stats(c->sup, "prometheus", metrics_done, c);
  respond(c, "404 Not Found", "text/plain", missing, sizeof missing - 1);
}

static void client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct mclient *c = h->data;
  (void)suggested;
  *buf = uv_buf_init(c->request + c->len,
                     (unsigned)(sizeof c->request - 1 - c->len));
}

static void client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct mclient *c = s->data;
  static const char too_big[] = "request too large\n";
  (void)buf;
  if (nread < 0) return client_close(c);
  c->len += (size_t)nread;
  c->request[c->len] = '\0';
  if (strstr(c->request, "\r\n\r\n") || strstr(c->request, "\n\n"))
    return client_request(c);
  if (c->len == sizeof c->request - 1) {
    uv_read_stop(s);
    respond(c, "431 Request Header Fields Too Large", "text/plain", too_big,
            sizeof too_big - 1);
  }
}

static void client_timeout(uv_timer_t *t) {
  client_close(t->data);
}

static void connection_cb(uv_stream_t *server, int status) {
  struct lunet_supervisor *sup = server->data;
  struct mclient *c;
  if (status < 0 || (c = calloc(1, sizeof *c)) == NULL) return;
  c->sup = sup;
  c->open_handles = 2;
  uv_tcp_init(&sup->loop, &c->tcp);
  uv_timer_init(&sup->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) return client_close(c);
  uv_timer_start(&c->timer, client_timeout, REQUEST_TIMEOUT_MS, 0);
  uv_read_start((uv_stream_t *)&c->tcp, client_alloc, client_read);
}

/* }================================================================== */

static void proxy_closed(uv_handle_t *h) {
  free(h->data);
}

int lunet__sup_metrics_start(struct lunet_supervisor *sup) {
  struct sockaddr_storage addr;
  struct sockaddr_storage bound;
  char text[LUNET_ADDR_STRLEN];
  int r, len = sizeof bound;
  if (sup->metrics != NULL) return 0;
  if (lunet_addr_parse(sup->metrics_addr, &addr) < 0) {
    lunet_log(LUNET_LOG_ERROR, "metrics: not an address", "addr",
              sup->metrics_addr, NULL);
    return -1;
  }
  struct lunet_metrics_proxy *p = calloc(1, sizeof *p);
  if (p == NULL) return -1;
  uv_tcp_init(&sup->loop, &p->server);
  p->server.data = sup;
  if ((r = uv_tcp_bind(&p->server, (struct sockaddr *)&addr, 0)) < 0 ||
      (r = uv_listen((uv_stream_t *)&p->server, 64, connection_cb)) < 0 ||
      (r = uv_tcp_getsockname(&p->server, (struct sockaddr *)&bound, &len)) <
          0 ||
      (r = lunet_addr_format((struct sockaddr *)&bound, text, sizeof text)) <
          0) {
    lunet_log(LUNET_LOG_ERROR, "listen failed", "service", "metrics", "addr",
              sup->metrics_addr, "error", uv_strerror(r), NULL);
    p->server.data = p;
    uv_close((uv_handle_t *)&p->server, proxy_closed);
    return -1;
  }
  sup->metrics = p;
  lunet_log(LUNET_LOG_INFO, "listening", "service", "metrics", "proto", "http",
            "addr", text, NULL);
  return 0;
}

void lunet__sup_metrics_stop(struct lunet_supervisor *sup) {
  if (sup->metrics == NULL) return;
  sup->metrics->server.data = sup->metrics;
  uv_close((uv_handle_t *)&sup->metrics->server, proxy_closed);
  sup->metrics = NULL;
}
