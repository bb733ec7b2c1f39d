/* protocols: each protocol's feed driven directly, however its input is
 * split into reads, and a protocol handing its conn to another in place.
 * The input never passes through a socket: it is fed with lunet__conn_feed
 * as chosen splits; each conn's other end (a socketpair) only carries the
 * answers back, and the loop runs so that answers kept for their turn go
 * out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "cli.h"
#include "conn.h"
#include "log.h"
#include "protocol.h"
#include "runtime.h"
#include "service.h"
#include "transport.h"

static const char script[] =
    "return {\n"
    "  raw = { tcp = '127.0.0.1:0',\n"
    "    on_data = function(c, d) c:write('[' .. d .. ']') end },\n"
    "  lines = { tcp = '127.0.0.1:0', framing = 'line', max_line = 16,\n"
    "    on_message = function(c, m)\n"
    "      c.data.n = (c.data.n or 0) + 1\n"
    "      c:write(c.data.n .. ':' .. m .. '\\n')\n"
    "    end },\n"
    "  packets = { tcp = '127.0.0.1:0', framing = 'length',\n"
    "    on_message = function(c, m) c:write(string.pack('>s4', m:reverse()))"
    " end },\n"
    "  web = { http = '127.0.0.1:0',\n"
    "    handler = function(req, res) res:send(200, req.path) end },\n"
    "}\n";

static struct lunet_cli cli;
static struct lunet_runtime *rt;

static struct lunet_service *service(const char *name) {
  struct lunet_list *q;
  for (q = rt->services.next; q != &rt->services; q = q->next) {
    struct lunet_service *svc =
        lunet_container_of(q, struct lunet_service, node);
    if (strcmp(svc->name, name) == 0) return svc;
  }
  abort();
}

static void setup(void) {
  char path[] = "/tmp/lunet-protocols-XXXXXX.lua", err[512];
  int usage, fd = mkstemps(path, 4);
  if (fd < 0 || write(fd, script, sizeof script - 1) < 0) abort();
  close(fd);
  cli.script = path;
  cli.budget_ms = 1000;
  cli.memory_limit_mb = 64;
  cli.shutdown_timeout_ms = 1000;
  lunet_log_configure(LUNET_LOG_ERROR + 1, LUNET_LOG_TEXT); /* quiet */
  rt = lunet_runtime_new(&cli, err, sizeof err);
  if (rt == NULL || lunet_runtime_load(rt, err, sizeof err, &usage) < 0) {
    fprintf(stderr, "setup: %s\n", err);
    abort();
  }
  unlink(path);
}

/* A conn of svc, and the socket its answers come out of. */
struct pair {
  struct lunet_conn *c;
  int peer;
};

static struct pair pair_open(const char *svc) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0) abort();
  struct pair p = {lunet__conn_adopt(service(svc), sv[0]), sv[1]};
  if (p.c == NULL) abort();
  return p;
}

/* Runs the loop a few turns: enough for answers kept for their turn (one
 * HTTP request per turn) to go out. */
static void pump(void) {
  for (int i = 0; i < 16; i++) uv_run(&rt->loop, UV_RUN_NOWAIT);
}

/* What came out so far, appended to out (NUL-terminated). */
static size_t pair_read(struct pair *p, char *out, size_t cap, size_t len) {
  ssize_t n;
  pump();
  while (len + 1 < cap && (n = read(p->peer, out + len, cap - 1 - len)) > 0)
    len += (size_t)n;
  out[len] = '\0';
  return len;
}

static void pair_close(struct pair *p) {
  struct lunet_service *svc = p->c->svc;
  lunet_conn_close(p->c, "test", 0);
  while (svc->nconns > 0) uv_run(&rt->loop, UV_RUN_NOWAIT);
  close(p->peer);
}

/* Feeds input cut at `at` (and, with at2, again there), the way reads
 * may split it; returns the answers. */
static void feed_split(const char *svc, const char *in, size_t len, size_t at,
                       size_t at2, char *out, size_t cap) {
  struct pair p = pair_open(svc);
  size_t got = 0;
  lunet__conn_feed(p.c, in, at);
  got = pair_read(&p, out, cap, got);
  lunet__conn_feed(p.c, in + at, at2 - at);
  got = pair_read(&p, out, cap, got);
  if (len > at2) lunet__conn_feed(p.c, in + at2, len - at2);
  pair_read(&p, out, cap, got);
  pair_close(&p);
}

static void check_raw(void) {
  char out[256];
  struct pair p = pair_open("raw");
  lunet__conn_feed(p.c, "ab", 2);
  lunet__conn_feed(p.c, "c", 1);
  pair_read(&p, out, sizeof out, 0);
  CHECK_STR(out, "[ab][c]"); /* one on_data per read, nothing kept */
  CHECK_INT(p.c->in_len, 0);
  pair_close(&p);
}

