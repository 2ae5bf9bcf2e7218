/* progress.c — a one-line \r progress display on a TTY stderr; see progress.h. */
#include "progress.h"

#include <stdio.h>
#include <unistd.h>

#include "args.h"

#define BAR_WIDTH 30

void progress_init(progress *p, const char *label, long total)
{
    p->tty = isatty(STDERR_FILENO) == 1;
    p->t0 = args_now();
    p->last_draw = 0;
    p->total = total;
    p->label = label;
}

void progress_set_total(progress *p, long total)
{
    p->total = total;
}

void progress_update(progress *p, long done, bool force)
{
    if (!p->tty)
        return;
    double now = args_now();
    if (!force && now - p->last_draw < 0.1)
        return;
    p->last_draw = now;
    double secs = now - p->t0;
    double rate = secs > 0 ? (double)done / secs : 0;
    if (p->total > 0) {
        char bar[BAR_WIDTH + 1];
        int filled = (int)((double)done * BAR_WIDTH / (double)p->total);
        for (int i = 0; i < BAR_WIDTH; i++)
            bar[i] = i < filled ? '#' : '-';
        bar[BAR_WIDTH] = '\0';
        double eta = rate > 0 ? (double)(p->total - done) / rate : 0;
        fprintf(stderr, "\r%s [%s] %ld/%ld %5.1f%% %8.0f req/s eta %.0fs\033[K", p->label, bar,
                done, p->total, 100.0 * (double)done / (double)p->total, rate, eta);
    } else {
        fprintf(stderr, "\r%s %ld done %8.0f req/s %.0fs\033[K", p->label, done, rate, secs);
    }
    fflush(stderr);
}

void progress_clear(progress *p)
{
    if (!p->tty)
        return;
    fprintf(stderr, "\r\033[K");
    fflush(stderr);
}
