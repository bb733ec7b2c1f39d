#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int reserve(struct lunet_strbuf *sb, size_t n) {
  if (sb->failed) return -1;
  if (sb->len + n + 1 <= sb->cap) return 0;
  size_t cap = sb->cap ? sb->cap : 256;
  while (cap < sb->len + n + 1) cap *= 2;
  char *p = realloc(sb->p, cap);
  if (p == NULL) return sb->failed = 1, -1;
  sb->p = p, sb->cap = cap;
  return 0;
}

void lunet_strbuf_add(struct lunet_strbuf *sb, const char *s, size_t n) {
  if (reserve(sb, n) < 0) return;
  memcpy(sb->p + sb->len, s, n);
  sb->len += n;
  sb->p[sb->len] = '\0';
}

void lunet_strbuf_puts(struct lunet_strbuf *sb, const char *s) {
  lunet_strbuf_add(sb, s, strlen(s));
}

void lunet_strbuf_printf(struct lunet_strbuf *sb, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || reserve(sb, (size_t)n) < 0) return;
  va_start(ap, fmt);
  vsnprintf(sb->p + sb->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  sb->len += (size_t)n;
}

void lunet_strbuf_free(struct lunet_strbuf *sb) {
  free(sb->p);
  *sb = (struct lunet_strbuf){0};
}
