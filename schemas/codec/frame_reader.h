/*
 * frame_reader.h — the worker-pipe framing, bytes in, frames out, no I/O.
 *
 * In the manner of hiredis's redisReader: the owner reads from its fd however
 * it likes, hands the bytes to sf_reader_feed(), then takes whole frames out
 * with sf_reader_next() until it says "need more". A frame is a u32
 * big-endian length followed by that many bytes (one msgpack map; the reader
 * does not look inside). A length above max_frame_bytes breaks the stream:
 * the reader keeps the error and refuses further input.
 */
#ifndef SF_FRAME_READER_H
#define SF_FRAME_READER_H

#include <stddef.h>
#include <stdint.h>

#include "sf_err.h"

#define SF_FRAME_HEADER_BYTES 4
#define SF_DEFAULT_MAX_FRAME  (16u * 1024u * 1024u)

typedef struct sf_reader sf_reader;

/* max_frame_bytes 0 means SF_DEFAULT_MAX_FRAME. Returns NULL on OOM. */
sf_reader *sf_reader_new(size_t max_frame_bytes);
void sf_reader_free(sf_reader *r);

/* Appends bytes. Returns 0, or -1 when the stream is already broken or on OOM. */
int sf_reader_feed(sf_reader *r, const void *buf, size_t len);

/*
 * Takes the next whole frame. Returns 1 and sets *body and *len to the frame's
 * payload (valid until the next feed or next call), 0 when more bytes are
 * needed, -1 when the stream is broken (err says why; stays broken).
 */
int sf_reader_next(sf_reader *r, const char **body, size_t *len, sf_err *err);

/*
 * Called when the peer closed the stream: returns 0 if no partial frame is
 * buffered, -1 (truncated) otherwise.
 */
int sf_reader_finish(sf_reader *r, sf_err *err);

/* Bytes buffered but not yet returned as frames. */
size_t sf_reader_pending(const sf_reader *r);

#endif
