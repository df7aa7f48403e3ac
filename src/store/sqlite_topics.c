/* sqlite_topics.c - topics and retention on SQLite: a topic's counts and
 * settings, the listing, the pruner's step (retention.h), and deleting a
 * message or a step of a topic's deletion (deletion.c). Apart from
 * sqlite.c, which is the messages, subscriptions and connections.
 *
 * Costs (docs/api.md, "Topics"): a topic's counts are one range count over
 * the (topic, id) index (linear in the topic's messages) plus one over
 * subscriptions (topic, connection_id); a listing page reads at most limit
 * names from each of three primary-key or index ranges, then counts each
 * topic of the page. A prune step reads up to HS_PRUNE_TOPICS rows of
 * topic_sequences and, per topic, probes the index (a count bound walks the
 * topic's newest N index entries). */
#include "store/sqlite_topics.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"

/* Free pages kept for reuse before the pruner gives some back to the file
 * system, and how many it gives back per step (4 KiB pages). */
#define FREE_PAGES_KEPT     2048
#define FREE_PAGES_PER_STEP "1024"
/* The longest topic name (decode.h). */
#define TOPIC_MAX 128

static sqlite3_stmt *stmt(sqlite3 *db, sqlite3_stmt **slot, const char *sql)
{
    if (*slot == NULL) {
        if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL) != SQLITE_OK) {
            hs_log_error("store: preparing \"%s\" failed: %s", sql, sqlite3_errmsg(db));
            *slot = NULL;
        }
    } else {
        sqlite3_reset(*slot);
        sqlite3_clear_bindings(*slot);
    }
    return *slot;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : HS_EIO;
}

static const char *column_text(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NULL
                                                     : (const char *)sqlite3_column_text(st, i);
}

void hs_sqlite_topics_finalize(hs_sqlite_topic_stmts_t *s)
{
    sqlite3_stmt **all = (sqlite3_stmt **)s;
    for (size_t i = 0; i < sizeof(*s) / sizeof(sqlite3_stmt *); i++) {
        sqlite3_finalize(all[i]);
        all[i] = NULL;
    }
}

/* ---- reads ---------------------------------------------------------------- */

/* Adds topic to op->out.topics (cap rows) when it has messages, subscribers
 * or settings of its own. */
static int read_topic(sqlite3 *db, hs_sqlite_topic_stmts_t *s, const char *topic, size_t cap,
                      hs_store_op_t *op)
{
    hs_topic_info_t info = {.topic = topic};
    char first[HS_ULID_LEN + 1] = "", last[HS_ULID_LEN + 1] = "", horizon[HS_ULID_LEN + 1] = "";
    sqlite3_stmt *st =
        stmt(db, &s->count, "SELECT COUNT(*), MIN(id), MAX(id) FROM messages WHERE topic = ?1");
    if (st == NULL)
        return HS_EIO;
    bind_text(st, 1, topic);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_reset(st);
        return HS_EIO;
    }
    info.messages = (uint64_t)sqlite3_column_int64(st, 0);
    if (info.messages > 0) {
        snprintf(first, sizeof(first), "%s", column_text(st, 1));
        snprintf(last, sizeof(last), "%s", column_text(st, 2));
        info.first_id = first;
        info.last_id = last;
    }
    sqlite3_reset(st);
    st = stmt(db, &s->subscribers, "SELECT COUNT(*) FROM subscriptions WHERE topic = ?1");
    if (st == NULL)
        return HS_EIO;
    bind_text(st, 1, topic);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_reset(st);
        return HS_EIO;
    }
    info.subscribers = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    st = stmt(db, &s->settings,
              "SELECT retention_age_ms, retention_count, pruned_id FROM topic_settings "
              "WHERE topic = ?1");
    if (st == NULL)
        return HS_EIO;
    bind_text(st, 1, topic);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        info.has_age = sqlite3_column_type(st, 0) != SQLITE_NULL;
        info.age_ms = (uint64_t)sqlite3_column_int64(st, 0);
        info.has_count = sqlite3_column_type(st, 1) != SQLITE_NULL;
        info.count = (uint64_t)sqlite3_column_int64(st, 1);
        if (column_text(st, 2)) {
            snprintf(horizon, sizeof(horizon), "%s", column_text(st, 2));
            info.pruned_id = horizon;
        }
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return HS_EIO;
    if (info.messages > 0 || info.subscribers > 0 || info.has_age || info.has_count)
        hs_store_op_add_topic(op, cap, &info);
    return 0;
}

