/* The control socket: a Unix socket per running instance through which
 * `lunet reload` asks for a reload and reads the outcome. One request line,
 * one reply line, then the connection closes. */
#ifndef LUNET_CONTROL_H
#define LUNET_CONTROL_H

#include <stddef.h>
#include <sys/types.h>

struct lunet_runtime;

/* The directory holding instances' sockets: $XDG_RUNTIME_DIR/lunet, or
 * /tmp/lunet-UID. Created 0700 when `create` is set. 0 or -1. */
int lunet_control_dir(char *out, size_t cap, int create);

/* Listens on `path` (NULL: DIR/PID.sock) and logs where. 0 or UV error. */
int lunet_control_start(struct lunet_runtime *rt, const char *path);

/* Stops listening and removes the socket file. Idempotent. */
void lunet_control_stop(struct lunet_runtime *rt);

/* Client side, for `lunet reload`: sends one command to the socket at
 * path and copies the reply line into reply. Blocks (it is not the loop)
 * for at most timeout_ms. Returns 0 or -errno. */
int lunet_control_request(const char *path, const char *command,
                          char *reply, size_t cap, int timeout_ms);

#endif
