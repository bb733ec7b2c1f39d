/* fsread: whole files read through the thread pool, one callback per batch,
 * never from inside the call that started it, loop closed clean. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "check.h"
#include "fsread.h"

static int callbacks;
static int started_returned;

struct expect {
  const char *content; /* NULL: expect an error */
  int error;
};

static struct expect expected[4];

static void read_cb(struct lunet_file *files, int n, void *ud) {
  callbacks++;
  CHECK(started_returned); /* never synchronous */
  CHECK_INT(n, 4);
  CHECK(ud == expected);
  for (int i = 0; i < n; i++) {
    CHECK_SCOPE();
    if (expected[i].content == NULL) {
      CHECK_INT(files[i].error, expected[i].error);
      CHECK(files[i].data == NULL);
    } else {
      CHECK_INT(files[i].error, 0);
      CHECK_INT(files[i].len, strlen(expected[i].content));
      CHECK(memcmp(files[i].data, expected[i].content, files[i].len) == 0);
    }
    CHECK_NOTE("file %d (%s)", i, files[i].path);
  }
}

static void write_file(const char *path, const char *content) {
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL);
  if (f == NULL) return;
  fputs(content, f);
  fclose(f);
}

int main(void) {
  char dir[] = "/tmp/lunet-fsread-XXXXXX";
  char small[64], empty[64], big[64], missing[64];
  char *large = malloc(200001);
  uv_loop_t loop;

  CHECK(mkdtemp(dir) != NULL);
  snprintf(small, sizeof small, "%s/small.lua", dir);
  snprintf(empty, sizeof empty, "%s/empty.lua", dir);
  snprintf(big, sizeof big, "%s/big.lua", dir);
  snprintf(missing, sizeof missing, "%s/missing.lua", dir);
  memset(large, 'x', 200000);
  large[200000] = '\0';
  write_file(small, "return { answer = 42 }\n");
  write_file(empty, "");
  write_file(big, large);

  expected[0] = (struct expect){"return { answer = 42 }\n", 0};
  expected[1] = (struct expect){"", 0};
  expected[2] = (struct expect){NULL, UV_EFBIG}; /* over max_size */
  expected[3] = (struct expect){NULL, UV_ENOENT};
  const char *paths[] = {small, empty, big, missing};

  CHECK_INT(uv_loop_init(&loop), 0);
  CHECK_INT(lunet_fsread_start(&loop, paths, 0, 1 << 20, read_cb, expected),
            UV_EINVAL);
  CHECK_INT(lunet_fsread_start(&loop, paths, 4, 100000, read_cb, expected), 0);
  started_returned = 1;
  CHECK_INT(callbacks, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT(callbacks, 1);

  /* A second batch, larger limit: the big file is read whole. */
  expected[2] = (struct expect){large, 0};
  callbacks = 0;
  CHECK_INT(lunet_fsread_start(&loop, paths, 4, 1 << 20, read_cb, expected), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT(callbacks, 1);
  CHECK_INT(uv_loop_close(&loop), 0);

  remove(small), remove(empty), remove(big), rmdir(dir);
  free(large);
  CHECK_DONE();
}
