/* mariadb_topics.h - the SQL of topics and retention on MariaDB (private
 * to src/store; mariadb.c hands it the topic ops). */
#ifndef HS_STORE_MARIADB_TOPICS_H
#define HS_STORE_MARIADB_TOPICS_H

#include "store/engine.h"
#include "store/mariadb_stmt.h"

#define HS_MD_TOPIC_STMTS 15

/* What the statements of this file run on: a connection's, lent by
 * mariadb.c for one op. */
typedef struct hs_md_topic_conn {
    MYSQL *db;
    md_stmt_t *stmts; /* HS_MD_TOPIC_STMTS slots, closed by mariadb.c on reconnect */
    md_error_t *err;
} hs_md_topic_conn_t;

/* The status of err (mariadb_conn.c): HS_EUNAVAIL, HS_EAGAIN or HS_EIO. */
int hs_mariadb_status(const md_error_t *err);

/* Writer: SET_TOPIC, PRUNE, DELETE_MESSAGE and DELETE_TOPIC (inside the engine's transaction). */
int hs_mariadb_topics_write(hs_md_topic_conn_t *c, hs_store_op_t *op);
/* Reader: GET_TOPIC and LIST_TOPICS. */
int hs_mariadb_topics_read(hs_md_topic_conn_t *c, hs_store_op_t *op);
/* Reader: op->out.pruned_id = the topic's prune horizon (read_history). */
int hs_mariadb_topics_horizon(hs_md_topic_conn_t *c, hs_store_op_t *op);

#endif
