/* framing: every prefix of a stream, placed against a guard page, must
 * either wait for more or yield exactly the messages sent, and a message
 * over the limit is refused as soon as the bytes prove it. */
#include <string.h>

#include "check.h"
#include "framing.h"

/* Splits buf into messages; returns how many, -1 when one was too big. */
static int split_all(enum lunet_framing f, const char *buf, size_t len,
                     size_t max, char out[][64], size_t *rest) {
  size_t off = 0, msglen, used;
  const char *msg;
  int n = 0;
  for (;;) {
    int r = lunet_frame_next(f, buf + off, len - off, max, &msg, &msglen,
                             &used);
    if (r == LUNET_FRAME_TOO_BIG) return -1;
    if (r == LUNET_FRAME_MORE) break;
    CHECK(msglen < 64);
    memcpy(out[n], msg, msglen);
    out[n][msglen] = '\0';
    n++;
    off += used;
  }
  *rest = len - off;
  return n;
}

static void check_lines(void) {
  const char stream[] = "one\ntwo\r\n\nthree\r\n";
  const char *want[] = {"one", "two", "", "three"};
  char got[8][64];
  size_t len = strlen(stream), rest;
  for (size_t prefix = 0; prefix <= len; prefix++) {
    struct guard g;
    char *buf = guard_alloc(&g, prefix);
    memcpy(buf, stream, prefix);
    CHECK_SCOPE();
    int n = split_all(LUNET_FRAMING_LINE, buf, prefix, 16, got, &rest);
    int complete = 0; /* lines whose "\n" is inside the prefix */
    for (size_t i = 0; i < prefix; i++) complete += stream[i] == '\n';
    CHECK_INT(n, complete);
    for (int i = 0; i < n && i < 4; i++) CHECK_STR(got[i], want[i]);
    CHECK_NOTE("line prefix %zu", prefix);
    guard_free(&g);
  }
}

static void check_line_limits(void) {
  char got[8][64];
  size_t rest;
  /* Exactly max is fine with LF or CRLF; max + 1 is not. */
  CHECK_INT(split_all(LUNET_FRAMING_LINE, "abcd\n", 5, 4, got, &rest), 1);
  CHECK_INT(split_all(LUNET_FRAMING_LINE, "abcd\r\n", 6, 4, got, &rest), 1);
  CHECK_STR(got[0], "abcd");
  CHECK_INT(split_all(LUNET_FRAMING_LINE, "abcde\n", 6, 4, got, &rest), -1);
  /* No newline yet: wait while max + 2 bytes could still be a line. */
  CHECK_INT(split_all(LUNET_FRAMING_LINE, "abcd\r", 5, 4, got, &rest), 0);
  CHECK_INT(split_all(LUNET_FRAMING_LINE, "abcdef", 6, 4, got, &rest), -1);
  /* A bare "\r" inside a line is data. */
  CHECK_INT(split_all(LUNET_FRAMING_LINE, "a\rb\n", 4, 4, got, &rest), 1);
  CHECK_STR(got[0], "a\rb");
}

static void check_lengths(void) {
  const char stream[] = "\0\0\0\5hello\0\0\0\0\0\0\0\3abc";
  size_t len = sizeof stream - 1, rest;
  char got[8][64];
  for (size_t prefix = 0; prefix <= len; prefix++) {
    struct guard g;
    char *buf = guard_alloc(&g, prefix);
    memcpy(buf, stream, prefix);
    CHECK_SCOPE();
    int n = split_all(LUNET_FRAMING_LENGTH, buf, prefix, 8, got, &rest);
    int want = prefix >= 9 ? (prefix >= 13 ? (prefix >= 20 ? 3 : 2) : 1) : 0;
    CHECK_INT(n, want);
    if (n >= 1) CHECK_STR(got[0], "hello");
    if (n >= 2) CHECK_STR(got[1], "");
    if (n >= 3) CHECK_STR(got[2], "abc");
    CHECK_NOTE("length prefix %zu", prefix);
    guard_free(&g);
  }
  /* The announced length alone decides: refused before the payload. */
  CHECK_INT(split_all(LUNET_FRAMING_LENGTH, "\0\0\0\x09", 4, 8, got, &rest),
            -1);
  CHECK_INT(split_all(LUNET_FRAMING_LENGTH, "\xff\xff\xff\xff", 4, 8, got,
                      &rest), -1);
}

