/* Unit tests for runtime/core/cli.c: lunet_cli_parse. argv is built from
 * writable copies, so a test can see that the parser leaves it as given. */
#include <stdarg.h>

#include "check.h"
#include "cli.h"
#include "log.h"

#define MAX_ARGS 160
#define END ((const char *)NULL)

/* A writable argv: copies of the words, NULL-terminated like a real one. */
struct args {
  int argc;
  char *argv[MAX_ARGS + 1];
  char store[MAX_ARGS][64];
};

static void args_vset(struct args *a, va_list ap) {
  const char *w;
  a->argc = 0;
  while ((w = va_arg(ap, const char *)) != NULL && a->argc < MAX_ARGS) {
    snprintf(a->store[a->argc], sizeof a->store[0], "%s", w);
    a->argv[a->argc] = a->store[a->argc];
    a->argc++;
  }
  a->argv[a->argc] = NULL;
}

static char err[256];

/* Parses "lunet" followed by the words up to END. */
static int parse(struct args *a, struct lunet_cli *cli, ...) {
  va_list ap;
  va_start(ap, cli);
  args_vset(a, ap);
  va_end(ap);
  memset(err, 0, sizeof err);
  return lunet_cli_parse(a->argc, a->argv, cli, err, sizeof err);
}

static void check_defaults(const struct lunet_cli *cli) {
  CHECK_INT(cli->nlisten, 0);
  CHECK_INT(cli->log_level, LUNET_LOG_INFO);
  CHECK_INT(cli->log_format, LUNET_LOG_TEXT);
  CHECK(cli->pidfile == NULL);
  CHECK(cli->control == NULL);
  CHECK_INT(cli->watch, 0);
  CHECK_INT(cli->shutdown_timeout_ms, 10000);
  CHECK_INT(cli->worker_timeout_ms, 30000);
  CHECK_INT(cli->script_argc, 0);
}

/* {==================================================================
 * Accepted command lines
 * =================================================================== */

static void check_commands(void) {
  struct args a;
  struct lunet_cli cli;
  CHECK_INT(parse(&a, &cli, "lunet", "run", "app.lua", END), 0);
  CHECK_INT(cli.command, LUNET_CMD_RUN);
  CHECK_STR(cli.script, "app.lua");
  check_defaults(&cli);

  CHECK_INT(parse(&a, &cli, "lunet", "check", "app.lua", END), 0);
  CHECK_INT(cli.command, LUNET_CMD_CHECK);
  CHECK_STR(cli.script, "app.lua");
  check_defaults(&cli);

  static const char *const help[] = {"--help", "-h", "help"};
  for (size_t i = 0; i < 3; i++) {
    CHECK_INT(parse(&a, &cli, "lunet", help[i], END), 0);
    CHECK_INT(cli.command, LUNET_CMD_HELP);
  }
  static const char *const version[] = {"--version", "-v"};
  for (size_t i = 0; i < 2; i++) {
    CHECK_INT(parse(&a, &cli, "lunet", version[i], END), 0);
    CHECK_INT(cli.command, LUNET_CMD_VERSION);
  }
  CHECK(strstr(lunet_cli_usage, "usage: lunet run SCRIPT") == lunet_cli_usage);
}

