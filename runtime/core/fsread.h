/* Reading whole files through libuv's thread pool, so the loop thread
 * never blocks on a disk (used to read a script before a reload). */
#ifndef LUNET_FSREAD_H
#define LUNET_FSREAD_H

#include <stddef.h>
#include <uv.h>

struct lunet_file {
  const char *path; /* as given to lunet_fsread_start, owned by caller */
  char *data;       /* malloc'd contents, NULL on error */
  size_t len;
  int error;        /* 0 or a UV error */
};

/* Called once, from the loop, when every file is read or failed; the
 * array and the data are freed right after the callback returns. */
typedef void (*lunet_fsread_cb)(struct lunet_file *files, int n, void *ud);

/* Starts reading n >= 1 files of at most max_size bytes each. Returns 0
 * (cb will run) or UV_EINVAL / UV_ENOMEM (it will not). */
int lunet_fsread_start(uv_loop_t *loop, const char *const *paths, int n,
                       size_t max_size, lunet_fsread_cb cb, void *ud);

#endif
