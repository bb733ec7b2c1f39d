/* TCP listeners of services. */
#ifndef LUNET_TCP_H
#define LUNET_TCP_H

struct lunet_service;

/* Binds and listens on svc->addr, logs the "listening" line with the real
 * address. Returns 0 or a negative UV error (logged). */
int lunet_tcp_listen(struct lunet_service *svc);

/* Stops accepting; the listener is freed in its close_cb. Idempotent. */
void lunet_tcp_unlisten(struct lunet_service *svc);

#endif
