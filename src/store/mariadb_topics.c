/* mariadb_topics.c - topics and retention on MariaDB: a topic's counts and
 * settings, the listing, the pruner's step (retention.h) and deletion
 * (deletion.c), as sqlite_topics.c does on SQLite (the same queries and
 * costs). Apart from
 * mariadb.c, which is the messages, subscriptions and connections, and
 * mariadb_conn.c, which is the connection itself.
 *
 * Several publishers may prune at once (each runs the pruner): they walk
 * the same topics and the later DELETE finds nothing left - harmless
 * overlap. The horizon only moves up (GREATEST). A step's DELETE holds the
 * topic's index range (and the gap after it) until its short transaction
 * commits: a publish of that topic waits at most that long. */
#include "store/mariadb_topics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"

typedef enum topic_stmt {
    T_COUNT,
    SUBSCRIBERS,
    SETTINGS,
    T_LIST,
    T_SET,
    WALK,
    NTH_NEWEST,
    LAST_OF_BATCH,
    T_REMOVE,
    HORIZON_SET,
    DEL_MESSAGE,
    MAX_ID,
    DEL_SUBS,
    HAD_SETTINGS,
    CLEAR_SETTINGS,
    TOPIC_STMT_COUNT,
} topic_stmt_t;

_Static_assert(TOPIC_STMT_COUNT == HS_MD_TOPIC_STMTS, "HS_MD_TOPIC_STMTS");

#define TOPIC_MAX 128

/* "RANGE": after, prefix, prefix + 0x7f (topic names are printable ASCII). */
#define RANGE "topic > ? AND topic >= ? AND topic < ? "

static const char *const sql[TOPIC_STMT_COUNT] = {
    [T_COUNT] = "SELECT COUNT(*), MIN(id), MAX(id) FROM messages WHERE topic = ?",
    [SUBSCRIBERS] = "SELECT COUNT(*) FROM subscriptions WHERE topic = ?",
    [SETTINGS] = "SELECT retention_age_ms, retention_count, pruned_id FROM topic_settings "
                 "WHERE topic = ?",
    [T_LIST] = "(SELECT topic FROM topic_sequences q WHERE " RANGE
               "AND EXISTS (SELECT 1 FROM messages m WHERE m.topic = q.topic) "
               "ORDER BY topic LIMIT ?) "
               "UNION (SELECT topic FROM topic_settings WHERE " RANGE
               "AND (retention_age_ms IS NOT NULL OR retention_count IS NOT NULL) "
               "ORDER BY topic LIMIT ?) "
               "UNION (SELECT DISTINCT topic FROM subscriptions WHERE " RANGE
               "ORDER BY topic LIMIT ?) ORDER BY topic LIMIT ?",
    [T_SET] = "INSERT INTO topic_settings (topic, retention_age_ms, retention_count) "
              "VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE "
              "retention_age_ms = IF(?, VALUES(retention_age_ms), retention_age_ms), "
              "retention_count = IF(?, VALUES(retention_count), retention_count)",
    [WALK] = "SELECT q.topic, t.retention_age_ms, t.retention_count FROM topic_sequences q "
             "LEFT JOIN topic_settings t ON t.topic = q.topic WHERE q.topic > ? "
             "ORDER BY q.topic LIMIT ?",
    [NTH_NEWEST] = "SELECT id FROM messages WHERE topic = ? ORDER BY id DESC LIMIT 1 OFFSET ?",
    [LAST_OF_BATCH] = "SELECT MAX(id) FROM (SELECT id FROM messages WHERE topic = ? AND id <= ? "
                      "ORDER BY id LIMIT ?) b",
    [T_REMOVE] = "DELETE FROM messages WHERE topic = ? AND id <= ?",
    [HORIZON_SET] = "INSERT INTO topic_settings (topic, pruned_id) VALUES (?, ?) "
                    "ON DUPLICATE KEY UPDATE pruned_id = "
                    "GREATEST(COALESCE(pruned_id, ''), VALUES(pruned_id))",
    [DEL_MESSAGE] = "DELETE FROM messages WHERE topic = ? AND id = ?",
    [MAX_ID] = "SELECT MAX(id) FROM messages WHERE topic = ?",
    [DEL_SUBS] = "DELETE FROM subscriptions WHERE topic = ?",
    [HAD_SETTINGS] = "SELECT 1 FROM topic_settings WHERE topic = ? AND "
                     "(retention_age_ms IS NOT NULL OR retention_count IS NOT NULL)",
    [CLEAR_SETTINGS] = "UPDATE topic_settings SET retention_age_ms = NULL, retention_count = NULL "
                       "WHERE topic = ?",
};

