/* libFuzzer target: line and length framing. The first byte picks the
 * framing and the limit; the rest is the stream. Every message found must
 * lie inside the input and respect the limit. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "framing.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  enum lunet_framing f = data[0] & 1 ? LUNET_FRAMING_LINE
                                     : LUNET_FRAMING_LENGTH;
  size_t max = (size_t)(data[0] >> 1) * 4 + 1;
  const char *p = (const char *)data + 1, *end = (const char *)data + size;
  for (;;) {
    const char *msg;
    size_t msglen, used;
    int r = lunet_frame_next(f, p, (size_t)(end - p), max, &msg, &msglen,
                             &used);
    if (r != LUNET_FRAME_OK) break;
    assert(used > 0 && used <= (size_t)(end - p));
    assert(msglen <= max);
    assert(msg >= p && msg + msglen <= p + used);
    p += used;
  }
  return 0;
}
