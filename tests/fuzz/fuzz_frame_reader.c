/*
 * fuzz_frame_reader.c — libFuzzer target: arbitrary bytes, split into feeds
 * at points drawn from the input itself, through the frame reader and the
 * frame decoder. Must never crash, leak or read out of bounds.
 */
#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "frame_reader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = 1 + data[0] % 64;
    data++;
    size--;
    sf_reader *r = sf_reader_new(4096);
    if (r == NULL)
        return 0;
    for (size_t off = 0; off < size; off += step) {
        size_t k = size - off < step ? size - off : step;
        if (sf_reader_feed(r, data + off, k) < 0)
            break;
        const char *body;
        size_t len;
        sf_err err;
        int rc;
        while ((rc = sf_reader_next(r, &body, &len, &err)) == 1) {
            sf_frame f;
            if (sf_frame_decode(&f, body, len, &err) == 0) {
                json_t *j = sf_mp_to_json(f.root);
                json_decref(j);
                sf_frame_release(&f);
            }
        }
        if (rc < 0)
            break;
    }
    sf_err err;
    sf_reader_finish(r, &err);
    sf_reader_free(r);
    return 0;
}
