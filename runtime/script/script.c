#include "script.h"

#include <stdio.h>
#include <string.h>
#include <lauxlib.h>

#include "framing.h"
#include "http.h"
#include "reload.h"
#include "loop.h"
#include "service.h"
#include "pubsub.h"
#include "timer.h"
#include "tls_options.h"

/* {==================================================================
 * Running the chunk
 * =================================================================== */

/* Prefixes the location of the innermost Lua frame when the message has
 * none, as with errors raised by C functions (bad argument to 'after'). */
static int load_msghandler(lua_State *L) {
  lua_Debug ar;
  const char *msg = luaL_tolstring(L, 1, NULL);
  for (int level = 1; lua_getstack(L, level, &ar); level++) {
    lua_getinfo(L, "Sl", &ar);
    if (ar.currentline <= 0) continue;
    if (strncmp(msg, ar.short_src, strlen(ar.short_src)) != 0)
      lua_pushfstring(L, "%s:%d: %s", ar.short_src, ar.currentline, msg);
    break;
  }
  return 1;
}

/* Text chunks only, named like luaL_loadfilex names them ("@path"). */
int lunet__load_buffer(lua_State *L, const char *src, size_t len,
                       const char *path) {
  lua_pushfstring(L, "@%s", path);
  int status = luaL_loadbufferx(L, src, len, lua_tostring(L, -1), "t");
  lua_remove(L, -2);
  return status;
}

/* Gives the chunk a fresh _ENV that falls back to the shared globals, so
 * module-level globals of one version never leak into the next. */
static void set_fresh_env(lua_State *L) {
  lua_newtable(L);
  lua_newtable(L);
  lua_pushglobaltable(L);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
  lua_setupvalue(L, -2, 1);
}

static int push_script_args(lua_State *L, const struct lunet_cli *cli) {
  luaL_checkstack(L, cli->script_argc + 1, "too many script arguments");
  for (int i = 0; i < cli->script_argc; i++)
    lua_pushstring(L, cli->script_argv[i]);
  return cli->script_argc;
}

