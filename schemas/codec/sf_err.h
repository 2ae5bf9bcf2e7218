/*
 * sf_err.h — the typed error every snakefleet decoder and validator reports.
 *
 * A decode error is a code (what kind of wrongness), the offending field
 * (dotted path, e.g. "args.spec.kind"; empty when the whole message is at
 * fault) and a human-readable message that names the field. The codes are the
 * ones the shared test vectors in schemas/vectors/ expect, so the C and the
 * Python decoders agree on every case.
 */
#ifndef SF_ERR_H
#define SF_ERR_H

#include <stdarg.h>

typedef enum {
    SF_OK = 0,
    SF_E_NOT_MAP,
    SF_E_TRUNCATED,
    SF_E_MALFORMED,
    SF_E_TOO_LARGE,
    SF_E_MISSING_FIELD,
    SF_E_WRONG_TYPE,
    SF_E_BAD_VALUE,
    SF_E_UNKNOWN_OP,
    SF_E_UNKNOWN_VERSION,
    SF_E_UNKNOWN_FRAME,
    SF_E_NOMEM,
} sf_errcode;

typedef struct sf_err {
    sf_errcode code;
    char field[64];
    char message[256];
} sf_err;

/* "missing_field", … — the code's name as the vectors spell it. */
const char *sf_errcode_name(sf_errcode code);

/* Fills err (when not NULL) and returns -1, so validators can `return sf_fail(...)`. */
int sf_fail(sf_err *err, sf_errcode code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

void sf_err_clear(sf_err *err);

#endif
