/* channel: frames cross a socketpair whole and in order whatever their
 * size (1 byte to 2 MiB, arriving in many reads), a bad length ends the
 * channel, oversize sends are refused, and the loop closes clean. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#include "channel.h"
#include "check.h"

#define FRAMES 6

static const size_t sizes[FRAMES] = {0, 1, 100, 65535, 65536 * 3 + 7,
                                     2u << 20};
static int received, ends, closed, end_error;

static char fill(size_t i, size_t n) { return (char)('a' + (i * 7 + n) % 26); }

static void frame_cb(struct lunet_channel *ch, int type, const char *payload,
                     size_t len) {
  (void)ch;
  CHECK_SCOPE();
  CHECK(received < FRAMES);
  if (received >= FRAMES) return;
  size_t want = sizes[received];
  CHECK_INT(type, 'a' + received);
  CHECK_INT(len, want);
  int same = len == want;
  for (size_t i = 0; same && i < len; i++) same = payload[i] == fill(i, len);
  CHECK(same);
  CHECK_NOTE("frame %d of %zu bytes", received, want);
  received++;
}

static void end_cb(struct lunet_channel *ch, int error) {
  ends++;
  end_error = error;
  lunet_channel_close(ch);
}

static void closed_cb(struct lunet_channel *ch) {
  (void)ch;
  closed++;
}

static void test_frames_cross_whole(void) {
  uv_loop_t loop;
  int fds[2];
  struct lunet_channel a, b;
  uv_loop_init(&loop);
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
  lunet_channel_init(&a, &loop, frame_cb, end_cb);
  lunet_channel_init(&b, &loop, frame_cb, end_cb);
  a.on_closed = b.on_closed = closed_cb;
  CHECK_INT(lunet_channel_open(&a, fds[0]), 0);
  CHECK_INT(lunet_channel_open(&b, fds[1]), 0);
  CHECK_INT(lunet_channel_start(&b), 0);
  for (int f = 0; f < FRAMES; f++) {
    char *p = malloc(sizes[f] + 1);
    for (size_t i = 0; i < sizes[f]; i++) p[i] = fill(i, sizes[f]);
    /* split in two parts, as a publish sends topic and message */
    size_t half = sizes[f] / 2;
    CHECK_INT(lunet_channel_send(&a, 'a' + f, p, half, p + half,
                                 sizes[f] - half), 0);
    free(p);
  }
  CHECK_INT(lunet_channel_send(&a, 'x', NULL, LUNET_CHANNEL_FRAME_MAX + 1,
                               NULL, 0), UV_ENOBUFS);
  /* Closing cancels unsent writes: close once everything arrived, and b
   * then sees EOF. */
  for (int i = 0; i < 10000 && received < FRAMES; i++)
    uv_run(&loop, UV_RUN_ONCE);
  lunet_channel_close(&a);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT(received, FRAMES);
  CHECK_INT(ends, 1);
  CHECK_INT(end_error, UV_EOF);
  CHECK_INT(closed, 2);
  CHECK_INT(uv_loop_close(&loop), 0);
}

static void test_bad_length_ends(void) {
  uv_loop_t loop;
  int fds[2];
  struct lunet_channel b;
  static const char bad[] = {0x7f, 0, 0, 0, 'x'}; /* ~2 GiB frame */
  received = ends = closed = 0;
  uv_loop_init(&loop);
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
  lunet_channel_init(&b, &loop, frame_cb, end_cb);
  b.on_closed = closed_cb;
  CHECK_INT(lunet_channel_open(&b, fds[1]), 0);
  CHECK_INT(lunet_channel_start(&b), 0);
  CHECK_INT(write(fds[0], bad, sizeof bad), (long)sizeof bad);
  uv_run(&loop, UV_RUN_DEFAULT);
  close(fds[0]);
  CHECK_INT(received, 0);
  CHECK_INT(ends, 1);
  CHECK_INT(end_error, UV_EPROTO);
  CHECK_INT(closed, 1);
  CHECK_INT(uv_loop_close(&loop), 0);
}

int main(void) {
  test_frames_cross_whole();
  test_bad_length_ends();
  CHECK_DONE();
}
