/* lunet.publish(topic, msg) / lunet.subscribe(topic, fn): topic fan-out.
 * In-process for now; messages are strings so the same API can carry them
 * across workers and machines later. Delivery is synchronous, in
 * subscription order, each subscriber under its own protected call, so one
 * failing subscriber never stops the others. A subscription made while a
 * script version loads belongs to it (like a timer) and ends when a newer
 * version takes over; those made by handlers last until unsubscribed. */
#ifndef LUNET_PUBSUB_H
#define LUNET_PUBSUB_H

#include <lua.h>

struct lunet_runtime;

void lunet_pubsub_open(lua_State *L);
int lunet_pubsub_publish(lua_State *L);
int lunet_pubsub_subscribe(lua_State *L);

/* Ends the load-time subscriptions of every version but `keep`. */
void lunet_pubsub_drop_others(struct lunet_runtime *rt, unsigned keep);

#endif
