/* Shared by supervisor.c (worker processes) and supervisor_control.c
 * (control socket requests answered by asking every worker). */
#ifndef LUNET_SUPERVISOR_INTERNAL_H
#define LUNET_SUPERVISOR_INTERNAL_H

#include <stdint.h>
#include <uv.h>

#include "channel.h"
#include "cli.h"
#include "list.h"
#include "tls.h"

struct lunet_control;
struct lunet_control_client;
struct lunet_metrics_proxy;

struct lunet_supervisor;

/* Why a worker was replaced: counted per reason (stats, metrics). The
 * Lua memory cap raises in scripts and replaces nobody; a kernel OOM
 * kill looks like any other crash. */
enum lunet_replaced {
  LUNET_REPLACED_CRASHED,
  LUNET_REPLACED_UNRESPONSIVE,
  LUNET_REPLACED_REASONS
};
extern const char *const lunet__replaced_names[LUNET_REPLACED_REASONS];

struct lunet_worker_slot {
  struct lunet_supervisor *sup;
  int id; /* 1..N, kept by replacements */
  uv_process_t proc;
  struct lunet_channel ch;
  uv_pipe_t busy; /* the worker's busy reports (worker_busy.h) */
  char busy_buf[256];
  char busy_line[160]; /* a report cut by a read */
  size_t busy_len;
  uv_timer_t restart_timer;
  long pid;         /* 0 while no process runs in the slot */
  int ready;        /* has said it serves */
  int open_handles; /* proc, channel and busy pipe not yet closed */
  uint64_t started_ms;
  unsigned backoff_ms; /* delay before the next restart */
  /* Liveness (supervisor_liveness.c), in the supervisor's loop time. */
  uint64_t heard_ms; /* the last frame: the worker's loop ran */
  uint64_t busy_ms;  /* the last report of a handler within budget */
  int over_budget;   /* reported since: that handler overran it */
  char where[160];   /* "SERVICE HANDLER" it overran in, if said */
  int unresponsive;  /* killed for silence: its exit is no crash */
  uint64_t replaced; /* processes of this slot replaced */
  int last_replaced; /* why the last one was; -1: never */
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
  uint64_t restarts; /* every replacement, and by reason: */
  uint64_t replaced[LUNET_REPLACED_REASONS];
  uint64_t liveness_tick_ms; /* the last liveness check */
  char metrics_addr[64];     /* from --metrics or a worker's report */
  struct lunet_metrics_proxy *metrics;
  /* TLS session ticket keys, the same for every worker (current, then
   * the previous one, still accepted) */
  unsigned char ticket_keys[2][LUNET_TLS_TICKET_KEY_SIZE];
  int ticket_keys_set; /* how many of them are */
  uint64_t ticket_keys_ms; /* when the current one was made */
};

/* supervisor_tickets.c */
void lunet__sup_tickets_send(struct lunet_worker_slot *w);
void lunet__sup_tickets_tick(struct lunet_supervisor *sup, uint64_t now);

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

/* supervisor_liveness.c: kills (SIGKILL) every ready worker silent for
 * longer than --worker-timeout; its exit is then replaced as
 * unresponsive. Runs on the supervisor's tick. */
void lunet__sup_check_liveness(struct lunet_supervisor *sup, uint64_t now_ms);
/* A frame came from the worker: its loop runs. */
void lunet__sup_heard(struct lunet_worker_slot *w);
/* Starts reading w->busy, once the worker is spawned. 0 or UV error. */
int lunet__sup_busy_start(struct lunet_worker_slot *w);

/* Answers fan-outs whose deadline passed. */
void lunet__sup_expire(struct lunet_supervisor *sup, uint64_t now_ms);

#endif