static int run(hs_md_topic_conn_t *c, topic_stmt_t id, const md_param_t *params, unsigned count)
{
    if (md_stmt_run(c->db, &c->stmts[id], sql[id], params, count, false, c->err)) {
        hs_log_error("store: a topic query failed: %s", c->err->message);
        return hs_mariadb_status(c->err);
    }
    return 0;
}

#define PARAMS(...)                                                                                \
    (const md_param_t[])                                                                           \
    {                                                                                              \
        __VA_ARGS__                                                                                \
    }
#define RUN(c, id, ...)                                                                            \
    run((c), (id), PARAMS(__VA_ARGS__),                                                            \
        (unsigned)(sizeof(PARAMS(__VA_ARGS__)) / sizeof(md_param_t)))

/* The first row of the last run of id into row: 1, 0 (none) or an error
 * status (negative is impossible: statuses are negative, so -1 maps). */
static int first_row(hs_md_topic_conn_t *c, topic_stmt_t id, md_row_t *row)
{
    int got = md_stmt_fetch(&c->stmts[id], row, c->err);
    return got < 0 ? hs_mariadb_status(c->err) : got;
}

static uint64_t number(const char *s)
{
    return s ? strtoull(s, NULL, 10) : 0;
}

/* ---- reads ---------------------------------------------------------------- */

static int read_topic(hs_md_topic_conn_t *c, const char *topic, size_t cap, hs_store_op_t *op)
{
    hs_topic_info_t info = {.topic = topic};
    char first[HS_ULID_LEN + 1] = "", last[HS_ULID_LEN + 1] = "", horizon[HS_ULID_LEN + 1] = "";
    md_row_t row;
    int rc = RUN(c, T_COUNT, md_text(topic));
    if (rc == 0 && (rc = first_row(c, T_COUNT, &row)) == 1) {
        info.messages = number(row.col[0]);
        if (info.messages > 0 && row.col[1] && row.col[2]) {
            snprintf(first, sizeof(first), "%s", row.col[1]);
            snprintf(last, sizeof(last), "%s", row.col[2]);
            info.first_id = first;
            info.last_id = last;
        }
        rc = 0;
    }
    md_stmt_end(&c->stmts[T_COUNT]);
    if (rc != 0)
        return rc < 0 ? rc : HS_EIO;
    rc = RUN(c, SUBSCRIBERS, md_text(topic));
    if (rc == 0 && (rc = first_row(c, SUBSCRIBERS, &row)) == 1) {
        info.subscribers = number(row.col[0]);
        rc = 0;
    }
    md_stmt_end(&c->stmts[SUBSCRIBERS]);
    if (rc != 0)
        return rc < 0 ? rc : HS_EIO;
    rc = RUN(c, SETTINGS, md_text(topic));
    if (rc == 0 && (rc = first_row(c, SETTINGS, &row)) == 1) {
        info.has_age = row.col[0] != NULL;
        info.age_ms = number(row.col[0]);
        info.has_count = row.col[1] != NULL;
        info.count = number(row.col[1]);
        if (row.col[2]) {
            snprintf(horizon, sizeof(horizon), "%s", row.col[2]);
            info.pruned_id = horizon;
        }
        rc = 0;
    }
    md_stmt_end(&c->stmts[SETTINGS]);
    if (rc < 0)
        return rc;
    if (info.messages > 0 || info.subscribers > 0 || info.has_age || info.has_count)
        hs_store_op_add_topic(op, cap, &info);
    return 0;
}

static int list_topics(hs_md_topic_conn_t *c, hs_store_op_t *op)
{
    const char *prefix = op->in.topics.prefix ? op->in.topics.prefix : "";
    const char *after = op->in.topics.after ? op->in.topics.after : "";
    char end[TOPIC_MAX + 2];
    snprintf(end, sizeof(end), "%s\x7f", prefix);
    unsigned limit = op->in.topics.limit;
    md_param_t l = md_u64(limit);
    int rc =
        RUN(c, T_LIST, md_text(after), md_text(prefix), md_text(end), l, md_text(after),
            md_text(prefix), md_text(end), l, md_text(after), md_text(prefix), md_text(end), l, l);
    if (rc != 0)
        return rc;
    char **names = hs_calloc(limit ? limit : 1, sizeof(char *));
    size_t n = 0;
    md_row_t row;
    int got;
    while (n < limit && (got = md_stmt_fetch(&c->stmts[T_LIST], &row, c->err)) == 1)
        names[n++] = hs_strdup(row.col[0] ? row.col[0] : "");
    md_stmt_end(&c->stmts[T_LIST]);
    int status = 0;
    for (size_t i = 0; i < n; i++) {
        if (status == 0)
            status = read_topic(c, names[i], limit, op);
        hs_free(names[i]);
    }
    hs_free(names);
    return status;
}

