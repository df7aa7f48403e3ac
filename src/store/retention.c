/* retention.c - when the pruner runs and where it resumes (retention.h).
 * What a step removes is the back-ends' SQL (sqlite_topics.c,
 * mariadb_topics.c); this file is only the schedule, on the writer thread. */
#include "store/retention.h"

#include <string.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"

#define MS_NS 1000000ull

struct hs_store_pruner {
    uint64_t default_age_ms;
    uint64_t default_count;
    char *cursor;    /* the last topic the previous step looked at; "" at a sweep's start */
    uint64_t due_ns; /* the next step */
    uint64_t sweep_removed;
};

hs_store_pruner_t *hs_store_pruner_new(const hs_store_options_t *options, uint64_t now_ns)
{
    hs_store_pruner_t *p = hs_calloc(1, sizeof(*p));
    p->default_age_ms = options->retention_age_ms;
    p->default_count = options->retention_count;
    p->cursor = hs_strdup("");
    p->due_ns = now_ns;
    return p;
}

void hs_store_pruner_free(hs_store_pruner_t *p)
{
    if (p == NULL)
        return;
    hs_free(p->cursor);
    hs_free(p);
}

uint64_t hs_store_pruner_due_ns(const hs_store_pruner_t *p)
{
    return p->due_ns;
}

bool hs_store_pruner_next(hs_store_pruner_t *p, uint64_t now_ns, bool busy, hs_store_op_t *op)
{
    if (now_ns < p->due_ns || (busy && now_ns < p->due_ns + HS_PRUNE_MAX_DEFER_MS * MS_NS))
        return false;
    op->in.prune.cursor = hs_strdup(p->cursor);
    op->in.prune.now_ms = hs_now_ms();
    op->in.prune.default_age_ms = p->default_age_ms;
    op->in.prune.default_count = p->default_count;
    op->in.prune.max_rows = HS_PRUNE_BATCH;
    op->in.prune.max_topics = HS_PRUNE_TOPICS;
    return true;
}

void hs_store_pruner_done(hs_store_pruner_t *p, const hs_store_op_t *op, uint64_t now_ns)
{
    if (op->status != 0) {
        /* Logged by the engine; the sweep starts again later. */
        hs_free(p->cursor);
        p->cursor = hs_strdup("");
        p->due_ns = now_ns + HS_PRUNE_INTERVAL_MS * MS_NS;
        return;
    }
    p->sweep_removed += op->out.count;
    if (op->out.cursor == NULL) {
        /* The sweep is over: the next one a while after. */
        if (p->sweep_removed > 0)
            hs_log_debug("store: retention removed %llu messages",
                         (unsigned long long)p->sweep_removed);
        p->sweep_removed = 0;
        hs_free(p->cursor);
        p->cursor = hs_strdup("");
        p->due_ns = now_ns + HS_PRUNE_INTERVAL_MS * MS_NS;
        return;
    }
    hs_free(p->cursor);
    p->cursor = hs_strdup(op->out.cursor);
    /* A step that removed rows pauses so that writes keep their turn; one
     * that only looked at topics goes on at once (it held the lock
     * briefly). */
    p->due_ns = now_ns + (op->out.count > 0 ? HS_PRUNE_PAUSE_MS * MS_NS : 0);
}

void hs_store_id_before(uint64_t cutoff_ms, char out[HS_ULID_LEN + 1])
{
    if (cutoff_ms == 0) {
        out[0] = '\0'; /* no id is older than the epoch */
        return;
    }
    hs_ulid_t id;
    uint64_t t = cutoff_ms - 1;
    for (int i = 5; i >= 0; i--, t >>= 8)
        id.bytes[i] = (uint8_t)(t & 0xff);
    memset(id.bytes + 6, 0xff, 10);
    hs_ulid_format(&id, out);
}
