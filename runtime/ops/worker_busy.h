/* The half of a worker's liveness that its loop cannot give: while the
 * loop runs a handler it sends no heartbeat (worker.c), yet a handler
 * within its --budget is busy, not stuck. A thread of the worker watches
 * the budget's event counter and tells the supervisor, on a pipe of its
 * own (descriptor LUNET_WORKER_BUSY_FD), that a handler runs within its
 * budget, and once it has run past it. A stopped process, or a handler
 * blocked in a C call past its budget, then falls silent like a loop
 * stuck outside Lua (supervisor_liveness.c). */
#ifndef LUNET_WORKER_BUSY_H
#define LUNET_WORKER_BUSY_H

struct lunet_budget;
struct lunet_worker_busy;

/* One line per report: the letter, and for an overrun where the loop
 * thread was found, "o SERVICE HANDLER\n" ("o\n" when it could not say). */
#define LUNET_BUSY_WITHIN 'b' /* a handler runs, within its budget */
#define LUNET_BUSY_OVER 'o'   /* the handler running has overrun it */

/* Starts the thread writing to fd (which it then owns), and the signal
 * by which it asks the loop thread where it is. Call on the loop thread.
 * Nothing starts
 * without a time budget, since a handler then has no bound to be within:
 * *out stays NULL. 0 or a UV error. */
int lunet_worker_busy_start(struct lunet_worker_busy **out,
                            const struct lunet_budget *b, int fd);

/* Stops and joins the thread, closes the descriptor. NULL is fine. */
void lunet_worker_busy_stop(struct lunet_worker_busy *r);

#endif