static void check_lines_byte_by_byte(void) {
  const char in[] = "one\ntwo\r\n\nthree\n";
  char out[256];
  size_t got = 0;
  struct pair p = pair_open("lines");
  for (size_t i = 0; i < sizeof in - 1; i++) {
    lunet__conn_feed(p.c, in + i, 1);
    got = pair_read(&p, out, sizeof out, got);
  }
  CHECK_STR(out, "1:one\n2:two\n3:\n4:three\n");
  pair_close(&p);
}

static void check_line_split_everywhere(void) {
  const char in[] = "alpha\nbeta\r\n";
  char out[256];
  for (size_t at = 0; at <= sizeof in - 1; at++) {
    CHECK_SCOPE();
    feed_split("lines", in, sizeof in - 1, at, at, out, sizeof out);
    CHECK_STR(out, "1:alpha\n2:beta\n");
    CHECK_NOTE("line input cut at %zu", at);
  }
}

static void check_length_split_everywhere(void) {
  const char in[] = "\0\0\0\5hello\0\0\0\2xy";
  const char want[] = "\0\0\0\5olleh\0\0\0\2yx";
  char out[256];
  size_t len = sizeof in - 1;
  for (size_t at = 0; at <= len; at++) {
    for (size_t at2 = at; at2 <= len; at2++) {
      CHECK_SCOPE();
      feed_split("packets", in, len, at, at2, out, sizeof out);
      CHECK(memcmp(out, want, sizeof want - 1) == 0);
      CHECK_NOTE("length input cut at %zu and %zu", at, at2);
    }
  }
}

/* The two answers, in order, whatever the split: bodies /a then /b. */
static void check_http_pipelined_split_everywhere(void) {
  const char in[] =
      "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
  char out[1024];
  for (size_t at = 0; at <= sizeof in - 1; at++) {
    CHECK_SCOPE();
    feed_split("web", in, sizeof in - 1, at, at, out, sizeof out);
    const char *a = strstr(out, "\r\n\r\n/a"), *b = strstr(out, "\r\n\r\n/b");
    CHECK(a != NULL && b != NULL && a < b);
    CHECK(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK_NOTE("pipelined pair cut at %zu: %s", at, out);
  }
}

/* {==================================================================
 * A protocol switch in place: `before` hands the conn to `after` at the
 * end of a "SWITCH\n" line; the bytes that followed in the same read must
 * reach `after`, none of them `before`.
 * =================================================================== */

static char seen_before[64], seen_after[64];
static size_t before_len, after_len;
static int before_detached;
static const struct lunet_protocol proto_after;

static size_t before_feed(struct lunet_conn *c, const char *buf, size_t len) {
  const char *mark = memmem(buf, len, "SWITCH\n", 7);
  size_t used = mark != NULL ? (size_t)(mark - buf) + 7 : len;
  memcpy(seen_before + before_len, buf, used);
  before_len += used;
  if (mark != NULL) lunet_conn_switch(c, &proto_after);
  return used;
}

static void before_detach(struct lunet_conn *c) {
  (void)c;
  before_detached++;
}

static size_t after_feed(struct lunet_conn *c, const char *buf, size_t len) {
  (void)c;
  memcpy(seen_after + after_len, buf, len);
  after_len += len;
  return len;
}

static const struct lunet_protocol proto_before = {
    .name = "test-before", .feed = before_feed, .detach = before_detach};
static const struct lunet_protocol proto_after = {.name = "test-after",
                                                  .feed = after_feed};

static void check_switch_in_place(void) {
  struct pair p = pair_open("raw");
  p.c->proto = &proto_before; /* as if raw had handed it over */
  lunet__conn_feed(p.c, "hi SWITCH\nrest of the read", 26);
  seen_before[before_len] = seen_after[after_len] = '\0';
  CHECK_STR(seen_before, "hi SWITCH\n");
  CHECK_STR(seen_after, "rest of the read");
  CHECK_INT(before_detached, 1);
  CHECK(p.c->proto == &proto_after);
  lunet__conn_feed(p.c, "+more", 5); /* and after it, the new one reads */
  seen_after[after_len] = '\0';
  CHECK_STR(seen_after, "rest of the read+more");
  pair_close(&p);
}

/* }================================================================== */

/* {==================================================================
 * One message per turn: a protocol that stops after each line gets the
 * rest on later loop turns, and nothing more is read meanwhile.
 * =================================================================== */

static char turns_seen[64];
static size_t turns_len;

static size_t turns_feed(struct lunet_conn *c, const char *buf, size_t len) {
  const char *nl = memchr(buf, '\n', len);
  (void)c;
  if (nl == NULL) return 0;
  size_t used = (size_t)(nl - buf) + 1;
  memcpy(turns_seen + turns_len, buf, used);
  turns_len += used;
  return used;
}

static const struct lunet_protocol proto_turns = {
    .name = "test-turns", .feed = turns_feed, .one_message_per_turn = 1};

static void check_one_message_per_turn(void) {
  struct pair p = pair_open("raw");
  p.c->proto = &proto_turns;
  lunet__conn_feed(p.c, "a\nb\nc\n", 6);
  turns_seen[turns_len] = '\0';
  CHECK_STR(turns_seen, "a\n"); /* the rest waits for its turn */
  CHECK(!p.c->reading);         /* and nothing more is read meanwhile */
  pump();
  turns_seen[turns_len] = '\0';
  CHECK_STR(turns_seen, "a\nb\nc\n");
  CHECK_INT(p.c->in_len, 0);
  CHECK(p.c->reading);
  pair_close(&p);
}

/* }================================================================== */

/* {==================================================================
 * A transport under the protocol: `xor` flips every byte on the wire
 * both ways, the way TLS turns records into plaintext and back. Bytes go
 * through the real socket here: the peer writes flipped bytes, the line
 * service sees plain lines, and its answers come back flipped.
 * =================================================================== */

static void flip(char *p, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] ^= 0x5a;
}

