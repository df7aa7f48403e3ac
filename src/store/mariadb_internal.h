/* mariadb_internal.h - what the files of the MariaDB back-end share
 * (private to src/store; mariadb.c and mariadb_conn.c): a thread's
 * connection with its statement slots, and reaching the server. Thread:
 * each connection is used by its engine thread only (engine.h). */
#ifndef HS_STORE_MARIADB_INTERNAL_H
#define HS_STORE_MARIADB_INTERNAL_H

#include <mysql.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/mariadb_stmt.h"
#include "store/mariadb_topics.h"
#include "store/mariadb_users.h"

typedef struct target {
    char user[128];
    char password[128];
    char host[256];
    unsigned port;
    char database[128];
} target_t;

/* The statements, one slot each in a connection. */
typedef enum stmt_id {
    INSERT_MESSAGE,
    GET_MESSAGE,
    GET_MESSAGE_SHARED,
    LIST_FORWARD,
    LIST_BACKWARD,
    KEY_INSERT,
    KEY_GET,
    KEY_UPDATE,
    KEY_PURGE,
    BATCH_GET,
    BATCH_PUT,
    BATCH_PURGE,
    SUB_ADD,
    SUB_CREATED,
    SUB_REMOVE,
    SUBS_REMOVE,
    SUBS_OF_CONN,
    SUBS_OF_TOPIC,
    SUB_OF_BOTH,
    CONN_ADD,
    CONN_GET,
    CONN_REMOVE,
    SET_ACK,
    CLAIM,
    RELEASE,
    EXPIRE_SUBS,
    ORPHAN_SUBS,
    EXPIRE_CONN,
    NODE_SUBS,
    NODE_CONNS,
    SEQ_GET,
    SEQ_LAST,
    SEQ_CREATE,
    SEQ_SET,
    STMT_COUNT,
} stmt_id_t;

/* One thread's connection and its prepared statements. */
typedef struct conn {
    MYSQL *db;
    bool down;            /* the last attempt to reach the server failed */
    uint64_t retry_at_ns; /* no new attempt before this (uv_hrtime) */
    uint64_t backoff_ms;
    target_t target;
    md_stmt_t stmts[STMT_COUNT];              /* prepared on first use on db */
    md_stmt_t topic_stmts[HS_MD_TOPIC_STMTS]; /* mariadb_topics.c's */
    md_stmt_t user_stmts[HS_MD_USER_STMTS];   /* mariadb_users.c's */
    md_error_t err;                           /* the last failure: statement_error and logs */
} conn_t;

/* Parses url (mysql://user[:password]@host[:port]/database) into t; 0, or
 * HS_EINVAL with err filled (the password redacted). */
int hs_mariadb__parse_url(const char *url, target_t *t, char *err, size_t err_len);
/* Closes every statement slot of c (statements belong to the connection
 * that prepared them). */
void hs_mariadb__close_statements(conn_t *c);
/* Remembers the connection's last error in c->err. */
void hs_mariadb__record_error(conn_t *c);
/* (Re)opens c->db on c->target, its statements closed first; 0, or HS_EIO
 * with err filled and c->err recorded. */
int hs_mariadb__connect(conn_t *c, char *err, size_t err_len);
/* Before a batch: 0 when c is usable (reconnected if the server went away),
 * HS_EUNAVAIL while it cannot be reached (retried only after the backoff). */
int hs_mariadb__ensure_connected(conn_t *c);
/* Start-up: connects, waiting up to wait_ms for a server not yet reachable. */
int hs_mariadb__connect_waiting(conn_t *c, uint64_t wait_ms, char *err, size_t err_len);

#endif
