/* permessage-deflate (RFC 7692) for WebSocket: the negotiation of both
 * sides, and the compression and decompression of whole messages. No I/O
 * and no Lua; zlib stays inside ws_deflate.c.
 *
 * Memory is the design. Both sides always agree on no context takeover
 * (server_no_context_takeover and client_no_context_takeover), so no
 * LZ77 window has to survive from one message to the next. Then the zlib
 * streams need not belong to a connection: one loop keeps one shared
 * inflate stream and one shared deflate stream (a struct lunet_ws_zctx)
 * and resets them per message. Each call below handles one whole message
 * from start to end, so messages of different connections on the same
 * loop never interleave inside a stream. A compressed WebSocket that is
 * idle costs sizeof(struct lunet_ws_deflate) = 16 bytes on x86-64, not
 * the ~300 KiB of zlib state a stream pair per connection would (10,000
 * idle connections: 160 KB instead of 3 GB).
 *
 * There is deliberately no option for context takeover: it would bring
 * the per-connection streams back. A peer that uses it anyway, against
 * the answer, refers to bytes the reset stream no longer has and its
 * message fails as corrupt (1007): it costs the peer its connection, not
 * our memory.
 *
 * Measured memory of a zctx (zlib 1.2.13, x86-64, counted through its
 * allocator; lunet_ws_zctx_bytes reports it live):
 *   - the inflate stream: 7,160 bytes after init, 39,928 once used (zlib
 *     adds the 32 KiB window at the first message); it always runs with
 *     windowBits 15, which decodes a stream made with any smaller window.
 *   - a deflate stream, memLevel 8: 268,096 bytes at windowBits 15,
 *     139,072 at 9. A stream is made per window size at first use, so a
 *     loop whose peers all take the default has exactly one; the worst
 *     case (peers asking for every size 8..15) is seven, 1.2 MB per loop,
 *     still nothing per connection.
 *   - the zctx struct itself: 912 bytes (eight z_stream structs).
 *   memLevel 8 (zlib's default) is kept: a lower one saves up to 130 KB
 *   once per loop, but was slower on text (memLevel 5: 89 MB/s against
 *   101 at level 1 on a 35 KB licence text) for the same ratio.
 *
 * Level 1: the loop is single-threaded and a big message is compressed
 * in one call, so speed bounds the stall. On that licence text level 1
 * ran at 101 MB/s for a ratio of 0.40, level 6 at 31 MB/s for 0.34; on
 * 240 KB of JSON 308 MB/s (0.11) against 100 MB/s (0.077). */
#ifndef LUNET_WS_DEFLATE_H
#define LUNET_WS_DEFLATE_H

#include <stddef.h>

#include "ws_frame.h"

#define LUNET_WS_DEFLATE_LEVEL 1

/* Messages shorter than this go out uncompressed (RSV1 clear): measured
 * with level 1, deflate only breaks even at about 40 bytes of JSON and 28
 * of English, and at 64 saves 5 bytes of JSON (8%) and 28 of English,
 * while zlib's fixed cost per message (reset, block, flush) is about
 * 3.5 us to deflate a 140-byte JSON message and 1.4 us to inflate it. */
#define LUNET_WS_DEFLATE_MIN 64

/* The longest answer lunet_ws_deflate_negotiate writes, with its NUL. */
#define LUNET_WS_DEFLATE_ANSWER_MAX 128

/* What was agreed. Window sizes are in bits, 8..15 (15 when the offer or
 * answer named none): server_max_window_bits bounds the window the
 * server compresses with, client_max_window_bits the client's. */
struct lunet_ws_deflate_params {
  unsigned char server_no_context_takeover;
  unsigned char client_no_context_takeover;
  unsigned char server_max_window_bits;
  unsigned char client_max_window_bits;
};

/* {==================================================================
 * Negotiation (RFC 7692 section 7.1)
 * =================================================================== */

/* The server's side. offer[0..len) is the client's Sec-WebSocket-
 * Extensions value (several headers joined with ", "): a list of offers,
 * each an extension name and ;-separated params. The first acceptable
 * permessage-deflate offer wins: *out gets its params and answer the
 * value of our Sec-WebSocket-Extensions response header (NUL-terminated):
 *   permessage-deflate; server_no_context_takeover;
 *   client_no_context_takeover[; server_max_window_bits=N]
 * N is echoed when the client asked for it. A server may always add both
 * no_context_takeover params and the client must then obey (7.1.1), so we
 * do, whatever the offer said. client_max_window_bits is never answered:
 * our inflate decodes any window.
 *
 * An offer with an unknown param, a param twice, or a bad value
 * (server_max_window_bits bare or outside 8..15 or with a leading zero,
 * client_max_window_bits outside 8..15, a value on a no_context_takeover
 * param) is declined and the next offer is tried (section 5: a bad offer
 * is declined, it does not fail the handshake). Values may be quoted.
 *
 * Returns 1 accepted; 0 no permessage-deflate offer; -1 the header or
 * every permessage-deflate offer in it was malformed. With 0 and -1 the
 * answer is "" and the caller goes on without compression (-1 is only
 * worth a log line). answer_cap below LUNET_WS_DEFLATE_ANSWER_MAX
 * declines (0). *out is meaningful only after 1. */