int hs_mariadb_topics_read(hs_md_topic_conn_t *c, hs_store_op_t *op)
{
    switch (op->kind) {
    case HS_OP_GET_TOPIC:
        return read_topic(c, op->in.topic.topic, 1, op);
    case HS_OP_LIST_TOPICS:
        return list_topics(c, op);
    default:
        return HS_EINVAL;
    }
}

int hs_mariadb_topics_horizon(hs_md_topic_conn_t *c, hs_store_op_t *op)
{
    md_row_t row;
    int rc = RUN(c, SETTINGS, md_text(op->in.list.topic));
    if (rc == 0 && (rc = first_row(c, SETTINGS, &row)) == 1) {
        if (row.col[2])
            op->out.pruned_id = hs_strdup(row.col[2]);
        rc = 0;
    }
    md_stmt_end(&c->stmts[SETTINGS]);
    return rc;
}

/* ---- writes --------------------------------------------------------------- */

static md_param_t u64_or_null(bool set, uint64_t value)
{
    return set ? md_u64(value) : md_text(NULL);
}

static int set_topic(hs_md_topic_conn_t *c, const hs_store_op_t *op)
{
    const hs_topic_settings_t *set = &op->in.topic.settings;
    return RUN(c, T_SET, md_text(op->in.topic.topic),
               u64_or_null(set->age == HS_TOPIC_SET, set->age_ms),
               u64_or_null(set->count == HS_TOPIC_SET, set->count_value),
               md_u64(set->age != HS_TOPIC_KEEP), md_u64(set->count != HS_TOPIC_KEEP));
}

typedef struct walked {
    char *topic;
    bool has_age, has_count;
    uint64_t age_ms, count;
} walked_t;

static int retention_bound(hs_md_topic_conn_t *c, const hs_store_op_t *op, const walked_t *t,
                           char bound[HS_ULID_LEN + 1])
{
    uint64_t age = t->has_age ? t->age_ms : op->in.prune.default_age_ms;
    uint64_t count = t->has_count ? t->count : op->in.prune.default_count;
    bound[0] = '\0';
    if (age > 0 && op->in.prune.now_ms > age)
        hs_store_id_before(op->in.prune.now_ms - age, bound);
    if (count == 0)
        return 0;
    md_row_t row;
    int rc = RUN(c, NTH_NEWEST, md_text(t->topic), md_u64(count));
    if (rc == 0 && (rc = first_row(c, NTH_NEWEST, &row)) == 1) {
        if (row.col[0] && strcmp(row.col[0], bound) > 0)
            snprintf(bound, HS_ULID_LEN + 1, "%s", row.col[0]);
        rc = 0;
    }
    md_stmt_end(&c->stmts[NTH_NEWEST]);
    return rc;
}

static int prune_topic(hs_md_topic_conn_t *c, const walked_t *t, const char *bound, unsigned max,
                       size_t *removed)
{
    *removed = 0;
    char last[HS_ULID_LEN + 1] = "";
    md_row_t row;
    int rc = RUN(c, LAST_OF_BATCH, md_text(t->topic), md_text(bound), md_u64(max));
    if (rc == 0 && (rc = first_row(c, LAST_OF_BATCH, &row)) == 1) {
        if (row.col[0])
            snprintf(last, sizeof(last), "%s", row.col[0]);
        rc = 0;
    }
    md_stmt_end(&c->stmts[LAST_OF_BATCH]);
    if (rc != 0 || last[0] == '\0')
        return rc;
    if ((rc = RUN(c, T_REMOVE, md_text(t->topic), md_text(last))) != 0)
        return rc;
    *removed = (size_t)md_stmt_affected(&c->stmts[T_REMOVE]);
    return RUN(c, HORIZON_SET, md_text(t->topic), md_text(last));
}

