/* tally.c — counts by name; see tally.h. */
#include "tally.h"

#include <stdio.h>
#include <string.h>

void tally_add(tally *t, const char *name)
{
    for (int i = 0; i < t->n; i++) {
        if (strcmp(t->items[i].name, name) == 0) {
            t->items[i].count++;
            return;
        }
    }
    if (t->n == TALLY_MAX) {
        t->other++;
        return;
    }
    snprintf(t->items[t->n].name, sizeof(t->items[t->n].name), "%s", name);
    t->items[t->n++].count = 1;
}

json_t *tally_json(const tally *t)
{
    json_t *o = json_object();
    for (int i = 0; i < t->n; i++)
        json_object_set_new(o, t->items[i].name, json_integer(t->items[i].count));
    if (t->other)
        json_object_set_new(o, "other", json_integer(t->other));
    return o;
}

const char *tally_format(const tally *t, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i < t->n && o < cap; i++) {
        int w = snprintf(buf + o, cap - o, "%s%s:%ld", i ? " " : "", t->items[i].name,
                         t->items[i].count);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    if (t->other && o < cap)
        snprintf(buf + o, cap - o, " other:%ld", t->other);
    if (t->n == 0 && t->other == 0)
        snprintf(buf, cap, "none");
    return buf;
}