/* The names of the next page: the union of three ranges, each read up to
 * limit names (topics with messages - whose sequence row remains after a
 * prune, so the row is checked against the messages -, with settings of
 * their own, with subscribers). Prefix as a range: topic names are
 * printable ASCII below 0x7f. */
static int list_topics(sqlite3 *db, hs_sqlite_topic_stmts_t *s, hs_store_op_t *op)
{
    const char *prefix = op->in.topics.prefix ? op->in.topics.prefix : "";
    char end[TOPIC_MAX + 2];
    snprintf(end, sizeof(end), "%s\x7f", prefix);
    sqlite3_stmt *st = stmt(
        db, &s->list,
        "SELECT topic FROM (SELECT topic FROM topic_sequences q WHERE topic > ?1 AND topic >= ?2 "
        "AND topic < ?3 AND EXISTS (SELECT 1 FROM messages m WHERE m.topic = q.topic) "
        "ORDER BY topic LIMIT ?4) "
        "UNION SELECT topic FROM (SELECT topic FROM topic_settings WHERE topic > ?1 AND "
        "topic >= ?2 AND topic < ?3 AND (retention_age_ms IS NOT NULL OR retention_count IS NOT "
        "NULL) ORDER BY topic LIMIT ?4) "
        "UNION SELECT topic FROM (SELECT DISTINCT topic FROM subscriptions WHERE topic > ?1 AND "
        "topic >= ?2 AND topic < ?3 ORDER BY topic LIMIT ?4) "
        "ORDER BY topic LIMIT ?4");
    if (st == NULL)
        return HS_EIO;
    unsigned limit = op->in.topics.limit;
    bind_text(st, 1, op->in.topics.after ? op->in.topics.after : "");
    bind_text(st, 2, prefix);
    bind_text(st, 3, end);
    sqlite3_bind_int64(st, 4, limit);
    char **names = hs_calloc(limit ? limit : 1, sizeof(char *));
    size_t n = 0;
    int rc;
    while (n < limit && (rc = sqlite3_step(st)) == SQLITE_ROW)
        names[n++] = hs_strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    int status = 0;
    for (size_t i = 0; i < n; i++) {
        if (status == 0)
            status = read_topic(db, s, names[i], limit, op);
        hs_free(names[i]);
    }
    hs_free(names);
    return status;
}

/* Both reads run in one read transaction: the counts are of one moment. */
int hs_sqlite_topics_read(sqlite3 *db, hs_sqlite_topic_stmts_t *s, hs_store_op_t *op)
{
    sqlite3_stmt *begin = stmt(db, &s->begin, "BEGIN");
    sqlite3_stmt *end = stmt(db, &s->end, "COMMIT");
    if (begin == NULL || end == NULL || step_done(begin) != 0)
        return HS_EIO;
    int rc = op->kind == HS_OP_GET_TOPIC     ? read_topic(db, s, op->in.topic.topic, 1, op)
             : op->kind == HS_OP_LIST_TOPICS ? list_topics(db, s, op)
                                             : HS_EINVAL;
    step_done(end);
    return rc;
}

int hs_sqlite_topics_horizon(sqlite3 *db, hs_sqlite_topic_stmts_t *s, hs_store_op_t *op)
{
    sqlite3_stmt *st = stmt(db, &s->settings,
                            "SELECT retention_age_ms, retention_count, pruned_id FROM "
                            "topic_settings WHERE topic = ?1");
    if (st == NULL)
        return HS_EIO;
    bind_text(st, 1, op->in.list.topic);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && column_text(st, 2))
        op->out.pruned_id = hs_strdup(column_text(st, 2));
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : HS_EIO;
}

