#include "fuzz_runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "log.h"
#include "runtime.h"
#include "service.h"

static struct lunet_cli cli; /* the runtime keeps a pointer to it */

struct lunet_service *lunet_fuzz_runtime(const char *script, size_t len,
                                         struct lunet_runtime **rt) {
  char path[] = "/tmp/lunet-fuzz-XXXXXX.lua", err[512];
  int usage, fd = mkstemps(path, 4);
  if (fd < 0 || write(fd, script, len) < 0) abort();
  close(fd);
  cli.script = strdup(path);
  cli.budget_ms = 1000;
  cli.memory_limit_mb = 256;
  cli.shutdown_timeout_ms = 1000;
  lunet_log_configure(LUNET_LOG_ERROR + 1, LUNET_LOG_TEXT); /* quiet */
  *rt = lunet_runtime_new(&cli, err, sizeof err);
  if (*rt == NULL || lunet_runtime_load(*rt, err, sizeof err, &usage) < 0) {
    fprintf(stderr, "fuzz setup: %s\n", err);
    abort();
  }
  unlink(path);
  return lunet_container_of((*rt)->services.next, struct lunet_service, node);
}
