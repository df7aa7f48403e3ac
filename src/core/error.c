#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <uv.h>

int hs_fail_invalid(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return HS_EINVAL;
}

const char *hs_strerror(int err)
{
    switch (err) {
    case HS_OK:
        return "success";
    case HS_EINVAL:
        return "invalid argument";
    case HS_ENOTFOUND:
        return "not found";
    case HS_EEXIST:
        return "already exists";
    case HS_EIO:
        return "input/output error";
    case HS_ETOOBIG:
        return "too large";
    case HS_ECLOSED:
        return "closed";
    case HS_EAGAIN:
        return "incomplete, more input needed";
    case HS_EPROTO:
        return "protocol error";
    case HS_EMETHOD:
        return "method not allowed";
    case HS_EBUSY:
        return "busy";
    case HS_EUNAVAIL:
        return "unreachable";
    default:
        return uv_strerror(err);
    }
}
