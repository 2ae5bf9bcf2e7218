/*
 * store.c — the Redis session store's operations; see store.h for the key
 * layout and what each operation promises.
 *
 * Each operation builds the keys its script sees (make_keys: the session's
 * state and programs, the partition's epoch, the request) and goes out as one
 * script call (store_eval, store_link.c), or, for the claims and commits
 * every request makes, joins its loop turn's batch (store_batch_add,
 * store_batch.c). store_internal.h has the map of the store's files.
 *
 * In this file: the keys; then the operations in the order a session meets
 * them (create, get and set its state, end it), its programs, the claim and
 * commit every request makes, and the lease a partition takes on assignment.
 */
#include "store_internal.h"

#include <stdio.h>
#include <string.h>

/* ------------------------ keys: where every operation starts */

static bool key_prefix_valid(const char *prefix)
{
    size_t n = prefix ? strlen(prefix) : 0;
    if (n == 0 || n > SF_STORE_PREFIX_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)prefix[i];
        if (c <= ' ' || c == 0x7f || c == '{' || c == '}')
            return false;
    }
    return true;
}

int sf_store_set_key_prefix(sf_store *st, const char *prefix)
{
    if (!key_prefix_valid(prefix))
        return -1;
    st->prefix_len = (size_t)snprintf(st->prefix, sizeof(st->prefix), "%s:", prefix);
    snprintf(st->index_key, sizeof(st->index_key), "%s:sessions", prefix);
    snprintf(st->unfenced_key, sizeof(st->unfenced_key), "%s:epoch:-", prefix);
    return 0;
}

void sf_store_epoch_key(const sf_store *st, char *buf, size_t cap, const char *group,
                        const char *topic, int32_t partition)
{
    snprintf(buf, cap, "%sepoch:{%s}:%s/%d", st->prefix, group, topic, (int)partition);
}

/* dst = a b c (truncated to cap - 1, NUL-terminated); returns the length. */
static size_t cat3(char *dst, size_t cap, const char *a, size_t al, const char *b, size_t bl,
                   const char *c, size_t cl)
{
    size_t n = 0;
    const char *parts[3] = {a, b, c};
    size_t lens[3] = {al, bl, cl};
    for (int i = 0; i < 3; i++) {
        size_t m = lens[i] < cap - 1 - n ? lens[i] : cap - 1 - n;
        memcpy(dst + n, parts[i], m);
        n += m;
    }
    dst[n] = '\0';
    return n;
}

/*
 * A key beside the partition's epoch key: "<prefix>:epoch:{group}:topic/N"
 * becomes "<prefix>:<word>:{group}:topic/N" (the same hash tag).
 */
static size_t partition_key(const sf_store *st, char *dst, size_t cap, const char *ek, size_t el,
                            const char *word)
{
    size_t skip = st->prefix_len + 6; /* "<prefix>:" "epoch:" */
    if (el < skip || memcmp(ek + st->prefix_len, "epoch:", 6) != 0)
        skip = st->prefix_len; /* not an epoch key of ours (a test's): the word goes first */
    return cat3(dst, cap, st->prefix, st->prefix_len, word, strlen(word), ek + skip, el - skip);
}

/* memcpy, not snprintf: this runs for every Redis command (four keys each). */
static void make_keys(const sf_store *st, keys *k, const char *s, size_t slen, const sf_fence *f,
                      const char *id, size_t idlen)
{
    char tag[SF_STORE_PREFIX_MAX + SF_MAX_SESSION_BYTES + 8]; /* <prefix>:{S */
    size_t tl = cat3(tag, sizeof(tag), st->prefix, st->prefix_len, "{", 1, s, slen);
    k->state_len = cat3(k->state, sizeof(k->state), tag, tl, "}:state", 7, "", 0);
    k->programs_len = cat3(k->programs, sizeof(k->programs), tag, tl, "}:programs", 10, "", 0);
    const char *ek = f ? f->key : st->unfenced_key;
    k->epoch_len = cat3(k->epoch, sizeof(k->epoch), ek, strlen(ek), "", 0, "", 0);
    k->request_len =
        cat3(k->request, sizeof(k->request), tag, tl, "}:req:", 6, id ? id : "", id ? idlen : 0);
    k->done_len = partition_key(st, k->done, sizeof(k->done), k->epoch, k->epoch_len, "done:");
    k->order_len = partition_key(st, k->order, sizeof(k->order), k->epoch, k->epoch_len, "order:");
    char n[24];
    int nl = snprintf(n, sizeof(n), "%zu:", slen);
    k->field_len =
        cat3(k->field, sizeof(k->field), n, (size_t)nl, s, slen, id ? id : "", id ? idlen : 0);
}

