/*
 * fuzz_request.c — libFuzzer target: arbitrary bytes as a Kafka message value
 * through the request decoder, the salvage path used for error replies, and
 * the JSON conversion used by the CLI.
 */
#include <stddef.h>
#include <stdint.h>

#include "request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sf_request req;
    sf_err err;
    if (sf_request_decode(&req, (const char *)data, size, 8192, &err) == 0) {
        json_t *j = sf_mp_to_json(&req.unpacked.data);
        json_decref(j);
        sf_request_release(&req);
    } else {
        char id[SF_MAX_ID_BYTES + 1], session[SF_MAX_SESSION_BYTES + 1], rt[256];
        sf_request_salvage((const char *)data, size, id, sizeof(id), session, sizeof(session), rt,
                           sizeof(rt));
    }
    return 0;
}
