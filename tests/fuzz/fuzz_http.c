/* libFuzzer target: the HTTP request path, end to end through a real conn.
 * One runtime with an http service is made once; each input is written
 * into a socketpair whose other end is adopted as a conn of that service,
 * and the loop runs until the conn is gone (or is closed after a bounded
 * number of turns). ASan/UBSan watch the parser glue, the request
 * assembly, the Lua side and the response serialisation. The peer half-
 * closes after its input and, for most inputs, reads slowly through a
 * small socket buffer, so answers queue past the service's (small)
 * write_high_water and the backpressure paths run too. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "fuzz_runtime.h"
#include "log.h"
#include "runtime.h"
#include "service.h"

static const char script[] =
    "local router = require('lunet.router').new()\n"
    "router:get('/a/:x', function(req, res) res:send(200, req.params.x) end)\n"
    "router:post('/echo', function(req, res)\n"
    "  res:header('X-N', tostring(#req.body))\n"
    "  res:send(201, req.body)\n"
    "end)\n"
    "router:get('/stream', function(req, res)\n"
    "  res:write('a'); res:write(req.query.q or 'b'); res:finish()\n"
    "end)\n"
    "router:get('/json', function(req, res)\n"
    "  res:json(200, { h = req.headers['x-test'], q = req.query })\n"
    "end)\n"
    "router:get('/boom', function() error('boom') end)\n"
    "router:route({'GET', 'POST'}, '/all', function(req, res)\n"
    "  local n = 0\n"
    "  for k, v in pairs(req) do n = n + #k end\n"
    "  for k, v in pairs(req.headers) do n = n + #k + #v end\n"
    "  for k, v in pairs(req.query) do n = n + #k + #v end\n"
    "  res:send(200, tostring(n) .. tostring(req))\n"
    "end)\n"
    "return { web = { http = '127.0.0.1:0', handler = router,\n"
    "  max_header_size = 1024, max_body = 2048, max_url = 256,\n"
    "  write_high_water = 1024, max_write_queue = 16384 } }\n";

static struct lunet_runtime *rt;
static struct lunet_service *svc;

static void setup(void) {
  svc = lunet_fuzz_runtime(script, sizeof script - 1, &rt);
}

/* Reads up to `most` bytes of what the server sent (all of it for 0). */
static void drain(int fd, size_t most) {
  char buf[4096];
  size_t got = 0;
  ssize_t n;
  while ((most == 0 || got < most) &&
         (n = read(fd, buf,
                   most && most - got < sizeof buf ? most - got : sizeof buf)) >
             0)
    got += (size_t)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int sv[2];
  if (rt == NULL) setup();
  /* The first byte picks the reader's pace (it stays part of the input):
   * everything each turn, or 64, 256 or 1024 bytes a turn. */
  size_t pace =
      size > 0 && (data[0] & 3) ? (size_t)16 << (2 * (data[0] & 3)) : 0;
  int small = 4096;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0) abort();
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  struct lunet_conn *c = lunet__conn_adopt(svc, sv[0]);
  if (c == NULL) abort();
  if (size > 0 && write(sv[1], data, size) < 0) {
  }
  shutdown(sv[1], SHUT_WR);
  for (int turn = 0; turn < 64 && svc->nconns > 0; turn++) {
    uv_run(&rt->loop, UV_RUN_NOWAIT);
    drain(sv[1], pace);
    if (turn == 48 && svc->nconns > 0) lunet_conn_close(c, "fuzz", 0);
  }
  while (svc->nconns > 0) uv_run(&rt->loop, UV_RUN_NOWAIT);
  close(sv[1]);
  return 0;
}
