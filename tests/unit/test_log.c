/* Unit tests for runtime/core/log.c: record formatting (lunet__log_format,
 * pure, no I/O) and the level/format name parsers. Records are checked against
 * exact strings and also decoded back with small strict logfmt and JSON
 * readers, so every escape is shown to round-trip. */
#include "check.h"
#include "log.h"

#define TEXT LUNET_LOG_TEXT
#define JSON LUNET_LOG_JSON

static size_t fmt(char *buf, size_t cap, int format, int level, const char *msg,
                  const char *const *kv, int npairs) {
  return lunet__log_format(buf, cap, format, level, "T", msg, kv, npairs);
}

/* lunet__log_format_n, and its length must be the record's strlen. */
static void fmt_n_check(char *buf, size_t cap, int format, const char *msg,
                        size_t msg_len, const char *const *kv,
                        const size_t *lens, int npairs) {
  size_t n = lunet__log_format_n(buf, cap, format, LUNET_LOG_INFO, "T", msg,
                                 msg_len, kv, lens, npairs);
  CHECK_INT(n, strlen(buf));
}

/* {==================================================================
 * Strict readers for the two formats
 * =================================================================== */

#define MAX_FIELDS 40

struct record {
  int n;
  char key[MAX_FIELDS][64];
  char val[MAX_FIELDS][1024];
};

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Reads the escape after a backslash. Only what lunet emits is accepted:
 * \" \\ \n \t \r and \u00XX for other control bytes. */
static const char *unescape(const char *s, unsigned char *ch) {
  switch (*s) {
    case '"':
    case '\\':
      *ch = (unsigned char)*s;
      return s + 1;
    case 'n':
      *ch = '\n';
      return s + 1;
    case 't':
      *ch = '\t';
      return s + 1;
    case 'r':
      *ch = '\r';
      return s + 1;
    case 'u':
      break;
    default:
      return NULL;
  }
  int v = 0;
  for (int i = 1; i <= 4; i++) {
    int h = hexval(s[i]);
    if (h < 0) return NULL;
    v = v * 16 + h;
  }
  if (v >= 0x80) return NULL; /* only ASCII control bytes are escaped */
  *ch = (unsigned char)v;
  return s + 5;
}

/* A quoted string: JSON's rules (no raw control bytes). In logfmt raw DEL
 * is also refused, since lunet escapes it. */
static const char *quoted(const char *s, char *out, size_t cap, int no_del) {
  size_t n = 0;
  if (*s++ != '"') return NULL;
  for (;;) {
    unsigned char ch = (unsigned char)*s++;
    if (ch == '"') break;
    if (ch < 0x20 || (no_del && ch == 0x7f)) return NULL; /* NUL too */
    if (ch == '\\' && (s = unescape(s, &ch)) == NULL) return NULL;
    if (n + 1 >= cap) return NULL;
    out[n++] = (char)ch;
  }
  out[n] = '\0';
  return s;
}

/* A flat JSON object of string values, and nothing after it. Returns the
 * number of fields or -1. */
static int json_decode(const char *s, struct record *r) {
  r->n = 0;
  if (*s++ != '{') return -1;
  if (*s == '}') return s[1] == '\0' ? 0 : -1;
  for (;;) {
    if (r->n == MAX_FIELDS) return -1;
    if ((s = quoted(s, r->key[r->n], sizeof r->key[0], 0)) == NULL) return -1;
    if (*s++ != ':') return -1;
    if ((s = quoted(s, r->val[r->n], sizeof r->val[0], 0)) == NULL) return -1;
    r->n++;
    if (*s == ',') {
      s++;
      continue;
    }
    return *s == '}' && s[1] == '\0' ? r->n : -1;
  }
}

static int bare_char(unsigned char ch) {
  return ch > ' ' && ch != '=' && ch != '"' && ch != '\\' && ch != 0x7f;
}

/* logfmt: key=value pairs separated by one space; a value is bare or
 * quoted. Returns the number of fields or -1. */
