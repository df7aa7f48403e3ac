#include "core/error.h"

#include <uv.h>

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
