#include "channel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define HEADER_SIZE 5 /* length, then type */
#define READ_CHUNK 65536
#define KEEP_IDLE_INPUT (256u << 10) /* a larger buffer goes when empty */
#define DROP_LOG_INTERVAL_MS 1000

struct frame_write {
  uv_write_t req;
  char bytes[]; /* header and payload */
};

void lunet_channel_init(struct lunet_channel *ch, uv_loop_t *loop,
                        lunet_frame_cb on_frame, lunet_channel_end_cb on_end) {
  memset(ch, 0, sizeof *ch);
  uv_pipe_init(loop, &ch->pipe, 0);
  ch->pipe.data = ch;
  ch->on_frame = on_frame;
  ch->on_end = on_end;
}

int lunet_channel_open(struct lunet_channel *ch, int fd) {
  return uv_pipe_open(&ch->pipe, fd);
}

static void channel_closed(uv_handle_t *h) {
  struct lunet_channel *ch = h->data;
  free(ch->in);
  ch->in = NULL;
  ch->in_len = ch->in_cap = 0;
  if (ch->on_closed != NULL) ch->on_closed(ch);
}

void lunet_channel_close(struct lunet_channel *ch) {
  if (!uv_is_closing((uv_handle_t *)&ch->pipe))
    uv_close((uv_handle_t *)&ch->pipe, channel_closed);
}

static void channel_end(struct lunet_channel *ch, int error) {
  if (ch->ended) return;
  ch->ended = 1;
  uv_read_stop((uv_stream_t *)&ch->pipe);
  if (ch->on_end != NULL) ch->on_end(ch, error);
}

static void channel_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct lunet_channel *ch = h->data;
  (void)suggested;
  if (ch->in_cap - ch->in_len < READ_CHUNK) {
    size_t cap = ch->in_len + READ_CHUNK;
    char *in = realloc(ch->in, cap);
    if (in == NULL) {
      *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
      return;
    }
    ch->in = in, ch->in_cap = cap;
  }
  *buf = uv_buf_init(ch->in + ch->in_len, (unsigned)(ch->in_cap - ch->in_len));
}

static uint32_t get_u32(const char *p) {
  const unsigned char *u = (const unsigned char *)p;
  return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 |
         u[3];
}

/* Hands every whole frame in the input to on_frame; keeps the rest. */
static void channel_parse(struct lunet_channel *ch) {
  size_t off = 0;
  while (!ch->ended && ch->in_len - off >= HEADER_SIZE) {
    uint32_t len = get_u32(ch->in + off);
    if (len < 1 || len > LUNET_CHANNEL_FRAME_MAX + 1)
      return channel_end(ch, UV_EPROTO);
    if (ch->in_len - off < 4 + (size_t)len) break;
    ch->on_frame(ch, (unsigned char)ch->in[off + 4], ch->in + off + 5, len - 1);
    off += 4 + (size_t)len;
  }
  memmove(ch->in, ch->in + off, ch->in_len - off);
  ch->in_len -= off;
  if (ch->in_len == 0 && ch->in_cap > KEEP_IDLE_INPUT) {
    free(ch->in); /* one large frame must not pin its buffer for good */
    ch->in = NULL;
    ch->in_cap = 0;
  }
}

static void channel_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct lunet_channel *ch = s->data;
  (void)buf;
  if (nread < 0) return channel_end(ch, (int)nread);
  ch->in_len += (size_t)nread;
  channel_parse(ch);
}

int lunet_channel_start(struct lunet_channel *ch) {
  return uv_read_start((uv_stream_t *)&ch->pipe, channel_alloc, channel_read);
}

void lunet_channel_note_drop(struct lunet_channel *ch, const char *what,
                             const char *peer, int error) {
  uint64_t now = uv_now(ch->pipe.loop);
  char count[24];
  ch->drops++;
  if (ch->drop_logged_ms != 0 &&
      now - ch->drop_logged_ms < DROP_LOG_INTERVAL_MS)
    return;
  snprintf(count, sizeof count, "%llu", (unsigned long long)ch->drops);
  lunet_log(LUNET_LOG_WARN, "channel send refused", "what", what, "to", peer,
            "count", count, "error", uv_strerror(error), NULL);
  ch->drops = 0;
  ch->drop_logged_ms = now;
}

static void frame_written(uv_write_t *req, int status) {
  (void)status; /* a failed write also shows as EOF or an error on read */
  free(req->data);
}

static void put_u32(char *p, uint32_t v) {
  p[0] = (char)(v >> 24), p[1] = (char)(v >> 16), p[2] = (char)(v >> 8);
  p[3] = (char)v;
}

int lunet_channel_send(struct lunet_channel *ch, int type, const char *a,
                       size_t alen, const char *b, size_t blen) {
  size_t len = alen + blen;
  if (ch->ended || uv_is_closing((uv_handle_t *)&ch->pipe)) return UV_EPIPE;
  if (len > LUNET_CHANNEL_FRAME_MAX ||
      uv_stream_get_write_queue_size((uv_stream_t *)&ch->pipe) + len >
          LUNET_CHANNEL_QUEUE_MAX)
    return UV_ENOBUFS;
  struct frame_write *w = malloc(sizeof *w + HEADER_SIZE + len);
  if (w == NULL) return UV_ENOMEM;
  put_u32(w->bytes, (uint32_t)len + 1);
  w->bytes[4] = (char)type;
  if (alen > 0) memcpy(w->bytes + HEADER_SIZE, a, alen);
  if (blen > 0) memcpy(w->bytes + HEADER_SIZE + alen, b, blen);
  w->req.data = w;
  uv_buf_t buf = uv_buf_init(w->bytes, (unsigned)(HEADER_SIZE + len));
  int r = uv_write(&w->req, (uv_stream_t *)&ch->pipe, &buf, 1, frame_written);
  if (r < 0) free(w);
  return r;
}
