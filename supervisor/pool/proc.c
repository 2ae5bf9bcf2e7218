/*
 * proc.c — process mechanics; see proc.h.
 *
 * Orphans are prevented twice: PR_SET_PDEATHSIG makes the kernel SIGKILL a
 * worker when its supervisor dies (even by SIGKILL), and the pool's process
 * group lets a supervisor kill all its workers at once.
 */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc.h"

extern char **environ;

int sf_proc_make_pipes(sf_proc_pipes *mine, int child[3])
{
    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) < 0)
        return -1;
    if (pipe2(out, O_CLOEXEC) < 0) {
        close(in[0]);
        close(in[1]);
        return -1;
    }
    if (pipe2(err, O_CLOEXEC) < 0) {
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        return -1;
    }
    mine->to_child = in[1];
    mine->from_child = out[0];
    mine->err_child = err[0];
    child[0] = in[0];
    child[1] = out[1];
    child[2] = err[1];
    fcntl(mine->to_child, F_SETFL, O_NONBLOCK);
    fcntl(mine->from_child, F_SETFL, O_NONBLOCK);
    fcntl(mine->err_child, F_SETFL, O_NONBLOCK);
    /* A bigger pipe lets several calls sit in flight without blocking. */
    fcntl(mine->to_child, F_SETPIPE_SZ, 1 << 20);
    fcntl(mine->from_child, F_SETPIPE_SZ, 1 << 20);
    return 0;
}

static pid_t proc_spawn(char *const argv[], char *const env[], pid_t *pgid, sf_proc_pipes *pipes,
                        int fd3, char *errbuf, size_t errlen);

static void close_pipes(sf_proc_pipes *p, int child[3])
{
    close(p->to_child);
    close(p->from_child);
    close(p->err_child);
    for (int i = 0; i < 3; i++)
        close(child[i]);
}

/*
 * Closes every descriptor from `first` up, except `keep`: a worker must not
 * hold the supervisor's sockets or other workers' pipes (a leaked pipe end
 * would hide a worker's EOF from the pool).
 */
static void close_inherited(int first, int keep)
{
#ifdef SYS_close_range
    /* One syscall where the kernel has it (5.9+); the loop below otherwise. */
    if (keep < first || syscall(SYS_close_range, (unsigned)first, (unsigned)keep - 1, 0) == 0) {
        unsigned from = (unsigned)(keep >= first ? keep + 1 : first);
        if (syscall(SYS_close_range, from, ~0U, 0) == 0)
            return;
    }
#endif
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536)
        max = 65536;
    for (int fd = first; fd < max; fd++) {
        if (fd != keep)
            close(fd);
    }
}

/* The child between fork and exec: only async-signal-safe calls. */
static void child_exec(char *const argv[], char *const env[], pid_t parent, pid_t pgid,
                       int child[3], int fd3, int report)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) /* the supervisor died before prctl took effect */
        _exit(127);
    if (setpgid(0, pgid) < 0)
        setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int s = 1; s < NSIG; s++) {
        if (s != SIGKILL && s != SIGSTOP)
            signal(s, SIG_DFL);
    }
    for (int i = 0; i < 3; i++) {
        if (dup2(child[i], i) < 0)
            _exit(127);
    }
    if (fd3 >= 0 && dup2(fd3, 3) < 0)
        _exit(127);
    close_inherited(fd3 >= 0 ? 4 : 3, report);
    execve(argv[0], argv, env);
    int e = errno;
    ssize_t w = write(report, &e, sizeof(e));
    (void)w; /* nothing more can be done in a failed child */
    _exit(127);
}

/*
 * The child's environment: ours, with the entries of `extra` replacing ours
 * of the same name. Built before fork, since the supervisor has threads
 * (librdkafka's) and the child may only make async-signal-safe calls.
 * Returns a malloc'd array of borrowed strings.
 */
