/*
 * vectors.h — loads the shared test vectors of schemas/vectors/ for the
 * Criterion suites: every <case>.msgpack with its <case>.json expectation.
 */
#ifndef SF_TEST_VECTORS_H
#define SF_TEST_VECTORS_H

#include <jansson.h>
#include <stddef.h>

typedef struct sf_vector {
    char name[128];
    unsigned char *bytes;
    size_t len;
    json_t *expect; /* {"valid": bool, "decoded"|"error": …, "max_bytes"?: int} */
} sf_vector;

/* Loads every case of one kind ("request", "reply", "frame"), sorted by name. */
size_t sf_vectors_load(const char *kind, sf_vector **out);
void sf_vectors_free(sf_vector *v, size_t n);

#endif