/* ---- writes --------------------------------------------------------------- */

static int set_topic(sqlite3 *db, hs_sqlite_topic_stmts_t *s, hs_store_op_t *op)
{
    const hs_topic_settings_t *set = &op->in.topic.settings;
    sqlite3_stmt *st = stmt(
        db, &s->set,
        "INSERT INTO topic_settings (topic, retention_age_ms, retention_count) VALUES (?1, ?2, ?3) "
        "ON CONFLICT (topic) DO UPDATE SET "
        "retention_age_ms = CASE WHEN ?4 THEN excluded.retention_age_ms ELSE retention_age_ms END, "
        "retention_count = CASE WHEN ?5 THEN excluded.retention_count ELSE retention_count END");
    if (st == NULL)
        return HS_EIO;
    bind_text(st, 1, op->in.topic.topic);
    if (set->age == HS_TOPIC_SET)
        sqlite3_bind_int64(st, 2, (sqlite3_int64)set->age_ms);
    if (set->count == HS_TOPIC_SET)
        sqlite3_bind_int64(st, 3, (sqlite3_int64)set->count_value);
    sqlite3_bind_int(st, 4, set->age != HS_TOPIC_KEEP);
    sqlite3_bind_int(st, 5, set->count != HS_TOPIC_KEEP);
    return step_done(st);
}

/* One topic of a sweep and its own settings (has_*: else the default). */
typedef struct walked {
    char *topic;
    bool has_age, has_count;
    uint64_t age_ms, count;
} walked_t;

/* The highest id the topic's retention lets go, "" for none. */
static int retention_bound(sqlite3 *db, hs_sqlite_topic_stmts_t *s, const hs_store_op_t *op,
                           const walked_t *t, char bound[HS_ULID_LEN + 1])
{
    uint64_t age = t->has_age ? t->age_ms : op->in.prune.default_age_ms;
    uint64_t count = t->has_count ? t->count : op->in.prune.default_count;
    bound[0] = '\0';
    if (age > 0 && op->in.prune.now_ms > age)
        hs_store_id_before(op->in.prune.now_ms - age, bound);
    if (count == 0)
        return 0;
    sqlite3_stmt *st =
        stmt(db, &s->nth_newest,
             "SELECT id FROM messages WHERE topic = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2");
    if (st == NULL)
        return HS_EIO;
    bind_text(st, 1, t->topic);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)count);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), bound) > 0)
        snprintf(bound, HS_ULID_LEN + 1, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : HS_EIO;
}

/* Removes the oldest rows of t up to bound, at most max of them; *removed
 * is how many. The horizon (topic_settings.pruned_id) moves up to the last
 * one. */
static int prune_topic(sqlite3 *db, hs_sqlite_topic_stmts_t *s, const walked_t *t,
                       const char *bound, unsigned max, size_t *removed)
{
    *removed = 0;
    sqlite3_stmt *st = stmt(db, &s->last_of_batch,
                            "SELECT MAX(id) FROM (SELECT id FROM messages WHERE topic = ?1 AND "
                            "id <= ?2 ORDER BY id LIMIT ?3)");
    if (st == NULL)
        return HS_EIO;
    bind_text(st, 1, t->topic);
    bind_text(st, 2, bound);
    sqlite3_bind_int64(st, 3, max);
    char last[HS_ULID_LEN + 1] = "";
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && column_text(st, 0))
        snprintf(last, sizeof(last), "%s", column_text(st, 0));
    sqlite3_reset(st);
    if (rc != SQLITE_ROW)
        return HS_EIO;
    if (last[0] == '\0')
        return 0;
    st = stmt(db, &s->remove, "DELETE FROM messages WHERE topic = ?1 AND id <= ?2");
    if (st == NULL)
        return HS_EIO;
    bind_text(st, 1, t->topic);
    bind_text(st, 2, last);
    if (step_done(st) != 0)
        return HS_EIO;
    *removed = (size_t)sqlite3_changes(db);
    st = stmt(db, &s->horizon_set,
              "INSERT INTO topic_settings (topic, pruned_id) VALUES (?1, ?2) ON CONFLICT (topic) "
              "DO UPDATE SET pruned_id = MAX(COALESCE(pruned_id, ''), excluded.pruned_id)");
    if (st == NULL)
        return HS_EIO;
    bind_text(st, 1, t->topic);
    bind_text(st, 2, last);
    return step_done(st);
}

