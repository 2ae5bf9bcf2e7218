/*
 * test_smap.c — the byte-keyed map of smap.h: keys are bytes (NUL included)
 * copied by the map, values are zero-filled on creation and keep their
 * address for the life of their entry (growth, other inserts and deletes do
 * not move them), and a sweep deletes exactly the entries its callback picks.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"
#include "smap.h"

typedef struct value {
    uint64_t id;
    uint64_t touched;
    char pad[40]; /* a value of a realistic size, not a single word */
} value;

/* Key number i, as text: "key-<i>". */
static size_t key_of(char *buf, size_t cap, unsigned i)
{
    int n = snprintf(buf, cap, "key-%u", i);
    cr_assert(n > 0 && (size_t)n < cap);
    return (size_t)n;
}

/* put and get of a key that must be there, typed for this file's values. */
static value *vput(sf_smap *m, const char *key, size_t len)
{
    value *v = sf_smap_put(m, key, len, NULL);
    cr_assert_not_null(v);
    return v;
}
static value *vget(sf_smap *m, const char *key, size_t len)
{
    value *v = sf_smap_get(m, key, len);
    cr_assert_not_null(v, "a key put is not found");
    return v;
}

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return false;
    return true;
}

Test(smap, a_new_map_is_empty)
{
    sf_smap *m = sf_smap_new(sizeof(value));
    cr_assert_not_null(m);
    cr_expect_eq(sf_smap_count(m), 0);
    cr_expect_null(sf_smap_get(m, "x", 1));
    sf_smap_del(m, "x", 1); /* deleting an absent key does nothing */
    cr_expect_eq(sf_smap_count(m), 0);
    sf_smap_free(m);
    sf_smap_free(NULL);
}

Test(smap, put_creates_a_zero_filled_value_once)
{
    sf_smap *m = sf_smap_new(sizeof(value));
    int created = -1;
    value *v = sf_smap_put(m, "alpha", 5, &created);
    cr_assert_not_null(v);
    cr_expect_eq(created, 1);
    cr_expect(all_zero(v, sizeof(*v)), "a new value is zero-filled");
    v->id = 42;
    cr_expect_eq(sf_smap_count(m), 1);

    value *again = sf_smap_put(m, "alpha", 5, &created);
    cr_expect_eq(created, 0);
    cr_expect_eq(again, v, "put of a present key returns its value");
    cr_expect_eq(again->id, 42, "and leaves it as it was");
    cr_expect_eq(sf_smap_get(m, "alpha", 5), v);
    cr_expect_eq(sf_smap_put(m, "alpha", 5, NULL), v, "created may be NULL");
    cr_expect_eq(sf_smap_count(m), 1);
    sf_smap_free(m);
}

Test(smap, del_frees_the_entry_and_a_new_put_starts_from_zero)
{
    sf_smap *m = sf_smap_new(sizeof(value));
    value *v = sf_smap_put(m, "s1", 2, NULL);
    v->id = 7;
    vput(m, "s2", 2)->id = 8;
    sf_smap_del(m, "s1", 2);
    cr_expect_eq(sf_smap_count(m), 1);
    cr_expect_null(sf_smap_get(m, "s1", 2));
    cr_expect_eq(vget(m, "s2", 2)->id, 8, "other keys are untouched");

    int created = 0;
    v = sf_smap_put(m, "s1", 2, &created);
    cr_expect_eq(created, 1);
    cr_expect(all_zero(v, sizeof(*v)), "no trace of the deleted value");
    sf_smap_del(m, "s1", 2);
    sf_smap_del(m, "s1", 2);
    cr_expect_eq(sf_smap_count(m), 1, "deleting twice deletes once");
    sf_smap_free(m);
}

