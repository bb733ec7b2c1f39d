/* lunet: command line, signals and the process around one runtime. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "cli.h"
#include "control.h"
#include "log.h"
#include "log_sink.h"
#include "metrics.h"
#include "reload.h"
#include "control_client.h"
#include "runtime.h"
#include "service.h"
#include "supervisor.h"
#include "worker.h"
#include "watch.h"

#define EXIT_USAGE 2

struct signals {
  uv_signal_t sigint;
  uv_signal_t sigterm;
  uv_signal_t sighup;
};

static int usage_error(const char *msg) {
  lunet_log_sink_flush(); /* records before the message, in order */
  fprintf(stderr, "lunet: %s (see lunet --help)\n", msg);
  return EXIT_USAGE;
}

static void signal_cb(uv_signal_t *h, int signum) {
  if (signum == SIGHUP)
    lunet_reload_async(h->data, "SIGHUP", NULL, NULL); /* logs the outcome */
  else
    lunet_runtime_shutdown(h->data, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

/* Unref'd: a signal handler alone must not keep a finished client alive. */
static void signal_start(uv_signal_t *h, struct lunet_runtime *rt,
                         int signum) {
  int r;
  if ((r = uv_signal_init(&rt->loop, h)) == 0 &&
      (r = uv_signal_start(h, signal_cb, signum)) == 0) {
    h->data = rt;
    uv_unref((uv_handle_t *)h);
    return;
  }
  lunet_log(LUNET_LOG_ERROR, "cannot watch a signal", "signal",
            strsignal(signum), "error", uv_strerror(r), NULL);
}

static void signals_start(struct signals *s, struct lunet_runtime *rt) {
  signal_start(&s->sigint, rt, SIGINT);
  signal_start(&s->sigterm, rt, SIGTERM);
  signal_start(&s->sighup, rt, SIGHUP);
}

static void signals_stop(struct signals *s) {
  uv_close((uv_handle_t *)&s->sigint, NULL);
  uv_close((uv_handle_t *)&s->sigterm, NULL);
  uv_close((uv_handle_t *)&s->sighup, NULL);
}

static void print_services(struct lunet_runtime *rt) {
  struct lunet_list *q;
  printf("%s: ok", rt->script_path);
  for (q = rt->services.next; q != &rt->services; q = q->next) {
    struct lunet_service *svc = lunet_container_of(q, struct lunet_service,
                                                   node);
    printf("%s %s (%s %s)", q == rt->services.next ? ":" : ",", svc->name,
           svc->kind == LUNET_KIND_UDP    ? "udp"
           : svc->kind == LUNET_KIND_HTTP ? "http"
                                          : "tcp",
           svc->addr_text);
  }
  printf("\n");
}

static int command_check(struct lunet_runtime *rt) {
  char err[4096];
  int usage;
  if (lunet_runtime_load(rt, err, sizeof err, &usage) < 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  print_services(rt);
  return 0;
}

/* A worker's supervisor owns the pidfile, the control socket and the
 * metrics endpoint; the worker reports the script's metrics address. */
static int serve_as_worker(struct lunet_runtime *rt) {
  if (lunet_worker_attach(rt) < 0 || lunet_runtime_listen(rt) < 0) return 1;
  lunet_worker_ready(rt, rt->metrics_addr);
  return 0;
}

static int serve_alone(struct lunet_runtime *rt, const struct lunet_cli *cli) {
  const char *metrics = cli->metrics ? cli->metrics : rt->metrics_addr;
  /* Before the loop runs: the blocking write is harmless. */
  if (cli->pidfile != NULL && lunet_pidfile_write(cli->pidfile) < 0) {
    lunet_log(LUNET_LOG_ERROR, "cannot write pidfile", "path", cli->pidfile,
              "error", strerror(errno), NULL);
    return 1;
  }
  /* A client script (no services) has nothing to reload. */
  if (!lunet_list_empty(&rt->services) &&
      lunet_control_start(rt, cli->control) < 0)
    return 1;
  if (lunet_runtime_listen(rt) < 0) return 1;
  if (metrics != NULL && *metrics && lunet_metrics_serve(rt, metrics) < 0)
    return 1;
  return 0;
}

/* Signals, --watch and the control socket are ready before the first
 * "listening" line: whoever waits for that line may use them at once. */
static int serve(struct lunet_runtime *rt, const struct lunet_cli *cli) {
  struct signals sig;
  int code = 1;
  signals_start(&sig, rt);
  if ((!cli->watch || lunet_watch_start(rt) == 0) &&
      (cli->worker_id ? serve_as_worker(rt) : serve_alone(rt, cli)) == 0)
    code = lunet_runtime_run(rt);
  signals_stop(&sig);
  if (cli->pidfile != NULL && !cli->worker_id) unlink(cli->pidfile);
  char exit_code[8];
  snprintf(exit_code, sizeof exit_code, "%d", code);
  lunet_log(LUNET_LOG_INFO, "exited", "code", exit_code, NULL);
  return code;
}

static int command_run(struct lunet_runtime *rt, const struct lunet_cli *cli) {
  char err[4096];
  int usage;
  if (lunet_runtime_load(rt, err, sizeof err, &usage) < 0) {
    if (usage) return usage_error(err);
    lunet_log(LUNET_LOG_ERROR, "script load failed", "script",
              rt->script_path, "error", err, NULL);
    return 1;
  }
  return serve(rt, cli);
}

int main(int argc, char **argv) {
  struct lunet_cli cli;
  char err[1024];
  if (lunet_cli_parse(argc, argv, &cli, err, sizeof err) < 0)
    return usage_error(err);
  if (cli.command == LUNET_CMD_HELP) return fputs(lunet_cli_usage, stdout), 0;
  if (cli.command == LUNET_CMD_VERSION)
    return printf("lunet %s (%s, libuv %s)\n", LUNET_VERSION, LUA_RELEASE,
                  uv_version_string()), 0;
  if (cli.command == LUNET_CMD_RELOAD || cli.command == LUNET_CMD_STATS ||
      cli.command == LUNET_CMD_TOP)
    return lunet_control_command(&cli);
  /* Peers that vanish must cost an EPIPE on one write, not the process. */
  signal(SIGPIPE, SIG_IGN);
  lunet_log_configure(cli.log_level, cli.log_format);
  /* A server must not wait on whoever reads its log. */
  if (cli.command == LUNET_CMD_RUN) lunet_log_sink_start();
  if (lunet_worker_identify(&cli, err, sizeof err) < 0)
    return usage_error(err);
  if (cli.command == LUNET_CMD_RUN && cli.workers > 0 && !cli.worker_id)
    return lunet_supervisor_run(&cli, argv);
  struct lunet_runtime *rt = lunet_runtime_new(&cli, err, sizeof err);
  if (rt == NULL) return usage_error(err);
  int code = cli.command == LUNET_CMD_CHECK ? command_check(rt)
                                            : command_run(rt, &cli);
  lunet_runtime_free(rt);
  return code;
}