static int text_decode(const char *s, struct record *r) {
  r->n = 0;
  while (*s) {
    size_t n = 0;
    if (r->n == MAX_FIELDS) return -1;
    if (r->n > 0 && *s++ != ' ') return -1;
    while (bare_char((unsigned char)*s) && n + 1 < sizeof r->key[0])
      r->key[r->n][n++] = *s++;
    r->key[r->n][n] = '\0';
    if (n == 0 || *s++ != '=') return -1;
    if (*s == '"') {
      s = quoted(s, r->val[r->n], sizeof r->val[0], 1);
      if (s == NULL) return -1;
    } else {
      for (n = 0; bare_char((unsigned char)*s); n++) {
        if (n + 1 >= sizeof r->val[0]) return -1;
        r->val[r->n][n] = *s++;
      }
      if (n == 0) return -1; /* an empty value must be written "" */
      r->val[r->n][n] = '\0';
    }
    r->n++;
  }
  return r->n;
}

/* }================================================================== */

/* {==================================================================
 * Exact records
 * =================================================================== */

static void check_text_exact(void) {
  char buf[512];
  size_t n;
  const char *listen[] = {"service", "echo", "proto",
                          "tcp",     "addr", "127.0.0.1:1"};
  n = fmt(buf, sizeof buf, TEXT, LUNET_LOG_INFO, "listening", listen, 3);
  CHECK_STR(buf,
            "ts=T level=info msg=listening service=echo proto=tcp "
            "addr=127.0.0.1:1");
  CHECK_INT(n, strlen(buf));

  const char *herr[] = {"error", "a\"b\nc"};
  fmt(buf, sizeof buf, TEXT, LUNET_LOG_ERROR, "handler error", herr, 1);
  CHECK_STR(buf, "ts=T level=error msg=\"handler error\" error=\"a\\\"b\\nc\"");

  const char *esc[] = {"tab",   "a\tb",
                       "cr",    "a\rb",
                       "eq",    "a=b",
                       "bs",    "a\\b",
                       "ctl",   "\x01",
                       "del",   "\x7f",
                       "q",     "\"",
                       "empty", "",
                       "null",  NULL,
                       "sp",    " ",
                       "punct", "a:b/c.d-e_f[1],{}"};
  fmt(buf, sizeof buf, TEXT, LUNET_LOG_WARN, "m", esc, 11);
  CHECK_STR(buf,
            "ts=T level=warn msg=m tab=\"a\\tb\" cr=\"a\\rb\" "
            "eq=\"a=b\" bs=\"a\\\\b\" ctl=\"\\u0001\" del=\"\\u007f\" "
            "q=\"\\\"\" empty=\"\" null=\"\" sp=\" \" "
            "punct=a:b/c.d-e_f[1],{}");

  fmt(buf, sizeof buf, TEXT, LUNET_LOG_DEBUG, "", NULL, 0);
  CHECK_STR(buf, "ts=T level=debug msg=\"\"");
}

static void check_json_exact(void) {
  char buf[512];
  struct record r;
  size_t n;
  const char *listen[] = {"service", "echo", "proto",
                          "tcp",     "addr", "127.0.0.1:1"};
  n = fmt(buf, sizeof buf, JSON, LUNET_LOG_INFO, "listening", listen, 3);
  CHECK_STR(buf,
            "{\"ts\":\"T\",\"level\":\"info\",\"msg\":\"listening\","
            "\"service\":\"echo\",\"proto\":\"tcp\","
            "\"addr\":\"127.0.0.1:1\"}");
  CHECK_INT(n, strlen(buf));
  CHECK_INT(json_decode(buf, &r), 6);

  const char *herr[] = {"error", "a\"b\nc", "ctl",  "\x01",
                        "empty", "",        "null", NULL};
  fmt(buf, sizeof buf, JSON, LUNET_LOG_ERROR, "handler error", herr, 4);
  CHECK_STR(buf,
            "{\"ts\":\"T\",\"level\":\"error\",\"msg\":\"handler error\","
            "\"error\":\"a\\\"b\\nc\",\"ctl\":\"\\u0001\","
            "\"empty\":\"\",\"null\":\"\"}");
  CHECK_INT(json_decode(buf, &r), 7);

  /* Keys are escaped too: they come from Lua tables. */
  const char *odd[] = {"we\"ird\tkey", "v"};
  fmt(buf, sizeof buf, JSON, LUNET_LOG_WARN, "m", odd, 1);
  CHECK_STR(buf,
            "{\"ts\":\"T\",\"level\":\"warn\",\"msg\":\"m\","
            "\"we\\\"ird\\tkey\":\"v\"}");
  CHECK_INT(json_decode(buf, &r), 4);
  CHECK_STR(r.key[3], "we\"ird\tkey");

  fmt(buf, sizeof buf, JSON, LUNET_LOG_DEBUG, "", NULL, 0);
  CHECK_STR(buf, "{\"ts\":\"T\",\"level\":\"debug\",\"msg\":\"\"}");
}

