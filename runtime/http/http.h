/* HTTP/1.1 on a conn of an http service: llhttp parses in C, limits are
 * enforced as bytes arrive, and Lua sees one call per request,
 * handler(req, res). Requests on a connection are answered one at a time
 * and in order: parsing stops at the end of a request until its response
 * is complete, so pipelined requests wait in the conn's input buffer and
 * reading is paused meanwhile (bounded input). */
#ifndef LUNET_HTTP_H
#define LUNET_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <lua.h>

struct lunet_conn;
struct lunet_protocol;
struct lunet_runtime;
struct lunet_service;

/* HTTP/1.1 as a conn's protocol (protocol.h). */
extern const struct lunet_protocol lunet_proto_http1;

/* For the request object (req) at idx: pushes its params as set or made
 * so far (nil when none yet) without making them, and returns 1; for any
 * other value pushes nothing and returns 0. For lunet.router_core. */
int lunet_http_request_params(lua_State *L, int idx);

/* For the request object at idx: pops the value on top into req.params
 * and returns 1; for any other value pops nothing and returns 0. */
int lunet_http_request_set_params(lua_State *L, int idx);

/* For the request object at idx: its method and path (the url up to any
 * query; not nul-terminated, valid while req lives) and 1; 0 for any other
 * value, or when the script replaced req.method or req.path (the router
 * then reads those). For lunet.router_core. */
int lunet_http_request_target(lua_State *L, int idx, const char **method,
                              const char **path, size_t *path_len);

/* Registers the "lunet.http.response" metatable. */
void lunet_http_open(lua_State *L);

/* Frees the parser states cached for reuse (runtime teardown, before the
 * Lua state closes). */
void lunet_http_cache_free(struct lunet_runtime *rt);

#endif
