/* Message framing for tcp services: splitting a byte stream into lines
 * (LF or CRLF) or length-prefixed messages (4-byte big-endian length), in
 * C and against a size limit, so Lua sees one call per whole message. */
#ifndef LUNET_FRAMING_H
#define LUNET_FRAMING_H

#include <stddef.h>

enum lunet_framing { LUNET_FRAMING_NONE, LUNET_FRAMING_LINE,
                     LUNET_FRAMING_LENGTH,
                     LUNET_FRAMING_HTTP /* http services: see http.h */ };

enum lunet_frame_result {
  LUNET_FRAME_MORE = 0,      /* no whole message yet */
  LUNET_FRAME_OK = 1,        /* *msg, *msglen, *used set */
  LUNET_FRAME_TOO_BIG = -1,  /* the message exceeds max: close the conn */
  LUNET_FRAME_TRUNCATED = -2 /* at EOF: a message was cut short */
};

/* Looks for the first whole message in buf[0..len). A line excludes its
 * "\n" or "\r\n"; *used counts the bytes to drop, terminator or prefix
 * included. max bounds the message (line without terminator, payload
 * without prefix). A line is judged too big as soon as max + 2 bytes
 * arrived without a newline, so nothing waits for an unbounded line. */
int lunet_frame_next(enum lunet_framing framing, const char *buf, size_t len,
                     size_t max, const char **msg, size_t *msglen,
                     size_t *used);

/* The stream ended with buf[0..len) left over, which holds no whole
 * message (lunet_frame_next said MORE). Nothing left: LUNET_FRAME_MORE.
 * A line needs no terminator at the end of the stream: the rest is the
 * last line (a trailing "\r" dropped), LUNET_FRAME_OK with *msg and
 * *msglen, or LUNET_FRAME_TOO_BIG past max. A length-prefixed message
 * cannot be completed: LUNET_FRAME_TRUNCATED, with *expected the bytes
 * the cut message needed (4 while its prefix is incomplete, else prefix
 * and payload); its bytes are never delivered. */
int lunet_frame_eof(enum lunet_framing framing, const char *buf, size_t len,
                    size_t max, const char **msg, size_t *msglen,
                    size_t *expected);

/* Parses "line" / "length"; returns -1 for anything else. */
int lunet_framing_parse(const char *name);

#endif