/* }================================================================== */

/* {==================================================================
 * Round trips: every byte value survives both formats
 * =================================================================== */

static void check_roundtrip(int format, const char *msg, const char *const *kv,
                            int npairs) {
  static char buf[8192];
  static struct record r;
  size_t n = fmt(buf, sizeof buf, format, LUNET_LOG_INFO, msg, kv, npairs);
  int got = format == JSON ? json_decode(buf, &r) : text_decode(buf, &r);
  CHECK_INT(n, strlen(buf));
  CHECK_INT(got, 3 + npairs);
  if (got != 3 + npairs) return;
  CHECK_STR(r.key[0], "ts");
  CHECK_STR(r.val[0], "T");
  CHECK_STR(r.key[1], "level");
  CHECK_STR(r.val[1], "info");
  CHECK_STR(r.key[2], "msg");
  CHECK_STR(r.val[2], msg);
  for (int i = 0; i < npairs; i++) {
    CHECK_STR(r.key[3 + i], kv[2 * i]);
    CHECK_STR(r.val[3 + i], kv[2 * i + 1] ? kv[2 * i + 1] : "");
  }
}

static void check_all_bytes(void) {
  char all[256];
  for (int i = 1; i < 256; i++) all[i - 1] = (char)i;
  all[255] = '\0';
  for (int format = TEXT; format <= JSON; format++) {
    for (int b = 1; b < 256; b++) {
      CHECK_SCOPE();
      char alone[2] = {(char)b, '\0'};
      char inside[4] = {'a', (char)b, 'b', '\0'};
      const char *kv[] = {"alone", alone, "inside", inside};
      check_roundtrip(format, inside, kv, 2);
      CHECK_NOTE("%s record with byte 0x%02x", format ? "json" : "text", b);
    }
    CHECK_SCOPE();
    const char *kv[] = {"all",  all,  "empty", "",
                        "null", NULL, "x",     "y=z \"q\""};
    check_roundtrip(format, all, kv, 4);
    CHECK_NOTE("%s record with every byte", format ? "json" : "text");
  }
}

/* Lua strings have lengths: a NUL in a message, key or value is logged
 * escaped and the bytes after it are kept. */
static void check_nul_bytes(void) {
  char buf[512];
  struct record r;
  const char *kv[] = {"k\0ey", "v\0after", "empty", "", "nul", "\0"};
  const size_t lens[] = {4, 7, 5, 0, 3, 1};
  fmt_n_check(buf, sizeof buf, TEXT, "m\0sg", 4, kv, lens, 3);
  CHECK_STR(buf,
            "ts=T level=info msg=\"m\\u0000sg\" k_ey=\"v\\u0000after\" "
            "empty=\"\" nul=\"\\u0000\"");
  CHECK_INT(text_decode(buf, &r), 6);
  fmt_n_check(buf, sizeof buf, JSON, "m\0sg", 4, kv, lens, 3);
  CHECK_STR(buf,
            "{\"ts\":\"T\",\"level\":\"info\",\"msg\":\"m\\u0000sg\","
            "\"k\\u0000ey\":\"v\\u0000after\",\"empty\":\"\","
            "\"nul\":\"\\u0000\"}");
  CHECK_INT(json_decode(buf, &r), 6);
  /* A NULL value is "" with lengths too; NULL lens means C strings. */
  const char *null_kv[] = {"a", NULL};
  const size_t null_lens[] = {1, 9};
  fmt_n_check(buf, sizeof buf, TEXT, "m", 1, null_kv, null_lens, 1);
  CHECK_STR(buf, "ts=T level=info msg=m a=\"\"");
  const char *c_kv[] = {"a", "b"};
  fmt_n_check(buf, sizeof buf, TEXT, "m", 1, c_kv, NULL, 1);
  CHECK_STR(buf, "ts=T level=info msg=m a=b");
}

