/* mariadb_users.h - the SQL of users on MariaDB (private to src/store;
 * mariadb.c hands it USER_CONNECTIONS). */
#ifndef HS_STORE_MARIADB_USERS_H
#define HS_STORE_MARIADB_USERS_H

#include "store/engine.h"
#include "store/mariadb_topics.h"

#define HS_MD_USER_STMTS 2

/* Writer (in order with the writes): USER_CONNECTIONS, on the
 * connection mariadb.c lends (hs_md_topic_conn_t, with its
 * HS_MD_USER_STMTS user statement slots). */
int hs_mariadb_users_read(hs_md_topic_conn_t *c, hs_store_op_t *op);

#endif
