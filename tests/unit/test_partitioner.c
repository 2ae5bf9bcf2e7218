/*
 * test_partitioner.c — consumer/partitioner.c against reference values.
 *
 * murmur2: the Java client's own vectors (UtilsTest.testMurmur2: the raw
 * signed hash) and the partitions BuiltInPartitioner.partitionForKey gives
 * (kafka-clients 3.9). consistent: java.util.zip.CRC32 of the key modulo the
 * partition count. fnv1a: the FNV-1a 32-bit reference values ("a", "foobar"),
 * made non-negative as sarama does. The same partitions came from
 * confluent-kafka 2.16 (its own librdkafka build) producing with
 * partitioner=murmur2_random / consistent_random / fnv1a.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "partitioner.h"

/* A partition count this large returns the non-negative hash itself. */
#define WHOLE_HASH INT32_MAX

static int32_t part(sf_partitioner p, const char *key, int32_t n)
{
    return sf_partitioner_partition(p, key, strlen(key), n);
}

static const int32_t COUNTS[] = {1, 2, 3, 7, 8, 16, 100, 997};
#define NCOUNTS (sizeof(COUNTS) / sizeof(COUNTS[0]))

static const struct {
    const char *key;
    int32_t java_murmur2; /* Utils.murmur2(key), signed as Java has it */
    uint32_t crc32;
    int32_t murmur2[NCOUNTS], consistent[NCOUNTS];
} VECTORS[] = {
    {"21", -973932308, 4252452532u, {0, 0, 0, 3, 4, 12, 40, 586}, {0, 0, 1, 6, 4, 4, 32, 276}},
    {"foobar", -790332482, 2666930069u, {0, 0, 0, 0, 6, 14, 66, 868}, {0, 1, 2, 6, 5, 5, 69, 931}},
    {"abc", 479470107, 891568578u, {0, 1, 0, 4, 3, 11, 7, 843}, {0, 0, 0, 5, 2, 2, 78, 331}},
    {"a-little-bit-long-string",
     -985981536,
     4000435554u,
     {0, 0, 2, 1, 0, 0, 12, 103},
     {0, 0, 0, 3, 2, 2, 54, 970}},
    {"a-little-bit-longer-string",
     -1486304829,
     2277486890u,
     {0, 1, 2, 0, 3, 3, 19, 323},
     {0, 0, 2, 0, 2, 10, 90, 907}},
    {"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
     -58897971,
     3769350433u,
     {0, 1, 2, 3, 5, 13, 77, 287},
     {0, 1, 1, 2, 1, 1, 33, 509}},
    {"session-0001",
     -1907062098,
     1056917345u,
     {0, 0, 2, 5, 6, 14, 50, 982},
     {0, 1, 2, 1, 1, 1, 45, 636}},
    {"\xc3\xa9t\xc3\xa9", /* "été" in UTF-8 */
     -2101193575,
     1154575572u,
     {0, 1, 1, 4, 1, 9, 73, 360},
     {0, 0, 0, 3, 4, 4, 72, 719}},
    {"123456789",
     -1822237082,
     3421780262u,
     {0, 0, 0, 1, 6, 6, 66, 241},
     {0, 0, 2, 5, 6, 6, 62, 490}},
};
#define NVECTORS (sizeof(VECTORS) / sizeof(VECTORS[0]))

Test(partitioner, murmur2_is_the_java_clients_hash)
{
    for (size_t i = 0; i < NVECTORS; i++) {
        /* Java's toPositive(): the sign bit masked off, not the absolute value */
        int32_t positive = (int32_t)((uint32_t)VECTORS[i].java_murmur2 & 0x7fffffffu);
        cr_expect_eq(part(SF_PARTITIONER_MURMUR2_RANDOM, VECTORS[i].key, WHOLE_HASH), positive,
                     "%s", VECTORS[i].key);
        cr_expect_eq(part(SF_PARTITIONER_MURMUR2, VECTORS[i].key, WHOLE_HASH), positive, "%s",
                     VECTORS[i].key);
    }
}

Test(partitioner, murmur2_partitions_match_the_java_client)
{
    for (size_t i = 0; i < NVECTORS; i++)
        for (size_t c = 0; c < NCOUNTS; c++) {
            cr_expect_eq(part(SF_PARTITIONER_MURMUR2_RANDOM, VECTORS[i].key, COUNTS[c]),
                         VECTORS[i].murmur2[c], "%s over %d", VECTORS[i].key, COUNTS[c]);
            cr_expect_eq(part(SF_PARTITIONER_MURMUR2, VECTORS[i].key, COUNTS[c]),
                         VECTORS[i].murmur2[c], "%s over %d", VECTORS[i].key, COUNTS[c]);
        }
}

