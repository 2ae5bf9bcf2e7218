/*
 * pool_internal.h — what the pool's files share; nothing outside
 * supervisor/pool*.c includes it (callers have pool.h).
 *
 * Shape of the pool:
 *   - slots: pool_size regular slots, then max_overflow overflow slots. A slot
 *     holds at most one worker process at a time; `gen` counts its processes
 *     so a session's "last worker" hint never points at a replacement.
 *   - the queue: calls waiting for a worker, in submit order. pool_dispatch()
 *     walks it and places what it can; a session whose earlier call must wait
 *     makes its later calls wait too, which keeps per-session order.
 *   - a worker's in-flight list: calls written to its pipe, answered in order
 *     (the worker is sequential), so the head is the one executing.
 *   - timers: one per worker (startup, request timeout, stop escalation), a
 *     maintenance tick (checkout timeouts, overflow reaping, respawns, RSS),
 *     the health tick (pings), and SIGCHLD.
 */
#ifndef SF_POOL_INTERNAL_H
#define SF_POOL_INTERNAL_H

#include <event2/buffer.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "clock.h"
#include "frame.h"
#include "frame_reader.h"
#include "pool.h"
#include "proc.h"
#include "smap.h"
#include "zygote.h"

#define MAX_SLOTS   64
#define SPECS_KNOWN 4

typedef struct sess {
    int bound;     /* slot with this session's calls in flight, or -1 */
    int inflight;  /* calls written to a worker */
    int queued;    /* calls waiting in the pool queue */
    int last_slot; /* the worker that last ran it (hint), -1 = none */
    uint32_t last_gen;
    uint64_t blocked_scan; /* dispatch pass in which an earlier call had to wait */
    /*
     * What worker (last_slot, last_gen) caches for this session, as far as
     * its answers tell (schemas/README.md, "Worker caches"): the state it
     * holds — version (the seq of the call that delivered or produced it)
     * and the hash of its bytes — and the specs (hashes of program id and
     * spec bytes) it built. A call whose spec or state the worker holds is
     * sent without them; a worker that no longer holds them answers
     * stale_cache and the call goes again in full.
     */
    bool state_known;
    bool compact_inflight; /* a call sent without its spec or state awaits its answer */
    uint8_t nspecs, spec_next;
    uint64_t state_ver, state_hash;
    struct {
        uint64_t prog, spec;
    } specs[SPECS_KNOWN];
} sess;

typedef struct pcall {
    struct pcall *next;
    uint64_t seq;
    char *session;
    uint32_t session_len;
    sess *s;
    /* The frame without spec and state (sf_frame_open_call), completed per worker at send. */
    msgpack_sbuffer frame;
    uint16_t nfields;
    /* The spec's bytes, then the state's (one owned buffer), or NULL. */
    char *payload;
    uint32_t spec_len, state_len;
    bool sent_spec, sent_state; /* in full, in the last send */
    bool compact;               /* the last send named a cached spec or state instead */
    bool force_full;            /* the worker answered stale_cache: send everything */
    bool drops_cache;           /* cleanup_session / delete_program */
    bool spec_required;         /* create_program: the spec always travels */
    uint64_t prog_hash, spec_hash, state_hash;
    sf_pool_done_fn done;
    void *arg;
    uint64_t submit_us, deadline_us, sent_us;
    uint64_t run_deadline_us; /* the request's deadline_ms, on now_us()'s clock (0: none) */
    /* a synchronous failure waiting to be reported from the loop */
    const char *fail_type;
    char fail_msg[192];
} pcall;

typedef enum { W_EMPTY, W_STARTING, W_READY, W_DRAINING, W_STOPPING } wstate;

typedef struct worker {
    sf_pool *pool;
    int slot;
    uint32_t gen;
    char id[32];
    wstate state;
    pid_t pid;
    sf_proc_pipes fds;
    struct event *ev_read, *ev_write, *ev_err, *ev_timer;
    struct evbuffer *out;
    bool dirty;
    sf_reader *reader;
    char errline[2048];
    size_t errlen;
    pcall *head, *tail;
    int inflight;
    uint64_t calls, errors, max_requests;
    uint64_t spawn_us, ready_us, idle_since_us, head_start_us;
    uint64_t rss_kb, rss_checked_us;
    bool ping_outstanding;
    bool eof, reaped;
    uint32_t code_gen; /* the pool's code_gen when it was spawned: older ones are reloaded */
    int status;
    const char *kill_type; /* why we killed it: "timeout", "worker_crashed", NULL */
    char kill_msg[160];
    int stop_phase;
    uint64_t respawn_at_us; /* for an empty slot: when it may be refilled */
} worker;

