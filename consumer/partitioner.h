/*
 * partitioner.h — which partition a record key belongs on, the way the
 * fleet's producers pick it (topics.partitioner). No I/O: bytes and a
 * partition count in, a partition out.
 *
 * The hashes are librdkafka's own (rd_kafka_msg_partitioner_*, public API),
 * so the supervisor agrees bit for bit with every librdkafka-based producer
 * set to the same name; murmur2 is also the Java client's default
 * (Utils.toPositive(Utils.murmur2(key)) % partitions). Only keyed
 * partitioners are offered: `random` (and the "_random" variants' handling
 * of a record without a key) cannot be checked, so a record without a key
 * has no partition to belong on here.
 */
#ifndef SF_PARTITIONER_H
#define SF_PARTITIONER_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    SF_PARTITIONER_MURMUR2_RANDOM,    /* murmur2, as Java; the fleet's default */
    SF_PARTITIONER_MURMUR2,           /* the same for a non-empty key */
    SF_PARTITIONER_CONSISTENT_RANDOM, /* CRC32: librdkafka's default */
    SF_PARTITIONER_CONSISTENT,        /* the same for a non-empty key */
    SF_PARTITIONER_FNV1A_RANDOM,      /* FNV-1a, as sarama's hash partitioner */
    SF_PARTITIONER_FNV1A,             /* the same for a non-empty key */
    SF_PARTITIONER__COUNT
} sf_partitioner;

/* Parses a librdkafka `partitioner` name. Returns 0, or -1 for a name not listed above. */
int sf_partitioner_parse(const char *name, sf_partitioner *out);

/* The librdkafka name ("murmur2_random", ...): also the producer setting to use. */
const char *sf_partitioner_name(sf_partitioner p);

/* Every accepted name, comma-separated, for error messages. */
const char *sf_partitioner_names(void);

/*
 * The partition in [0, partition_cnt) that `key` maps to. -1 when there is
 * nothing to compute: no key (NULL or empty), or no partition count yet.
 */
int32_t sf_partitioner_partition(sf_partitioner p, const void *key, size_t keylen,
                                 int32_t partition_cnt);

#endif
