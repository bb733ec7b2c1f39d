/* Each file is a chain open -> fstat -> read... -> close of uv_fs requests;
 * the batch completes when its last chain ends. */
#include "fsread.h"

#include <fcntl.h>
#include <stdlib.h>

struct batch {
  lunet_fsread_cb cb;
  void *ud;
  size_t max_size;
  int n;
  int pending;
  struct lunet_file *files;
  struct job *jobs;
};

struct job {
  uv_fs_t req;
  struct batch *batch;
  struct lunet_file *file;
  uv_file fd;
  size_t size;
};

static void batch_done(struct batch *b) {
  b->cb(b->files, b->n, b->ud);
  for (int i = 0; i < b->n; i++) free(b->files[i].data);
  free(b->files);
  free(b->jobs);
  free(b);
}

static void job_closed(uv_fs_t *req) {
  struct job *j = req->data;
  uv_fs_req_cleanup(req);
  if (--j->batch->pending == 0) batch_done(j->batch);
}

static void job_finish(struct job *j, int error) {
  uv_loop_t *loop = j->req.loop;
  if (error < 0) {
    j->file->error = error;
    free(j->file->data);
    j->file->data = NULL;
    j->file->len = 0;
  }
  if (j->fd < 0) {
    j->req.data = j;
    job_closed(&j->req);
    return;
  }
  uv_fs_close(loop, &j->req, j->fd, job_closed);
  j->req.data = j;
}

static void job_read(uv_fs_t *req);

static void job_read_more(struct job *j) {
  uv_buf_t buf = uv_buf_init(j->file->data + j->file->len,
                             (unsigned)(j->size - j->file->len));
  int r = uv_fs_read(j->req.loop, &j->req, j->fd, &buf, 1,
                     (int64_t)j->file->len, job_read);
  j->req.data = j;
  if (r < 0) job_finish(j, r);
}

static void job_read(uv_fs_t *req) {
  struct job *j = req->data;
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  if (n < 0) return job_finish(j, (int)n);
  j->file->len += (size_t)n;
  /* EOF before fstat's size: the file shrank while we read; take it. */
  if (n == 0 || j->file->len == j->size) return job_finish(j, 0);
  job_read_more(j);
}

static void job_stat(uv_fs_t *req) {
  struct job *j = req->data;
  int r = (int)req->result;
  size_t size = (size_t)req->statbuf.st_size;
  uv_fs_req_cleanup(req);
  if (r < 0) return job_finish(j, r);
  if (size > j->batch->max_size) return job_finish(j, UV_EFBIG);
  j->size = size;
  j->file->data = malloc(size + 1);
  if (j->file->data == NULL) return job_finish(j, UV_ENOMEM);
  if (size == 0) return job_finish(j, 0);
  job_read_more(j);
}

static void job_open(uv_fs_t *req) {
  struct job *j = req->data;
  int r = (int)req->result;
  uv_fs_req_cleanup(req);
  if (r < 0) return job_finish(j, r);
  j->fd = r;
  r = uv_fs_fstat(req->loop, &j->req, j->fd, job_stat);
  j->req.data = j;
  if (r < 0) job_finish(j, r);
}

int lunet_fsread_start(uv_loop_t *loop, const char *const *paths, int n,
                       size_t max_size, lunet_fsread_cb cb, void *ud) {
  if (n < 1) return UV_EINVAL; /* nothing to wait for: cb would be sync */
  struct batch *b = calloc(1, sizeof *b);
  if (b == NULL) return UV_ENOMEM;
  b->files = calloc((size_t)n + 1, sizeof *b->files);
  b->jobs = calloc((size_t)n + 1, sizeof *b->jobs);
  if (b->files == NULL || b->jobs == NULL) {
    free(b->files);
    free(b->jobs);
    free(b);
    return UV_ENOMEM;
  }
  b->cb = cb, b->ud = ud, b->max_size = max_size, b->n = n;
  b->pending = n + 1; /* held until every job started: no early finish */
  for (int i = 0; i < n; i++) {
    struct job *j = &b->jobs[i];
    j->batch = b, j->file = &b->files[i], j->fd = -1;
    b->files[i].path = paths[i];
    int r = uv_fs_open(loop, &j->req, paths[i], O_RDONLY | O_CLOEXEC, 0,
                       job_open);
    j->req.data = j;
    if (r < 0) job_finish(j, r);
  }
  if (--b->pending == 0) batch_done(b);
  return 0;
}