static void check_listen(void) {
  struct args a;
  struct lunet_cli cli;
  CHECK_INT(
      parse(&a, &cli, "lunet", "run", "app.lua", "--listen", "a=1.2.3.4:5",
            "--listen=b=[::1]:6", "--listen", "c=*:7", "--listen=dd=:8", END),
      0);
  CHECK_INT(cli.nlisten, 4);
  CHECK_STR(cli.listen[0].service, "a");
  CHECK_STR(cli.listen[0].addr, "1.2.3.4:5");
  CHECK_STR(cli.listen[1].service, "b");
  CHECK_STR(cli.listen[1].addr, "[::1]:6");
  CHECK_STR(cli.listen[2].service, "c");
  CHECK_STR(cli.listen[2].addr, "*:7");
  CHECK_STR(cli.listen[3].service, "dd");
  CHECK_STR(cli.listen[3].addr, ":8");
  /* argv is left as typed (ps, pkill -f); the address points into it. */
  CHECK_STR(a.argv[4], "a=1.2.3.4:5");
  CHECK(cli.listen[0].addr == a.argv[4] + 2);
  /* Only the first '=' splits: an address may not hold one, but the
   * parser must not split twice. */
  CHECK_INT(
      parse(&a, &cli, "lunet", "run", "app.lua", "--listen", "a=b=c", END), 0);
  CHECK_STR(cli.listen[0].service, "a");
  CHECK_STR(cli.listen[0].addr, "b=c");

  /* Exactly LUNET_MAX_LISTEN fit; one more is a usage error. */
  for (int extra = 0; extra <= 1; extra++) {
    int n = LUNET_MAX_LISTEN + extra;
    a.argc = 0;
    a.argv[a.argc++] = strcpy(a.store[0], "lunet");
    a.argv[a.argc++] = strcpy(a.store[1], "run");
    a.argv[a.argc++] = strcpy(a.store[2], "app.lua");
    for (int i = 0; i < n; i++) {
      snprintf(a.store[a.argc], sizeof a.store[0], "--listen=s%d=:%d", i, i);
      a.argv[a.argc] = a.store[a.argc];
      a.argc++;
    }
    a.argv[a.argc] = NULL;
    err[0] = '\0';
    int r = lunet_cli_parse(a.argc, a.argv, &cli, err, sizeof err);
    CHECK_INT(r, extra ? -1 : 0);
    CHECK_INT(err[0] != '\0', extra);
    if (!extra) {
      CHECK_INT(cli.nlisten, LUNET_MAX_LISTEN);
      CHECK_STR(cli.listen[LUNET_MAX_LISTEN - 1].service, "s63");
      CHECK_STR(cli.listen[LUNET_MAX_LISTEN - 1].addr, ":63");
    }
  }
}

static void check_options(void) {
  struct args a;
  struct lunet_cli cli;
  CHECK_INT(
      parse(&a, &cli, "lunet", "run", "--log-level", "debug", "--log-format",
            "json", "--pidfile", "F", "app.lua", "--shutdown-timeout", "2.5",
            "--watch", "--control", "C", END),
      0);
  CHECK_INT(cli.command, LUNET_CMD_RUN);
  CHECK_STR(cli.script, "app.lua"); /* options may come before SCRIPT */
  CHECK_INT(cli.log_level, LUNET_LOG_DEBUG);
  CHECK_INT(cli.log_format, LUNET_LOG_JSON);
  CHECK_STR(cli.pidfile, "F");
  CHECK_INT(cli.shutdown_timeout_ms, 2500);
  CHECK_INT(cli.watch, 1);
  CHECK_STR(cli.control, "C");

  CHECK_INT(parse(&a, &cli, "lunet", "run", "app.lua", "--log-level=warn",
                  "--log-format=text", "--pidfile=/run/x.pid",
                  "--shutdown-timeout=3600", END),
            0);
  CHECK_INT(cli.log_level, LUNET_LOG_WARN);
  CHECK_INT(cli.log_format, LUNET_LOG_TEXT);
  CHECK_STR(cli.pidfile, "/run/x.pid");
  CHECK_INT(cli.shutdown_timeout_ms, 3600000);

  /* The last of a repeated option wins. */
  CHECK_INT(parse(&a, &cli, "lunet", "run", "app.lua", "--log-level", "error",
                  "--log-level", "info", END),
            0);
  CHECK_INT(cli.log_level, LUNET_LOG_INFO);
}

/* --max-queued follows --memory-limit unless given (in either order),
 * takes 0 (no bound) and rejects what is not a count of MB. */
