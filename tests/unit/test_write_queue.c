/* Unit tests for runtime/net/write_queue.c, in libuv's style: a socketpair
 * under two pipe handles, callbacks counted, every handle closed and the
 * loop closed clean. What is checked: a pinned string outlives every
 * reference Lua had (a full collection in between) and is written whole;
 * one string queued three times is held once; a copy does not see later
 * changes to its source; closing a stream with writes queued cancels
 * them, each done callback runs once with UV_ECANCELED, and the pinned
 * string becomes garbage. */
#include <sys/socket.h>
#include <lauxlib.h>
#include <lualib.h>

#include "check.h"
#include "runtime.h"
#include "write_queue.h"

static struct lunet_runtime rt; /* only rt.L is used */
static uv_loop_t loop;
static uv_pipe_t ends[2];
static int done_calls, cancelled;
static size_t done_bytes;
static char *received;
static size_t received_len, received_cap;

static void done_cb(uv_stream_t *s, size_t len, int status) {
  CHECK(s == (uv_stream_t *)&ends[0]);
  done_calls++;
  done_bytes += len;
  if (status == UV_ECANCELED) cancelled++;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  static char chunk[65536];
  (void)h, (void)suggested;
  *buf = uv_buf_init(chunk, sizeof chunk);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)s;
  if (n <= 0) return;
  if (received_len + (size_t)n > received_cap) {
    received_cap = (received_len + (size_t)n) * 2;
    received = realloc(received, received_cap);
  }
  memcpy(received + received_len, buf->base, (size_t)n);
  received_len += (size_t)n;
}

static lua_State *open_pair(void) {
  int fds[2];
  CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  CHECK_INT(uv_loop_init(&loop), 0);
  for (int i = 0; i < 2; i++) {
    CHECK_INT(uv_pipe_init(&loop, &ends[i], 0), 0);
    CHECK_INT(uv_pipe_open(&ends[i], fds[i]), 0);
  }
  done_calls = cancelled = 0;
  done_bytes = received_len = 0;
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  *(struct lunet_runtime **)lua_getextraspace(L) = &rt;
  rt.L = L;
  return L;
}

static void close_pair(lua_State *L) {
  for (int i = 0; i < 2; i++)
    if (!uv_is_closing((uv_handle_t *)&ends[i]))
      uv_close((uv_handle_t *)&ends[i], NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT(uv_loop_close(&loop), 0);
  lua_close(L);
}

static size_t heap_kb(lua_State *L) {
  lua_gc(L, LUA_GCCOLLECT);
  return (size_t)lua_gc(L, LUA_GCCOUNT);
}

/* A string of n bytes, pushed: "0123456789" repeated. */
static const char *push_pattern(lua_State *L, size_t n) {
  lua_settop(L, 0);
  lua_getglobal(L, "string");
  lua_getfield(L, -1, "rep");
  lua_pushliteral(L, "0123456789");
  lua_pushinteger(L, (lua_Integer)(n / 10));
  lua_call(L, 2, 1);
  lua_remove(L, 1);
  return lua_tostring(L, 1);
}

static void check_pinned_and_copied(void) {
  CHECK_SCOPE();
  lua_State *L = open_pair();
  size_t n = 300000, before = heap_kb(L);
  const char *p = push_pattern(L, n);
  char copy[] = "copied bytes";
  for (int i = 0; i < 3; i++)
    CHECK_INT(lunet_wq_write(L, (uv_stream_t *)&ends[0], p, n, 1, done_cb), 0);
  CHECK_INT(lunet_wq_write(L, (uv_stream_t *)&ends[0], copy, 12, 0, done_cb),
            0);
  memset(copy, 'X', 12); /* the queue has its own bytes */
  CHECK_INT(lunet_wq_requests(), 4);
  lua_settop(L, 0); /* only the pins hold the string now */
  size_t pinned = heap_kb(L) - before;
  CHECK(pinned >= n / 1024 && pinned < 2 * n / 1024); /* held once */
  CHECK_INT(uv_read_start((uv_stream_t *)&ends[1], alloc_cb, read_cb), 0);
  while (received_len < 3 * n + 12 && uv_run(&loop, UV_RUN_ONCE)) {
  }
  CHECK_INT(done_calls, 4);
  CHECK_INT(cancelled, 0);
  CHECK_INT(done_bytes, 3 * n + 12);
  CHECK_INT(received_len, 3 * n + 12);
  for (size_t i = 0; i < 3 * n && received_len >= 3 * n; i += 4099)
    CHECK_INT(received[i], '0' + (int)(i % n % 10));
  CHECK(received_len == 3 * n + 12 &&
        memcmp(received + 3 * n, "copied bytes", 12) == 0);
  CHECK_INT(lunet_wq_requests(), 0);
  CHECK(heap_kb(L) < before + 16); /* the pins are gone */
  close_pair(L);
  CHECK_NOTE("pinned and copied writes");
}

static void check_cancelled_on_close(void) {
  CHECK_SCOPE();
  lua_State *L = open_pair();
  size_t n = 4 << 20, before = heap_kb(L); /* more than a socket buffer */
  const char *p = push_pattern(L, n);
  CHECK_INT(lunet_wq_write(L, (uv_stream_t *)&ends[0], p, n, 1, done_cb), 0);
  CHECK_INT(lunet_wq_write(L, (uv_stream_t *)&ends[0], p, n, 1, done_cb), 0);
  lua_settop(L, 0);
  CHECK(heap_kb(L) >= before + n / 1024);
  uv_close((uv_handle_t *)&ends[0], NULL); /* nobody read a byte */
  uv_run(&loop, UV_RUN_NOWAIT);
  CHECK_INT(done_calls, 2);
  CHECK_INT(cancelled, 2);
  CHECK_INT(done_bytes, 2 * n);
  CHECK_INT(lunet_wq_requests(), 0);
  CHECK(heap_kb(L) < before + 16);
  close_pair(L);
  CHECK_NOTE("writes cancelled by close");
}

int main(void) {
  check_pinned_and_copied();
  check_cancelled_on_close();
  free(received);
  CHECK_DONE();
}
