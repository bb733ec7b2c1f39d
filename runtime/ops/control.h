/* The control socket: a Unix socket per running instance through which
 * `lunet reload` asks for a reload and reads the outcome. One request line,
 * one reply line, then the connection closes. */
#ifndef LUNET_CONTROL_H
#define LUNET_CONTROL_H

#include <stddef.h>
#include <sys/types.h>
#include <uv.h>

struct lunet_runtime;
struct lunet_control;
struct lunet_control_client;

/* Answers one request line; must end with lunet_control_reply, now or
 * later (the client waits, bounded by its own timeout). */
typedef void (*lunet_control_handler)(struct lunet_control_client *c,
                                      const char *request, void *ud);

/* The protocol's commands, as a single process and a supervisor each
 * answer them; every one ends with lunet_control_reply. */
struct lunet_control_commands {
  void (*reload)(struct lunet_control_client *c, void *ud);
  void (*stats)(struct lunet_control_client *c, void *ud, int text);
  /* writes "pid=... ..." into out */
  void (*ping)(void *ud, char *out, size_t cap);
};

/* Parses a request line and calls the matching command (an unknown one
 * is answered with the list of commands). */
void lunet_control_dispatch(struct lunet_control_client *c,
                            const char *request,
                            const struct lunet_control_commands *cmds,
                            void *ud);

/* Writes the process id to path (before the loop runs). 0 or -1. */
int lunet_pidfile_write(const char *path);

/* The directory holding instances' sockets: $XDG_RUNTIME_DIR/lunet, or
 * /tmp/lunet-UID. Created 0700 when `create` is set. 0 or -1. */
int lunet_control_dir(char *out, size_t cap, int create);

/* Listens on `path` (NULL: DIR/PID.sock) and logs where; requests go to
 * handler. 0 or UV error. */
int lunet_control_listen(uv_loop_t *loop, const char *path,
                         lunet_control_handler handler, void *ud,
                         struct lunet_control **out);

/* Writes "STATUS DETAIL\n" and closes the client once it is written. */
void lunet_control_reply(struct lunet_control_client *c, const char *status,
                         const char *detail);

/* Newlines in an error (a traceback) would end a reply line early. */
void lunet_control_flatten(char *s);

/* Stops listening and removes the socket file. */
void lunet_control_close(struct lunet_control *ctl);

/* A single process's control socket: reload, stats, stats text, ping. */
int lunet_control_start(struct lunet_runtime *rt, const char *path);

/* Closes rt's control socket if it has one. */
void lunet_control_stop(struct lunet_runtime *rt);

/* Client side, for `lunet reload`: sends one command to the socket at
 * path and copies the reply line into reply. Blocks (it is not the loop)
 * for at most timeout_ms. Returns 0 or -errno. */
int lunet_control_request(const char *path, const char *command,
                          char *reply, size_t cap, int timeout_ms);

#endif