/* Gives free pages back once there are many (after a large prune), 1024 a
 * step (4 MiB: the file shrinks by about that much per second once the
 * backlog is gone); a few are kept for the next inserts to reuse. */
static int give_back_pages(sqlite3 *db, hs_sqlite_topic_stmts_t *s)
{
    sqlite3_stmt *st = stmt(db, &s->freelist, "PRAGMA freelist_count");
    if (st == NULL || sqlite3_step(st) != SQLITE_ROW) {
        if (st)
            sqlite3_reset(st);
        return HS_EIO;
    }
    sqlite3_int64 free_pages = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (free_pages <= FREE_PAGES_KEPT)
        return 0;
    st = stmt(db, &s->vacuum, "PRAGMA incremental_vacuum(" FREE_PAGES_PER_STEP ")");
    if (st == NULL)
        return HS_EIO;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        ;
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : HS_EIO;
}

/* One step of a sweep (engine.h, in.prune). */
static int prune(sqlite3 *db, hs_sqlite_topic_stmts_t *s, hs_store_op_t *op)
{
    sqlite3_stmt *st = stmt(db, &s->walk,
                            "SELECT q.topic, t.retention_age_ms, t.retention_count FROM "
                            "topic_sequences q LEFT JOIN topic_settings t ON t.topic = q.topic "
                            "WHERE q.topic > ?1 ORDER BY q.topic LIMIT ?2");
    if (st == NULL)
        return HS_EIO;
    unsigned max_topics = op->in.prune.max_topics;
    bind_text(st, 1, op->in.prune.cursor);
    sqlite3_bind_int64(st, 2, max_topics);
    walked_t *topics = hs_calloc(max_topics, sizeof(*topics));
    size_t n = 0;
    int rc;
    while (n < max_topics && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        walked_t *t = &topics[n++];
        t->topic = hs_strdup((const char *)sqlite3_column_text(st, 0));
        t->has_age = sqlite3_column_type(st, 1) != SQLITE_NULL;
        t->age_ms = (uint64_t)sqlite3_column_int64(st, 1);
        t->has_count = sqlite3_column_type(st, 2) != SQLITE_NULL;
        t->count = (uint64_t)sqlite3_column_int64(st, 2);
    }
    sqlite3_reset(st);
    int status = 0;
    size_t budget = op->in.prune.max_rows, i = 0;
    const char *resume_after = op->in.prune.cursor;
    for (; i < n && status == 0; i++) {
        char bound[HS_ULID_LEN + 1];
        size_t removed = 0;
        status = retention_bound(db, s, op, &topics[i], bound);
        if (status == 0 && bound[0])
            status = prune_topic(db, s, &topics[i], bound, (unsigned)budget, &removed);
        op->out.count += removed;
        budget -= removed;
        if (budget == 0)
            break; /* this topic may have more: the next step starts at it */
        resume_after = topics[i].topic;
    }
    /* Not while a backlog is pruned (full steps): moving pages costs more
     * than deleting rows, and the freed pages are reused meanwhile. */
    if (status == 0 && budget > 0)
        status = give_back_pages(db, s);
    if (budget > 0 && n < max_topics)
        op->out.cursor = NULL; /* every topic was looked at: the sweep is over */
    else
        op->out.cursor = hs_strdup(resume_after);
    for (size_t j = 0; j < n; j++)
        hs_free(topics[j].topic);
    hs_free(topics);
    return status;
}

/* ---- deletion (deletion.c) ------------------------------------------------ */