/* A length ends a value even mid UTF-8 sequence: the value's last bytes,
 * placed against a guard page, are not read past. */
static void check_length_bound(void) {
  char buf[256];
  struct guard g;
  char *v = guard_alloc(&g, 4); /* no NUL: the guard page follows */
  memcpy(v, "a \xe2\x82", 4);   /* the space makes it quoted, escaped */
  const char *kv[] = {"k", v};
  const size_t lens[] = {1, 4};
  CHECK(v != NULL);
  fmt_n_check(buf, sizeof buf, TEXT, "m", 1, kv, lens, 1);
  CHECK_STR(buf, "ts=T level=info msg=m k=\"a \xe2\x82\"");
  fmt_n_check(buf, sizeof buf, JSON, "m", 1, kv, lens, 1);
  CHECK_STR(buf,
            "{\"ts\":\"T\",\"level\":\"info\",\"msg\":\"m\","
            "\"k\":\"a \xe2\x82\"}");
  guard_free(&g);
}

/* }================================================================== */

/* {==================================================================
 * Truncation into a bounded buffer
 * =================================================================== */

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

static void check_cap64(void) {
  char buf[64], x[201];
  struct record r;
  memset(x, 'x', 200);
  x[200] = '\0';
  size_t n = fmt(buf, sizeof buf, TEXT, LUNET_LOG_INFO, x, NULL, 0);
  CHECK(n < sizeof buf);
  CHECK_INT(strlen(buf), n);
  /* An unquoted value cannot be cut cleanly: the pair is taken back. */
  CHECK_STR(buf, "ts=T level=info truncated=true");

  n = fmt(buf, sizeof buf, JSON, LUNET_LOG_INFO, x, NULL, 0);
  CHECK(n < sizeof buf);
  CHECK_INT(strlen(buf), n);
  CHECK(ends_with(buf, "...\",\"truncated\":\"true\"}"));
  CHECK(strncmp(buf, "{\"ts\":\"T\",\"level\":\"info\",\"msg\":\"xxx", 35) ==
        0);
  /* Cut inside a plain value, the record is still one valid object. */
  CHECK_INT(json_decode(buf, &r), 4);
}

/* Formats into a block of exactly cap bytes, twice: at the end of a malloc'd
 * block (ASan sees an overflow) and against a guard page (every build
 * faults). Both must agree. Returns the length; the text is left in out. */
static size_t fmt_bounded(char *out, size_t cap, int format, const char *msg,
                          const char *const *kv, int npairs) {
  struct guard g;
  char *block = malloc(cap + 32);
  char *buf = block + 32; /* buf + cap is the end of the block */
  memset(block, '#', cap + 32);
  size_t n = fmt(buf, cap, format, LUNET_LOG_WARN, msg, kv, npairs);
  for (size_t i = 0; i < 32; i++) CHECK(block[i] == '#'); /* no underrun */
  if (cap > 0) memcpy(out, buf, cap);
  free(block);

  char *gbuf = guard_alloc(&g, cap);
  size_t n2 = fmt(gbuf, cap, format, LUNET_LOG_WARN, msg, kv, npairs);
  CHECK_INT(n2, n);
  if (cap > 0) CHECK(memcmp(gbuf, out, n + 1) == 0);
  guard_free(&g);
  return n;
}