/* A whole stream followed by EOF: the messages framed on the way, then
 * what lunet_frame_eof makes of the rest (the last message, if any, goes
 * to out[n]). The stream sits against a guard page. */
struct eof_case {
  enum lunet_framing framing;
  const char *stream;
  size_t len, max;
  int messages;     /* whole ones before the end */
  int at_eof;       /* lunet_frame_eof's result */
  const char *last; /* the last line, for LUNET_FRAME_OK */
  size_t expected;  /* for LUNET_FRAME_TRUNCATED */
};

static void check_eof_case(const struct eof_case *t) {
  struct guard g;
  char *buf = guard_alloc(&g, t->len);
  char got[8][64];
  const char *msg = NULL;
  size_t rest, msglen = 0, expected = 0;
  memcpy(buf, t->stream, t->len);
  CHECK_SCOPE();
  int n = split_all(t->framing, buf, t->len, t->max, got, &rest);
  CHECK_INT(n, t->messages);
  int r = lunet_frame_eof(t->framing, buf + t->len - rest, rest, t->max, &msg,
                          &msglen, &expected);
  CHECK_INT(r, t->at_eof);
  if (r == LUNET_FRAME_OK) {
    CHECK_INT(msglen, strlen(t->last));
    CHECK(msg != NULL && memcmp(msg, t->last, msglen) == 0);
  }
  if (r == LUNET_FRAME_TRUNCATED) CHECK_INT(expected, t->expected);
  CHECK_NOTE("eof after %zu bytes of \"%.*s\"", t->len, (int)t->len, t->stream);
  guard_free(&g);
}

static void check_eof(void) {
  const enum lunet_framing L = LUNET_FRAMING_LINE, N = LUNET_FRAMING_LENGTH;
  const struct eof_case cases[] = {
      {L, "a\nb", 3, 16, 1, LUNET_FRAME_OK, "b", 0},
      {L, "a\r", 2, 16, 0, LUNET_FRAME_OK, "a", 0},
      {L, "a\r\nlast\r", 8, 16, 1, LUNET_FRAME_OK, "last", 0},
      {L, "a\rb", 3, 16, 0, LUNET_FRAME_OK, "a\rb", 0}, /* a bare CR is data */
      {L, "\n", 1, 16, 1, LUNET_FRAME_MORE, NULL, 0},
      {L, "", 0, 16, 0, LUNET_FRAME_MORE, NULL, 0},
      {L, "abcd", 4, 4, 0, LUNET_FRAME_OK, "abcd", 0}, /* exactly max */
      {L, "abcd\r", 5, 4, 0, LUNET_FRAME_OK, "abcd", 0},
      {L, "abcde", 5, 4, 0, LUNET_FRAME_TOO_BIG, NULL, 0}, /* max + 1 */
      {N, "\0\0", 2, 16, 0, LUNET_FRAME_TRUNCATED, NULL, 4},
      {N, "\0\0\0\6abc", 7, 16, 0, LUNET_FRAME_TRUNCATED, NULL, 10},
      {N, "\0\0\0\1x\0\0\0\6abc", 12, 16, 1, LUNET_FRAME_TRUNCATED, NULL, 10},
      {N, "\0\0\0\0", 4, 16, 1, LUNET_FRAME_MORE, NULL, 0},
      {N, "", 0, 16, 0, LUNET_FRAME_MORE, NULL, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    check_eof_case(&cases[i]);
}

int main(void) {
  CHECK_INT(lunet_framing_parse("line"), LUNET_FRAMING_LINE);
  CHECK_INT(lunet_framing_parse("length"), LUNET_FRAMING_LENGTH);
  CHECK_INT(lunet_framing_parse("lines"), -1);
  check_lines();
  check_line_limits();
  check_lengths();
  check_eof();
  CHECK_DONE();
}
