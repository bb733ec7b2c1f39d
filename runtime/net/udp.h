/* UDP sockets for Lua ("lunet.udp"): the socket of a udp service, and
 * client sockets from lunet.udp(opts). Datagrams reach
 * on_message(sock, data, peer), peer being "ip:port" (or "[v6]:port"), a
 * string that can be kept and sent to later. Lifetime as for conns: a
 * registry self-ref pins an open socket, close_cb frees it. */
#ifndef LUNET_UDP_H
#define LUNET_UDP_H

#include <lua.h>

struct lunet_runtime;
struct lunet_service;
struct lunet_udp;

void lunet_udp_open(lua_State *L);

/* lunet.udp(opts) */
int lunet_udp_client(lua_State *L);

/* Binds a udp service's socket and logs its "listening" line. */
int lunet_udp_listen(struct lunet_service *svc);
void lunet_udp_unlisten(struct lunet_service *svc);

/* A reload moved the socket to another service struct. */
void lunet__udp_set_service(struct lunet_udp *u, struct lunet_service *svc);

/* Closes every client socket (shutdown). */
void lunet_udp_close_clients(struct lunet_runtime *rt);

#endif
