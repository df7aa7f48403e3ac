/* error.h - houston's error codes.
 *
 * Functions return 0 on success or a negative HS_E* code; hs_strerror() names
 * it. libuv errors (UV_E*) are also negative; hs_strerror() falls back to
 * uv_strerror() for codes it does not own.
 */
#ifndef HS_CORE_ERROR_H
#define HS_CORE_ERROR_H

#include <stddef.h>

enum {
    HS_OK = 0,
    HS_EINVAL = -10001,    /* invalid argument or input */
    HS_ENOTFOUND = -10002, /* no such record, connection or route */
    HS_EEXIST = -10003,    /* already exists */
    HS_EIO = -10004,       /* storage or network failure */
    HS_ETOOBIG = -10005,   /* a size limit was passed */
    HS_ECLOSED = -10006,   /* the object is closing or closed */
    HS_EAGAIN = -10007,    /* more input is needed */
    HS_EPROTO = -10008,    /* protocol violation by the peer */
    HS_EMETHOD = -10009,   /* path known, method not allowed */
    HS_EBUSY = -10010,     /* a limit on concurrent things was reached */
    HS_EUNAVAIL = -10011,  /* a dependency (database, Redis) is unreachable */
};

const char *hs_strerror(int err);

/* Writes a printf-style reason into err (err_len bytes) and returns
 * HS_EINVAL: the one-line way to refuse bad input with a message. */
int hs_fail_invalid(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
