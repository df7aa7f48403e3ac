/* flush_pool.h - helper threads for the write phase of a loop iteration.
 *
 * When one iteration has many connections to flush (a message for 10,000
 * subscribers), most of its time is spent in the kernel, in one writev per
 * connection. The pool spreads those calls over helper threads; the loop
 * thread works along and returns only when every item is done, so a
 * connection is touched by one thread at a time and the rest of the loop
 * never runs concurrently with the helpers.
 */
#ifndef HS_NET_FLUSH_POOL_H
#define HS_NET_FLUSH_POOL_H

#include <stddef.h>

typedef struct hs_flush_pool hs_flush_pool_t;

/* helpers: threads besides the caller's (0: no pool, returns NULL). */
hs_flush_pool_t *hs_flush_pool_new(unsigned helpers);
/* Runs fn(items[i]) for every i on the helpers and the calling thread;
 * returns once all are done. fn must touch nothing but its item. */
void hs_flush_pool_run(hs_flush_pool_t *pool, void **items, size_t count, void (*fn)(void *item));
void hs_flush_pool_free(hs_flush_pool_t *pool);

#endif