/* A key is its bytes and its length: NUL is a byte like any other. */
Test(smap, keys_are_bytes_nul_included)
{
    static const struct {
        const char *bytes;
        size_t len;
    } keys[] = {
        {"", 0},     {"a", 1},        {"a\0", 2}, {"a\0b", 3}, {"a\0c", 3},
        {"\0", 1},   {"\0\0", 2},     {"\0a", 2}, {"ab", 2},   {"a\0b\0", 4},
        {"\xff", 1}, {"\xff\xfe", 2}, {"A", 1},   {"aa", 2},   {"a\0\0b", 4},
    };
    enum { N = sizeof(keys) / sizeof(keys[0]) };
    sf_smap *m = sf_smap_new(sizeof(value));
    for (unsigned i = 0; i < N; i++) {
        int created = 0;
        value *v = sf_smap_put(m, keys[i].bytes, keys[i].len, &created);
        cr_assert_not_null(v);
        cr_expect_eq(created, 1, "key %u is a key of its own", i);
        v->id = i;
    }
    cr_expect_eq(sf_smap_count(m), N);
    for (unsigned i = 0; i < N; i++) {
        value *v = sf_smap_get(m, keys[i].bytes, keys[i].len);
        cr_assert_not_null(v, "key %u", i);
        cr_expect_eq(v->id, i, "key %u finds its own value", i);
    }
    sf_smap_del(m, "a\0b", 3);
    cr_expect_null(sf_smap_get(m, "a\0b", 3));
    cr_expect_not_null(sf_smap_get(m, "a\0c", 3), "keys equal up to a NUL are distinct");
    cr_expect_not_null(sf_smap_get(m, "a", 1));
    sf_smap_free(m);
}

Test(smap, keys_are_copied)
{
    sf_smap *m = sf_smap_new(sizeof(value));
    char *k = strdup("session-1");
    vput(m, k, strlen(k))->id = 1;
    k[0] = 'X';
    cr_expect_null(sf_smap_get(m, k, strlen(k)), "the map holds its own copy");
    free(k);
    value *v = sf_smap_get(m, "session-1", 9);
    cr_assert_not_null(v);
    cr_expect_eq(v->id, 1);
    sf_smap_free(m);
}

/*
 * The longest session id the request decoder accepts (SF_MAX_SESSION_BYTES),
 * keys that differ only in their last byte or first byte, and a key far past
 * it: the map sets no length limit of its own.
 */
Test(smap, keys_of_the_longest_session_id_and_longer)
{
    enum { L = SF_MAX_SESSION_BYTES, HUGE = 1 << 16 };
    char a[L], b[L];
    memset(a, 's', L);
    memset(b, 's', L);
    b[L - 1] = 't';
    char *big = malloc(HUGE);
    cr_assert_not_null(big);
    for (size_t i = 0; i < HUGE; i++)
        big[i] = (char)(i * 31 + 7);

    sf_smap *m = sf_smap_new(sizeof(value));
    vput(m, a, L)->id = 1;
    vput(m, b, L)->id = 2;
    vput(m, a, L - 1)->id = 3; /* a prefix of both */
    vput(m, big, HUGE)->id = 4;
    cr_expect_eq(sf_smap_count(m), 4);
    cr_expect_eq(vget(m, a, L)->id, 1);
    cr_expect_eq(vget(m, b, L)->id, 2);
    cr_expect_eq(vget(m, a, L - 1)->id, 3);
    cr_expect_eq(vget(m, big, HUGE)->id, 4);
    big[0] ^= 1;
    cr_expect_null(sf_smap_get(m, big, HUGE), "a differing first byte is another key");
    big[0] ^= 1;
    cr_expect_null(sf_smap_get(m, big, HUGE - 1));
    free(big);
    sf_smap_free(m);
}

/*
 * Many keys: the table grows many times over; every value keeps the address
 * put returned first, and its content, through all of it.
 */
Test(smap, values_keep_their_address_while_the_table_grows)
{
    enum { N = 100000 };
    value **seen = calloc(N, sizeof(*seen));
    cr_assert_not_null(seen);
    sf_smap *m = sf_smap_new(sizeof(value));
    char k[32];
    for (unsigned i = 0; i < N; i++) {
        int created = 0;
        seen[i] = sf_smap_put(m, k, key_of(k, sizeof(k), i), &created);
        cr_assert_not_null(seen[i]);
        cr_assert_eq(created, 1);
        seen[i]->id = i;
        if (i % 1000 == 999) /* an early value, read back while the table grows */
            cr_assert_eq(seen[i / 2]->id, i / 2);
    }
    cr_expect_eq(sf_smap_count(m), N);
    for (unsigned i = 0; i < N; i++) {
        value *v = sf_smap_get(m, k, key_of(k, sizeof(k), i));
        cr_assert_eq(v, seen[i], "key %u moved", i);
        cr_assert_eq(v->id, i);
    }

    /* Deleting every other key moves none of the rest. */
    for (unsigned i = 0; i < N; i += 2)
        sf_smap_del(m, k, key_of(k, sizeof(k), i));
    cr_expect_eq(sf_smap_count(m), N / 2);
    for (unsigned i = 0; i < N; i++) {
        value *v = sf_smap_get(m, k, key_of(k, sizeof(k), i));
        if (i % 2 == 0) {
            cr_assert_null(v, "key %u was deleted", i);
        } else {
            cr_assert_eq(v, seen[i], "key %u moved", i);
            cr_assert_eq(v->id, i);
        }
    }
    free(seen);
    sf_smap_free(m);
}

