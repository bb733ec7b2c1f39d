/* A channel: framed messages over a pipe between the supervisor and one
 * worker. A frame is a 4-byte big-endian length of what follows, a type
 * byte, then the payload. Both ends bound what they buffer: a frame over
 * LUNET_CHANNEL_FRAME_MAX closes the channel, and a send that would queue
 * more than LUNET_CHANNEL_QUEUE_MAX unsent bytes is refused. */
#ifndef LUNET_CHANNEL_H
#define LUNET_CHANNEL_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define LUNET_CHANNEL_FRAME_MAX (4u << 20)
#define LUNET_CHANNEL_QUEUE_MAX (64u << 20)

/* Frame types. Worker to supervisor: lower case; the other way: upper. */
enum lunet_frame {
  LUNET_FRAME_LISTENING = 'l',    /* "NAME PROTO ADDR" of a new listener */
  LUNET_FRAME_READY = 'r',        /* serving; "" */
  LUNET_FRAME_PUBLISH = 'p',      /* "TOPIC\0MSG", to the other workers */
  LUNET_FRAME_RELOADED = 'h',     /* "ID ok|error OUTCOME" */
  LUNET_FRAME_STATS = 's',        /* "ID BODY" */
  LUNET_FRAME_METRICS_ADDR = 'm', /* the script's `metrics = ADDR` */
  LUNET_FRAME_HEARTBEAT = 'b',    /* "", from the loop, once a second */
  LUNET_FRAME_DELIVER = 'P',      /* "TOPIC\0MSG" published by another worker */
  LUNET_FRAME_RELOAD = 'H',       /* "ID" */
  LUNET_FRAME_TICKET_KEYS = 'K',  /* TLS ticket keys: current, previous */
  LUNET_FRAME_STATS_ASK = 'S'     /* "ID json|text|prometheus" */
};

struct lunet_channel;
typedef void (*lunet_frame_cb)(struct lunet_channel *ch, int type,
                               const char *payload, size_t len);
/* The channel ended: `error` is UV_EOF or UV_ECONNRESET when the other
 * end closed it (a reset: it closed with frames unread), UV_EPROTO for a
 * bad frame, or another read error. */
typedef void (*lunet_channel_end_cb)(struct lunet_channel *ch, int error);

struct lunet_channel {
  uv_pipe_t pipe;
  lunet_frame_cb on_frame;
  lunet_channel_end_cb on_end;
  void (*on_closed)(struct lunet_channel *ch); /* after uv_close; may free */
  void *data;
  char *in; /* unparsed input */
  size_t in_len, in_cap;
  int ended;
  uint64_t drops; /* sends refused since the last log record */
  uint64_t drop_logged_ms;
};

/* Prepares ch->pipe on loop (for uv_spawn to fill, or for _open). */
void lunet_channel_init(struct lunet_channel *ch, uv_loop_t *loop,
                        lunet_frame_cb on_frame, lunet_channel_end_cb on_end);

/* Worker side: the channel is an inherited descriptor. 0 or UV error. */
int lunet_channel_open(struct lunet_channel *ch, int fd);

/* Starts delivering frames. 0 or UV error. */
int lunet_channel_start(struct lunet_channel *ch);

/* Sends one frame whose payload is a then b (b may be NULL). 0, or
 * UV_ENOBUFS (queue full or frame too big), or another UV error. */
int lunet_channel_send(struct lunet_channel *ch, int type, const char *a,
                       size_t alen, const char *b, size_t blen);

/* Counts a send that failed with `error` and logs it, at most once a
 * second per channel with the count (a stuck peer must not flood the log).
 * `what` and `peer` say what was lost and to whom. */
void lunet_channel_note_drop(struct lunet_channel *ch, const char *what,
                             const char *peer, int error);

/* Closes the pipe; on_closed runs once it has. Idempotent. */
void lunet_channel_close(struct lunet_channel *ch);

#endif