/* The keys of create/end: the session index in place of a request key. */
static void make_index_keys(const sf_store *st, keys *k, const char *s, size_t slen,
                            const sf_fence *f)
{
    make_keys(st, k, s, slen, f, NULL, 0);
    k->request_len =
        cat3(k->request, sizeof(k->request), st->index_key, strlen(st->index_key), "", 0, "", 0);
}

/* ------------------------ sessions */

void sf_store_create_session(sf_store *st, const sf_fence *f, const char *s, size_t slen,
                             const void *state, size_t len, uint64_t max_sessions, sf_store_cb cb,
                             void *arg)
{
    keys k;
    make_index_keys(st, &k, s, slen, f);
    char max[24];
    snprintf(max, sizeof(max), "%llu", (unsigned long long)max_sessions);
    const char *a[] = {state, max, s, st->prefix};
    size_t l[] = {len, strlen(max), slen, st->prefix_len};
    store_eval(st, K_CREATE, S_CREATE, &k, f, 4, a, l, cb, arg);
}

void sf_store_get_state(sf_store *st, const char *s, size_t slen, sf_store_cb cb, void *arg)
{
    keys k;
    make_keys(st, &k, s, slen, NULL, NULL, 0);
    store_eval(st, K_GET_STATE, S_GET, &k, NULL, 0, NULL, NULL, cb, arg);
}

void sf_store_set_state(sf_store *st, const sf_fence *f, const char *s, size_t slen,
                        const void *state, size_t len, sf_store_cb cb, void *arg)
{
    keys k;
    make_keys(st, &k, s, slen, f, NULL, 0);
    const char *a[] = {state};
    size_t l[] = {len};
    store_eval(st, K_SET_STATE, S_SET, &k, f, 1, a, l, cb, arg);
}

void sf_store_end_session(sf_store *st, const sf_fence *f, const char *s, size_t slen,
                          sf_store_cb cb, void *arg)
{
    keys k;
    make_index_keys(st, &k, s, slen, f);
    const char *a[] = {s};
    size_t l[] = {slen};
    store_eval(st, K_COUNT, S_END, &k, f, 1, a, l, cb, arg);
}

/* ------------------------ programs */

void sf_store_put_program(sf_store *st, const sf_fence *f, const char *s, size_t slen,
                          const char *p, size_t plen, const void *spec, size_t len, sf_store_cb cb,
                          void *arg)
{
    keys k;
    make_keys(st, &k, s, slen, f, NULL, 0);
    const char *a[] = {p, spec};
    size_t l[] = {plen, len};
    store_eval(st, K_COUNT, S_PUT_PROGRAM, &k, f, 2, a, l, cb, arg);
}

void sf_store_get_program(sf_store *st, const char *s, size_t slen, const char *p, size_t plen,
                          sf_store_cb cb, void *arg)
{
    keys k;
    make_keys(st, &k, s, slen, NULL, NULL, 0);
    const char *a[] = {p};
    size_t l[] = {plen};
    store_eval(st, K_GET_PROGRAM, S_GET_PROGRAM, &k, NULL, 1, a, l, cb, arg);
}

void sf_store_delete_program(sf_store *st, const sf_fence *f, const char *s, size_t slen,
                             const char *p, size_t plen, sf_store_cb cb, void *arg)
{
    keys k;
    make_keys(st, &k, s, slen, f, NULL, 0);
    const char *a[] = {p};
    size_t l[] = {plen};
    store_eval(st, K_DELETE, S_DEL_PROGRAM, &k, f, 1, a, l, cb, arg);
}