/* Leaves the chunk's result on the stack, or returns -1 with err set. */
static int run_chunk(struct lunet_runtime *rt, char *err, size_t errcap) {
  lua_State *L = rt->L;
  size_t len;
  const char *src = lunet__reload_prefetched(L, rt->script_path, &len);
  int status = src != NULL
                   ? lunet__load_buffer(L, src, len, rt->script_path)
                   : luaL_loadfilex(L, rt->script_path, "t");
  if (status != LUA_OK) {
    snprintf(err, errcap, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return -1;
  }
  set_fresh_env(L);
  lua_pushcfunction(L, load_msghandler);
  lua_insert(L, -2);
  int nargs = push_script_args(L, rt->cli);
  rt->loading_version = rt->version + 1;
  lunet_budget_enter(L, &rt->budget); /* a script that loops never loads */
  status = lua_pcall(L, nargs, 1, -nargs - 2);
  lunet_budget_leave(L, &rt->budget);
  rt->loading_version = 0;
  lua_remove(L, -2); /* the message handler */
  if (status != LUA_OK) {
    snprintf(err, errcap, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return -1;
  }
  return 0;
}

/* }================================================================== */

/* {==================================================================
 * Validating the service table
 * =================================================================== */

struct check {
  lua_State *L;
  const char *path;
  const char *service;
  char *err;
  size_t errcap;
  int client; /* a lunet.connect handlers table: no address field */
};

static int check_fail(struct check *k, const char *fmt, const char *what) {
  char detail[512];
  snprintf(detail, sizeof detail, fmt, what);
  snprintf(k->err, k->errcap, "%s: service '%s': %s", k->path, k->service,
           detail);
  return -1;
}

static int find_handler(const char *key) {
  for (int h = 0; h < LUNET_HANDLER_COUNT; h++)
    if (strcmp(key, lunet_handler_names[h]) == 0) return h;
  return -1;
}

static int check_size(struct check *k, const char *key, size_t *out) {
  lua_Integer v = lua_tointeger(k->L, -1);
  if (!lua_isinteger(k->L, -1) || v < 1024 || v > ((lua_Integer)1 << 40))
    return check_fail(k, "'%s' must be an integer from 1024 to 2^40", key);
  *out = (size_t)v;
  return 0;
}

static int check_limit(struct check *k, const char *key, size_t *out) {
  lua_Integer v = lua_tointeger(k->L, -1);
  if (!lua_isinteger(k->L, -1) || v < 1 || v > ((lua_Integer)1 << 31))
    return check_fail(k, "'%s' must be an integer from 1 to 2^31", key);
  *out = (size_t)v;
  return 0;
}

static int check_count(struct check *k, const char *key, unsigned *out) {
  lua_Integer v = lua_tointeger(k->L, -1);
  if (!lua_isinteger(k->L, -1) || v < 1 || v > (1 << 30))
    return check_fail(k, "'%s' must be an integer from 1 to 2^30", key);
  *out = (unsigned)v;
  return 0;
}

static int check_framing(struct check *k, struct lunet_service *svc) {
  const char *name = lua_type(k->L, -1) == LUA_TSTRING
                         ? lua_tostring(k->L, -1) : "";
  int framing = lunet_framing_parse(name);
  if (framing < 0)
    return check_fail(k, "'framing' must be \"line\" or \"length\"%s", "");
  lunet_service_set_framing(svc, framing, NULL);
  return 0;
}

static int check_seconds(struct check *k, const char *key, unsigned *ms) {
  lua_Number v = lua_tonumber(k->L, -1);
  if (!lua_isnumber(k->L, -1) || !(v > 0) || v > 86400)
    return check_fail(k, "'%s' must be a number of seconds (0 < s <= "
                         "86400)", key);
  *ms = (unsigned)(v * 1000);
  return 0;
}

static int check_int(struct check *k, const char *key, int lo, int hi,
                     int *out);

/* A table with __call, such as a lunet.router. */
static int is_callable(lua_State *L) {
  if (!lua_istable(L, -1) || !luaL_getmetafield(L, -1, "__call")) return 0;
  lua_pop(L, 1);
  return 1;
}

static int is_http_option(const char *key) {
  static const char *const names[] = {
      "max_header_size", "max_url", "max_body", "header_timeout",
      "keepalive_timeout", "handler_timeout", "max_requests", NULL};
  for (int i = 0; names[i]; i++)
    if (strcmp(key, names[i]) == 0) return 1;
  return 0;
}

static int check_http_option(struct check *k, struct lunet_service *svc,
                             const char *key) {
  struct lunet_service_options *o = &svc->opt;
  int n;
  if (strcmp(key, "max_header_size") == 0)
    return check_limit(k, key, &o->max_header);
  if (strcmp(key, "max_url") == 0) return check_limit(k, key, &o->max_url);
  if (strcmp(key, "max_body") == 0) return check_limit(k, key, &o->max_body);
  if (strcmp(key, "header_timeout") == 0)
    return check_seconds(k, key, &o->header_timeout_ms);
  if (strcmp(key, "keepalive_timeout") == 0)
    return check_seconds(k, key, &o->keepalive_timeout_ms);
  if (strcmp(key, "handler_timeout") == 0)
    return check_seconds(k, key, &o->handler_timeout_ms);
  if (check_int(k, key, 1, 1 << 30, &n) < 0) return -1;
  o->max_requests = (unsigned)n;
  return 0;
}

static int is_udp_option(const char *key) {
  static const char *const names[] = {"broadcast", "ttl", "multicast_ttl",
                                      "multicast_loop", "recv_buffer",
                                      "send_buffer", "rate_limit", NULL};
  for (int i = 0; names[i]; i++)
    if (strcmp(key, names[i]) == 0) return 1;
  return 0;
}

static int check_int(struct check *k, const char *key, int lo, int hi,
                     int *out) {
  lua_Integer v = lua_tointeger(k->L, -1);
  if (!lua_isinteger(k->L, -1) || v < lo || v > hi) {
    char range[96];
    snprintf(range, sizeof range, "'%s' must be an integer from %d to %d",
             key, lo, hi);
    return check_fail(k, "%s", range);
  }
  *out = (int)v;
  return 0;
}

/* rate_limit = { rate = per second, burst = bucket size } */
static int check_rate_limit(struct check *k, struct lunet_service *svc) {
  lua_State *L = k->L;
  if (!lua_istable(L, -1))
    return check_fail(k, "'rate_limit' must be { rate = N, burst = N }%s",
                      "");
  lua_getfield(L, -1, "rate");
  lua_getfield(L, -2, "burst");
  svc->opt.rate = lua_tonumber(L, -2);
  svc->opt.burst = lua_isnil(L, -1) ? svc->opt.rate : lua_tonumber(L, -1);
  lua_pop(L, 2);
  if (!(svc->opt.rate > 0) || !(svc->opt.burst >= 1))
    return check_fail(k, "'rate_limit' needs rate > 0 and burst >= 1%s", "");
  return 0;
}

static int check_udp_option(struct check *k, struct lunet_service *svc,
                            const char *key) {
  struct lunet_service_options *o = &svc->opt;
  if (strcmp(key, "broadcast") == 0 || strcmp(key, "multicast_loop") == 0) {
    if (!lua_isboolean(k->L, -1))
      return check_fail(k, "'%s' must be true or false", key);
    *(key[0] == 'b' ? &o->broadcast : &o->multicast_loop) =
        lua_toboolean(k->L, -1);
    return 0;
  }
  if (strcmp(key, "ttl") == 0) return check_int(k, key, 1, 255, &o->ttl);
  if (strcmp(key, "multicast_ttl") == 0)
    return check_int(k, key, 0, 255, &o->multicast_ttl);
  if (strcmp(key, "rate_limit") == 0) return check_rate_limit(k, svc);
  return check_int(k, key, 1024, 1 << 30, strcmp(key, "recv_buffer") == 0
                                              ? &o->recv_buffer
                                              : &o->send_buffer);
}

/* The string at idx, or NULL when it is none or holds a NUL (the runtime
 * reads it as a C string, which would end there). */
static const char *plain_string(lua_State *L, int idx) {
  size_t n;
  const char *s =
      lua_type(L, idx) == LUA_TSTRING ? lua_tolstring(L, idx, &n) : NULL;
  return s != NULL && memchr(s, '\0', n) == NULL ? s : NULL;
}

static int check_tls(struct check *k, struct lunet_service *svc) {
  char detail[400];
  if (svc->kind == LUNET_KIND_UDP)
    return check_fail(k, "'tls' is for tcp and http services (DTLS is "
                         "not supported)%s", "");
  if (lunet__tls_options(k->L, svc->rt->script_dir, k->client, svc->name,
                         &svc->tls_config, detail, sizeof detail) < 0)
    return check_fail(k, "%s", detail);
  return 0;
}

/* Checks the field on top of the stack (key below it) and applies it. */
static int check_field(struct check *k, struct lunet_service *svc,
                       int refs[LUNET_HANDLER_COUNT]) {
  lua_State *L = k->L;
  const char *key = plain_string(L, -2);
  if (key == NULL)
    return check_fail(k, "field names must be strings (without a NUL)%s", "");
  int h = find_handler(key);
  if (h >= 0) {
    if (!lua_isfunction(L, -1) && !(h == LUNET_ON_REQUEST && is_callable(L)))
      return check_fail(k, h == LUNET_ON_REQUEST
                               ? "'%s' must be a function or a router"
                               : "'%s' must be a function", key);
    lua_pushvalue(L, -1);
    refs[h] = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
  }
  if (strcmp(key, "tcp") == 0 && !k->client) {
    if (svc->kind != LUNET_KIND_TCP)
      return check_fail(k, "a service has one kind: tcp, udp or http%s", "");
    const char *addr = plain_string(L, -1);
    if (addr == NULL || lunet_service_set_addr(svc, addr) < 0)
      return check_fail(k, "'tcp' must be an address like "
                           "\"0.0.0.0:7000\" or \"[::1]:7000\"%s", "");
    return 0;
  }
  if (strcmp(key, "udp") == 0 && !k->client) {
    const char *addr = plain_string(L, -1);
    if (svc->addr_text[0] != '\0')
      return check_fail(k, "a service has one kind: tcp, udp or http%s", "");
    svc->kind = LUNET_KIND_UDP;
    if (addr == NULL || lunet_service_set_addr(svc, addr) < 0)
      return check_fail(k, "'udp' must be an address like "
                           "\"0.0.0.0:7003\" or \"[::1]:7003\"%s", "");
    return 0;
  }
  if (strcmp(key, "http") == 0 && !k->client) {
    const char *addr = plain_string(L, -1);
    if (svc->addr_text[0] != '\0' || svc->kind == LUNET_KIND_UDP)
      return check_fail(k, "a service has one kind: tcp, udp or http%s", "");
    svc->kind = LUNET_KIND_HTTP;
    if (addr == NULL || lunet_service_set_addr(svc, addr) < 0)
      return check_fail(k, "'http' must be an address like "
                           "\"0.0.0.0:8080\" or \"[::1]:8080\"%s", "");
    return 0;
  }
  if (is_http_option(key)) return check_http_option(k, svc, key);
  if (is_udp_option(key)) return check_udp_option(k, svc, key);
  if (strcmp(key, "write_high_water") == 0)
    return check_size(k, key, &svc->opt.write_high_water);
  if (strcmp(key, "max_write_queue") == 0)
    return check_size(k, key, &svc->opt.max_write_queue);
  if (strcmp(key, "drain_timeout") == 0)
    return check_seconds(k, key, &svc->opt.drain_timeout_ms);
  if (strcmp(key, "framing") == 0) return check_framing(k, svc);
  if (strcmp(key, "max_line") == 0 || strcmp(key, "max_message") == 0)
    return check_limit(k, key, &svc->opt.max_message);
  if (strcmp(key, "max_connections") == 0 && !k->client)
    return check_count(k, key, &svc->opt.max_connections);
  if (strcmp(key, "max_connections_per_ip") == 0 && !k->client)
    return check_count(k, key, &svc->opt.max_connections_per_ip);
  if (strcmp(key, "idle_timeout") == 0)
    return check_seconds(k, key, &svc->opt.idle_timeout_ms);
  if (strcmp(key, "write_timeout") == 0)
    return check_seconds(k, key, &svc->opt.write_timeout_ms);
  if (strcmp(key, "connect_timeout") == 0 && k->client)
    return check_seconds(k, key, &svc->opt.connect_timeout_ms);
  if (strcmp(key, "tls") == 0) return check_tls(k, svc);
  return check_fail(k, "unknown field '%s'", key);
}

static void release_refs(lua_State *L, int refs[LUNET_HANDLER_COUNT]) {
  for (int h = 0; h < LUNET_HANDLER_COUNT; h++)
    luaL_unref(L, LUA_REGISTRYINDEX, refs[h]);
}

/* A udp service has datagrams only: on_message(sock, data, peer). */
static int check_udp_handlers(struct check *k, struct lunet_service *svc) {
  if (svc->handler_ref[LUNET_ON_REQUEST] != LUA_NOREF)
    return check_fail(k, "'handler' is for http services%s", "");
  for (int h = 0; h < LUNET_HANDLER_COUNT; h++)
    if (h != LUNET_ON_MESSAGE && svc->handler_ref[h] != LUA_NOREF)
      return check_fail(k, "a udp service has no '%s' (only on_message)",
                        lunet_handler_names[h]);
  if (svc->opt.framing != LUNET_FRAMING_NONE)
    return check_fail(k, "a udp service takes no framing%s", "");
  if (svc->handler_ref[LUNET_ON_MESSAGE] == LUA_NOREF)
    return check_fail(k, "a udp service needs on_message%s", "");
  if (svc->tls_config != NULL)
    return check_fail(k, "'tls' is for tcp and http services (DTLS is "
                         "not supported)%s", "");
  return 0;
}

static int check_tcp_options(struct check *k, struct lunet_service *svc) {
  const struct lunet_service_options *o = &svc->opt;
  if (o->broadcast >= 0 || o->ttl >= 0 || o->multicast_ttl >= 0 ||
      o->multicast_loop >= 0 || o->recv_buffer >= 0 || o->send_buffer >= 0)
    return check_fail(k, "broadcast, ttl, multicast and buffer options are "
                         "for udp services%s", "");
  return 0;
}

/* An http service has one handler(req, res); HTTP is its framing. */
static int check_http_handlers(struct check *k, struct lunet_service *svc) {
  for (int h = 0; h < LUNET_HANDLER_COUNT; h++)
    if (h != LUNET_ON_REQUEST && svc->handler_ref[h] != LUA_NOREF)
      return check_fail(k, "an http service has no '%s' (only handler)",
                        lunet_handler_names[h]);
  if (svc->handler_ref[LUNET_ON_REQUEST] == LUA_NOREF)
    return check_fail(k, "an http service needs a handler%s", "");
  if (svc->opt.framing != LUNET_FRAMING_NONE)
    return check_fail(k, "an http service takes no framing%s", "");
  lunet_service_set_framing(svc, LUNET_FRAMING_HTTP, &lunet_proto_http1);
  return 0;
}

/* With framing, messages go to on_message and never to on_data. */
static int check_handlers(struct check *k, struct lunet_service *svc) {
  if (svc->kind == LUNET_KIND_UDP) return check_udp_handlers(k, svc);
  if (svc->kind == LUNET_KIND_HTTP) return check_http_handlers(k, svc);
  if (check_tcp_options(k, svc) < 0) return -1;
  if (svc->handler_ref[LUNET_ON_REQUEST] != LUA_NOREF)
    return check_fail(k, "'handler' is for http services%s", "");
  int framed = svc->opt.framing != LUNET_FRAMING_NONE;
  if (framed && svc->handler_ref[LUNET_ON_DATA] != LUA_NOREF)
    return check_fail(k, "with framing, messages go to on_message, not "
                         "on_data%s", "");
  if (framed && svc->handler_ref[LUNET_ON_MESSAGE] == LUA_NOREF)
    return check_fail(k, "framing needs an on_message handler%s", "");
  if (!framed && svc->handler_ref[LUNET_ON_MESSAGE] != LUA_NOREF)
    return check_fail(k, "on_message needs framing = \"line\" or "
                         "\"length\"%s", "");
  return 0;
}

/* The service's table is on top of the stack. */
static int check_service(struct check *k, struct lunet_service *svc) {
  lua_State *L = k->L;
  int refs[LUNET_HANDLER_COUNT];
  for (int h = 0; h < LUNET_HANDLER_COUNT; h++) refs[h] = LUA_NOREF;
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    if (check_field(k, svc, refs) < 0) {
      lua_pop(L, 2);
      release_refs(L, refs);
      return -1;
    }
    lua_pop(L, 1);
  }
  lunet_service_set_handlers(L, svc, refs);
  if (svc->addr_text[0] == '\0' && !k->client)
    return check_fail(k, "needs an address: tcp = \"0.0.0.0:PORT\" or "
                         "udp = \"0.0.0.0:PORT\"%s", "");
  if (svc->opt.max_write_queue < svc->opt.write_high_water)
    return check_fail(k, "max_write_queue must be >= write_high_water%s", "");
  return check_handlers(k, svc);
}

int lunet__service_check_table(lua_State *L, struct lunet_service *svc,
                               const char *where, char *err, size_t errcap) {
  struct check k = {L, where, svc->name, err, errcap, 1};
  return check_service(&k, svc);
}

static void free_services(struct lunet_list *list) {
  while (!lunet_list_empty(list))
    lunet_service_free(lunet_container_of(list->next, struct lunet_service,
                                          node));
}

/* The top-level entries that are not services: on_reload, a function run
 * after a reload has switched to this version, and metrics = "ADDR" (read
 * at start; the --metrics option wins). */
static int take_hook(struct lunet_runtime *rt, int *hook_ref, char *err,
                     size_t errcap) {
  lua_State *L = rt->L;
  const char *key = plain_string(L, -2);
  if (key == NULL) return 0;
  if (strcmp(key, "metrics") == 0 && lua_type(L, -1) == LUA_TSTRING) {
    const char *addr = plain_string(L, -1);
    if (addr == NULL) {
      snprintf(err, errcap, "%s: 'metrics' must be an address (it holds a "
               "NUL byte)", rt->script_path);
      return -1;
    }
    snprintf(rt->metrics_addr, sizeof rt->metrics_addr, "%s", addr);
    lua_pop(L, 1);
    return 1;
  }
  if (strcmp(key, "on_reload") != 0 || !lua_isfunction(L, -1)) return 0;
  *hook_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

/* Services table on top; builds one service per entry into `out`. */
static int check_services(struct lunet_runtime *rt, struct lunet_list *out,
                          int *hook_ref, char *err, size_t errcap) {
  lua_State *L = rt->L;
  struct check k = {L, rt->script_path, "?", err, errcap, 0};
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    int hook = take_hook(rt, hook_ref, err, errcap);
    if (hook < 0) return lua_pop(L, 2), -1;
    if (hook > 0) continue;
    if (lua_type(L, -2) == LUA_TSTRING && plain_string(L, -2) == NULL) {
      snprintf(err, errcap, "%s: a service name holds a NUL byte",
               rt->script_path);
      lua_pop(L, 2);
      return -1;
    }
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TTABLE) {
      snprintf(err, errcap, "%s: each service must be name = { ... }, got "
               "%s = %s", rt->script_path, luaL_typename(L, -2),
               luaL_typename(L, -1));
      lua_pop(L, 2);
      return -1;
    }
    k.service = lua_tostring(L, -2);
    struct lunet_service *svc = lunet_service_new(rt, k.service);
    if (svc == NULL) return lua_pop(L, 2), check_fail(&k, "out of memory%s", "");
    lunet_list_push(out, &svc->node);
    if (check_service(&k, svc) < 0) return lua_pop(L, 2), -1;
    lua_pop(L, 1);
  }
  return 0;
}