/*
 * Sessions come and go: many more keys pass through the map than it ever
 * holds at once. Deleted entries leave room for new ones, the count stays
 * right, and a long-lived entry stays put and findable throughout.
 */
Test(smap, churn_of_short_lived_keys_around_a_long_lived_one)
{
    enum { LIVE = 40, ROUNDS = 50000 };
    sf_smap *m = sf_smap_new(sizeof(value));
    value *keeper = sf_smap_put(m, "keeper", 6, NULL);
    keeper->id = 99;
    char k[32];
    for (unsigned i = 0; i < ROUNDS; i++) {
        cr_assert_not_null(sf_smap_put(m, k, key_of(k, sizeof(k), i), NULL));
        if (i >= LIVE)
            sf_smap_del(m, k, key_of(k, sizeof(k), i - LIVE));
        cr_assert_eq(sf_smap_count(m), 1 + (i < LIVE ? i + 1 : LIVE));
        if (i % 97 == 0) {
            cr_assert_eq(sf_smap_get(m, "keeper", 6), keeper, "round %u", i);
            cr_assert_null(sf_smap_get(m, k, key_of(k, sizeof(k), i + 1)));
        }
    }
    cr_expect_eq(sf_smap_get(m, "keeper", 6), keeper);
    cr_expect_eq(keeper->id, 99);
    for (unsigned i = ROUNDS - LIVE; i < ROUNDS; i++)
        cr_expect_not_null(sf_smap_get(m, k, key_of(k, sizeof(k), i)), "key %u", i);
    cr_expect_null(sf_smap_get(m, k, key_of(k, sizeof(k), ROUNDS - LIVE - 1)));
    sf_smap_free(m);
}

/* Random puts, gets and deletes over a small key space, checked against a plain array. */
Test(smap, random_operations_match_a_model)
{
    enum { KEYS = 3000, OPS = 300000 };
    static value *model[KEYS]; /* the value put returned, or NULL when absent */
    size_t live = 0;
    unsigned seed = 12;
    sf_smap *m = sf_smap_new(sizeof(value));
    char k[32];
    for (unsigned n = 0; n < OPS; n++) {
        unsigned i = (unsigned)rand_r(&seed) % KEYS;
        size_t len = key_of(k, sizeof(k), i);
        switch (rand_r(&seed) % 3) {
        case 0: {
            int created = -1;
            value *v = sf_smap_put(m, k, len, &created);
            cr_assert_not_null(v);
            cr_assert_eq(created, model[i] == NULL);
            if (model[i]) {
                cr_assert_eq(v, model[i]);
            } else {
                cr_assert(all_zero(v, sizeof(*v)));
                v->id = i;
                model[i] = v;
                live++;
            }
            v->touched++;
            break;
        }
        case 1:
            cr_assert_eq(sf_smap_get(m, k, len), model[i]);
            break;
        default:
            sf_smap_del(m, k, len);
            if (model[i])
                live--;
            model[i] = NULL;
        }
        cr_assert_eq(sf_smap_count(m), live);
    }
    for (unsigned i = 0; i < KEYS; i++) {
        value *v = sf_smap_get(m, k, key_of(k, sizeof(k), i));
        cr_assert_eq(v, model[i]);
        if (v)
            cr_assert_eq(v->id, i);
    }
    sf_smap_free(m);
}

typedef struct sweep_log {
    unsigned visits[2000];
    unsigned drop_mod; /* drop ids with id % drop_mod == 0; 0 drops none */
    bool bad_key;
} sweep_log;

