/* sf_err.c — typed decode errors; see sf_err.h. */
#include "sf_err.h"

#include <stdio.h>
#include <string.h>

const char *sf_errcode_name(sf_errcode code)
{
    switch (code) {
    case SF_OK:
        return "ok";
    case SF_E_NOT_MAP:
        return "not_map";
    case SF_E_TRUNCATED:
        return "truncated";
    case SF_E_MALFORMED:
        return "malformed";
    case SF_E_TOO_LARGE:
        return "too_large";
    case SF_E_MISSING_FIELD:
        return "missing_field";
    case SF_E_WRONG_TYPE:
        return "wrong_type";
    case SF_E_BAD_VALUE:
        return "bad_value";
    case SF_E_UNKNOWN_OP:
        return "unknown_op";
    case SF_E_UNKNOWN_VERSION:
        return "unknown_version";
    case SF_E_UNKNOWN_FRAME:
        return "unknown_frame";
    case SF_E_NOMEM:
        return "nomem";
    }
    return "unknown_error";
}

int sf_fail(sf_err *err, sf_errcode code, const char *field, const char *fmt, ...)
{
    if (err == NULL)
        return -1;
    err->code = code;
    snprintf(err->field, sizeof(err->field), "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -1;
}

void sf_err_clear(sf_err *err)
{
    if (err == NULL)
        return;
    err->code = SF_OK;
    err->field[0] = '\0';
    err->message[0] = '\0';
}
