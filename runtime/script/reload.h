/* Hot reload: load the script again as a new version and switch every
 * service to it by name, under live connections. */
#ifndef LUNET_RELOAD_H
#define LUNET_RELOAD_H

#include <stddef.h>
#include <lua.h>

struct lunet_runtime;

/* Loads, validates and binds everything the new version needs before
 * switching anything; on any failure the running version is untouched.
 * Writes a one-line outcome to msg ("version=3 ..." or the error with
 * file:line). Returns 0, -1, or 1 when the new version requires module
 * files the reload has not read yet (only while prefetched files are set;
 * nothing was changed or counted). `trigger` names who asked (for the log). */
int lunet_reload(struct lunet_runtime *rt, const char *trigger, char *msg,
                 size_t msgcap);

typedef void (*lunet_reload_cb)(int status, const char *msg, void *ud);

/* What the triggers call: reads the script and its known modules through
 * the thread pool, then runs lunet_reload on the loop and calls cb (may be
 * NULL) with its outcome, never from inside this call. Requests made while
 * one runs share the next reload. `trigger` must be a static string. */
void lunet_reload_async(struct lunet_runtime *rt, const char *trigger,
                        lunet_reload_cb cb, void *ud);

enum lunet_prefetch {
  LUNET_PREFETCH_NONE,    /* no reload is reading files: read it yourself */
  LUNET_PREFETCH_FOUND,   /* *src, *len: its contents */
  LUNET_PREFETCH_ABSENT,  /* it was looked for and is not there */
  LUNET_PREFETCH_UNKNOWN  /* not read: ask for it (lunet_modules_want) */
};

/* During a reload: what is known of the file at path. */
int lunet__reload_prefetch_lookup(lua_State *L, const char *path,
                                  const char **src, size_t *len);

/* During a reload: the prefetched contents of path, or NULL (read it
 * yourself). */
const char *lunet__reload_prefetched(lua_State *L, const char *path,
                                     size_t *len);

struct lunet_list;

/* Applies the --listen overrides to freshly loaded services (the first
 * load and every reload), so a reload keeps the addresses the command
 * line chose, and in a worker a port 0 its siblings already bound. 0, or
 * -1 with err set. */
int lunet__reload_apply_overrides(struct lunet_runtime *rt,
                                  struct lunet_list *services, char *err,
                                  size_t errcap);

/* Frees the requests still waiting (runtime teardown). */
void lunet__reload_free_waiting(struct lunet_runtime *rt);

#endif