static int prune(hs_md_topic_conn_t *c, hs_store_op_t *op)
{
    unsigned max_topics = op->in.prune.max_topics;
    int rc = RUN(c, WALK, md_text(op->in.prune.cursor), md_u64(max_topics));
    if (rc != 0)
        return rc;
    walked_t *topics = hs_calloc(max_topics, sizeof(*topics));
    size_t n = 0;
    md_row_t row;
    int got;
    while (n < max_topics && (got = md_stmt_fetch(&c->stmts[WALK], &row, c->err)) == 1) {
        walked_t *t = &topics[n++];
        t->topic = hs_strdup(row.col[0] ? row.col[0] : "");
        t->has_age = row.col[1] != NULL;
        t->age_ms = number(row.col[1]);
        t->has_count = row.col[2] != NULL;
        t->count = number(row.col[2]);
    }
    md_stmt_end(&c->stmts[WALK]);
    int status = 0;
    size_t budget = op->in.prune.max_rows, i = 0;
    const char *resume_after = op->in.prune.cursor;
    for (; i < n && status == 0; i++) {
        char bound[HS_ULID_LEN + 1];
        size_t removed = 0;
        status = retention_bound(c, op, &topics[i], bound);
        if (status == 0 && bound[0])
            status = prune_topic(c, &topics[i], bound, (unsigned)budget, &removed);
        op->out.count += removed;
        budget -= removed;
        if (budget == 0)
            break;
        resume_after = topics[i].topic;
    }
    op->out.cursor = budget > 0 && n < max_topics ? NULL : hs_strdup(resume_after);
    for (size_t j = 0; j < n; j++)
        hs_free(topics[j].topic);
    hs_free(topics);
    return status;
}

/* ---- deletion (deletion.c; as sqlite_topics.c) --------------------------- */

static int delete_message(hs_md_topic_conn_t *c, const hs_store_op_t *op)
{
    int rc = RUN(c, DEL_MESSAGE, md_text(op->in.deletion.topic), md_text(op->in.deletion.id));
    if (rc != 0)
        return rc;
    return md_stmt_affected(&c->stmts[DEL_MESSAGE]) > 0 ? 0 : HS_ENOTFOUND;
}

static int delete_topic_first(hs_md_topic_conn_t *c, hs_store_op_t *op)
{
    const char *topic = op->in.deletion.topic;
    md_row_t row;
    int rc = RUN(c, MAX_ID, md_text(topic));
    if (rc == 0 && (rc = first_row(c, MAX_ID, &row)) == 1) {
        if (row.col[0])
            snprintf(op->out.bound, sizeof(op->out.bound), "%s", row.col[0]);
        rc = 0;
    }
    md_stmt_end(&c->stmts[MAX_ID]);
    if (rc != 0)
        return rc < 0 ? rc : HS_EIO;
    if ((rc = RUN(c, DEL_SUBS, md_text(topic))) != 0)
        return rc;
    op->out.subs_removed = md_stmt_affected(&c->stmts[DEL_SUBS]);
    rc = RUN(c, HAD_SETTINGS, md_text(topic));
    if (rc == 0 && (rc = first_row(c, HAD_SETTINGS, &row)) >= 0) {
        op->out.settings_removed = rc == 1;
        rc = 0;
    }
    md_stmt_end(&c->stmts[HAD_SETTINGS]);
    if (rc != 0)
        return rc;
    if ((rc = RUN(c, CLEAR_SETTINGS, md_text(topic))) != 0)
        return rc;
    if (op->out.bound[0] == '\0')
        return 0;
    return RUN(c, HORIZON_SET, md_text(topic), md_text(op->out.bound));
}

static int delete_topic(hs_md_topic_conn_t *c, hs_store_op_t *op)
{
    const char *bound = op->in.deletion.bound;
    if (op->in.deletion.first) {
        int rc = delete_topic_first(c, op);
        if (rc != 0)
            return rc;
        bound = op->out.bound;
    }
    if (bound[0] == '\0')
        return 0;
    walked_t t = {.topic = op->in.deletion.topic};
    size_t removed = 0;
    int rc = prune_topic(c, &t, bound, op->in.deletion.max_rows, &removed);
    op->out.count = removed;
    return rc;
}

int hs_mariadb_topics_write(hs_md_topic_conn_t *c, hs_store_op_t *op)
{
    switch (op->kind) {
    case HS_OP_DELETE_MESSAGE:
        return delete_message(c, op);
    case HS_OP_DELETE_TOPIC:
        return delete_topic(c, op);
    case HS_OP_SET_TOPIC:
        return set_topic(c, op);
    case HS_OP_PRUNE:
        return prune(c, op);
    default:
        return HS_EINVAL;
    }
}
