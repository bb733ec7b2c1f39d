/* Where log records go: stderr. A server process starts a writer thread,
 * so the loop never waits on a slow log reader (a pipe nobody drains, a
 * stalled disk): records are queued in a bounded buffer and a full buffer
 * drops records, counted and reported once there is room. Without the
 * thread (commands, tests) every record is one write(2). Either way a
 * record is never split: whole records go out in writes of at most
 * PIPE_BUF bytes when they fit, so processes sharing stderr (workers)
 * never interleave within a line. */
#ifndef LUNET_LOG_SINK_H
#define LUNET_LOG_SINK_H

#include <stddef.h>

#define LUNET_LOG_QUEUE_SIZE (512u << 10) /* per buffer; two of them */

/* Writes or queues one record (ending with a newline). */
void lunet_log_sink_write(const char *record, size_t n);

/* Starts the writer thread; later records are queued. 0 or UV error
 * (then writes stay synchronous). Registers a flush at exit. */
int lunet_log_sink_start(void);

/* Returns once every record queued so far is written. */
void lunet_log_sink_flush(void);

#endif
