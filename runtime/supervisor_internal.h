/* Shared by supervisor.c (worker processes) and supervisor_control.c
 * (control socket requests answered by asking every worker). */
#ifndef LUNET_SUPERVISOR_INTERNAL_H
#define LUNET_SUPERVISOR_INTERNAL_H

#include <stdint.h>
#include <uv.h>

#include "channel.h"
#include "cli.h"
#include "list.h"

struct lunet_control;
struct lunet_control_client;
struct lunet_metrics_proxy;

struct lunet_supervisor;

struct lunet_worker_slot {
  struct lunet_supervisor *sup;
  int id; /* 1..N, kept by replacements */
  uv_process_t proc;
  struct lunet_channel ch;
  uv_timer_t restart_timer;
  long pid;         /* 0 while no process runs in the slot */
  int ready;        /* has said it serves */
  int open_handles; /* proc and channel not yet closed */
  uint64_t started_ms;
  unsigned backoff_ms; /* delay before the next restart */
};

struct lunet_supervisor {
  uv_loop_t loop;
  const struct lunet_cli *cli;
  char **argv;
  char exe[4096];
  int nworkers;
  struct lunet_worker_slot *slots;
  uv_signal_t sigint, sigterm, sighup;
  uv_timer_t tick; /* fan-out deadlines; forced-exit deadline */
  struct lunet_control *control;
  struct lunet_list fanouts; /* requests waiting for workers' answers */
  unsigned long last_fanout_id;
  char *ports;    /* "NAME=ADDR\n" of first listeners, for env */
  int ever_ready; /* some worker has served: crashes are replaced */
  int all_ready_logged;
  int shutting_down;
  uint64_t kill_at_ms; /* shutdown: SIGKILL who is left at this time */
  int exit_code;
  uint64_t restarts;
  char metrics_addr[64]; /* from --metrics or a worker's report */
  struct lunet_metrics_proxy *metrics;
};

/* supervisor_control.c */
int lunet__sup_control_start(struct lunet_supervisor *sup);
void lunet__sup_control_stop(struct lunet_supervisor *sup);
/* A worker answered a fan-out (frame RELOADED or STATS). */
void lunet__sup_answer(struct lunet_supervisor *sup,
                       struct lunet_worker_slot *w, int type,
                       const char *payload, size_t len);
/* The worker will not answer: it exited. */
void lunet__sup_worker_gone(struct lunet_supervisor *sup,
                            struct lunet_worker_slot *w);
/* Asks every running worker to reload; the joined outcome goes to the
 * client (NULL: to the log only). */
void lunet__sup_reload(struct lunet_supervisor *sup,
                       struct lunet_control_client *client);
/* supervisor_metrics.c: GET /metrics on sup->metrics_addr, every
 * worker's samples labelled worker="ID". 0 or -1 (logged). */
int lunet__sup_metrics_start(struct lunet_supervisor *sup);
void lunet__sup_metrics_stop(struct lunet_supervisor *sup);

/* Asks every running worker for its stats in `mode` (json, text or
 * prometheus); done(ud, sup, answers) runs once all answered, exited or
 * the deadline passed. answers[i] is worker i+1's body or NULL;
 * answers itself is NULL when the request could not be made. */
typedef void (*lunet_fanout_done)(void *ud, struct lunet_supervisor *sup,
                                  char *const *answers);
void lunet__sup_ask_stats(struct lunet_supervisor *sup, const char *mode,
                          lunet_fanout_done done, void *ud);

/* Answers fan-outs whose deadline passed. */
void lunet__sup_expire(struct lunet_supervisor *sup, uint64_t now_ms);

#endif
