/* sqlite_topics.h - the SQL of topics and retention on SQLite (private to
 * src/store; sqlite.c hands it the topic ops). */
#ifndef HS_STORE_SQLITE_TOPICS_H
#define HS_STORE_SQLITE_TOPICS_H

#include <sqlite3.h>

#include "store/engine.h"

/* One connection's statements of this file, prepared on first use. */
typedef struct hs_sqlite_topic_stmts {
    sqlite3_stmt *count, *subscribers, *settings, *list, *set, *walk, *nth_newest, *last_of_batch,
        *remove, *horizon_set, *freelist, *vacuum, *begin, *end;
    /* deletion */
    sqlite3_stmt *del_message, *max_id, *del_subs, *had_settings, *clear_settings;
} hs_sqlite_topic_stmts_t;

/* Writer: SET_TOPIC, PRUNE, DELETE_MESSAGE and DELETE_TOPIC (inside the engine's transaction). */
int hs_sqlite_topics_write(sqlite3 *db, hs_sqlite_topic_stmts_t *s, hs_store_op_t *op);
/* Reader: GET_TOPIC and LIST_TOPICS. */
int hs_sqlite_topics_read(sqlite3 *db, hs_sqlite_topic_stmts_t *s, hs_store_op_t *op);
/* Reader: op->out.pruned_id = the topic's prune horizon (read_history). */
int hs_sqlite_topics_horizon(sqlite3 *db, hs_sqlite_topic_stmts_t *s, hs_store_op_t *op);
void hs_sqlite_topics_finalize(hs_sqlite_topic_stmts_t *s);

#endif
