/* vectors.c — see vectors.h. */
#include "vectors.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = n > 0 ? (size_t)n : 0;
    return buf;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const sf_vector *)a)->name, ((const sf_vector *)b)->name);
}

size_t sf_vectors_load(const char *kind, sf_vector **out)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/%s", SF_VECTORS_DIR, kind);
    DIR *d = opendir(dir);
    *out = NULL;
    if (d == NULL)
        return 0;
    size_t n = 0, cap = 0;
    sf_vector *v = NULL;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 9 || strcmp(e->d_name + l - 8, ".msgpack") != 0 || l - 8 >= 128)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            v = realloc(v, cap * sizeof(*v));
        }
        sf_vector *c = &v[n];
        memset(c, 0, sizeof(*c));
        memcpy(c->name, e->d_name, l - 8);
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        c->bytes = read_file(path, &c->len);
        snprintf(path, sizeof(path), "%s/%s.json", dir, c->name);
        json_error_t jerr;
        c->expect = json_load_file(path, 0, &jerr);
        if (c->bytes == NULL || c->expect == NULL) {
            /* A vector that cannot be read must fail the suite, not vanish from it. */
            fprintf(stderr, "vectors: cannot load %s/%s: %s\n", kind, c->name, jerr.text);
            abort();
        }
        n++;
    }
    closedir(d);
    qsort(v, n, sizeof(*v), by_name);
    *out = v;
    return n;
}

void sf_vectors_free(sf_vector *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].bytes);
        json_decref(v[i].expect);
    }
    free(v);
}
