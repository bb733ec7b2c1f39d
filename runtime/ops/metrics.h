/* The counters of counters.h, rendered as Prometheus text (/metrics), as
 * JSON (`lunet stats`, `lunet top`) and as a table for people. */
#ifndef LUNET_METRICS_H
#define LUNET_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <lua.h>

#include "counters.h"

struct lunet_runtime;

/* Appends the Prometheus text exposition of everything to the buffer on
 * top of the stack (a luaL_Buffer the caller owns). */
void lunet_metrics_prometheus(lua_State *L, struct lunet_runtime *rt,
                              void *buffer);

/* Same figures as a table for people (lunet stats, lunet top). */
void lunet_metrics_text(lua_State *L, struct lunet_runtime *rt, void *buffer);

/* Starts an internal http service "metrics" answering GET /metrics with
 * the Prometheus text. 0, or a negative UV error (logged). */
int lunet_metrics_serve(struct lunet_runtime *rt, const char *addr);

/* Same figures as one JSON object. */
void lunet_metrics_json(lua_State *L, struct lunet_runtime *rt,
                        void *buffer);

#endif
