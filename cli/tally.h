/*
 * tally.h — counts by name (error types, for batch and loadtest summaries):
 * a small array, names copied, insertion order kept.
 */
#ifndef SF_CLI_TALLY_H
#define SF_CLI_TALLY_H

#include <jansson.h>
#include <stddef.h>

#define TALLY_MAX 32

typedef struct tally {
    struct {
        char name[64];
        long count;
    } items[TALLY_MAX];
    int n;
    long other; /* names past TALLY_MAX */
} tally;

void tally_add(tally *t, const char *name);
/* {"name": count, ...} (new reference). */
json_t *tally_json(const tally *t);
/* "name:count name:count" into buf ("none" when empty). */
const char *tally_format(const tally *t, char *buf, size_t cap);

#endif
