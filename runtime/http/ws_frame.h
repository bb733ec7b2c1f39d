/* RFC 6455 framing: a parser that turns the bytes of one side of a
 * WebSocket into whole messages and control frames, and the helpers that
 * build frames. No I/O and no Lua: the protocol (ws.c) and the client use
 * it, and so do the unit tests and the fuzzer.
 *
 * The parser unmasks payloads in place, in the caller's buffer, so a
 * message that arrives in one read is handed on without a copy; a
 * fragmented message, or one split across reads, is reassembled in the
 * parser's own buffer, bounded by max_message. Text is checked as UTF-8
 * as its bytes arrive (a bad byte fails the connection at once, not when
 * the message ends).
 *
 * A compressed message (RSV1, permessage-deflate) is NOT checked as
 * UTF-8 here: its bytes are deflate data. The inflater checks the text
 * after decompression (lunet_utf8_scan, 1007), and must bound the
 * inflated size itself: max_message bounds the compressed bytes only. */
#ifndef LUNET_WS_FRAME_H
#define LUNET_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

enum lunet_ws_opcode {
  LUNET_WS_CONT = 0x0,
  LUNET_WS_TEXT = 0x1,
  LUNET_WS_BINARY = 0x2,
  LUNET_WS_CLOSE = 0x8,
  LUNET_WS_PING = 0x9,
  LUNET_WS_PONG = 0xA
};

#define LUNET_WS_FIN 0x80
#define LUNET_WS_RSV1 0x40 /* permessage-deflate: the message is compressed */

/* Which side parses: a server requires masked frames, a client refuses
 * them (RFC 6455 5.1). */
enum lunet_ws_role { LUNET_WS_SERVER, LUNET_WS_CLIENT };

enum lunet_ws_event_kind {
  LUNET_WS_EV_NONE,    /* everything given was consumed; need more bytes */
  LUNET_WS_EV_MESSAGE, /* a whole text or binary message */
  LUNET_WS_EV_PING,
  LUNET_WS_EV_PONG,
  LUNET_WS_EV_CLOSE,   /* the peer's close frame (code 1005 when empty) */
  LUNET_WS_EV_ERROR    /* protocol error: close with code, reason */
};

struct lunet_ws_event {
  enum lunet_ws_event_kind kind;
  int opcode;        /* MESSAGE: LUNET_WS_TEXT or LUNET_WS_BINARY */
  int compressed;    /* MESSAGE: its first frame had RSV1 (deflate) */
  uint16_t code;     /* CLOSE: the peer's code; ERROR: the code to send */
  const char *data;  /* payload (CLOSE: the reason; ERROR: a static text) */
  size_t len;        /* valid until the next call to lunet_ws_parse */
};

struct lunet_ws_parser {
  /* settings */
  size_t max_message;    /* over it: ERROR 1009, before it is buffered */
  unsigned char role;    /* enum lunet_ws_role */
  unsigned char deflate; /* RSV1 allowed on a message's first frame */
  /* the frame being read */
  unsigned char head[14];
  unsigned char head_len;
  unsigned char fin, opcode, rsv1, masked;
  unsigned char mask[4];
  uint64_t payload_len;  /* of the current frame */
  uint64_t payload_done; /* of it, consumed so far */
  unsigned mask_pos;     /* mask offset of the next payload byte */
  /* the message being reassembled across frames */
  unsigned char msg_opcode; /* 0: none in progress */
  unsigned char msg_compressed;
  uint32_t utf8_state;  /* incremental UTF-8 check of a text message */
  char *msg;
  size_t msg_len, msg_cap;
  /* a control frame split across reads (at most 125 bytes) */
  char ctl[125];
  size_t ctl_len;
  unsigned char failed; /* an ERROR was returned: nothing more parses
                         * (head[0] then keeps which error, so later
                         * calls repeat its code) */
};

void lunet_ws_parser_init(struct lunet_ws_parser *p, enum lunet_ws_role role,
                          size_t max_message, int deflate);

/* Frees what the parser holds. */
void lunet_ws_parser_free(struct lunet_ws_parser *p);

/* Parses buf[0..len) (writable: payloads are unmasked in place) and
 * returns how many bytes it consumed, stopping after the first event;
 * *ev says what it was. Call again with the rest until it returns
 * LUNET_WS_EV_NONE, which means all of buf was consumed (partial frames
 * are kept inside the parser, so the caller never keeps bytes). After
 * ERROR it consumes nothing more. ev->data may point into buf or into
 * the parser, and is valid until the next call. */
size_t lunet_ws_parse(struct lunet_ws_parser *p, char *buf, size_t len,
                      struct lunet_ws_event *ev);

/* Bytes the parser holds (a partial message or control frame), for
 * the memory metrics: the message buffer's allocated size (kept between
 * messages up to 16 KiB, a bigger one given back at the next call) plus
 * a partial control frame. */
size_t lunet_ws_parser_held(const struct lunet_ws_parser *p);

/* 1 while a fragmented message is between its frames. */
int lunet_ws_parser_mid_message(const struct lunet_ws_parser *p);

/* Writes the head of a frame (2 to 14 bytes) into out and returns its
 * length. op may include LUNET_WS_RSV1. A non-NULL mask (a client) adds
 * the 4-byte key; the caller masks the payload (lunet_ws_mask). */
size_t lunet_ws_frame_head(unsigned char out[14], int op, int fin,
                           uint64_t len, const unsigned char *mask);

/* XORs p[0..n) with mask, starting at mask offset pos. */
void lunet_ws_mask(char *p, size_t n, const unsigned char mask[4],
                   unsigned pos);

/* Copies src to dst masked, from mask offset 0 (dst and src may not
 * overlap). A payload masked in several pieces uses lunet_ws_mask on
 * each, with pos the length masked so far. */
void lunet_ws_mask_copy(char *dst, const char *src, size_t n,
                        const unsigned char mask[4]);

/* The payload of a close frame: 2-byte code then reason (cut to 123
 * bytes at a UTF-8 boundary) into out[125]; returns its length. */
size_t lunet_ws_close_payload(char out[125], uint16_t code,
                              const char *reason, size_t reason_len);

/* 1 if a peer may send code in a close frame (RFC 6455 7.4): 1000-1003,
 * 1007-1014, 3000-4999; 1004-1006, 1015 and the rest refused. */
int lunet_ws_close_code_valid(unsigned code);

/* Incremental UTF-8 check (Hoehrmann-style DFA over 9 states): feeds
 * p[0..n) from *state (0 at a message's start), returns 0 as soon as a
 * byte cannot be valid, else 1; a message is complete and valid only
 * when *state is back to 0 at its end. */
int lunet_utf8_scan(uint32_t *state, const char *p, size_t n);

/* 1 if p[0..n) is complete, valid UTF-8. */
int lunet_utf8_valid(const char *p, size_t n);

#endif
