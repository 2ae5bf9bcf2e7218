/*
 * zygote.h — the C side of the Python zygote (python/snakefleet/zygote.py):
 * a process that imports the `preload` modules once and forks ready workers
 * on request, so a new worker is serving in milliseconds instead of paying
 * `import dspy` again. The control channel is a SOCK_SEQPACKET socket; the
 * worker's three pipe ends travel over it with SCM_RIGHTS.
 *
 * Workers forked by the zygote are re-parented to the supervisor (a child
 * subreaper), so the pool waits for them like for any worker it started.
 */
#ifndef SF_ZYGOTE_H
#define SF_ZYGOTE_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "proc.h"

typedef struct sf_zygote sf_zygote;

/*
 * Starts the zygote and waits (up to timeout_ms) for its preload to finish.
 * Returns NULL with errbuf set on failure; the pool then falls back to exec.
 */
sf_zygote *sf_zygote_start(struct event_base *base, const char *python, const char *preload,
                           char *const env[], pid_t *pgid, unsigned timeout_ms, char *errbuf,
                           size_t errlen);

bool sf_zygote_ready(const sf_zygote *z);

/* Forks a worker; fills pipes with the supervisor's ends. Returns its pid or -1. */
pid_t sf_zygote_spawn(sf_zygote *z, const char *worker_id, unsigned max_frame_bytes,
                      sf_proc_pipes *pipes, char *errbuf, size_t errlen);

/* Reaps the zygote process if it exited (call on SIGCHLD). */
void sf_zygote_reap(sf_zygote *z);
/* The zygote's pid while it runs (not yet reaped), else 0. */
pid_t sf_zygote_pid(const sf_zygote *z);

/* Closes the control socket (the zygote exits on EOF); SIGKILL if it lingers. */
void sf_zygote_stop(sf_zygote *z);
bool sf_zygote_stopped(const sf_zygote *z);
void sf_zygote_free(sf_zygote *z);

#endif
