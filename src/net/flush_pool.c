#include "net/flush_pool.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <uv.h>

#include "core/alloc.h"

#define CHUNK 32 /* items taken at a time: small enough to balance, large enough to be cheap */

struct hs_flush_pool {
    uv_mutex_t lock;
    uv_cond_t start; /* a new job, or stop */
    uv_cond_t done;  /* a helper finished the job */
    unsigned helpers;
    uv_thread_t *threads;
    /* the job, set under lock */
    uint64_t generation;
    void **items;
    size_t count;
    void (*fn)(void *item);
    atomic_size_t next; /* first item not yet taken */
    bool open;          /* helpers may still join this generation */
    unsigned joined;    /* helpers working on it now */
    bool stopping;
};

static void work(hs_flush_pool_t *pool, void **items, size_t count, void (*fn)(void *))
{
    for (;;) {
        size_t first = atomic_fetch_add_explicit(&pool->next, CHUNK, memory_order_relaxed);
        if (first >= count)
            return;
        size_t last = first + CHUNK < count ? first + CHUNK : count;
        for (size_t i = first; i < last; i++)
            fn(items[i]);
    }
}

static void helper_main(void *arg)
{
    hs_flush_pool_t *pool = arg;
    uint64_t seen = 0;
    uv_mutex_lock(&pool->lock);
    for (;;) {
        while (!pool->stopping && pool->generation == seen)
            uv_cond_wait(&pool->start, &pool->lock);
        if (pool->stopping)
            break;
        seen = pool->generation;
        if (!pool->open)
            continue; /* woke after the caller had done it all */
        pool->joined++;
        void **items = pool->items;
        size_t count = pool->count;
        void (*fn)(void *) = pool->fn;
        uv_mutex_unlock(&pool->lock);
        work(pool, items, count, fn);
        uv_mutex_lock(&pool->lock);
        if (--pool->joined == 0)
            uv_cond_signal(&pool->done);
    }
    uv_mutex_unlock(&pool->lock);
}

hs_flush_pool_t *hs_flush_pool_new(unsigned helpers)
{
    if (helpers == 0)
        return NULL;
    hs_flush_pool_t *pool = hs_calloc(1, sizeof(*pool));
    uv_mutex_init(&pool->lock);
    uv_cond_init(&pool->start);
    uv_cond_init(&pool->done);
    pool->threads = hs_calloc(helpers, sizeof(*pool->threads));
    for (unsigned i = 0; i < helpers; i++) {
        if (uv_thread_create(&pool->threads[i], helper_main, pool) != 0)
            break;
        pool->helpers++;
    }
    if (pool->helpers == 0) {
        hs_flush_pool_free(pool);
        return NULL;
    }
    return pool;
}

void hs_flush_pool_run(hs_flush_pool_t *pool, void **items, size_t count, void (*fn)(void *item))
{
    uv_mutex_lock(&pool->lock);
    pool->items = items;
    pool->count = count;
    pool->fn = fn;
    atomic_store_explicit(&pool->next, 0, memory_order_relaxed);
    pool->open = true;
    pool->generation++;
    uv_cond_broadcast(&pool->start);
    uv_mutex_unlock(&pool->lock);
    work(pool, items, count, fn);
    /* Closes the job: a helper that has not joined yet (still waking up, or
     * not given a core: the machine is shared with the clients) will not,
     * and only those that did are waited for. Waiting for every helper made
     * each wave last a scheduler's time slice whenever the cores were busy:
     * 1,000 subscribers at one publish in flight got 74k deliveries/s with
     * one helper and 600k without (docs/performance.md). */
    uv_mutex_lock(&pool->lock);
    pool->open = false;
    while (pool->joined > 0)
        uv_cond_wait(&pool->done, &pool->lock);
    uv_mutex_unlock(&pool->lock);
}

void hs_flush_pool_free(hs_flush_pool_t *pool)
{
    if (pool == NULL)
        return;
    uv_mutex_lock(&pool->lock);
    pool->stopping = true;
    uv_cond_broadcast(&pool->start);
    uv_mutex_unlock(&pool->lock);
    for (unsigned i = 0; i < pool->helpers; i++)
        uv_thread_join(&pool->threads[i]);
    uv_cond_destroy(&pool->start);
    uv_cond_destroy(&pool->done);
    uv_mutex_destroy(&pool->lock);
    hs_free(pool->threads);
    hs_free(pool);
}
