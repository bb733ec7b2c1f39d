/* lunet.publish(topic, msg) / lunet.subscribe(topic, fn): topic fan-out.
 * Messages are strings so they can cross workers (the supervisor relays
 * them) and, later, machines. Delivery is synchronous, in
 * subscription order, each subscriber under its own protected call, so one
 * failing subscriber never stops the others. A subscription made while a
 * script version loads belongs to it (like a timer) and ends when a newer
 * version takes over; those made by handlers last until unsubscribed. */
#ifndef LUNET_PUBSUB_H
#define LUNET_PUBSUB_H

#include <stddef.h>
#include <lua.h>

struct lunet_runtime;

void lunet_pubsub_open(lua_State *L);
int lunet_pubsub_publish(lua_State *L);
int lunet_pubsub_subscribe(lua_State *L);
int lunet_pubsub_topic_count(lua_State *L);

/* Delivers a message another worker published to this process's
 * subscribers (each under its own protected call). */
void lunet_pubsub_deliver(struct lunet_runtime *rt, const char *topic,
                          size_t tlen, const char *msg, size_t mlen);

/* Ends the load-time subscriptions of every version but `keep`. */
void lunet_pubsub_drop_others(struct lunet_runtime *rt, unsigned keep);

#endif
