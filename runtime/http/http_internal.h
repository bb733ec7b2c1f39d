/* Shared by http.c (requests) and http_response.c (responses). */
#ifndef LUNET_HTTP_INTERNAL_H
#define LUNET_HTTP_INTERNAL_H

#include <llhttp.h>
#include <stdint.h>
#include <lua.h>

#include "addr.h"
#include "http.h"

enum http_phase {
  HTTP_IDLE,     /* keep-alive, between requests */
  HTTP_READING,  /* a request is arriving */
  HTTP_HANDLING, /* the handler has it; parsing waits for the response */
  HTTP_DONE      /* the connection is closing */
};

struct res_box; /* http_response.c */

struct http_header {
  uint32_t name, name_len, value, value_len; /* offsets into head */
};

struct lunet_http {
  struct lunet_http *next_free; /* in the runtime's cache while unused */
  llhttp_t parser;
  struct lunet_conn *c;
  enum http_phase phase;
  uint64_t deadline; /* loop ms: header read (READING), handler (HANDLING) */
  struct res_box *res; /* the response object in flight, or NULL */
  int pin_ref;         /* registry slot that pins res (false when none):
                          one per h, so a request costs no ref/unref */
  int error_status;  /* set by a limit check that failed the parse */
  int keep_alive;    /* the request in flight allows keep-alive */
  int head_only;     /* the request in flight is a HEAD */
  int http10;
  int upgrade;       /* the request asks for another protocol */
  int head_done;     /* the request being read is in its body */
  int status;        /* of the response in flight, for the metrics */
  uint64_t start_ns; /* the request was whole at (uv_hrtime) */
  /* The request being parsed; freed once dispatched so idle conns hold
   * none of it. */
  char *head; /* url, then header names and values */
  size_t head_len, head_cap;
  uint32_t url_len;
  struct http_header *hdrs;
  int nhdrs, hdrs_cap, in_value;
  int value_done;       /* the value span ended inside the buffer */
  const char *feed_end; /* end of the bytes being parsed */
  char *body;
  size_t body_len, body_cap;
};

/* Sends a complete minimal response (errors: 400, 408, 413, 500, 504...)
 * and closes the conn after it. */
void lunet__http_reply_error(struct lunet_http *h, int status);

/* The same with extra header lines ("Name: value\r\n"...). */
void lunet__http_refuse(struct lunet_http *h, int status, const char *extra);

/* For res:websocket (ws_upgrade.c): the response at index 1 must not
 * have started (raises); returns its h, or NULL when the conn is gone,
 * and pushes the upgrade request it keeps (nil for a request that asked
 * for no upgrade). */
struct lunet_http *lunet__http_upgrade_check(lua_State *L);

/* Keeps the request at index req in the response at index res. */
void lunet__http_keep_request(lua_State *L, int res, int req);

/* The 101 was sent: the response is done and counted. */
void lunet__http_upgraded(struct lunet_http *h);

/* An upgrade refused (lunet__http_refuse sent the answer): the response
 * object is done. */
void lunet__http_refused(struct lunet_http *h);

/* res:websocket(handlers) (ws_upgrade.c). */
int lunet__ws_res_websocket(lua_State *L);

/* The response to the request in flight is complete: next request, or
 * close. */
void lunet__http_response_done(struct lunet_http *h, int close);

/* Makes the request object for the request parsed into h (it copies
 * what it needs: h is reused at once); left on the stack. */
void lunet__http_push_request(lua_State *L, const struct lunet_http *h);

/* Pushes the value of header `name` (case-insensitive; repeated ones
 * joined by ", ", as req.headers has them) of the request at idx, and
 * returns it; nil pushed and NULL when it has none. Makes no table (a
 * websocket keeps its request, so what the upgrade reads must stay
 * small). */
const char *lunet__http_request_header(lua_State *L, int idx,
                                       const char *name, size_t *len);

/* Registers the request metatables (http_request.c). */
void lunet__http_request_open(lua_State *L);

/* Makes the response object for the request in flight; left on the
 * stack, pinned while h->res points to it. */
void lunet__http_push_response(lua_State *L, struct lunet_http *h);

/* Answers the request in flight with a plain status (429, 500) and goes
 * on with the connection as the response allows. */
void lunet__http_reply_simple(struct lunet_http *h, int status);

/* A handler failed: 500 if nothing was sent yet, else close. */
void lunet__http_handler_failed(struct lunet_http *h);

/* The response object lets go of h (response complete, or conn gone). */
void lunet__http_release_response(lua_State *L, struct lunet_http *h);

const char *lunet__http_reason(int status);

/* Registers the response metatable (http_response.c). */
void lunet__http_response_open(lua_State *L);

#endif
