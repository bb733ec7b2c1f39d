/* A growable string for replies built outside Lua (the supervisor has no
 * Lua state). An allocation failure is sticky: `failed` is set, later
 * appends do nothing, and the caller reports one error. */
#ifndef LUNET_STRBUF_H
#define LUNET_STRBUF_H

#include <stddef.h>

struct lunet_strbuf {
  char *p; /* NUL-terminated while not failed; NULL until the first add */
  size_t len, cap;
  int failed;
};

void lunet_strbuf_add(struct lunet_strbuf *sb, const char *s, size_t n);
void lunet_strbuf_puts(struct lunet_strbuf *sb, const char *s);
void lunet_strbuf_printf(struct lunet_strbuf *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void lunet_strbuf_free(struct lunet_strbuf *sb);

#endif
