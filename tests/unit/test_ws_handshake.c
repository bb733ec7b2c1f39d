/* ws_handshake: the RFC 6455 key checks, the accept value (the RFC's
 * own example), client keys and the subprotocol choice. */
#include <string.h>

#include "check.h"
#include "ws_handshake.h"

/* RFC 6455 1.3's example (Python's hashlib agrees: ...ZRbK+xOo=). */
static void check_accept(void) {
  char out[29];
  const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
  lunet_ws_accept(key, strlen(key), out);
  CHECK_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  CHECK(lunet_ws_accept_check(key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 28));
  CHECK(!lunet_ws_accept_check(key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo", 27));
  CHECK(!lunet_ws_accept_check(key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOp=", 28));
  CHECK(!lunet_ws_accept_check(
      "dGhlIHNhbXBsZSBub25jZA==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 28));
  /* Only the first len bytes of key count. */
  lunet_ws_accept("dGhlIHNhbXBsZSBub25jZQ==trailing", 24, out);
  CHECK_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

struct key_case {
  const char *key;
  int valid;
};

static const struct key_case key_cases[] = {
    {"dGhlIHNhbXBsZSBub25jZQ==", 1},
    {"AAAAAAAAAAAAAAAAAAAAAA==", 1},
    {"++++//////++++ZZzz0099==", 1},
    {"dGhlIHNhbXBsZSBub25jZR==", 1}, /* stray low bits: still 16 bytes */
    {"dGhlIHNhbXBsZSBub25jZQ=", 0},
    {"dGhlIHNhbXBsZSBub25jZQ===", 0},
    {"dGhlIHNhbXBsZSBub25jZQ", 0},
    {"dGhlIHNhbXBsZSBub25jZQAA", 0}, /* 18 bytes, unpadded */
    {"dGhlIHNhbXBsZSBub25jZ===", 0}, /* = too early */
    {"dGhlIHNhbXBsZSBub25j Q==", 0},
    {"dGhlIHNhbXBsZSBub25j-Q==", 0}, /* base64url is not base64 */
    {"dGhlIHNhbXBsZSBub25j_Q==", 0},
    {"dGhlIHNhbXBsZSBub25jZQ=A", 0},
    {"", 0},
};

static void check_keys(void) {
  for (size_t i = 0; i < sizeof key_cases / sizeof key_cases[0]; i++) {
    const struct key_case *t = &key_cases[i];
    struct guard g;
    char *k = guard_strndup(&g, t->key, strlen(t->key));
    CHECK_SCOPE();
    CHECK_INT(lunet_ws_key_valid(k, strlen(k)), t->valid);
    CHECK_NOTE("key '%s'", t->key);
    guard_free(&g);
  }
  /* A NUL inside is not base64. */
  CHECK(!lunet_ws_key_valid("dGhlIHNhbXBsZSBub2\0jZQ==", 24));
}

static void check_client_keys(void) {
  char a[25], b[25];
  CHECK_INT(lunet_ws_client_key(a), 0);
  CHECK_INT(lunet_ws_client_key(b), 0);
  CHECK_INT(strlen(a), 24);
  CHECK(lunet_ws_key_valid(a, 24));
  CHECK(strcmp(a, b) != 0); /* 128 random bits: never equal */
  char acc[29];
  lunet_ws_accept(a, 24, acc);
  CHECK_INT(strlen(acc), 28);
  CHECK(lunet_ws_accept_check(a, acc, 28));
}

struct proto_case {
  const char *offered;
  int want;
};

static void check_protocols(void) {
  const char *const ours[] = {"chat", "superchat", "v2.json"};
  static const struct proto_case cases[] = {
      {"chat", 0},
      {"superchat, chat", 0}, /* our order wins, not the client's */
      {"superchat", 1},
      {" \tsuperchat\t ,x", 1},
      {"x, y ,v2.json", 2},
      {"Chat", -1}, /* case matters */
      {"chats, cha, hat", -1},
      {"", -1},
      {",,, ,", -1},
      {"chat superchat", -1}, /* not a list separator */
      {"foo,chat", 0},
      {"v2.json,superchat", 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *o = cases[i].offered;
    struct guard g;
    char *s = guard_strndup(&g, o, strlen(o));
    CHECK_SCOPE();
    CHECK_INT(lunet_ws_pick_protocol(s, strlen(o), ours, 3), cases[i].want);
    CHECK_NOTE("offered '%s'", o);
    guard_free(&g);
  }
  CHECK_INT(lunet_ws_pick_protocol("chat", 4, ours, 0), -1);
  /* Only len bytes count. */
  CHECK_INT(lunet_ws_pick_protocol("chatty", 4, ours, 3), 0);
}

int main(void) {
  check_accept();
  check_keys();
  check_client_keys();
  check_protocols();
  CHECK_DONE();
}