static void xor_read(struct lunet_conn *c, const char *buf, size_t n) {
  char plain[256];
  while (n > 0) {
    size_t k = n < sizeof plain ? n : sizeof plain;
    memcpy(plain, buf, k);
    flip(plain, k);
    lunet_conn_plaintext(c, plain, k);
    buf += k, n -= k;
  }
}

static int xor_write(struct lunet_conn *c, const char *p, size_t n,
                     lua_State *L, int pin_idx) {
  char wire[256];
  int r = 0;
  (void)pin_idx; /* the wire bytes are new: nothing to pin */
  while (n > 0 && r == 0) {
    size_t k = n < sizeof wire ? n : sizeof wire;
    memcpy(wire, p, k);
    flip(wire, k);
    r = lunet_conn_sock_write(c, wire, k, L, 0);
    p += k, n -= k;
  }
  return r;
}

static const struct lunet_transport transport_xor = {
    .name = "test-xor", .read = xor_read, .write = xor_write};

static void check_transport(void) {
  char in[] = "hello\nworld\n", out[256];
  struct pair p = pair_open("lines");
  p.c->transport = &transport_xor;
  flip(in, sizeof in - 1);
  if (write(p.peer, in, sizeof in - 1) != (ssize_t)(sizeof in - 1)) abort();
  size_t got = 0;
  for (int i = 0; i < 100 && got < 16; i++) /* the socket's own pace */
    got = pair_read(&p, out, sizeof out, got);
  flip(out, got);
  out[got] = '\0';
  CHECK_STR(out, "1:hello\n2:world\n");
  pair_close(&p);
}

/* A protocol's goodbye whose last message fails closes the conn itself
 * (a peer that reset, a queue already full): the graceful close that
 * asked for it must not close the handle a second time (libuv aborts). */
static int goodbyes;

static size_t ignore_feed(struct lunet_conn *c, const char *buf, size_t len) {
  (void)c, (void)buf;
  return len;
}

static void failing_goodbye(struct lunet_conn *c, const char *reason) {
  (void)reason;
  goodbyes++;
  lunet_conn_close(c, "EPIPE", 0);
}

static const struct lunet_protocol proto_goodbye = {
    .name = "test-goodbye", .feed = ignore_feed, .goodbye = failing_goodbye};

static void check_goodbye_that_closes(void) {
  struct pair p = pair_open("raw");
  struct lunet_service *svc = p.c->svc;
  p.c->proto = &proto_goodbye;
  lunet_conn_close(p.c, "shutdown", 1);
  while (svc->nconns > 0) uv_run(&rt->loop, UV_RUN_NOWAIT);
  CHECK_INT(goodbyes, 1);
  close(p.peer);
}

/* }================================================================== */

int main(void) {
  setup();
  check_raw();
  check_lines_byte_by_byte();
  check_line_split_everywhere();
  check_length_split_everywhere();
  check_http_pipelined_split_everywhere();
  check_switch_in_place();
  check_one_message_per_turn();
  check_transport();
  check_goodbye_that_closes();
  lunet_runtime_free(rt);
  CHECK_DONE();
}
