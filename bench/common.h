/* common: what the benchmark tools share, so each tool keeps only its own
 * protocol, phases and report. Linked into every tool as bench_common.
 *
 * The messages printed here carry the tool's name: a tool that prints any
 * (every load generator) sets bench_prog first thing in main. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/resource.h>

#include <uv.h>

/* Prefix of every message: "loadgen", "chatload", ... */
extern const char *bench_prog;

/* {==================================================================
 * Latency histogram: log-linear buckets, 64 per power of two (error under
 * 1.6%), over nanoseconds. Fixed size whatever the run length.
 * =================================================================== */

#define BENCH_HIST_SUB_BITS 6
#define BENCH_HIST_SUB (1 << BENCH_HIST_SUB_BITS)
#define BENCH_HIST_BUCKETS \
  (BENCH_HIST_SUB + (64 - BENCH_HIST_SUB_BITS) * BENCH_HIST_SUB)

struct bench_hist {
  uint64_t count[BENCH_HIST_BUCKETS];
  uint64_t total;
};

void bench_hist_add(struct bench_hist *h, uint64_t v);
double bench_hist_percentile(const struct bench_hist *h, double q);

/* }================================================================== */

/* {==================================================================
 * Addresses and options
 * =================================================================== */

int bench_parse_addr(const char *text, int allow_port0,
                     struct sockaddr_storage *out);
int bench_is_loopback(const struct sockaddr_storage *ss);
int bench_parse_loopback(const char *text, struct sockaddr_storage *out);
int bench_parse_number(const char *s, double min, double max, double *out);
int bench_parse_count(const char *s, unsigned long min, unsigned long max,
                      unsigned long *out);
int bench_parse_duration(const char *v, double *seconds);
int bench_parse_warmup(const char *v, double *seconds);
int bench_bad_option(const char *name, const char *value, const char *why);
/* An integer option min..max into *out, or a "want an integer" error. */
int bench_opt_count(const char *name, const char *v, unsigned long min,
                    unsigned long max, unsigned *out);
int bench_getopt(int argc, char **argv, const struct option *longopts,
                 int (*parse_one)(int ch, const char *v),
                 void (*usage)(FILE *f));

/* }================================================================== */

/* {==================================================================
 * Failures, deadlines and limits (load generators)
 * =================================================================== */

/* Errors counted in the run and the first one's reason. */
extern unsigned bench_errors;
extern char bench_reason[256];

void bench_on_fail(void (*stop)(void));
void bench_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void bench_write_cb(uv_write_t *req, int status);
uint64_t bench_ms(double seconds);
void bench_deadline(unsigned seconds);
int bench_raise_nofile(struct rlimit *rl);

/* }================================================================== */

/* {==================================================================
 * Servers
 * =================================================================== */

/* Binds and listens on text (IP:PORT, port 0 allowed) for a ceiling
 * server named `who`; errors are printed. 0 or UV error. */
int bench_tcp_listen(uv_loop_t *loop, uv_tcp_t *listener, const char *text,
                     const char *who, uv_connection_cb cb);
void bench_announce(uv_handle_t *handle, const char *service);
void bench_close_all(uv_loop_t *loop, uv_close_cb close_cb);
void bench_stop_on_signals(uv_loop_t *loop, uv_close_cb close_cb);

/* }================================================================== */

#endif
