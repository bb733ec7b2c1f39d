/* The one way C calls into Lua: protected, with a traceback, logged with the
 * context of the event that made the call. */
#ifndef LUNET_CALL_H
#define LUNET_CALL_H

#include <stdint.h>
#include <sys/socket.h>
#include <lua.h>

struct lunet_metrics;

struct lunet_call_ctx {
  const char *service; /* may be NULL */
  const char *handler; /* "on_data", "timer", ... */
  uint64_t conn_id;    /* 0: no connection */
  const struct sockaddr *peer; /* may be NULL; formatted only on error */
  struct lunet_metrics *metrics; /* may be NULL: errors counted here */
};

/* Calls the function below nargs arguments; pops function and arguments.
 * On error logs "handler error" with ctx and the traceback and returns the
 * status; the caller decides what the error costs. */
int lunet_call(lua_State *L, int nargs, const struct lunet_call_ctx *ctx);

/* The same for a caller that pushed lunet_traceback at `base`, then the
 * function and its nargs arguments: no stack rotation (hot paths). */
int lunet_call_prepared(lua_State *L, int base, int nargs,
                        const struct lunet_call_ctx *ctx);

/* The context of the handler call running now (NULL outside one), so log
 * records made by a handler carry its service, conn and peer. */
const struct lunet_call_ctx *lunet_call_current(void);

/* The message handler lunet_call uses: message plus traceback. */
int lunet_traceback(lua_State *L);

#endif
