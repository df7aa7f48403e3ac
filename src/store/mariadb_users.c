/* mariadb_users.c - users on MariaDB: the connections of a user (the
 * token "sub" their rows carry), a page in id order over the
 * connections_user index (user_sub, id), and their subscriptions, as
 * sqlite_users.c does on SQLite (the same queries). Apart from mariadb.c,
 * which writes the rows. */
#include "store/mariadb_users.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"

typedef enum user_stmt {
    U_CONNS,
    U_SUBS,
    USER_STMT_COUNT,
} user_stmt_t;

_Static_assert(USER_STMT_COUNT == HS_MD_USER_STMTS, "HS_MD_USER_STMTS");

static const char *const sql[USER_STMT_COUNT] = {
    [U_CONNS] = "SELECT id, node, connected_at, last_ack, attached, address FROM connections "
                "WHERE user_sub = ? AND id > ? ORDER BY id LIMIT ?",
    [U_SUBS] = "SELECT s.connection_id, s.topic, s.created_at FROM subscriptions s "
               "JOIN connections c ON c.id = s.connection_id "
               "WHERE c.user_sub = ? AND c.id > ? AND c.id <= ? "
               "ORDER BY s.connection_id, s.created_at, s.topic",
};

static int run(hs_md_topic_conn_t *c, user_stmt_t id, const md_param_t *params, unsigned count)
{
    if (md_stmt_run(c->db, &c->stmts[id], sql[id], params, count, false, c->err)) {
        hs_log_error("store: a user query failed: %s", c->err->message);
        return hs_mariadb_status(c->err);
    }
    return 0;
}

int hs_mariadb_users_read(hs_md_topic_conn_t *c, hs_store_op_t *op)
{
    const char *user = op->in.user.user, *after = op->in.user.after;
    unsigned limit = op->in.user.limit;
    const md_param_t conn_params[] = {md_text(user), md_text(after), md_u64(limit)};
    int rc = run(c, U_CONNS, conn_params, 3);
    if (rc != 0)
        return rc;
    md_row_t row;
    int got;
    while ((got = md_stmt_fetch(&c->stmts[U_CONNS], &row, c->err)) == 1) {
        hs_connection_info_t info = {.id = row.col[0] ? row.col[0] : "",
                                     .node = row.col[1],
                                     .user = user,
                                     .connected_ms =
                                         row.col[2] ? strtoull(row.col[2], NULL, 10) : 0,
                                     .last_ack = row.col[3],
                                     .attached = row.col[4] && strcmp(row.col[4], "0") != 0,
                                     .address = row.col[5]};
        hs_store_op_add_user_connection(op, limit, &info);
    }
    md_stmt_end(&c->stmts[U_CONNS]);
    if (got < 0)
        return hs_mariadb_status(c->err);
    if (!op->in.user.with_topics || op->out.conn_count == 0)
        return 0;
    /* The page's subscriptions: its id range, in the same transaction. */
    const char *last = op->out.conns[op->out.conn_count - 1].id;
    const md_param_t sub_params[] = {md_text(user), md_text(after), md_text(last)};
    if ((rc = run(c, U_SUBS, sub_params, 3)) != 0)
        return rc;
    while ((got = md_stmt_fetch(&c->stmts[U_SUBS], &row, c->err)) == 1)
        hs_store_op_add_subscription(op, row.col[0], row.col[1],
                                     row.col[2] ? strtoull(row.col[2], NULL, 10) : 0);
    md_stmt_end(&c->stmts[U_SUBS]);
    return got < 0 ? hs_mariadb_status(c->err) : 0;
}