static int delete_message(sqlite3 *db, hs_sqlite_topic_stmts_t *s, hs_store_op_t *op)
{
    sqlite3_stmt *st =
        stmt(db, &s->del_message, "DELETE FROM messages WHERE topic = ?1 AND id = ?2");
    if (st == NULL)
        return HS_EIO;
    bind_text(st, 1, op->in.deletion.topic);
    bind_text(st, 2, op->in.deletion.id);
    if (step_done(st) != 0)
        return HS_EIO;
    return sqlite3_changes(db) > 0 ? 0 : HS_ENOTFOUND;
}

/* The first step's own part: the last id, the subscriptions, the settings
 * (their row stays for the horizon, which moves to the last id). */
static int delete_topic_first(sqlite3 *db, hs_sqlite_topic_stmts_t *s, hs_store_op_t *op)
{
    const char *topic = op->in.deletion.topic;
    sqlite3_stmt *st = stmt(db, &s->max_id, "SELECT MAX(id) FROM messages WHERE topic = ?1");
    if (st == NULL)
        return HS_EIO;
    bind_text(st, 1, topic);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && column_text(st, 0))
        snprintf(op->out.bound, sizeof(op->out.bound), "%s", column_text(st, 0));
    sqlite3_reset(st);
    if (rc != SQLITE_ROW)
        return HS_EIO;
    st = stmt(db, &s->del_subs, "DELETE FROM subscriptions WHERE topic = ?1");
    if (st == NULL)
        return HS_EIO;
    bind_text(st, 1, topic);
    if (step_done(st) != 0)
        return HS_EIO;
    op->out.subs_removed = (uint64_t)sqlite3_changes(db);
    st = stmt(db, &s->had_settings,
              "SELECT 1 FROM topic_settings WHERE topic = ?1 AND (retention_age_ms IS NOT NULL "
              "OR retention_count IS NOT NULL)");
    if (st == NULL)
        return HS_EIO;
    bind_text(st, 1, topic);
    rc = sqlite3_step(st);
    op->out.settings_removed = rc == SQLITE_ROW;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return HS_EIO;
    st = stmt(db, &s->clear_settings,
              "UPDATE topic_settings SET retention_age_ms = NULL, retention_count = NULL "
              "WHERE topic = ?1");
    if (st == NULL)
        return HS_EIO;
    bind_text(st, 1, topic);
    if (step_done(st) != 0)
        return HS_EIO;
    if (op->out.bound[0] == '\0')
        return 0;
    st = stmt(db, &s->horizon_set,
              "INSERT INTO topic_settings (topic, pruned_id) VALUES (?1, ?2) ON CONFLICT (topic) "
              "DO UPDATE SET pruned_id = MAX(COALESCE(pruned_id, ''), excluded.pruned_id)");
    if (st == NULL)
        return HS_EIO;
    bind_text(st, 1, topic);
    bind_text(st, 2, op->out.bound);
    return step_done(st);
}

/* One step of a topic's deletion (engine.h, in.deletion). */
static int delete_topic(sqlite3 *db, hs_sqlite_topic_stmts_t *s, hs_store_op_t *op)
{
    const char *bound = op->in.deletion.bound;
    if (op->in.deletion.first) {
        int rc = delete_topic_first(db, s, op);
        if (rc != 0)
            return rc;
        bound = op->out.bound;
    }
    if (bound[0] == '\0')
        return 0;
    walked_t t = {.topic = op->in.deletion.topic};
    size_t removed = 0;
    int rc = prune_topic(db, s, &t, bound, op->in.deletion.max_rows, &removed);
    op->out.count = removed;
    return rc;
}

int hs_sqlite_topics_write(sqlite3 *db, hs_sqlite_topic_stmts_t *s, hs_store_op_t *op)
{
    switch (op->kind) {
    case HS_OP_DELETE_MESSAGE:
        return delete_message(db, s, op);
    case HS_OP_DELETE_TOPIC:
        return delete_topic(db, s, op);
    case HS_OP_SET_TOPIC:
        return set_topic(db, s, op);
    case HS_OP_PRUNE:
        return prune(db, s, op);
    default:
        return HS_EINVAL;
    }
}
