/*
 * progress.h — the one-line progress display of batch and loadtest on
 * stderr: `\r[#####-----] done/total  pct  rate req/s  eta`, redrawn at most
 * ten times a second, and only when stderr is a terminal (otherwise every
 * call is a no-op, so logs and pipes stay clean).
 */
#ifndef SF_CLI_PROGRESS_H
#define SF_CLI_PROGRESS_H

#include <stdbool.h>

typedef struct progress {
    bool tty;
    double t0, last_draw;
    long total; /* < 0: not known yet */
    const char *label;
} progress;

void progress_init(progress *p, const char *label, long total);
/* Sets the total once it is known (e.g. when the input ends). */
void progress_set_total(progress *p, long total);
/* Redraws if 100 ms passed since the last draw (or force). */
void progress_update(progress *p, long done, bool force);
/* Erases the line (before printing a summary). */
void progress_clear(progress *p);

#endif