static int sweep_some(void *ctx, const char *key, size_t len, void *v)
{
    sweep_log *sl = ctx;
    value *val = v;
    char k[32];
    if (val->id >= 2000 || len != key_of(k, sizeof(k), (unsigned)val->id) ||
        memcmp(key, k, len) != 0)
        sl->bad_key = true;
    else
        sl->visits[val->id]++;
    val->touched++; /* fn may change the value */
    return sl->drop_mod && val->id % sl->drop_mod == 0;
}

static void fill(sf_smap *m, unsigned n, value **seen)
{
    char k[32];
    for (unsigned i = 0; i < n; i++) {
        seen[i] = sf_smap_put(m, k, key_of(k, sizeof(k), i), NULL);
        cr_assert_not_null(seen[i]);
        seen[i]->id = i;
    }
}

/* Each entry once, with the key it was put under; those picked are gone afterwards. */
Test(smap, sweep_visits_each_entry_once_and_deletes_the_picked_ones)
{
    enum { N = 2000 };
    static value *seen[N];
    static sweep_log sl = {.drop_mod = 3};
    sf_smap *m = sf_smap_new(sizeof(value));
    fill(m, N, seen);
    sf_smap_sweep(m, sweep_some, &sl);
    cr_expect_not(sl.bad_key, "fn gets the key its value was put under");
    unsigned kept = 0;
    char k[32];
    for (unsigned i = 0; i < N; i++) {
        cr_assert_eq(sl.visits[i], 1, "entry %u visited %u times", i, sl.visits[i]);
        value *v = sf_smap_get(m, k, key_of(k, sizeof(k), i));
        if (i % 3 == 0) {
            cr_assert_null(v, "entry %u was picked", i);
        } else {
            cr_assert_eq(v, seen[i], "entry %u kept, at its address", i);
            cr_assert_eq(v->touched, 1, "the change fn made stays");
            kept++;
        }
    }
    cr_expect_eq(sf_smap_count(m), kept);

    /* A second sweep sees only what the first one kept. */
    memset(sl.visits, 0, sizeof(sl.visits));
    sl.drop_mod = 0;
    sf_smap_sweep(m, sweep_some, &sl);
    for (unsigned i = 0; i < N; i++)
        cr_assert_eq(sl.visits[i], i % 3 != 0, "entry %u", i);
    cr_expect_eq(sf_smap_count(m), kept);
    sf_smap_free(m);
}

static int sweep_all(void *ctx, const char *key, size_t len, void *v)
{
    (*(unsigned *)ctx)++;
    return 1;
}

Test(smap, sweep_of_everything_leaves_an_empty_map_that_still_works)
{
    enum { N = 1500 };
    static value *seen[N];
    sf_smap *m = sf_smap_new(sizeof(value));
    unsigned calls = 0;
    sf_smap_sweep(m, sweep_all, &calls);
    cr_expect_eq(calls, 0, "an empty map calls fn never");

    fill(m, N, seen);
    sf_smap_sweep(m, sweep_all, &calls);
    cr_expect_eq(calls, N);
    cr_expect_eq(sf_smap_count(m), 0);
    char k[32];
    for (unsigned i = 0; i < N; i++)
        cr_assert_null(sf_smap_get(m, k, key_of(k, sizeof(k), i)));

    fill(m, N, seen); /* the same keys again: all created anew */
    cr_expect_eq(sf_smap_count(m), N);
    for (unsigned i = 0; i < N; i++)
        cr_assert_eq(sf_smap_get(m, k, key_of(k, sizeof(k), i)), seen[i]);
    sf_smap_free(m);
}

/* A value may hold a pointer (the CLI's map is id → req *): the map stores the bytes only. */
Test(smap, a_value_can_be_a_pointer_the_caller_owns)
{
    sf_smap *m = sf_smap_new(sizeof(char *));
    char **slot = sf_smap_put(m, "id-1", 4, NULL);
    cr_assert_not_null(slot);
    cr_expect_null(*slot);
    *slot = strdup("owned by the caller");
    char **again = sf_smap_get(m, "id-1", 4);
    cr_assert_eq(again, slot);
    cr_expect_str_eq(*again, "owned by the caller");
    free(*again);
    sf_smap_free(m);
}