struct sf_pool {
    struct event_base *base;
    sf_pool_config cfg;
    char *python, *python_path, *worker_module, *preload, *id_prefix;
    char *env[24];
    char *exec_env[25]; /* env plus SNAKEFLEET_PRELOAD: exec'd workers import it themselves */
    worker slots[MAX_SLOTS];
    int nslots;
    pcall *qhead, *qtail;
    int queued;
    pcall *failed_head, *failed_tail; /* synchronous failures to report */
    sf_smap *sessions;
    uint64_t next_seq, next_worker_no, scan_no;
    pid_t pgid;
    struct event *ev_sigchld, *ev_maint, *ev_health, *ev_defer;
    struct event *ev_flush; /* one write per worker per loop turn for submits from outside */
    bool flush_pending;
    /* set (sf_pool_set_turn_end): the loop's owner runs sf_pool_flush, woken by this */
    void (*flush_wake)(void *);
    void *flush_wake_arg;
    bool started, stopping, stopped, in_dispatch, dispatch_again;
    int hold_flush; /* >0: inside a read callback; one flush at its end */
    void (*stop_done)(void *);
    void *stop_arg;
    uint64_t stop_deadline_us;
    int consecutive_crashes;
    uint64_t crash_times[32];
    int crash_idx;
    bool degraded;
    sf_zygote *zygote;
    sf_zygote *old_zygote; /* the one a reload replaced, until it has exited */
    uint32_t code_gen;     /* bumped by each sf_pool_reload */
    bool rolling;          /* workers of an older code_gen remain */
    uint64_t reloads;
    /* counters */
    uint64_t total_commands, total_errors, restarts, recycles, crashes, timeouts, checkout_timeouts,
        spawned;
    uint64_t stale_retries;   /* calls sent again in full after a stale_cache answer */
    uint64_t active_sessions; /* sessions with a call queued or in flight */
    sf_hist queue_wait, exec;
};

/* ---------------------------------------------------------------- small helpers */

static inline struct timeval ms_tv(uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

/* A spec or state is a msgpack map, never empty: its length says whether the call has one. */
static inline bool has_spec(const pcall *c)
{
    return c->spec_len > 0;
}

static inline bool has_state(const pcall *c)
{
    return c->state_len > 0;
}

/*
 * Ready for calls: not starting or stopping, and not dead (a reaped worker's
 * last results may still be being read). Here, not in pool_worker.c, because
 * dispatch asks it of every slot in every pass.
 */
static inline bool worker_usable(const worker *w)
{
    return w->state == W_READY && !w->reaped;
}

static inline int worker_capacity(const worker *w)
{
    if (!worker_usable(w))
        return 0;
    int cap = w->pool->cfg.pipeline_depth - w->inflight;
    return cap > 0 ? cap : 0;
}

/*
 * What crosses files, by the file that defines it; each function's comment
 * is at its definition. Nothing here is for callers outside the pool.
 */

/* ---------------------------------------------------------------- pool.c */

void pool_roll(sf_pool *p);
void pool_check_stopped(sf_pool *p);

/* ---------------------------------------------------------------- pool_dispatch.c */

void queue_push_back(sf_pool *p, pcall *c);
void queue_push_front(sf_pool *p, pcall *c);
void queue_unlink(sf_pool *p, pcall *prev, pcall *c);
void pcall_free(pcall *c);
void pool_dispatch(sf_pool *p);
void pool_flush(sf_pool *p);
void pool_on_flush(evutil_socket_t fd, short what, void *arg);
void call_finish(sf_pool *p, pcall *c, const sf_pool_result *r);
void call_fail(sf_pool *p, pcall *c, const char *type, const char *msg, const char *wid);
void call_fail_deferred(sf_pool *p, pcall *c, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void pool_on_defer(evutil_socket_t fd, short what, void *arg);
void pool_expire_checkouts(sf_pool *p);
void worker_requeue(sf_pool *p, worker *w, pcall *first);

/* ---------------------------------------------------------------- pool_worker.c */

int worker_spawn(sf_pool *p, worker *w, char *errbuf, size_t errlen);
int slot_fill(sf_pool *p, worker *w);
void worker_send(worker *w, pcall *c);
void worker_flush(worker *w);
void worker_head_done(worker *w, uint64_t t);
void worker_after_call(worker *w);
void worker_health_check(worker *w);
void worker_begin_stop(worker *w);
void worker_kill(worker *w, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void worker_arm_timer(worker *w, uint64_t at_us);
void worker_arm_head_timer(worker *w);
void worker_close_fds(worker *w);
void worker_handle_death(worker *w);

/* ---------------------------------------------------------------- pool_cache.c */

void sess_forget_caches(sess *s);
void worker_write_call(worker *w, pcall *c);
void sess_learn_from_answer(const worker *w, const pcall *c, const sf_frame *f,
                            const msgpack_sbuffer *state);
void worker_retry_full(worker *w, pcall *c);

#endif
