/* lunet.connect(addr, handlers [, opts]): TCP clients with the same conn
 * object and events as servers. The address is resolved with libuv's
 * getaddrinfo (thread pool), and the whole connect is bounded by
 * connect_timeout (default 10 s). A failure reaches on_close as its
 * reason ("ECONNREFUSED", "ETIMEDOUT", "EAI_NONAME", ...). */
#ifndef LUNET_CLIENT_H
#define LUNET_CLIENT_H

#include <lua.h>

struct lunet_connect_req;

/* lunet.connect */
int lunet_client_connect(lua_State *L);

/* The conn is closing before its connect finished: the request lets go of
 * it (and cancels what it still waits for). */
void lunet__connect_abandon(struct lunet_connect_req *req);

#endif
