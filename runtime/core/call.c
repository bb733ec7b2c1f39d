#include "call.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <lauxlib.h>

#include "addr.h"
#include "budget.h"
#include "log.h"
#include "counters.h"
#include "loop.h"

int lunet_traceback(lua_State *L) {
  if (lua_tostring(L, 1) == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      return 1;
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  } else {
    lua_pushvalue(L, 1);
  }
  /* luaL_traceback would take the message as a C string: joined here
   * instead, so a message with a NUL is kept whole. */
  lua_pushliteral(L, "\n");
  luaL_traceback(L, L, NULL, 1);
  lua_concat(L, 3);
  return 1;
}

static void log_call_error(lua_State *L, const struct lunet_call_ctx *ctx) {
  char id[24] = "", peer[LUNET_ADDR_STRLEN] = "";
  const char *kv[10];
  int n = 0;
  if (ctx->service) kv[2 * n] = "service", kv[2 * n++ + 1] = ctx->service;
  kv[2 * n] = "handler", kv[2 * n++ + 1] = ctx->handler;
  if (ctx->conn_id) {
    snprintf(id, sizeof id, "%" PRIu64, ctx->conn_id);
    kv[2 * n] = "conn", kv[2 * n++ + 1] = id;
  }
  if (ctx->peer && lunet_addr_format(ctx->peer, peer, sizeof peer) == 0)
    kv[2 * n] = "peer", kv[2 * n++ + 1] = peer;
  kv[2 * n] = "error", kv[2 * n++ + 1] = lua_tostring(L, -1);
  /* The message is a Lua string and may hold a NUL: logged by length. */
  size_t lens[10];
  for (int i = 0; i < 2 * n - 1; i++) lens[i] = strlen(kv[i]);
  lua_tolstring(L, -1, &lens[2 * n - 1]);
  lunet_log_pairs_n(LUNET_LOG_ERROR, "handler error", strlen("handler error"),
                    kv, lens, n);
}

/* One loop, one Lua state per process: a plain static is the context. */
static const struct lunet_call_ctx *current_ctx;

const struct lunet_call_ctx *lunet_call_current(void) { return current_ctx; }

int lunet_call(lua_State *L, int nargs, const struct lunet_call_ctx *ctx) {
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, lunet_traceback);
  lua_insert(L, base);
  return lunet_call_prepared(L, base, nargs, ctx);
}

int lunet_call_prepared(lua_State *L, int base, int nargs,
                        const struct lunet_call_ctx *ctx) {
  struct lunet_budget *budget = &lunet_rt(L)->budget;
  const struct lunet_call_ctx *outer = current_ctx;
  lunet_budget_enter(L, budget);
  current_ctx = ctx;
  int status = lua_pcall(L, nargs, 0, base);
  current_ctx = outer;
  lunet_budget_leave(L, budget);
  if (status != LUA_OK) {
    log_call_error(L, ctx);
    lua_pop(L, 1);
    if (ctx->metrics != NULL) {
      ctx->metrics->handler_errors++;
      if (budget->expired && budget->depth == 0)
        ctx->metrics->budget_aborts++;
    }
  }
  lua_settop(L, base - 1); /* the message handler */
  /* What an allocation bomb left behind goes back now, not at the GC's
   * leisure, so the next event has its memory. */
  if (status == LUA_ERRMEM && budget->depth == 0) lua_gc(L, LUA_GCCOLLECT);
  return status;
}
