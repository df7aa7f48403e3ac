/* sqlite_users.h - the SQL of users on SQLite (private to src/store;
 * sqlite.c hands it USER_CONNECTIONS). */
#ifndef HS_STORE_SQLITE_USERS_H
#define HS_STORE_SQLITE_USERS_H

#include <sqlite3.h>

#include "store/engine.h"

/* One connection's statements of this file, prepared on first use. */
typedef struct hs_sqlite_user_stmts {
    sqlite3_stmt *conns, *subs;
} hs_sqlite_user_stmts_t;

/* Writer (in order with the writes): USER_CONNECTIONS. */
int hs_sqlite_users_read(sqlite3 *db, hs_sqlite_user_stmts_t *s, hs_store_op_t *op);
void hs_sqlite_users_finalize(hs_sqlite_user_stmts_t *s);

#endif
