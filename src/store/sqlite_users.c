/* sqlite_users.c - users on SQLite: the connections of a user (the token
 * "sub" their rows carry), a page in id order over the connections_user
 * index (user_sub, id), and their subscriptions (one range join). Apart
 * from sqlite.c, which writes the rows. */
#include "store/sqlite_users.h"

#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"

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

static const char *column_text(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NULL
                                                     : (const char *)sqlite3_column_text(st, i);
}

int hs_sqlite_users_read(sqlite3 *db, hs_sqlite_user_stmts_t *s, hs_store_op_t *op)
{
    const char *user = op->in.user.user, *after = op->in.user.after;
    unsigned limit = op->in.user.limit;
    sqlite3_stmt *st = stmt(db, &s->conns,
                            "SELECT id, node, connected_at, last_ack, attached, address "
                            "FROM connections WHERE user_sub = ?1 AND id > ?2 ORDER BY id "
                            "LIMIT ?3");
    if (st == NULL)
        return HS_EIO;
    sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, after, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, limit);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        hs_connection_info_t info = {.id = column_text(st, 0),
                                     .node = column_text(st, 1),
                                     .user = user,
                                     .connected_ms = (uint64_t)sqlite3_column_int64(st, 2),
                                     .last_ack = column_text(st, 3),
                                     .attached = sqlite3_column_int64(st, 4) != 0,
                                     .address = column_text(st, 5)};
        hs_store_op_add_user_connection(op, limit, &info);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return HS_EIO;
    if (!op->in.user.with_topics || op->out.conn_count == 0)
        return 0;
    /* The page's subscriptions: its id range, the same rows (one transaction). */
    const char *last = op->out.conns[op->out.conn_count - 1].id;
    st = stmt(db, &s->subs,
              "SELECT s.connection_id, s.topic, s.created_at FROM subscriptions s "
              "JOIN connections c ON c.id = s.connection_id "
              "WHERE c.user_sub = ?1 AND c.id > ?2 AND c.id <= ?3 "
              "ORDER BY s.connection_id, s.created_at, s.topic");
    if (st == NULL)
        return HS_EIO;
    sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, after, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, last, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        hs_store_op_add_subscription(op, (const char *)sqlite3_column_text(st, 0),
                                     (const char *)sqlite3_column_text(st, 1),
                                     (uint64_t)sqlite3_column_int64(st, 2));
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : HS_EIO;
}

void hs_sqlite_users_finalize(hs_sqlite_user_stmts_t *s)
{
    sqlite3_finalize(s->conns);
    sqlite3_finalize(s->subs);
    s->conns = s->subs = NULL;
}
