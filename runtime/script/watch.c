#include "watch.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <uv.h>

#include "log.h"
#include "modules.h"
#include "reload.h"
#include "loop.h"

#define DEBOUNCE_MS 100
#define WATCH_MAX 64 /* files followed at most */

struct watch_dir {
  uv_fs_event_t handle;
  struct lunet_watch *w;
};

struct lunet_watch {
  struct lunet_runtime *rt;
  uv_timer_t debounce; /* one save (several fs events) = one reload */
  int open_handles;    /* freed when the last one has closed */
  int stopping;
  int nfiles;
  char files[WATCH_MAX][PATH_MAX];
  int ndirs;
  struct watch_dir *dirs[WATCH_MAX];
};

static void handle_closed(uv_handle_t *h) {
  struct lunet_watch *w;
  if (h->type == UV_FS_EVENT) {
    struct watch_dir *d = h->data;
    w = d->w;
    free(d);
  } else {
    w = h->data;
  }
  if (--w->open_handles == 0) free(w);
}

static int is_watched(struct lunet_watch *w, const char *path) {
  for (int i = 0; i < w->nfiles; i++)
    if (strcmp(w->files[i], path) == 0) return 1;
  return 0;
}

static void fs_event_cb(uv_fs_event_t *h, const char *name, int events,
                        int status) {
  struct watch_dir *d = h->data;
  char dir[PATH_MAX], path[PATH_MAX];
  size_t len = sizeof dir;
  (void)events;
  if (status < 0 || d->w->stopping) return;
  if (name != NULL && uv_fs_event_getpath(h, dir, &len) == 0 &&
      (size_t)snprintf(path, sizeof path, "%s/%s", dir, name) < sizeof path &&
      !is_watched(d->w, path))
    return;
  uv_timer_again(&d->w->debounce);
}

static void add_file(struct lunet_watch *w, const char *path) {
  char real[PATH_MAX];
  if (w->nfiles == WATCH_MAX || realpath(path, real) == NULL) return;
  if (!is_watched(w, real)) strcpy(w->files[w->nfiles++], real);
}

/* The script plus the local modules the current version required. */
static void collect_files(struct lunet_watch *w) {
  lua_State *L = w->rt->L;
  w->nfiles = 0;
  add_file(w, w->rt->script_path);
  lunet_modules_push_files(L);
  for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TSTRING; i++) {
    add_file(w, lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
}

static int has_dir(struct lunet_watch *w, const char *dir) {
  char have[PATH_MAX];
  for (int i = 0; i < w->ndirs; i++) {
    size_t len = sizeof have;
    if (uv_fs_event_getpath(&w->dirs[i]->handle, have, &len) == 0 &&
        strcmp(have, dir) == 0)
      return 1;
  }
  return 0;
}

static void watch_dir(struct lunet_watch *w, const char *dir) {
  struct watch_dir *d;
  int r;
  if (w->ndirs == WATCH_MAX || has_dir(w, dir)) return;
  if ((d = calloc(1, sizeof *d)) == NULL) return;
  d->w = w;
  uv_fs_event_init(&w->rt->loop, &d->handle);
  d->handle.data = d;
  w->open_handles++;
  if ((r = uv_fs_event_start(&d->handle, fs_event_cb, dir, 0)) < 0) {
    lunet_log(LUNET_LOG_WARN, "cannot watch", "dir", dir, "error",
              uv_strerror(r), NULL);
    uv_close((uv_handle_t *)&d->handle, handle_closed);
    return;
  }
  uv_unref((uv_handle_t *)&d->handle);
  w->dirs[w->ndirs++] = d;
}

static void close_dirs(struct lunet_watch *w) {
  for (int i = 0; i < w->ndirs; i++)
    uv_close((uv_handle_t *)&w->dirs[i]->handle, handle_closed);
  w->ndirs = 0;
}

/* Re-armed after every reload: the new version may require other files. */
static void arm(struct lunet_watch *w) {
  char dir[PATH_MAX];
  close_dirs(w);
  collect_files(w);
  for (int i = 0; i < w->nfiles; i++) {
    strcpy(dir, w->files[i]);
    watch_dir(w, dirname(dir));
  }
}

/* A pending reload holds the watch like a handle does. */
static void reloaded_cb(int status, const char *msg, void *ud) {
  struct lunet_watch *w = ud;
  (void)status, (void)msg; /* lunet_reload logged either outcome */
  if (!w->stopping) arm(w);
  if (--w->open_handles == 0) free(w);
}

static void debounce_cb(uv_timer_t *t) {
  struct lunet_watch *w = t->data;
  uv_timer_stop(t);
  w->open_handles++;
  lunet_reload_async(w->rt, "watch", reloaded_cb, w);
}

int lunet_watch_start(struct lunet_runtime *rt) {
  struct lunet_watch *w = calloc(1, sizeof *w);
  if (w == NULL) return UV_ENOMEM;
  w->rt = rt;
  uv_timer_init(&rt->loop, &w->debounce);
  w->debounce.data = w;
  w->open_handles = 1;
  /* uv_timer_again restarts the countdown on every event. */
  uv_timer_start(&w->debounce, debounce_cb, DEBOUNCE_MS, DEBOUNCE_MS);
  uv_timer_stop(&w->debounce);
  uv_unref((uv_handle_t *)&w->debounce);
  rt->watch = w;
  arm(w);
  char count[16];
  snprintf(count, sizeof count, "%d", w->nfiles);
  lunet_log(LUNET_LOG_INFO, "watching", "files", count, "script",
            rt->script_path, NULL);
  return 0;
}

void lunet_watch_stop(struct lunet_runtime *rt) {
  struct lunet_watch *w = rt->watch;
  if (w == NULL) return;
  w->stopping = 1;
  close_dirs(w);
  uv_close((uv_handle_t *)&w->debounce, handle_closed);
  rt->watch = NULL;
}
