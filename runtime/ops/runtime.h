/* The runtime: one libuv loop, one Lua state, the services of the loaded
 * script and everything that lives on the loop for them. Its type is
 * loop.h's (core/), so the layers below may read it; making, loading,
 * running and stopping it is here, at the top. */
#ifndef LUNET_RUNTIME_H
#define LUNET_RUNTIME_H

#include <stddef.h>

#include "loop.h"

/* Creates the loop and the Lua state, with package.path covering the
 * script's directory and lualib/. Returns NULL with err set on failure. */
struct lunet_runtime *lunet_runtime_new(const struct lunet_cli *cli,
                                        char *err, size_t errcap);

/* Loads cli->script, applies --listen overrides. 0, or -1 with err set and
 * *usage set when the error is the command line's (exit 2, not 1). */
int lunet_runtime_load(struct lunet_runtime *rt, char *err, size_t errcap,
                       int *usage);

/* Binds every service; 0 or a negative UV error (already logged). */
int lunet_runtime_listen(struct lunet_runtime *rt);

/* Runs the loop until nothing is left on it; returns the exit code. */
int lunet_runtime_run(struct lunet_runtime *rt);

/* First call: stop accepting, close conns after their queues flush and stop
 * timers, bounded by --shutdown-timeout. Second call: close everything now. */
void lunet_runtime_shutdown(struct lunet_runtime *rt, const char *why);

/* Closes every handle, runs the loop empty, then closes Lua and the loop. */
void lunet_runtime_free(struct lunet_runtime *rt);

#endif
