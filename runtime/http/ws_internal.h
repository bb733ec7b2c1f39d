/* Shared by ws.c (the protocol and the object), ws_upgrade.c (the
 * server's handshake), ws_client.c and ws_topics.c. */
#ifndef LUNET_WS_INTERNAL_H
#define LUNET_WS_INTERNAL_H

#include <stdint.h>

#include "list.h"
#include "ws.h"
#include "ws_deflate.h"
#include "ws_frame.h"

/* The box's user values. */
enum {
  WS_UV_HANDLERS = 1, /* the handlers table in use */
  WS_UV_DATA,         /* ws.data, made on first use */
  WS_UV_REQUEST,      /* the upgrade request (ws.headers), or nil */
  WS_UV_PATH,
  WS_UV_PROTOCOL,     /* the chosen subprotocol, or nil */
  WS_UV_COUNT = WS_UV_PROTOCOL
};

struct lunet_ws {
  struct lunet_conn *c;
  struct ws_box *box; /* NULL once the conn is gone */
  int box_ref;        /* pins the box while the conn is open */
  unsigned handlers_version; /* rt->version the handlers were found for */
  struct lunet_ws_limits lim;
  unsigned char client;
  unsigned char close_sent, close_received;
  unsigned char pings_out; /* pings sent since the last pong */
  uint16_t close_code;     /* on_close's: the peer's, else ours, else 1006 */
  char *close_reason;      /* malloc'd, or NULL */
  uint64_t close_deadline; /* loop ms: the close handshake gives up */
  uint64_t last_ping_ms;
  struct lunet_list subs; /* struct ws_sub.ws_node */
  char *cork; /* topic frames of this loop turn, unwritten (ws_topics.c) */
  size_t cork_len, cork_cap;
  struct lunet_list cork_node; /* rt->ws_corked while cork is set */
  unsigned char compress;  /* permessage-deflate was negotiated */
  struct lunet_ws_deflate deflate; /* its parameters (16 bytes) */
  struct lunet_ws_parser parser;
};

/* Deflates p[0..n) for ws into the loop's shared buffer: the payload to
 * send with RSV1, or NULL when it is better sent as it is. */
const struct lunet_ws_buf *lunet__ws_compress(struct lunet_ws *ws,
                                              const char *p, size_t n);

struct ws_box {
  struct lunet_ws *ws; /* NULL until attached and once closed */
  uint64_t id;
  int connecting; /* a client's, before its handshake ended */
};

/* Pushes a box not yet attached, holding handlers (at hidx) and path. */
void lunet__ws_push_box(lua_State *L, int hidx, const char *path);

/* Makes c a websocket: c switches to lunet_proto_ws with the handlers at
 * index hidx, as the server (client = 0) or a client; pushes the ws box
 * (the caller runs on_open). protocol (may be NULL) and path are copied;
 * the table at headers_idx (0: none) becomes ws.headers; deflate
 * (NULL: none) is what permessage-deflate negotiated. */
void lunet_ws_attach(lua_State *L, struct lunet_conn *c, int hidx,
                     const struct lunet_ws_limits *lim, int client,
                     const char *protocol, const char *path,
                     int headers_idx,
                     const struct lunet_ws_deflate_params *deflate);

/* Attaches the box at box_idx to c, which becomes a websocket (as
 * lunet_ws_attach, with the box made before). */
void lunet__ws_attach_box(lua_State *L, struct lunet_conn *c, int box_idx,
                          const struct lunet_ws_limits *lim, int client,
                          const char *protocol, int headers_idx,
                          const struct lunet_ws_deflate_params *deflate);

/* Calls handlers.on_close(box, code, reason) for a box at box_idx that
 * never opened (a client whose connect or handshake failed). */
void lunet__ws_close_unopened(lua_State *L, int box_idx, int code,
                              const char *reason);

/* Writes one frame (a client's is masked). idx: the Lua string holding
 * p, so a large payload is pinned instead of copied (0: copy). 0 or a
 * negative UV error (the conn is closing or was dropped). */
int lunet__ws_send_frame(struct lunet_ws *ws, int op, const char *p,
                         size_t n, int idx);

/* Writes the topic frames kept for this turn now (before anything else
 * is sent on ws, so the order holds); discard forgets them (the conn is
 * going). */
void lunet__ws_uncork(struct lunet_ws *ws);
void lunet__ws_cork_discard(struct lunet_ws *ws);

/* Frees the topic table (lunet_ws_free). */
void lunet__ws_topics_free(struct lunet_runtime *rt);

/* Ends every subscription of ws (ws_topics.c). */
void lunet__ws_unsubscribe_all(struct lunet_ws *ws);

/* ws:subscribe(topic), ws:unsubscribe(topic) (ws_topics.c). */
int lunet__ws_subscribe(lua_State *L, struct lunet_ws *ws, int topic_idx);
int lunet__ws_unsubscribe(lua_State *L, struct lunet_ws *ws, int topic_idx);

/* res:websocket (ws_upgrade.c). */
int lunet__ws_res_websocket(lua_State *L);

/* Fails the socket: a close frame with code and reason, then the conn
 * closes (gracefully, with conn_reason); on_close gets code unless the
 * peer's close came first. */
void lunet__ws_fail(struct lunet_ws *ws, uint16_t code, const char *reason,
                    const char *conn_reason);

/* Drops the socket at once, its queue with it (a peer that does not
 * read would never get a close frame); on_close gets code and reason. */
void lunet__ws_drop(struct lunet_ws *ws, uint16_t code, const char *reason,
                    const char *conn_reason);

/* A log record about ws with its service, conn, peer, code and reason. */
void lunet__ws_log(struct lunet_ws *ws, int level, const char *msg,
                   uint16_t code, const char *reason);

#endif
