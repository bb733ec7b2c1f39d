#include "control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <lauxlib.h>

#include "log.h"
#include "metrics.h"
#include "reload.h"
#include "runtime.h"

#define REQUEST_MAX 256
#define REPLY_MAX 4096
#define CLIENT_TIMEOUT_MS 10000

/* One control client: a pipe and a timer that bounds how long it may take
 * to send its line. Freed when both handles have closed. */
struct lunet_control_client {
  uv_pipe_t pipe;
  uv_timer_t timer;
  uv_write_t write_req;
  struct lunet_control *ctl;
  int open_handles;
  size_t len;
  char request[REQUEST_MAX];
  char *reply; /* malloc'd: stats replies have no fixed size */
};

struct lunet_control {
  uv_pipe_t server;
  lunet_control_handler handler;
  void *ud;
  char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

int lunet_control_dir(char *out, size_t cap, int create) {
  const char *xdg = getenv("XDG_RUNTIME_DIR");
  int n = xdg && *xdg ? snprintf(out, cap, "%s/lunet", xdg)
                      : snprintf(out, cap, "/tmp/lunet-%u", (unsigned)getuid());
  if (n < 0 || (size_t)n >= cap) return -1;
  if (!create) return 0;
  if (mkdir(out, 0700) < 0 && errno != EEXIST) return -1;
  struct stat st;
  /* Refuse a directory someone else owns: it could redirect our reloads. */
  if (stat(out, &st) < 0 || st.st_uid != getuid() || (st.st_mode & 077))
    return -1;
  return 0;
}

/* {==================================================================
 * Server side, on the loop
 * =================================================================== */

static void client_handle_closed(uv_handle_t *h) {
  struct lunet_control_client *c = h->data;
  if (--c->open_handles > 0) return;
  free(c->reply);
  free(c);
}

static void client_close(struct lunet_control_client *c) {
  if (!uv_is_closing((uv_handle_t *)&c->pipe))
    uv_close((uv_handle_t *)&c->pipe, client_handle_closed);
  if (!uv_is_closing((uv_handle_t *)&c->timer))
    uv_close((uv_handle_t *)&c->timer, client_handle_closed);
}

static void client_written(uv_write_t *req, int status) {
  (void)status; /* the client may have gone; nothing more to tell it */
  client_close(req->data);
}

void lunet_control_reply(struct lunet_control_client *c, const char *status,
                         const char *detail) {
  size_t n = strlen(status) + strlen(detail) + 2;
  if ((c->reply = malloc(n + 1)) == NULL) return client_close(c);
  snprintf(c->reply, n + 1, "%s %s\n", status, detail);
  uv_buf_t buf = uv_buf_init(c->reply, (unsigned)n);
  uv_read_stop((uv_stream_t *)&c->pipe);
  uv_timer_stop(&c->timer);
  c->write_req.data = c;
  if (uv_write(&c->write_req, (uv_stream_t *)&c->pipe, &buf, 1,
               client_written) < 0)
    client_close(c);
}

void lunet_control_flatten(char *s) {
  for (; *s; s++)
    if (*s == '\n' || *s == '\r') *s = ' ';
}

static void client_reloaded(int status, const char *msg, void *ud) {
  char line[REPLY_MAX - 16];
  snprintf(line, sizeof line, "%s", msg);
  lunet_control_flatten(line);
  lunet_control_reply(ud, status == 0 ? "ok" : "error", line);
}

static void client_stats(struct lunet_control_client *c,
                         struct lunet_runtime *rt, int text) {
  lua_State *L = rt->L;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  if (text)
    lunet_metrics_text(L, rt, &b);
  else
    lunet_metrics_json(L, rt, &b);
  luaL_pushresult(&b);
  lunet_control_reply(c, "ok", lua_tostring(L, -1));
  lua_pop(L, 1);
}

void lunet_control_dispatch(struct lunet_control_client *c,
                            const char *request,
                            const struct lunet_control_commands *cmds,
                            void *ud) {
  char msg[128];
  if (strcmp(request, "reload") == 0) {
    cmds->reload(c, ud);
  } else if (strcmp(request, "stats") == 0 ||
             strcmp(request, "stats text") == 0) {
    cmds->stats(c, ud, strcmp(request, "stats text") == 0);
  } else if (strcmp(request, "ping") == 0) {
    cmds->ping(ud, msg, sizeof msg);
    lunet_control_reply(c, "ok", msg);
  } else {
    lunet_control_reply(c, "error", "unknown command (known: reload, stats, "
                        "stats text, ping)");
  }
}

int lunet_pidfile_write(const char *path) {
  FILE *f = fopen(path, "w");
  if (f == NULL) return -1;
  fprintf(f, "%ld\n", (long)getpid());
  return fclose(f);
}

static void runtime_reload(struct lunet_control_client *c, void *ud) {
  lunet_reload_async(ud, "control", client_reloaded, c);
}

static void runtime_stats(struct lunet_control_client *c, void *ud,
                          int text) {
  client_stats(c, ud, text);
}

static void runtime_ping(void *ud, char *out, size_t cap) {
  snprintf(out, cap, "pid=%ld version=%u", (long)getpid(),
           ((struct lunet_runtime *)ud)->version);
}

/* The commands of a single process (a supervisor has its own). */
static void runtime_command(struct lunet_control_client *c,
                            const char *request, void *ud) {
  static const struct lunet_control_commands cmds = {
      runtime_reload, runtime_stats, runtime_ping};
  lunet_control_dispatch(c, request, &cmds, ud);
}

static void client_command(struct lunet_control_client *c) {
  /* From here the client only waits for its reply: nothing else may
   * close it while a reload holds a pointer to it. */
  uv_read_stop((uv_stream_t *)&c->pipe);
  uv_timer_stop(&c->timer);
  c->ctl->handler(c, c->request, c->ctl->ud);
}

static void client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct lunet_control_client *c = h->data;
  (void)suggested;
  *buf = uv_buf_init(c->request + c->len,
                     (unsigned)(sizeof c->request - 1 - c->len));
}

