/* What the end-to-end fuzz targets share: one runtime, made once, that
 * serves a script's first service, quiet and with bounded budgets. */
#ifndef LUNET_FUZZ_RUNTIME_H
#define LUNET_FUZZ_RUNTIME_H

#include <stddef.h>

struct lunet_runtime;
struct lunet_service;

/* Loads script (len bytes) through a temporary file; aborts on failure.
 * Sets *rt and returns its first service. */
struct lunet_service *lunet_fuzz_runtime(const char *script, size_t len,
                                         struct lunet_runtime **rt);

#endif