void sf_store_list_programs(sf_store *st, const char *s, size_t slen, sf_store_cb cb, void *arg)
{
    keys k;
    make_keys(st, &k, s, slen, NULL, NULL, 0);
    store_eval(st, K_LIST, S_LIST, &k, NULL, 0, NULL, NULL, cb, arg);
}

/* ------------------------ a request: claim, then commit */

void sf_store_claim(sf_store *st, const sf_fence *f, const char *s, size_t slen, const char *id,
                    size_t idlen, const char *owner, uint32_t claim_ttl_ms, const char *program,
                    size_t plen, sf_store_cb cb, void *arg)
{
    keys k;
    make_keys(st, &k, s, slen, f, id, idlen);
    char epoch[24], ttl[16];
    snprintf(epoch, sizeof(epoch), "%llu", f ? (unsigned long long)f->epoch : 0ull);
    snprintf(ttl, sizeof(ttl), "%u", claim_ttl_ms);
    const char *a[ITEM_ARGS] = {epoch, owner, ttl, program ? program : "", k.field, "", "", ""};
    size_t l[ITEM_ARGS] = {
        strlen(epoch), strlen(owner), strlen(ttl), program ? plen : 0, k.field_len, 0, 0, 0};
    store_batch_add(st, &st->claims, K_CLAIMS, S_CLAIMS, &k, a, l, cb, arg);
}

void sf_store_commit(sf_store *st, const sf_fence *f, const char *s, size_t slen, const char *id,
                     size_t idlen, const void *reply, size_t reply_len, const void *state,
                     size_t state_len, int64_t read_version, int64_t offset, unsigned flags,
                     sf_store_cb cb, void *arg)
{
    keys k;
    make_keys(st, &k, s, slen, f, id, idlen);
    char epoch[24], version[24] = "", at[24], settled[24];
    snprintf(epoch, sizeof(epoch), "%llu", f ? (unsigned long long)f->epoch : 0ull);
    if (read_version >= 0)
        snprintf(version, sizeof(version), "%lld", (long long)read_version);
    snprintf(at, sizeof(at), "%lld", (long long)offset);
    snprintf(settled, sizeof(settled), "%lld", f && f->settled > 0 ? (long long)f->settled : 0ll);
    char fl[3];
    int fn = 0;
    if (flags & SF_COMMIT_CLAIMED)
        fl[fn++] = 'c';
    if (flags & SF_COMMIT_TOUCH)
        fl[fn++] = 't';
    fl[fn] = '\0';
    const char *a[ITEM_ARGS] = {epoch,   reply, version, state ? state : "",
                                k.field, at,    settled, fl};
    size_t l[ITEM_ARGS] = {strlen(epoch), reply_len,  strlen(version), state ? state_len : 0,
                           k.field_len,   strlen(at), strlen(settled), (size_t)fn};
    store_batch_add(st, &st->commits, K_COMMITS, S_COMMITS, &k, a, l, cb, arg);
}

/* ------------------------ leases */

void sf_store_restore_epoch(sf_store *st, const char *epoch_key, uint64_t epoch, sf_store_cb cb,
                            void *arg)
{
    char e[24];
    snprintf(e, sizeof(e), "%llu", (unsigned long long)epoch);
    bool sha = st->sha[S_RESTORE_EPOCH][0] != '\0';
    const char *text = sha ? st->sha[S_RESTORE_EPOCH] : store_scripts[S_RESTORE_EPOCH];
    const char *argv[] = {sha ? "EVALSHA" : "EVAL", text, "1", epoch_key, e};
    size_t lens[] = {sha ? 7 : 4, strlen(text), 1, strlen(epoch_key), strlen(e)};
    store_send_script(st, K_COUNT, S_RESTORE_EPOCH, 5, argv, lens, cb, arg);
}

void sf_store_bump_epoch(sf_store *st, const char *epoch_key, sf_store_cb cb, void *arg)
{
    const char *argv[] = {"INCR", epoch_key};
    size_t lens[] = {4, strlen(epoch_key)};
    store_send_command(st, K_BUMP, 2, argv, lens, cb, arg);
}