static void client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct lunet_control_client *c = s->data;
  (void)buf;
  if (nread < 0) return client_close(c);
  c->len += (size_t)nread;
  c->request[c->len] = '\0';
  char *eol = strchr(c->request, '\n');
  if (eol != NULL) {
    *eol = '\0';
    return client_command(c);
  }
  if (c->len == sizeof c->request - 1)
    lunet_control_reply(c, "error", "request too long");
}

static void client_timeout(uv_timer_t *t) {
  lunet_log(LUNET_LOG_WARN, "control client timed out", NULL);
  client_close(t->data);
}

static void control_connection(uv_stream_t *server, int status) {
  struct lunet_control *ctl = server->data;
  struct lunet_control_client *c;
  if (status < 0 || (c = calloc(1, sizeof *c)) == NULL) return;
  c->ctl = ctl;
  c->open_handles = 2;
  uv_pipe_init(server->loop, &c->pipe, 0);
  uv_timer_init(server->loop, &c->timer);
  c->pipe.data = c->timer.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->pipe) < 0) return client_close(c);
  uv_timer_start(&c->timer, client_timeout, CLIENT_TIMEOUT_MS, 0);
  uv_read_start((uv_stream_t *)&c->pipe, client_alloc, client_read);
}

static int control_bind(uv_loop_t *loop, struct lunet_control *ctl,
                        const char *path) {
  char dir[PATH_MAX];
  if (path != NULL) {
    if (strlen(path) >= sizeof ctl->path) return UV_ENAMETOOLONG;
    strcpy(ctl->path, path);
  } else {
    if (lunet_control_dir(dir, sizeof dir, 1) < 0) return UV_EACCES;
    if (snprintf(ctl->path, sizeof ctl->path, "%s/%ld.sock", dir,
                 (long)getpid()) >= (int)sizeof ctl->path)
      return UV_ENAMETOOLONG;
  }
  unlink(ctl->path); /* a stale socket of a dead process with our pid */
  uv_pipe_init(loop, &ctl->server, 0);
  ctl->server.data = ctl;
  int r = uv_pipe_bind(&ctl->server, ctl->path);
  if (r == 0) r = uv_listen((uv_stream_t *)&ctl->server, 8,
                            control_connection);
  return r;
}

static void control_closed(uv_handle_t *h) {
  free(lunet_container_of(h, struct lunet_control, server));
}

int lunet_control_listen(uv_loop_t *loop, const char *path,
                         lunet_control_handler handler, void *ud,
                         struct lunet_control **out) {
  struct lunet_control *ctl = calloc(1, sizeof *ctl);
  if (ctl == NULL) return UV_ENOMEM;
  ctl->handler = handler;
  ctl->ud = ud;
  int r = control_bind(loop, ctl, path);
  if (r < 0) {
    lunet_log(LUNET_LOG_ERROR, "control socket failed", "path", ctl->path,
              "error", uv_strerror(r), NULL);
    if (ctl->server.loop != NULL) /* uv_pipe_init ran */
      uv_close((uv_handle_t *)&ctl->server, control_closed);
    else
      free(ctl);
    return r;
  }
  /* Reload requests must not keep a finished client script alive. */
  uv_unref((uv_handle_t *)&ctl->server);
  *out = ctl;
  lunet_log(LUNET_LOG_INFO, "control socket", "path", ctl->path, NULL);
  return 0;
}

void lunet_control_close(struct lunet_control *ctl) {
  unlink(ctl->path);
  uv_close((uv_handle_t *)&ctl->server, control_closed);
}

int lunet_control_start(struct lunet_runtime *rt, const char *path) {
  return lunet_control_listen(&rt->loop, path, runtime_command, rt,
                              &rt->control);
}

void lunet_control_stop(struct lunet_runtime *rt) {
  if (rt->control == NULL) return;
  lunet_control_close(rt->control);
  rt->control = NULL;
}

/* }================================================================== */

/* {==================================================================
 * Client side, for the `lunet reload` command (a process of its own)
 * =================================================================== */

static int set_timeouts(int fd, int timeout_ms) {
  struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
    return -errno;
  return 0;
}

static int read_reply(int fd, char *reply, size_t cap) {
  size_t len = 0;
  while (len + 1 < cap) {
    ssize_t n = read(fd, reply + len, cap - 1 - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    if (n == 0) break;
    len += (size_t)n;
  }
  reply[len] = '\0';
  if (len > 0 && reply[len - 1] == '\n') reply[len - 1] = '\0';
  return len > 0 ? 0 : -ECONNRESET;
}

int lunet_control_request(const char *path, const char *command,
                          char *reply, size_t cap, int timeout_ms) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  char line[REQUEST_MAX];
  int r, n = snprintf(line, sizeof line, "%s\n", command);
  if (strlen(path) >= sizeof addr.sun_path) return -ENAMETOOLONG;
  strcpy(addr.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  if ((r = set_timeouts(fd, timeout_ms)) == 0) {
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
        write(fd, line, (size_t)n) != n)
      r = -errno;
    else
      r = read_reply(fd, reply, cap);
  }
  close(fd);
  return r;
}

/* }================================================================== */