static void check_max_queued(void) {
  struct args a;
  struct lunet_cli cli;
  CHECK_INT(parse(&a, &cli, "lunet", "run", "app.lua", END), 0);
  CHECK_INT(cli.memory_limit_mb, 1024);
  CHECK_INT(cli.max_queued_mb, 1024);
  CHECK_INT(
      parse(&a, &cli, "lunet", "run", "app.lua", "--memory-limit", "64", END),
      0);
  CHECK_INT(cli.max_queued_mb, 64);
  CHECK_INT(parse(&a, &cli, "lunet", "run", "--max-queued", "8", "app.lua",
                  "--memory-limit", "64", END),
            0);
  CHECK_INT(cli.max_queued_mb, 8);
  CHECK_INT(cli.memory_limit_mb, 64);
  CHECK_INT(parse(&a, &cli, "lunet", "run", "app.lua", "--max-queued=0", END),
            0);
  CHECK_INT(cli.max_queued_mb, 0);
  CHECK_INT(
      parse(&a, &cli, "lunet", "run", "app.lua", "--max-queued", "x", END), -1);
  CHECK(strstr(err, "--max-queued expects 0 to") != NULL);
  CHECK_INT(parse(&a, &cli, "lunet", "run", "app.lua", "--max-queued", END),
            -1);
  CHECK(strstr(lunet_cli_usage, "--max-queued MB") != NULL);
}

/* Seconds are converted to the millisecond the user wrote, not one less:
 * every value with millisecond precision must come out exact, and a value
 * that passes the "> 0" check must not become 0 ms. */
static void check_shutdown_timeout_precision(void) {
  static const struct {
    const char *text;
    unsigned ms;
  } cases[] = {{"0.001", 1},    {"0.5", 500},     {"1", 1000},
               {"1.001", 1001}, {"1.005", 1005},  {"2.5", 2500},
               {"9.999", 9999}, {"3600", 3600000}};
  struct args a;
  struct lunet_cli cli;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    CHECK_SCOPE();
    CHECK_INT(parse(&a, &cli, "lunet", "run", "x.lua", "--shutdown-timeout",
                    cases[i].text, END),
              0);
    CHECK_INT(cli.shutdown_timeout_ms, cases[i].ms);
    CHECK_NOTE("--shutdown-timeout %s", cases[i].text);
  }
  CHECK_SCOPE();
  int r = parse(&a, &cli, "lunet", "run", "x.lua", "--shutdown-timeout",
                "0.0001", END);
  CHECK(r == -1 || cli.shutdown_timeout_ms >= 1);
  CHECK_NOTE("--shutdown-timeout 0.0001 (got r=%d, %u ms)", r,
             cli.shutdown_timeout_ms);
}

/* --worker-timeout: seconds (fractions too), 0 turns it off, below a
 * second (the heartbeat period) is refused. */
static void check_worker_timeout(void) {
  static const struct {
    const char *text;
    int ok;
    unsigned ms;
  } cases[] = {{"2", 1, 2000},
               {"0", 1, 0},
               {"1", 1, 1000},
               {"1.5", 1, 1500},
               {"86400", 1, 86400000},
               {"0.5", 0, 0},
               {"-1", 0, 0},
               {"", 0, 0},
               {"x", 0, 0},
               {"2s", 0, 0},
               {"86401", 0, 0}};
  struct args a;
  struct lunet_cli cli;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    CHECK_SCOPE();
    int r = parse(&a, &cli, "lunet", "run", "x.lua", "--workers", "2",
                  "--worker-timeout", cases[i].text, END);
    CHECK_INT(r, cases[i].ok ? 0 : -1);
    if (cases[i].ok) CHECK_INT(cli.worker_timeout_ms, cases[i].ms);
    if (!cases[i].ok)
      CHECK(strstr(err, "--worker-timeout expects seconds") != NULL);
    CHECK_NOTE("--worker-timeout '%s': %s", cases[i].text, err);
  }
  CHECK_INT(parse(&a, &cli, "lunet", "run", "x.lua", "--worker-timeout=7", END),
            0);
  CHECK_INT(cli.worker_timeout_ms, 7000);
  CHECK_INT(parse(&a, &cli, "lunet", "run", "x.lua", END), 0);
  CHECK_INT(cli.worker_timeout_ms, 30000);
  CHECK(strstr(lunet_cli_usage, "--worker-timeout SEC") != NULL);
}

