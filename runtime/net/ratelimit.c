#include "ratelimit.h"

#include <netinet/in.h>

#include "addr.h"
#include "gc.h"
#include "loop.h"
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <uv.h>

#define SLOTS 4096 /* power of two */

struct slot {
  uint64_t key; /* 64-bit hash of the key; 0: empty */
  double tokens;
  uint64_t last_ms;
};

struct lunet_ratelimit {
  double rate;
  double burst;
  uint64_t refused;
  struct slot slots[SLOTS];
};

struct lunet_ratelimit *lunet_ratelimit_new(double rate, double burst) {
  struct lunet_ratelimit *rl = calloc(1, sizeof *rl);
  if (rl == NULL) return NULL;
  rl->rate = rate;
  rl->burst = burst;
  return rl;
}

void lunet_ratelimit_free(struct lunet_ratelimit *rl) { free(rl); }


static uint64_t hash(const void *key, size_t len) {
  const uint8_t *p = key;
  uint64_t h = 14695981039346656037ull; /* FNV-1a, 64 bits */
  for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h | 1; /* never 0, the empty mark */
}

int lunet_ratelimit_take_key(struct lunet_ratelimit *rl, const void *key,
                             size_t len, uint64_t now_ms) {
  uint64_t h = hash(key, len);
  struct slot *s = &rl->slots[h & (SLOTS - 1)];
  if (s->key != h) {
    s->key = h;
    s->tokens = rl->burst;
    s->last_ms = now_ms;
  }
  s->tokens += (double)(now_ms - s->last_ms) * rl->rate / 1000.0;
  if (s->tokens > rl->burst) s->tokens = rl->burst;
  s->last_ms = now_ms;
  if (s->tokens < 1.0) {
    rl->refused++;
    return 0;
  }
  s->tokens -= 1.0;
  return 1;
}

int lunet_ratelimit_take(struct lunet_ratelimit *rl, const struct sockaddr *sa,
                         uint64_t now_ms) {
  uint8_t key[16];
  lunet_addr_ip_key(sa, key);
  return lunet_ratelimit_take_key(rl, key, sizeof key, now_ms);
}

uint64_t lunet_ratelimit_refused(struct lunet_ratelimit *rl) {
  uint64_t n = rl->refused;
  rl->refused = 0;
  return n;
}

/* {==================================================================
 * lunet.ratelimit{rate = N, burst = M} for scripts
 * =================================================================== */

#define RL_MT "lunet.ratelimit"

static struct lunet_ratelimit **check_rl(lua_State *L) {
  return luaL_checkudata(L, 1, RL_MT);
}

int lunet_ratelimit_new_lua(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "rate");
  lua_getfield(L, 1, "burst");
  double rate = luaL_checknumber(L, -2);
  double burst = luaL_optnumber(L, -1, rate);
  luaL_argcheck(L, rate > 0 && burst >= 1, 1, "needs rate > 0, burst >= 1");
  struct lunet_ratelimit **box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  luaL_setmetatable(L, RL_MT);
  lunet__gc_finalizable(lunet_rt(L), 1);
  if ((*box = lunet_ratelimit_new(rate, burst)) == NULL)
    return luaL_error(L, "out of memory");
  return 1;
}

/* rl:take(key) -> true if a token was there (and is now taken). */
static int rl_take(lua_State *L) {
  struct lunet_ratelimit *rl = *check_rl(L);
  size_t len;
  const char *key = luaL_checklstring(L, 2, &len);
  uint64_t now = uv_hrtime() / 1000000;
  lua_pushboolean(L, lunet_ratelimit_take_key(rl, key, len, now));
  return 1;
}

static int rl_gc(lua_State *L) {
  struct lunet_ratelimit **box = check_rl(L);
  lunet_ratelimit_free(*box);
  *box = NULL;
  lunet__gc_finalizable(lunet_rt(L), -1);
  return 0;
}

void lunet_ratelimit_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"take", rl_take}, {NULL, NULL}};
  luaL_newmetatable(L, RL_MT);
  lua_pushcfunction(L, rl_gc);
  lua_setfield(L, -2, "__gc");
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

/* }================================================================== */