/* }================================================================== */

int lunet_script_load(struct lunet_runtime *rt, struct lunet_list *out,
                      int *hook_ref, char *err, size_t errcap) {
  lua_State *L = rt->L;
  struct lunet_list loaded;
  int top = lua_gettop(L);
  lunet_list_init(&loaded);
  *hook_ref = LUA_NOREF;
  int r = run_chunk(rt, err, errcap);
  if (r == 0 && !lua_istable(L, -1)) {
    snprintf(err, errcap, "%s: the script must return a table of services, "
             "got %s", rt->script_path, luaL_typename(L, -1));
    r = -1;
  }
  if (r == 0) r = check_services(rt, &loaded, hook_ref, err, errcap);
  lua_settop(L, top);
  if (r < 0) {
    luaL_unref(L, LUA_REGISTRYINDEX, *hook_ref);
    *hook_ref = LUA_NOREF;
    free_services(&loaded);
    /* A rejected version must leave nothing running behind it. */
    lunet_timer_stop_others(rt, rt->version);
    lunet_pubsub_drop_others(rt, rt->version);
    return -1;
  }
  while (!lunet_list_empty(&loaded)) {
    struct lunet_list *q = loaded.next;
    lunet_list_remove(q);
    lunet_list_push(out, q);
  }
  return 0;
}