static void check_script_args(void) {
  struct args a;
  struct lunet_cli cli;
  CHECK_INT(parse(&a, &cli, "lunet", "run", "app.lua", "--", "x", "y", END), 0);
  CHECK_INT(cli.script_argc, 2);
  CHECK(cli.script_argv == a.argv + 4);
  CHECK_STR(cli.script_argv[0], "x");
  CHECK_STR(cli.script_argv[1], "y");
  CHECK(cli.script_argv[2] == NULL);

  /* After "--" nothing is an option. */
  CHECK_INT(parse(&a, &cli, "lunet", "run", "app.lua", "--", "--listen", "a=b",
                  "--nope", END),
            0);
  CHECK_INT(cli.script_argc, 3);
  CHECK_INT(cli.nlisten, 0);
  CHECK_STR(cli.script_argv[1], "a=b"); /* not split */

  CHECK_INT(parse(&a, &cli, "lunet", "run", "app.lua", "--", END), 0);
  CHECK_INT(cli.script_argc, 0);

  CHECK_INT(parse(&a, &cli, "lunet", "check", "app.lua", "--", "z", END), 0);
  CHECK_INT(cli.script_argc, 1);

  /* A lone "-" is a file name (stdin by convention), not an option. */
  CHECK_INT(parse(&a, &cli, "lunet", "run", "-", END), 0);
  CHECK_STR(cli.script, "-");
}

static void check_reload(void) {
  struct args a;
  struct lunet_cli cli;
  CHECK_INT(parse(&a, &cli, "lunet", "reload", END), 0);
  CHECK_INT(cli.command, LUNET_CMD_RELOAD);
  CHECK(cli.script == NULL);
  CHECK_INT(parse(&a, &cli, "lunet", "reload", "--pid", "42", END), 0);
  CHECK_INT(cli.pid, 42);
  CHECK_INT(parse(&a, &cli, "lunet", "reload", "--pidfile=p", END), 0);
  CHECK_STR(cli.pidfile, "p");
  CHECK_INT(parse(&a, &cli, "lunet", "reload", "--control", "s", END), 0);
  CHECK_STR(cli.control, "s");
}

/* }================================================================== */

/* {==================================================================
 * Usage errors: -1 and a one-line message
 * =================================================================== */