static void check_truncation_sweep(int format) {
  const char *mark = format == JSON ? "\"truncated\":\"true\"}" : "truncated=true";
  const char *kv[] = {"service", "echo",           "error", "a\"b\nc\x01 d",
                      "peer",    "127.0.0.1:5000", "k",     ""};
  char full[1024], out[1024];
  size_t full_len =
      fmt(full, sizeof full, format, LUNET_LOG_WARN, "handler error", kv, 4);
  CHECK(full_len > 40 && full_len < 200);
  for (size_t cap = 0; cap <= full_len + 16; cap++) {
    CHECK_SCOPE();
    size_t n = fmt_bounded(out, cap, format, "handler error", kv, 4);
    if (cap == 0) {
      CHECK_INT(n, 0);
      continue;
    }
    CHECK(n < cap);
    CHECK_INT(out[n], '\0');
    CHECK_INT(strlen(out), n);
    /* A record that fits in cap-1 bytes is whole; one that does not is
     * cut at a clean place and marked, or empty when even the mark does
     * not fit. */
    if (full_len < cap) CHECK_STR(out, full);
    if (full_len >= cap && n > 0) {
      CHECK(ends_with(out, mark));
      /* Up to the cut it is the full record (a cut value ends in ...). */
      const char *cut = strstr(out, "...\"");
      size_t tail = strlen(mark) + 1; /* the mark and its separator */
      size_t same = cut ? (size_t)(cut - out) : n > tail ? n - tail : 0;
      CHECK(strncmp(out, full, same) == 0);
      if (format == JSON) {
        struct record r;
        CHECK(json_decode(out, &r) >= 1); /* still one valid object */
      }
    }
    if (cap > 40) CHECK(n > 0); /* room for the header: something is kept */
    CHECK_NOTE("%s record cut to cap %zu: \"%s\"", format ? "json" : "text",
               cap, out);
  }
}

/* }================================================================== */

static void check_names(void) {
  CHECK_INT(lunet_log_parse_level("debug"), LUNET_LOG_DEBUG);
  CHECK_INT(lunet_log_parse_level("info"), LUNET_LOG_INFO);
  CHECK_INT(lunet_log_parse_level("warn"), LUNET_LOG_WARN);
  CHECK_INT(lunet_log_parse_level("error"), LUNET_LOG_ERROR);
  static const char *const bad_levels[] = {"",        "loud", "INFO",  "Info",
                                           "warning", "err",  "info ", " info",
                                           "debugx",  "fatal"};
  for (size_t i = 0; i < sizeof bad_levels / sizeof bad_levels[0]; i++) {
    CHECK_SCOPE();
    CHECK_INT(lunet_log_parse_level(bad_levels[i]), -1);
    CHECK_NOTE("level \"%s\"", bad_levels[i]);
  }

  CHECK_INT(lunet_log_parse_format("text"), LUNET_LOG_TEXT);
  CHECK_INT(lunet_log_parse_format("json"), LUNET_LOG_JSON);
  static const char *const bad_formats[] = {"",    "JSON",  "Text", "logfmt",
                                            "xml", "json ", "tex"};
  for (size_t i = 0; i < sizeof bad_formats / sizeof bad_formats[0]; i++) {
    CHECK_SCOPE();
    CHECK_INT(lunet_log_parse_format(bad_formats[i]), -1);
    CHECK_NOTE("format \"%s\"", bad_formats[i]);
  }

  /* The level filter: configured level and above. */
  lunet_log_configure(LUNET_LOG_WARN, LUNET_LOG_TEXT);
  CHECK_INT(lunet_log_enabled(LUNET_LOG_INFO), 0);
  CHECK_INT(lunet_log_enabled(LUNET_LOG_WARN), 1);
  CHECK_INT(lunet_log_enabled(LUNET_LOG_ERROR), 1);
  lunet_log_configure(LUNET_LOG_INFO, LUNET_LOG_TEXT);
  CHECK_INT(lunet_log_enabled(LUNET_LOG_DEBUG), 0);
  CHECK_INT(lunet_log_enabled(LUNET_LOG_INFO), 1);
}

/* Keys come from Lua tables: in logfmt they must stay bare words. */
static void check_text_keys(void) {
  char buf[256];
  const char *kv[] = {"a b", "1", "x=y", "2", "ok_key.v-1", "3"};
  fmt(buf, sizeof buf, TEXT, LUNET_LOG_INFO, "m", kv, 3);
  CHECK_STR(buf, "ts=T level=info msg=m a_b=1 x_y=2 ok_key.v-1=3");
}

int main(void) {
  check_text_keys();
  check_text_exact();
  check_json_exact();
  check_all_bytes();
  check_nul_bytes();
  check_length_bound();
  check_cap64();
  check_truncation_sweep(TEXT);
  check_truncation_sweep(JSON);
  check_names();
  CHECK_DONE();
}
