/* zygote.c — see zygote.h and python/snakefleet/zygote.py for the protocol. */
#include "zygote.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"

#define SPAWN_REPLY_TIMEOUT_MS 3000

struct sf_zygote {
    struct event_base *base;
    pid_t pid;
    int ctl;
    sf_proc_pipes fds;
    struct event *ev_err;
    bool ready, stopping, exited;
    struct event *ev_kill;
    char errline[1024];
    size_t errlen;
};

/* Receives one control message, waiting up to timeout_ms. Returns its length or -1. */
static ssize_t ctl_recv(int fd, char *buf, size_t cap, int timeout_ms)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int rc = poll(&pfd, 1, timeout_ms);
        if (rc < 0 && errno == EINTR) {
            struct timespec t1;
            clock_gettime(CLOCK_MONOTONIC, &t1);
            long spent = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
            if (spent >= timeout_ms)
                return -1;
            continue;
        }
        if (rc <= 0)
            return -1;
        ssize_t n = recv(fd, buf, cap - 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf[n] = '\0';
        return n;
    }
}

static void on_zygote_stderr(evutil_socket_t fd, short what, void *arg)
{
    sf_zygote *z = arg;
    char buf[2048];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            event_del(z->ev_err);
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == '\n' || z->errlen == sizeof(z->errline) - 1) {
            char q[1100];
            sf_log_quote(q, sizeof(q), z->errline, z->errlen);
            sf_info("zygote.stderr", "pid=%d line=%s", (int)z->pid, q);
            z->errlen = 0;
            if (buf[i] == '\n')
                continue;
        }
        z->errline[z->errlen++] = buf[i];
    }
}

sf_zygote *sf_zygote_start(struct event_base *base, const char *python, const char *preload,
                           char *const env[], pid_t *pgid, unsigned timeout_ms, char *errbuf,
                           size_t errlen)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        snprintf(errbuf, errlen, "socketpair: %s", strerror(errno));
        return NULL;
    }
    sf_zygote *z = sf_xcalloc(1, sizeof(*z));
    z->base = base;
    z->ctl = sv[0];
    char sup[24];
    snprintf(sup, sizeof(sup), "%d", (int)getpid());
    char *argv[] = {(char *)python, "-m", "snakefleet.zygote", "--preload", (char *)preload,
                    "--control-fd", "3",  "--supervisor-pid",  sup,         NULL};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    z->pid = sf_proc_spawn_fd3(argv, env, pgid, &z->fds, sv[1], errbuf, errlen);
    close(sv[1]);
    if (z->pid < 0) {
        close(z->ctl);
        free(z);
        return NULL;
    }
    z->ev_err = event_new(base, z->fds.err_child, EV_READ | EV_PERSIST, on_zygote_stderr, z);
    event_add(z->ev_err, NULL);
    char msg[512];
    ssize_t n = ctl_recv(z->ctl, msg, sizeof(msg), (int)timeout_ms);
    if (n < 0 || strncmp(msg, "ready ", 6) != 0) {
        snprintf(errbuf, errlen, "zygote did not become ready: %s",
                 n < 0 ? "no answer within startup_timeout" : msg);
        kill(z->pid, SIGKILL);
        waitpid(z->pid, NULL, 0);
        z->exited = true;
        sf_zygote_free(z);
        return NULL;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    z->ready = true;
    sf_info("zygote.ready", "pid=%d preload=%s ready_ms=%.1f", (int)z->pid, preload,
            (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    return z;
}

bool sf_zygote_ready(const sf_zygote *z)
{
    return z && z->ready && !z->exited && !z->stopping;
}

pid_t sf_zygote_spawn(sf_zygote *z, const char *worker_id, unsigned max_frame_bytes,
                      sf_proc_pipes *pipes, char *errbuf, size_t errlen)
{
    int child[3];
    if (sf_proc_make_pipes(pipes, child) < 0) {
        snprintf(errbuf, errlen, "cannot create pipes: %s", strerror(errno));
        return -1;
    }
    char req[128];
    int len = snprintf(req, sizeof(req), "spawn %s %u", worker_id, max_frame_bytes);
    struct iovec iov = {.iov_base = req, .iov_len = (size_t)len};
    union {
        char buf[CMSG_SPACE(sizeof(child))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof(u));
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(child));
    memcpy(CMSG_DATA(cm), child, sizeof(child));
    ssize_t sent = sendmsg(z->ctl, &mh, MSG_NOSIGNAL);
    for (int i = 0; i < 3; i++)
        close(child[i]);
    char msg[512];
    pid_t pid = -1;
    if (sent < 0) {
        snprintf(errbuf, errlen, "zygote control socket: %s", strerror(errno));
    } else if (ctl_recv(z->ctl, msg, sizeof(msg), SPAWN_REPLY_TIMEOUT_MS) < 0) {
        snprintf(errbuf, errlen, "zygote did not answer a spawn request");
    } else {
        char id[64];
        int p;
        if (sscanf(msg, "spawned %63s %d", id, &p) == 2 && strcmp(id, worker_id) == 0)
            pid = p;
        else
            snprintf(errbuf, errlen, "zygote: %s", msg);
    }
    if (pid < 0) {
        /* A zygote that fails a spawn is not trusted again; the pool falls back to exec. */
        z->ready = false;
        close(pipes->to_child);
        close(pipes->from_child);
        close(pipes->err_child);
        pipes->to_child = pipes->from_child = pipes->err_child = -1;
    }
    return pid;
}

pid_t sf_zygote_pid(const sf_zygote *z)
{
    return z && !z->exited ? z->pid : 0;
}

void sf_zygote_reap(sf_zygote *z)
{
    if (z == NULL || z->exited)
        return;
    int st;
    if (waitpid(z->pid, &st, WNOHANG) == z->pid) {
        z->exited = true;
        z->ready = false;
        if (!z->stopping) {
            char how[160];
            sf_proc_describe_exit(st, how, sizeof(how));
            sf_error("zygote.died", "pid=%d reason=\"%s\" fallback=exec", (int)z->pid, how);
        }
    }
}

static void on_zygote_kill(evutil_socket_t fd, short what, void *arg)
{
    sf_zygote *z = arg;
    if (!z->exited)
        kill(z->pid, SIGKILL);
}

void sf_zygote_stop(sf_zygote *z)
{
    if (z == NULL || z->stopping)
        return;
    z->stopping = true;
    z->ready = false;
    if (z->ctl >= 0) {
        close(z->ctl);
        z->ctl = -1;
    }
    z->ev_kill = evtimer_new(z->base, on_zygote_kill, z);
    struct timeval tv = {2, 0};
    evtimer_add(z->ev_kill, &tv);
}

bool sf_zygote_stopped(const sf_zygote *z)
{
    return z == NULL || z->exited;
}

void sf_zygote_free(sf_zygote *z)
{
    if (z == NULL)
        return;
    if (!z->exited) {
        kill(z->pid, SIGKILL);
        waitpid(z->pid, NULL, 0);
    }
    if (z->ev_err)
        event_free(z->ev_err);
    if (z->ev_kill)
        event_free(z->ev_kill);
    if (z->ctl >= 0)
        close(z->ctl);
    close(z->fds.to_child);
    close(z->fds.from_child);
    close(z->fds.err_child);
    free(z);
}