#define CHECK_USAGE_ERROR(...)                                   \
  do {                                                           \
    struct args a_;                                              \
    struct lunet_cli cli_;                                       \
    CHECK_SCOPE();                                               \
    CHECK_INT(parse(&a_, &cli_, "lunet", __VA_ARGS__, END), -1); \
    CHECK(err[0] != '\0');                                       \
    CHECK(strchr(err, '\n') == NULL);                            \
    CHECK_NOTE("usage error: lunet %s", #__VA_ARGS__);           \
  } while (0)

static void check_usage_errors(void) {
  struct args a;
  struct lunet_cli cli;
  /* No command at all, with and without argv[0]. */
  CHECK_INT(parse(&a, &cli, "lunet", END), -1);
  CHECK(err[0] != '\0');
  CHECK_INT(parse(&a, &cli, END), -1);
  CHECK(err[0] != '\0');

  CHECK_USAGE_ERROR("serve", "app.lua");
  CHECK_USAGE_ERROR("--nope");
  CHECK_USAGE_ERROR("run", "app.lua", "--nope");
  CHECK_USAGE_ERROR("run", "app.lua", "-x");
  CHECK_USAGE_ERROR("run", "app.lua", "--watch=1");
  CHECK_USAGE_ERROR("run", "app.lua", "--listenx=a=:1");
  CHECK_USAGE_ERROR("run");
  CHECK_USAGE_ERROR("run", "--log-level", "debug");
  CHECK_USAGE_ERROR("run", "--", "app.lua");
  CHECK_USAGE_ERROR("check");
  CHECK_USAGE_ERROR("run", "app.lua", "--listen", "a");
  CHECK_USAGE_ERROR("run", "app.lua", "--listen=a");
  CHECK_USAGE_ERROR("run", "app.lua", "--listen", "=1.2.3.4:5");
  CHECK_USAGE_ERROR("run", "app.lua", "--listen=a=");
  CHECK_USAGE_ERROR("run", "app.lua", "--listen", "=");
  CHECK_USAGE_ERROR("run", "app.lua", "--listen");
  CHECK_USAGE_ERROR("run", "app.lua", "--listen=");
  CHECK_USAGE_ERROR("run", "app.lua", "--log-level", "loud");
  CHECK_USAGE_ERROR("run", "app.lua", "--log-level", "INFO");
  CHECK_USAGE_ERROR("run", "app.lua", "--log-level");
  CHECK_USAGE_ERROR("run", "app.lua", "--log-format", "xml");
  CHECK_USAGE_ERROR("run", "app.lua", "--log-format=");
  CHECK_USAGE_ERROR("run", "app.lua", "--pidfile");
  CHECK_USAGE_ERROR("run", "app.lua", "--pidfile=");
  CHECK_USAGE_ERROR("run", "app.lua", "--control");
  CHECK_USAGE_ERROR("run", "app.lua", "--shutdown-timeout", "0");
  CHECK_USAGE_ERROR("run", "app.lua", "--shutdown-timeout", "abc");
  CHECK_USAGE_ERROR("run", "app.lua", "--shutdown-timeout", "-1");
  CHECK_USAGE_ERROR("run", "app.lua", "--shutdown-timeout", "2.5s");
  CHECK_USAGE_ERROR("run", "app.lua", "--shutdown-timeout", "3601");
  CHECK_USAGE_ERROR("run", "app.lua", "--shutdown-timeout", "nan");
  CHECK_USAGE_ERROR("run", "app.lua", "--shutdown-timeout", "inf");
  CHECK_USAGE_ERROR("run", "app.lua", "--shutdown-timeout=");
  CHECK_USAGE_ERROR("run", "app.lua", "--shutdown-timeout");
  CHECK_USAGE_ERROR("run", "a.lua", "b.lua");
  CHECK_USAGE_ERROR("check", "a.lua", "b.lua");
  CHECK_USAGE_ERROR("check", "app.lua", "--listen", "a=1.2.3.4:5");
  CHECK_USAGE_ERROR("check", "app.lua", "--watch");
  CHECK_USAGE_ERROR("check", "--log-level", "debug", "app.lua");
  CHECK_USAGE_ERROR("--help", "extra");
  CHECK_USAGE_ERROR("--version", "extra");
  CHECK_USAGE_ERROR("help", "run");
  CHECK_USAGE_ERROR("reload", "app.lua");
  CHECK_USAGE_ERROR("reload", "--listen", "a=:1");
  CHECK_USAGE_ERROR("reload", "--pid", "0");
  CHECK_USAGE_ERROR("reload", "--pid", "12x");
  CHECK_USAGE_ERROR("reload", "--pid");
  CHECK_USAGE_ERROR("reload", "--pid", "1", "--pidfile", "p");
  CHECK_USAGE_ERROR("reload", "--pidfile", "p", "--control", "s");

  /* The message names what was wrong. */
  CHECK_INT(
      parse(&a, &cli, "lunet", "run", "app.lua", "--log-level", "loud", END),
      -1);
  CHECK(strstr(err, "loud") != NULL);
  CHECK_INT(parse(&a, &cli, "lunet", "run", "app.lua", "--nope", END), -1);
  CHECK(strstr(err, "--nope") != NULL);
}

/* A small or zero errcap truncates the message and never writes past it
 * (the buffer ends at a guard page). */
static void check_small_errcap(void) {
  struct args a;
  struct lunet_cli cli;
  struct guard g;
  for (size_t cap = 0; cap <= 8; cap++) {
    CHECK_SCOPE();
    char *buf = guard_alloc(&g, cap);
    a.argc = 3;
    a.argv[0] = strcpy(a.store[0], "lunet");
    a.argv[1] = strcpy(a.store[1], "run");
    a.argv[2] = strcpy(a.store[2], "--a-rather-long-unknown-option");
    a.argv[3] = NULL;
    CHECK_INT(lunet_cli_parse(a.argc, a.argv, &cli, buf, cap), -1);
    if (cap > 0) CHECK_INT(strlen(buf), cap - 1);
    guard_free(&g);
    CHECK_NOTE("errcap %zu", cap);
  }
}

/* }================================================================== */

int main(void) {
  check_commands();
  check_listen();
  check_options();
  check_max_queued();
  check_shutdown_timeout_precision();
  check_worker_timeout();
  check_script_args();
  check_reload();
  check_usage_errors();
  check_small_errcap();
  CHECK_DONE();
}
