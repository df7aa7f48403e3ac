/* buf.h - reference-counted byte buffers.
 *
 * An outgoing frame or response is encoded once into an hs_buf_t and shared by
 * reference among every connection that sends it: each queue holds a
 * reference, never a copy. The count is atomic so a buffer may be shared
 * across event-loop threads; the bytes must not change once a second
 * reference exists.
 */
#ifndef HS_CORE_BUF_H
#define HS_CORE_BUF_H

#include <stdatomic.h>
#include <stddef.h>

typedef struct hs_buf {
    atomic_uint refs;
    /* 0: the bytes are data[0..len). Otherwise a vector: data holds nparts
     * references to flat buffers whose bytes, one after the other, are this
     * buffer's len bytes (hs_buf_vector). Only a connection's write queue
     * reads a vector's bytes (net/conn.c). */
    unsigned nparts;
    size_t len; /* bytes in use */
    size_t cap; /* bytes allocated in data */
    char data[];
} hs_buf_t;

/* A buffer with room for cap bytes, len 0, one reference owned by the caller. */
hs_buf_t *hs_buf_new(size_t cap);
/* A buffer holding a copy of len bytes of data, one reference. */
hs_buf_t *hs_buf_from(const void *data, size_t len);
/* A vector of n flat buffers (it takes a reference on each): n frames queued
 * on a connection as one entry, so a run of messages to many connections
 * costs one queue entry per connection, not one per message. */
hs_buf_t *hs_buf_vector(hs_buf_t *const *parts, unsigned n);
/* A vector's parts. */
static inline hs_buf_t *const *hs_buf_parts(const hs_buf_t *buf)
{
    return (hs_buf_t *const *)(const void *)buf->data;
}
/* Takes one more reference and returns buf. */
hs_buf_t *hs_buf_ref(hs_buf_t *buf);
/* Drops one reference; the last one frees the buffer. NULL is ignored. */
void hs_buf_unref(hs_buf_t *buf);
/* n references at once: one atomic operation for a whole fan-out instead of
 * one per recipient (each is a full memory barrier on x86). */
void hs_buf_ref_n(hs_buf_t *buf, unsigned n);
void hs_buf_unref_n(hs_buf_t *buf, unsigned n);

/* Appends to a buffer that has a single owner, growing it (the pointer may
 * change). For building a buffer before it is shared. */
hs_buf_t *hs_buf_append(hs_buf_t *buf, const void *data, size_t len);

#endif
