/*
 * partitioner.c — the fleet's partitioner, by name; see partitioner.h.
 *
 * Each name calls the librdkafka function of that name. Those read neither
 * the topic handle nor the opaques for a non-empty key (they only fall back
 * to the random partitioner, which does, without one), so they are called
 * here without a topic: an empty key never reaches them.
 */
#include "partitioner.h"

#include <librdkafka/rdkafka.h>
#include <string.h>

typedef int32_t (*rd_partitioner_fn)(const rd_kafka_topic_t *rkt, const void *key, size_t keylen,
                                     int32_t partition_cnt, void *rkt_opaque, void *msg_opaque);

static const struct {
    const char *name;
    rd_partitioner_fn fn;
} PARTITIONERS[SF_PARTITIONER__COUNT] = {
    [SF_PARTITIONER_MURMUR2_RANDOM] = {"murmur2_random", rd_kafka_msg_partitioner_murmur2_random},
    [SF_PARTITIONER_MURMUR2] = {"murmur2", rd_kafka_msg_partitioner_murmur2},
    [SF_PARTITIONER_CONSISTENT_RANDOM] = {"consistent_random",
                                          rd_kafka_msg_partitioner_consistent_random},
    [SF_PARTITIONER_CONSISTENT] = {"consistent", rd_kafka_msg_partitioner_consistent},
    [SF_PARTITIONER_FNV1A_RANDOM] = {"fnv1a_random", rd_kafka_msg_partitioner_fnv1a_random},
    [SF_PARTITIONER_FNV1A] = {"fnv1a", rd_kafka_msg_partitioner_fnv1a},
};

int sf_partitioner_parse(const char *name, sf_partitioner *out)
{
    for (int i = 0; i < SF_PARTITIONER__COUNT; i++) {
        if (strcmp(PARTITIONERS[i].name, name) == 0) {
            *out = (sf_partitioner)i;
            return 0;
        }
    }
    return -1;
}

const char *sf_partitioner_name(sf_partitioner p)
{
    return (unsigned)p < SF_PARTITIONER__COUNT ? PARTITIONERS[p].name : "?";
}

const char *sf_partitioner_names(void)
{
    return "murmur2_random, murmur2, consistent_random, consistent, fnv1a_random, fnv1a";
}

int32_t sf_partitioner_partition(sf_partitioner p, const void *key, size_t keylen,
                                 int32_t partition_cnt)
{
    if (key == NULL || keylen == 0 || partition_cnt <= 0 || (unsigned)p >= SF_PARTITIONER__COUNT)
        return -1;
    return PARTITIONERS[p].fn(NULL, key, keylen, partition_cnt, NULL, NULL);
}
