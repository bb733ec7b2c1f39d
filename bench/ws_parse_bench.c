/* ws_parse_bench: what the RFC 6455 parser costs per frame. It builds
 * COUNT masked client frames of SIZE bytes (binary, or ASCII text, which
 * adds the UTF-8 check) in one buffer, then parses them all as a server
 * would, in reads of 16 KiB (so some frames straddle reads and take the
 * reassembly path, as on a real socket). Built from ws_frame.c alone.
 *
 *   ws_parse_bench [SIZE [COUNT [bin|text]]]      (64 10000 bin)
 *
 * For instruction counts rather than time:
 *   valgrind --tool=callgrind --toggle-collect=parse_all \
 *     build/bench/ws_parse_bench 4096 2000 text
 * and divide the Ir of parse_all by COUNT. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ws_frame.h"

#define READ_SIZE 16384

static char *build_stream(size_t size, size_t count, int text, size_t *len) {
  size_t frame = 14 + size;
  char *buf = malloc(frame * count), *payload = malloc(size);
  unsigned char key[4] = {0x9c, 0x21, 0x5e, 0xe7};
  for (size_t i = 0; i < size; i++)
    payload[i] = text ? (char)('a' + i % 26) : (char)(i * 131);
  *len = 0;
  for (size_t i = 0; i < count; i++) {
    key[0] = (unsigned char)i; /* a fresh key per frame, as clients do */
    size_t h = lunet_ws_frame_head((unsigned char *)buf + *len,
                                   text ? LUNET_WS_TEXT : LUNET_WS_BINARY, 1,
                                   size, key);
    lunet_ws_mask_copy(buf + *len + h, payload, size, key);
    *len += h + size;
  }
  free(payload);
  return buf;
}

/* The measured part: returns how many messages came out. */
__attribute__((noinline)) static size_t parse_all(struct lunet_ws_parser *p,
                                                  char *buf, size_t len) {
  size_t messages = 0;
  for (size_t off = 0; off < len; off += READ_SIZE) {
    size_t n = len - off < READ_SIZE ? len - off : READ_SIZE, used = 0;
    struct lunet_ws_event ev;
    do {
      used += lunet_ws_parse(p, buf + off + used, n - used, &ev);
      messages += ev.kind == LUNET_WS_EV_MESSAGE;
      if (ev.kind == LUNET_WS_EV_ERROR) return 0;
    } while (ev.kind != LUNET_WS_EV_NONE);
  }
  return messages;
}

int main(int argc, char **argv) {
  size_t size = argc > 1 ? strtoul(argv[1], NULL, 10) : 64;
  size_t count = argc > 2 ? strtoul(argv[2], NULL, 10) : 10000;
  int text = argc > 3 && strcmp(argv[3], "text") == 0;
  size_t len;
  char *buf = build_stream(size, count, text, &len);
  struct lunet_ws_parser p;
  struct timespec t0, t1;
  lunet_ws_parser_init(&p, LUNET_WS_SERVER, size + 1, 0);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  size_t got = parse_all(&p, buf, len);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  lunet_ws_parser_free(&p);
  free(buf);
  if (got != count) {
    fprintf(stderr, "ws_parse_bench: %zu of %zu messages\n", got, count);
    return 1;
  }
  double ns =
      (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
  printf(
      "ws_parse_bench size=%zu count=%zu kind=%s ns_per_frame=%.1f "
      "MB_per_s=%.0f\n",
      size, count, text ? "text" : "bin", ns / (double)count,
      (double)len / (ns / 1e9) / 1e6);
  return 0;
}