Test(partitioner, consistent_is_crc32_modulo_the_count)
{
    /* The CRC-32 check value: "123456789" -> 0xcbf43926. */
    cr_expect_eq(VECTORS[NVECTORS - 1].crc32, 0xcbf43926u);
    for (size_t i = 0; i < NVECTORS; i++) {
        int32_t whole = (int32_t)(VECTORS[i].crc32 % (uint32_t)WHOLE_HASH);
        cr_expect_eq(part(SF_PARTITIONER_CONSISTENT_RANDOM, VECTORS[i].key, WHOLE_HASH), whole,
                     "%s", VECTORS[i].key);
        for (size_t c = 0; c < NCOUNTS; c++) {
            cr_expect_eq(part(SF_PARTITIONER_CONSISTENT_RANDOM, VECTORS[i].key, COUNTS[c]),
                         VECTORS[i].consistent[c], "%s over %d", VECTORS[i].key, COUNTS[c]);
            cr_expect_eq(part(SF_PARTITIONER_CONSISTENT, VECTORS[i].key, COUNTS[c]),
                         (int32_t)(VECTORS[i].crc32 % (uint32_t)COUNTS[c]), "%s over %d",
                         VECTORS[i].key, COUNTS[c]);
        }
    }
}

Test(partitioner, fnv1a_is_the_absolute_fnv1a_hash)
{
    /* FNV-1a 32: "a" -> 0xe40c292c, "foobar" -> 0xbf9cf968; both negative as int32. */
    static const struct {
        const char *key;
        uint32_t fnv;
        int32_t parts[NCOUNTS];
    } F[] = {
        {"a", 0xe40c292cu, {0, 0, 0, 6, 4, 4, 76, 204}},
        {"foobar", 0xbf9cf968u, {0, 0, 0, 4, 0, 8, 76, 22}},
        {"session-0001", 0x40a1ca61u, {0, 1, 2, 3, 1, 1, 29, 750}},
    };
    for (size_t i = 0; i < sizeof(F) / sizeof(F[0]); i++) {
        int32_t s = (int32_t)F[i].fnv;
        int32_t nonneg = s < 0 ? -s : s;
        cr_expect_eq(part(SF_PARTITIONER_FNV1A, F[i].key, WHOLE_HASH), nonneg, "%s", F[i].key);
        for (size_t c = 0; c < NCOUNTS; c++) {
            cr_expect_eq(part(SF_PARTITIONER_FNV1A, F[i].key, COUNTS[c]), F[i].parts[c],
                         "%s over %d", F[i].key, COUNTS[c]);
            cr_expect_eq(part(SF_PARTITIONER_FNV1A_RANDOM, F[i].key, COUNTS[c]), F[i].parts[c],
                         "%s over %d", F[i].key, COUNTS[c]);
        }
    }
}

Test(partitioner, no_key_or_no_count_maps_nowhere)
{
    for (int p = 0; p < SF_PARTITIONER__COUNT; p++) {
        cr_expect_eq(sf_partitioner_partition((sf_partitioner)p, NULL, 0, 8), -1);
        cr_expect_eq(sf_partitioner_partition((sf_partitioner)p, "", 0, 8), -1);
        cr_expect_eq(sf_partitioner_partition((sf_partitioner)p, "k", 1, 0), -1);
        int32_t got = sf_partitioner_partition((sf_partitioner)p, "k", 1, 8);
        cr_expect(got >= 0 && got < 8, "%s: %d", sf_partitioner_name((sf_partitioner)p), got);
    }
}

Test(partitioner, names_round_trip_and_unknown_ones_are_refused)
{
    for (int p = 0; p < SF_PARTITIONER__COUNT; p++) {
        sf_partitioner got;
        const char *name = sf_partitioner_name((sf_partitioner)p);
        cr_assert_eq(sf_partitioner_parse(name, &got), 0, "%s", name);
        cr_expect_eq(got, (sf_partitioner)p);
        cr_expect(strstr(sf_partitioner_names(), name) != NULL, "%s", name);
    }
    sf_partitioner got = SF_PARTITIONER_FNV1A;
    cr_expect_eq(sf_partitioner_parse("random", &got), -1);
    cr_expect_eq(sf_partitioner_parse("Murmur2", &got), -1);
    cr_expect_eq(sf_partitioner_parse("", &got), -1);
    cr_expect_eq(got, SF_PARTITIONER_FNV1A, "left alone on failure");
    sf_partitioner dflt;
    cr_assert_eq(sf_partitioner_parse("murmur2_random", &dflt), 0);
    cr_expect_eq(dflt, SF_PARTITIONER_MURMUR2_RANDOM);
}
