/* alloc.c — see alloc.h: allocation that logs the size and aborts on OOM. */
#include "alloc.h"

#include "log.h"

#include <stdint.h>
#include <stdlib.h>

static _Noreturn void out_of_memory(size_t n, size_t size)
{
    sf_error("out_of_memory", "bytes=%zu count=%zu", size, n);
    abort();
}

void *sf_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL)
        out_of_memory(1, size);
    return p;
}

void *sf_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        out_of_memory(n, size);
    return p;
}

void *sf_xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);
    if (q == NULL)
        out_of_memory(1, size);
    return q;
}
