/* lunet.connect(addr, handlers [, opts]): TCP clients with the same conn
 * object and events as servers. The address is resolved with libuv's
 * getaddrinfo (thread pool), and the whole connect is bounded by
 * connect_timeout (default 10 s). A failure reaches on_close as its
 * reason ("ECONNREFUSED", "ETIMEDOUT", "EAI_NONAME", ...). */
#ifndef LUNET_CLIENT_H
#define LUNET_CLIENT_H

#include <stddef.h>
#include <lua.h>

struct lunet_connect_req;
struct lunet_service;

/* Applies a handlers table (on top of the stack) to svc with the checks a
 * service table gets; 0, or -1 with err set. The script layer's
 * (lunet__service_check_table), handed down by lunet.c. */
typedef int (*lunet_client_check_fn)(lua_State *L, struct lunet_service *svc,
                                     const char *where, char *err,
                                     size_t errcap);

/* lunet.connect, with check applied to its handlers and options. */
int lunet_client_connect(lua_State *L, lunet_client_check_fn check);

/* The conn is closing before its connect finished: the request lets go of
 * it (and cancels what it still waits for). */
void lunet__connect_abandon(struct lunet_connect_req *req);

#endif
