#include "core/buf.h"

#include <string.h>

#include "core/alloc.h"

hs_buf_t *hs_buf_new(size_t cap)
{
    hs_buf_t *buf = hs_malloc(sizeof(*buf) + cap);
    atomic_init(&buf->refs, 1);
    buf->nparts = 0;
    buf->len = 0;
    buf->cap = cap;
    return buf;
}

hs_buf_t *hs_buf_vector(hs_buf_t *const *parts, unsigned n)
{
    hs_buf_t *buf = hs_buf_new(n * sizeof(hs_buf_t *));
    hs_buf_t **slots = (hs_buf_t **)(void *)buf->data;
    for (unsigned i = 0; i < n; i++) {
        slots[i] = hs_buf_ref(parts[i]);
        buf->len += parts[i]->len;
    }
    buf->nparts = n;
    return buf;
}

/* Frees a buffer whose last reference is gone, and a vector's parts. */
static void buf_free(hs_buf_t *buf)
{
    for (unsigned i = 0; i < buf->nparts; i++)
        hs_buf_unref(hs_buf_parts(buf)[i]);
    hs_free(buf);
}

hs_buf_t *hs_buf_from(const void *data, size_t len)
{
    hs_buf_t *buf = hs_buf_new(len);
    memcpy(buf->data, data, len);
    buf->len = len;
    return buf;
}

hs_buf_t *hs_buf_ref(hs_buf_t *buf)
{
    atomic_fetch_add_explicit(&buf->refs, 1, memory_order_relaxed);
    return buf;
}

void hs_buf_ref_n(hs_buf_t *buf, unsigned n)
{
    atomic_fetch_add_explicit(&buf->refs, n, memory_order_relaxed);
}

void hs_buf_unref_n(hs_buf_t *buf, unsigned n)
{
    if (buf == NULL || n == 0)
        return;
    if (atomic_fetch_sub_explicit(&buf->refs, n, memory_order_acq_rel) == n)
        buf_free(buf);
}

void hs_buf_unref(hs_buf_t *buf)
{
    if (buf == NULL)
        return;
    if (atomic_fetch_sub_explicit(&buf->refs, 1, memory_order_acq_rel) == 1)
        buf_free(buf);
}

hs_buf_t *hs_buf_append(hs_buf_t *buf, const void *data, size_t len)
{
    if (buf->len + len > buf->cap) {
        size_t cap = buf->cap ? buf->cap * 2 : 64;
        while (cap < buf->len + len)
            cap *= 2;
        buf = hs_realloc(buf, sizeof(*buf) + cap);
        buf->cap = cap;
    }
    memcpy(buf->data + buf->len, data, len);
    buf->len += len;
    return buf;
}
