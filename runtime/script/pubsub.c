#include "pubsub.h"

#include <lauxlib.h>

#include <string.h>

#include "call.h"
#include "log.h"
#include "loop.h"
#include "ws.h"

#define SUB_MT "lunet.subscription"
#define SUB_UV_FN 1
#define SUB_UV_TOPIC 2

/* registry[&topics_key] = { [topic] = { sub, sub, ... } } */
static const char topics_key = 'T';

struct sub_box {
  unsigned version; /* owning script version; 0: made by a handler */
  int active;
};

static void push_topics(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &topics_key) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &topics_key);
}

/* Pushes the subscriber list of the topic at index `topic`, made if
 * `create`; returns 0 with nothing pushed when there is none. */
static int push_list(lua_State *L, int topic, int create) {
  push_topics(L);
  lua_pushvalue(L, topic);
  if (lua_rawget(L, -2) == LUA_TTABLE) return lua_remove(L, -2), 1;
  lua_pop(L, 1);
  if (!create) return lua_pop(L, 1), 0;
  lua_newtable(L);
  lua_pushvalue(L, topic);
  lua_pushvalue(L, -2);
  lua_rawset(L, -4);
  lua_remove(L, -2);
  return 1;
}

/* Removes the sub at index `sub` from the list on top (and the topic when
 * it was the last). */
static void remove_from_list(lua_State *L, int sub, int topic) {
  lua_Integer n = luaL_len(L, -1);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    int found = lua_rawequal(L, -1, sub);
    lua_pop(L, 1);
    if (!found) continue;
    for (; i < n; i++) {
      lua_rawgeti(L, -1, i + 1);
      lua_rawseti(L, -2, i);
    }
    lua_pushnil(L);
    lua_rawseti(L, -2, n);
    break;
  }
  if (luaL_len(L, -1) > 0) return;
  push_topics(L);
  lua_pushvalue(L, topic);
  lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

static void unsubscribe(lua_State *L, int sub) {
  struct sub_box *b = lua_touserdata(L, sub);
  if (!b->active) return;
  b->active = 0;
  lua_getiuservalue(L, sub, SUB_UV_TOPIC);
  int topic = lua_gettop(L);
  if (push_list(L, topic, 0)) {
    remove_from_list(L, sub, topic);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* lunet.subscribe(topic, fn) -> subscription; fn(msg, topic). */
int lunet_pubsub_subscribe(lua_State *L) {
  size_t tlen;
  const char *topic = luaL_checklstring(L, 1, &tlen);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  /* As lunet.publish refuses such a topic, nothing could ever arrive. */
  luaL_argcheck(L, memchr(topic, '\0', tlen) == NULL, 1,
                "topic contains a NUL byte");
  struct sub_box *b = lua_newuserdatauv(L, sizeof *b, 2);
  b->version = lunet_rt(L)->loading_version;
  b->active = 1;
  luaL_setmetatable(L, SUB_MT);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, -2, SUB_UV_FN);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, SUB_UV_TOPIC);
  push_list(L, 1, 1);
  lua_pushvalue(L, -2);
  lua_rawseti(L, -2, luaL_len(L, -2) + 1);
  lua_pop(L, 1);
  return 1;
}

/* Calls each subscriber of a snapshot of the list: subscribing or
 * unsubscribing during delivery changes the next publish, not this one. */
static int deliver(lua_State *L, int list) {
  struct lunet_call_ctx ctx = {NULL, "subscriber", 0, NULL, NULL};
  lua_Integer n = luaL_len(L, list), delivered = 0;
  lua_createtable(L, (int)n, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, list, i);
    lua_rawseti(L, -2, i);
  }
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    struct sub_box *b = lua_touserdata(L, -1);
    if (!b->active) {
      lua_pop(L, 1);
      continue;
    }
    lua_getiuservalue(L, -1, SUB_UV_FN);
    lua_replace(L, -2);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 1);
    if (lunet_call(L, 2, &ctx) == LUA_OK) delivered++;
  }
  lua_pop(L, 1);
  return (int)delivered;
}

/* lunet.publish(topic, msg) -> number of subscribers in this process that
 * took it; under --workers the other workers get it too, asynchronously. */