int lunet_ws_deflate_negotiate(const char *offer, size_t len,
                               struct lunet_ws_deflate_params *out,
                               char *answer, size_t answer_cap);

/* The client's side: the Sec-WebSocket-Extensions value our client sends
 * (NUL-terminated; cap at least LUNET_WS_DEFLATE_ANSWER_MAX):
 *   permessage-deflate; client_max_window_bits;
 *   server_no_context_takeover; client_no_context_takeover
 * Returns its length, or 0 when cap is too small. */
size_t lunet_ws_deflate_offer(char *out, size_t cap);

/* The client checks the server's Sec-WebSocket-Extensions answer to that
 * offer: 1 ok (*out filled; meaningful only then), 0 resp is empty (no
 * compression), -1 fail the connection (RFC 6455 4.1): anything but one
 * permessage-deflate element, an unknown or repeated param, a bad value, a bare
 * client_max_window_bits, or no server_no_context_takeover (the server
 * would keep its window, which our shared inflate cannot follow). */
int lunet_ws_deflate_accept_response(const char *resp, size_t len,
                                     struct lunet_ws_deflate_params *out);

/* }==================================================================
 * Shared streams and per-connection state
 * =================================================================== */

/* One per loop (not thread-safe); owns the zlib streams, made lazily at
 * first use, so a loop without compressed messages costs the 912-byte
 * struct. NULL when out of memory. */
struct lunet_ws_zctx *lunet_ws_zctx_new(void);
void lunet_ws_zctx_free(struct lunet_ws_zctx *z);

/* Bytes zlib holds for z now, for the memory metrics. */
size_t lunet_ws_zctx_bytes(const struct lunet_ws_zctx *z);

/* A connection's compression: what was agreed and which shared streams
 * to use. No zlib state; nothing to free. */
struct lunet_ws_deflate {
  struct lunet_ws_zctx *z;
  struct lunet_ws_deflate_params params;
  unsigned char deflate_bits; /* our compression window, 9..15 */
};

/* role says which window we compress with: the server's for a server,
 * the client's for a client. A window of 8 bits is compressed with 9:
 * zlib refuses 8 for raw deflate, and with a 512-byte window its matches
 * reach back at most 512 - 262 = 250 bytes (zlib keeps MIN_LOOKAHEAD
 * clear), so the stream still fits the peer's 256-byte window. */
void lunet_ws_deflate_init(struct lunet_ws_deflate *d, struct lunet_ws_zctx *z,
                           const struct lunet_ws_deflate_params *params,
                           enum lunet_ws_role role);

/* A growable byte buffer for the results. Start it zeroed; each call
 * below replaces its contents and keeps its storage for the next, so one
 * per loop serves every connection (copy the message out before the
 * next call). It keeps the size of the largest message: free it after
 * one far above the usual to give the memory back. */
struct lunet_ws_buf {
  char *p;
  size_t len, cap;
};

void lunet_ws_buf_free(struct lunet_ws_buf *b);

/* {==================================================================
 * Messages
 * =================================================================== */

/* 1 if a message of len bytes is worth compressing. */
int lunet_ws_deflate_worth(size_t len);

/* Decompresses the payload of one whole message into out (RSV1 was set
 * on its first frame; the frames' payloads joined, so the parser's
 * max_message bounds it compressed and max bounds it inflated), as if
 * 00 00 ff ff followed it (RFC 7692 7.2.2), without touching in.
 * out never grows past max bytes: a message that would inflate to more
 * stops there, so a zip bomb costs at most max. When is_text, the result
 * must be UTF-8. An empty payload is taken as the empty message.
 * Returns 0, or the close code to fail the connection with:
 *   1009 the message inflates to more than max bytes;
 *   1007 the data is not valid deflate (corrupt, truncated, or it refers
 *        to an earlier message), or a text message is not UTF-8. RFC 7692
 *        8 only says to fail the connection; 1007 "inconsistent data" fits
 *        and is what node's ws sends, 1002 being for framing errors;
 *   1011 out of memory. */
int lunet_ws_inflate(struct lunet_ws_deflate *d, const char *in, size_t len,
                     size_t max, int is_text, struct lunet_ws_buf *out);

/* Compresses one whole message into out: raw deflate ending in a sync
 * flush whose 00 00 ff ff is removed (RFC 7692 7.2.1), ready to send as
 * the payload with RSV1 set. Incompressible data comes out a few bytes
 * longer than len: a caller may then send the original uncompressed.
 * Returns 0, or 1011 out of memory. */
int lunet_ws_deflate(struct lunet_ws_deflate *d, const char *in, size_t len,
                     struct lunet_ws_buf *out);

/* }================================================================== */

#endif
