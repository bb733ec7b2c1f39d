/* WebSocket (RFC 6455) as a protocol a conn switches to from HTTP/1.1,
 * and its Lua object (metatable "lunet.websocket").
 *
 * A conn becomes a websocket when a handler calls res:websocket(handlers)
 * (router:websocket does it for a route): the handshake is checked and
 * answered, the conn switches to lunet_proto_ws, and the handlers get
 * whole messages. The server and lunet.websocket.connect's client share
 * everything past the handshake.
 *
 * Lifetime: the ws box is pinned while its conn is open; when the conn is
 * freed (the protocol's detach) on_close runs, the box lets go of the C
 * state and any later method call returns nil, "closed". */
#ifndef LUNET_WS_H
#define LUNET_WS_H

#include <stddef.h>
#include <stdint.h>
#include <lua.h>

struct lunet_conn;
struct lunet_runtime;

extern const struct lunet_protocol lunet_proto_ws;

/* Registers the ws metatable and res:websocket (with http's). */
void lunet_ws_open(lua_State *L);

/* What a websocket's handlers table may set, read once at the upgrade
 * (or connect): limits are per socket and survive a reload. */
struct lunet_ws_limits {
  size_t max_message;         /* bytes; over it: close 1009 */
  unsigned ping_interval_ms;  /* 0: no pings */
  unsigned close_timeout_ms;  /* the close handshake's bound */
  unsigned char compression;  /* offer or accept permessage-deflate */
};

/* Reads the limits of the handlers table at idx (defaults for what it
 * lacks); raises a Lua error on a bad value. */
void lunet_ws_read_limits(lua_State *L, int idx, struct lunet_ws_limits *lim);

/* Runs handlers.on_open(ws, extra) for the ws box at index ws_idx (extra:
 * the request, or nothing when 0). */
void lunet_ws_run_open(lua_State *L, int ws_idx, int extra_idx);

/* lunet.websocket.connect(url, handlers [, opts]) (ws_client.c); its
 * upvalue 1 is lunet.connect. */
int lunet_ws_connect(lua_State *L);

/* {==================================================================
 * Topics (ws_topics.c)
 * =================================================================== */

/* Sends msg as one frame, built once, to every websocket of this
 * process subscribed to topic; returns how many it was written to. A
 * subscriber whose queue would pass its max_write_queue is closed with
 * 1008 "slow consumer" instead, and never slows the others. */
size_t lunet_ws_publish(struct lunet_runtime *rt, const char *topic,
                        size_t tlen, const char *msg, size_t mlen);

/* Websockets of this process subscribed to topic. */
size_t lunet_ws_topic_count(struct lunet_runtime *rt, const char *topic,
                            size_t tlen);

/* Closes the loop handle topic fan-out writes from (the runtime is going,
 * before its loop runs the last close callbacks). */
void lunet_ws_stop(struct lunet_runtime *rt);

/* Frees what the runtime's websockets share: topics, zlib streams. */
void lunet_ws_free(struct lunet_runtime *rt);

/* }================================================================== */

#endif