int lunet_pubsub_publish(lua_State *L) {
  size_t tlen, mlen;
  const char *topic = luaL_checklstring(L, 1, &tlen);
  luaL_checktype(L, 2, LUA_TSTRING);
  luaL_argcheck(L, memchr(topic, '\0', tlen) == NULL, 1,
                "topic contains a NUL byte");
  lua_settop(L, 2);
  const char *msg = lua_tolstring(L, 2, &mlen);
  struct lunet_runtime *rt = lunet_rt(L);
  rt->up->publish(rt, topic, tlen, msg, mlen);
  size_t sockets = lunet_ws_publish(rt, topic, tlen, msg, mlen);
  int delivered = push_list(L, 1, 0) ? deliver(L, 3) : 0;
  lua_pushinteger(L, (lua_Integer)sockets + delivered);
  return 1;
}

/* lunet.topic_count(topic) -> websockets of this process subscribed
 * to topic (ws:subscribe); the script's own subscriptions are not
 * counted. */
int lunet_pubsub_topic_count(lua_State *L) {
  size_t tlen;
  const char *topic = luaL_checklstring(L, 1, &tlen);
  lua_pushinteger(L, (lua_Integer)lunet_ws_topic_count(lunet_rt(L), topic,
                                                       tlen));
  return 1;
}

static int deliver_here(lua_State *L) {
  lua_pushinteger(L, push_list(L, 1, 0) ? deliver(L, 3) : 0);
  return 1;
}

void lunet_pubsub_deliver(struct lunet_runtime *rt, const char *topic,
                          size_t tlen, const char *msg, size_t mlen) {
  lua_State *L = rt->L;
  int top = lua_gettop(L);
  lunet_ws_publish(rt, topic, tlen, msg, mlen);
  /* The script memory cap applies inside protected calls only, so these
   * pushes are the runtime's own and cannot hit it. */
  lua_pushlstring(L, topic, tlen);
  lua_pushcfunction(L, deliver_here);
  lua_pushvalue(L, -2);
  lua_pushlstring(L, msg, mlen);
  if (lua_pcall(L, 2, 1, 0) != LUA_OK)
    lunet_log(LUNET_LOG_ERROR, "delivery from another worker failed",
              "topic", lua_tostring(L, top + 1), "error",
              lua_tostring(L, -1), NULL);
  lua_settop(L, top);
}

static int sub_unsubscribe(lua_State *L) {
  struct sub_box *b = luaL_checkudata(L, 1, SUB_MT);
  int was = b->active;
  unsubscribe(L, 1);
  lua_pushboolean(L, was);
  return 1;
}

static int sub_active(lua_State *L) {
  lua_pushboolean(L, ((struct sub_box *)luaL_checkudata(L, 1, SUB_MT))->active);
  return 1;
}

static int sub_tostring(lua_State *L) {
  struct sub_box *b = luaL_checkudata(L, 1, SUB_MT);
  lua_getiuservalue(L, 1, SUB_UV_TOPIC);
  lua_pushfstring(L, "lunet.subscription (%s, %s)", lua_tostring(L, -1),
                  b->active ? "active" : "ended");
  return 1;
}

/* Collects then ends, so the topics table is not changed mid-traversal. */
void lunet_pubsub_drop_others(struct lunet_runtime *rt, unsigned keep) {
  lua_State *L = rt->L;
  int n = 0;
  lua_newtable(L);
  push_topics(L);
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    for (lua_Integer i = 1; lua_rawgeti(L, -1, i) != LUA_TNIL; i++) {
      struct sub_box *b = lua_touserdata(L, -1);
      if (b->version != 0 && b->version != keep)
        lua_rawseti(L, -5, ++n);
      else
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
  }
  lua_pop(L, 1);
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    unsubscribe(L, lua_gettop(L));
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

void lunet_pubsub_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"unsubscribe", sub_unsubscribe},
                                     {"active", sub_active},
                                     {NULL, NULL}};
  luaL_newmetatable(L, SUB_MT);
  lua_pushcfunction(L, sub_tostring);
  lua_setfield(L, -2, "__tostring");
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}
