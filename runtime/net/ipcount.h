/* Open connections per peer IP address, for max_connections_per_ip:
 * counted on accept, released on close; an address leaves the table with
 * its last connection, so the table never outgrows the open conns. */
#ifndef LUNET_IPCOUNT_H
#define LUNET_IPCOUNT_H

#include <sys/socket.h>

struct lunet_ipcount;

struct lunet_ipcount *lunet_ipcount_new(void);
void lunet_ipcount_free(struct lunet_ipcount *t);

/* Adds one for sa's address unless it already has `max`; returns 1 if
 * added, 0 if at the limit, -1 on ENOMEM. */
int lunet_ipcount_take(struct lunet_ipcount *t, const struct sockaddr *sa,
                       unsigned max);

void lunet_ipcount_release(struct lunet_ipcount *t,
                           const struct sockaddr *sa);

#endif
