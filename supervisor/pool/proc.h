/*
 * proc.h — the process mechanics under the pool: starting a Python worker
 * with its three pipes so that it cannot outlive the supervisor, reading a
 * process's RSS from /proc, and naming how a process ended.
 */
#ifndef SF_PROC_H
#define SF_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The supervisor's ends of a worker's pipes (non-blocking, close-on-exec). */
typedef struct sf_proc_pipes {
    int to_child;   /* the worker's stdin: frames to the worker */
    int from_child; /* the worker's stdout: frames from the worker */
    int err_child;  /* the worker's stderr: log lines */
} sf_proc_pipes;

/*
 * Fork and exec argv with env (NULL-terminated "K=V" list added to the
 * current environment). In the child: PR_SET_PDEATHSIG(SIGKILL), process
 * group *pgid (0 = make a new group; the pgid used is written back), signal
 * mask and dispositions reset. If exec fails, the child reports errno over a
 * close-on-exec pipe and this returns -1 with the reason in errbuf, so a
 * wrong interpreter path is a clear error, not a crash loop.
 * Returns the pid, or -1.
 */
pid_t sf_proc_spawn(char *const argv[], char *const env[], pid_t *pgid, sf_proc_pipes *pipes,
                    char *errbuf, size_t errlen);

/* Like sf_proc_spawn, and fd3 (when >= 0) becomes the child's fd 3. */
pid_t sf_proc_spawn_fd3(char *const argv[], char *const env[], pid_t *pgid, sf_proc_pipes *pipes,
                        int fd3, char *errbuf, size_t errlen);

/* Makes three pipe pairs; the child ends are returned in child[3] (stdin, stdout, stderr). */
int sf_proc_make_pipes(sf_proc_pipes *mine, int child[3]);

/* Resident set size of pid in KiB (from /proc/PID/statm), or 0 if unknown. */
unsigned long sf_proc_rss_kb(pid_t pid);

/*
 * Classifies a wait status: kind is one of "segfault", "abort", "killed",
 * "signal", "exit"; text is a sentence for logs and error replies.
 */
const char *sf_proc_describe_exit(int status, char *text, size_t cap);

/* Whether pid is alive (and not a zombie). */
bool sf_proc_alive(pid_t pid);

#endif