static char **merge_env(char *const extra[])
{
    size_t n = 0, k = 0;
    while (environ[n])
        n++;
    while (extra && extra[k])
        k++;
    char **env = sf_xcalloc(n + k + 1, sizeof(char *));
    if (env == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(environ[i], '=');
        size_t name = eq ? (size_t)(eq - environ[i]) + 1 : strlen(environ[i]);
        bool replaced = false;
        for (size_t j = 0; j < k && !replaced; j++)
            replaced = strncmp(extra[j], environ[i], name) == 0;
        if (!replaced)
            env[o++] = environ[i];
    }
    for (size_t j = 0; j < k; j++)
        env[o++] = extra[j];
    env[o] = NULL;
    return env;
}

pid_t sf_proc_spawn(char *const argv[], char *const extra_env[], pid_t *pgid, sf_proc_pipes *pipes,
                    char *errbuf, size_t errlen)
{
    return sf_proc_spawn_fd3(argv, extra_env, pgid, pipes, -1, errbuf, errlen);
}

pid_t sf_proc_spawn_fd3(char *const argv[], char *const extra_env[], pid_t *pgid,
                        sf_proc_pipes *pipes, int fd3, char *errbuf, size_t errlen)
{
    char **env = merge_env(extra_env);
    if (env == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    pid_t pid = proc_spawn(argv, env, pgid, pipes, fd3, errbuf, errlen);
    free(env);
    return pid;
}

static pid_t proc_spawn(char *const argv[], char *const env[], pid_t *pgid, sf_proc_pipes *pipes,
                        int fd3, char *errbuf, size_t errlen)
{
    int child[3];
    if (sf_proc_make_pipes(pipes, child) < 0) {
        snprintf(errbuf, errlen, "cannot create pipes: %s", strerror(errno));
        return -1;
    }
    int report[2];
    if (pipe2(report, O_CLOEXEC) < 0) {
        snprintf(errbuf, errlen, "cannot create pipe: %s", strerror(errno));
        close_pipes(pipes, child);
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(errbuf, errlen, "fork failed: %s", strerror(errno));
        close_pipes(pipes, child);
        close(report[0]);
        close(report[1]);
        return -1;
    }
    if (pid == 0) {
        close(report[0]);
        child_exec(argv, env, parent, *pgid, child, fd3, report[1]);
    }
    close(report[1]);
    for (int i = 0; i < 3; i++)
        close(child[i]);
    /* Set the group from both sides so it holds whichever runs first. */
    if (setpgid(pid, *pgid) < 0 && *pgid != 0)
        setpgid(pid, 0);
    pid_t g = getpgid(pid);
    if (g > 0)
        *pgid = g;
    int e = 0;
    ssize_t n;
    do {
        n = read(report[0], &e, sizeof(e)); /* EOF at exec: a few hundred µs */
    } while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n == (ssize_t)sizeof(e)) {
        snprintf(errbuf, errlen, "cannot execute %s: %s", argv[0], strerror(e));
        waitpid(pid, NULL, 0);
        close(pipes->to_child);
        close(pipes->from_child);
        close(pipes->err_child);
        return -1;
    }
    return pid;
}

unsigned long sf_proc_rss_kb(pid_t pid)
{
    char path[64], buf[128];
    snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    unsigned long size, resident;
    if (sscanf(buf, "%lu %lu", &size, &resident) != 2)
        return 0;
    return resident * (unsigned long)(sysconf(_SC_PAGESIZE) / 1024);
}

const char *sf_proc_describe_exit(int status, char *text, size_t cap)
{
    if (WIFEXITED(status)) {
        snprintf(text, cap, "worker exited with code %d", WEXITSTATUS(status));
        return "exit";
    }
    if (WIFSIGNALED(status)) {
        int s = WTERMSIG(status);
        if (s == SIGSEGV || s == SIGBUS) {
            snprintf(text, cap, "worker crashed: segmentation fault (signal %d)", s);
            return "segfault";
        }
        if (s == SIGABRT) {
            snprintf(text, cap, "worker crashed: aborted (signal %d)", s);
            return "abort";
        }
        if (s == SIGKILL) {
            snprintf(text, cap, "worker was killed (SIGKILL: out of memory or killed externally)");
            return "killed";
        }
        snprintf(text, cap, "worker died from signal %d (%s)", s, strsignal(s));
        return "signal";
    }
    snprintf(text, cap, "worker ended with status %d", status);
    return "exit";
}

bool sf_proc_alive(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}
