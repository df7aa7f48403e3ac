/* mariadb_schema.c - the MariaDB schema and its migrations, applied at open
 * (see docs/internals/store.md, "Schema and migrations"). Apart from
 * mariadb.c because the schema is data that grows with every release, while
 * mariadb.c is the operations' SQL and the connections. */
#include "store/mariadb_schema.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/error.h"
#include "core/log.h"

static int run_text(MYSQL *db, const char *sql)
{
    return mysql_query(db, sql) == 0 ? 0 : HS_EIO;
}

/* Applied in order, each once; schema_version counts them. DDL commits on
 * its own in MySQL, so every statement is idempotent (IF NOT EXISTS) and a
 * named lock keeps concurrent start-ups from interleaving. */
static const char *const migration_1[] = {
    "CREATE TABLE IF NOT EXISTS messages ("
    " id CHAR(26) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,"
    " topic VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,"
    " content MEDIUMBLOB NOT NULL,"
    " author VARBINARY(1024) NOT NULL,"
    " created_at BIGINT NOT NULL,"
    " KEY messages_topic_id (topic, id)"
    ") ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS connections ("
    " id CHAR(26) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,"
    " node VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,"
    " connected_at BIGINT NOT NULL,"
    " KEY connections_node (node)"
    ") ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS subscriptions ("
    " connection_id CHAR(26) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,"
    " topic VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,"
    " created_at BIGINT NOT NULL,"
    " PRIMARY KEY (connection_id, topic),"
    " KEY subscriptions_topic (topic, connection_id)"
    ") ENGINE=InnoDB",
    NULL,
};

/* 2: the user (a client token's "sub") of a connection */
static const char *const migration_2[] = {
    "ALTER TABLE connections ADD COLUMN IF NOT EXISTS user_sub VARBINARY(1024) NULL",
    NULL,
};

/* 3: the highest message id a connection acknowledged (resume) */
static const char *const migration_3[] = {
    "ALTER TABLE connections ADD COLUMN IF NOT EXISTS last_ack VARBINARY(26) NULL",
    NULL,
};

/* 4: idempotency keys of publishes (IF NOT EXISTS: safe whatever its
 * position among migrations merged from elsewhere) */
static const char *const migration_4[] = {
    "CREATE TABLE IF NOT EXISTS idempotency_keys ("
    " `key` VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,"
    " body_hash CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,"
    " message_id CHAR(26) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,"
    " created_at BIGINT NOT NULL,"
    " KEY idempotency_keys_created (created_at)"
    ") ENGINE=InnoDB",
    NULL,
};

/* 5: which attach owns a connection (epoch, bumped by every resume) and
 * whether it is attached: a resume is a compare-and-set on both */
static const char *const migration_5[] = {
    "ALTER TABLE connections ADD COLUMN IF NOT EXISTS epoch BIGINT NOT NULL DEFAULT 0",
    "ALTER TABLE connections ADD COLUMN IF NOT EXISTS attached TINYINT NOT NULL DEFAULT 1",
    NULL,
};

/* 6: the client's address (behind a trusted proxy, the one it relays for)
 * and when the connection was last detached (a resume without a cursor
 * replays from there) */
static const char *const migration_6[] = {
    "ALTER TABLE connections ADD COLUMN IF NOT EXISTS address VARCHAR(64) NULL",
    "ALTER TABLE connections ADD COLUMN IF NOT EXISTS detached_at BIGINT NULL",
    NULL,
};

/* 7: each topic's last message id: the store mints ids under its row
 * (locked in the publish transaction; created on a topic's first publish
 * from MAX(id) of its messages, so existing databases need no backfill) */
static const char *const migration_7[] = {
    "CREATE TABLE IF NOT EXISTS topic_sequences ("
    " topic VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,"
    " last_id CHAR(26) CHARACTER SET ascii COLLATE ascii_bin NOT NULL"
    ") ENGINE=InnoDB",
    NULL,
};

/* 8: a topic's own retention (NULL: the default) and its prune horizon,
 * the highest id retention removed (a cursor below it reached into pruned
 * history) */
static const char *const migration_8[] = {
    "CREATE TABLE IF NOT EXISTS topic_settings ("
    " topic VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,"
    " retention_age_ms BIGINT NULL,"
    " retention_count BIGINT NULL,"
    " pruned_id CHAR(26) CHARACTER SET ascii COLLATE ascii_bin NULL"
    ") ENGINE=InnoDB",
    NULL,
};

/* 9: the ids of a batch publish with an Idempotency-Key, in order and
 * comma-separated: the answer to its repeat (its key row names the first) */
static const char *const migration_9[] = {
    "CREATE TABLE IF NOT EXISTS idempotency_batches ("
    " `key` VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,"
    " message_ids MEDIUMTEXT CHARACTER SET ascii COLLATE ascii_bin NOT NULL,"
    " created_at BIGINT NOT NULL,"
    " KEY idempotency_batches_created (created_at)"
    ") ENGINE=InnoDB",
    NULL,
};

/* 10: the connections of a user (GET /api/v1/users/{id}/connections) */
static const char *const migration_10[] = {
    "ALTER TABLE connections ADD INDEX IF NOT EXISTS connections_user (user_sub, id)",
    NULL,
};

static const char *const *const migrations[] = {migration_1, migration_2, migration_3, migration_4,
                                                migration_5, migration_6, migration_7, migration_8,
                                                migration_9, migration_10};

static long query_long(MYSQL *db, const char *sql, long fallback)
{
    long value = fallback;
    if (mysql_query(db, sql) != 0)
        return fallback;
    MYSQL_RES *res = mysql_store_result(db);
    MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
    if (row && row[0])
        value = strtol(row[0], NULL, 10);
    mysql_free_result(res);
    return value;
}

int hs_mariadb_migrate(MYSQL *db, const char *database, char *err, size_t err_len)
{
    int latest = (int)(sizeof(migrations) / sizeof(migrations[0]));
    if (query_long(db, "SELECT GET_LOCK('houston_migrate', 30)", 0) != 1) {
        snprintf(err, err_len, "could not take the migration lock: %s", mysql_error(db));
        return HS_EIO;
    }
    int rc = run_text(db, "CREATE TABLE IF NOT EXISTS schema_version (version INT NOT NULL) "
                          "ENGINE=InnoDB");
    long version = query_long(db, "SELECT MAX(version) FROM schema_version", 0);
    if (rc == 0 && version > latest) {
        snprintf(err, err_len, "database has schema version %ld, newer than this houston (%d)",
                 version, latest);
        rc = HS_EINVAL;
    }
    for (int v = (int)version; rc == 0 && v < latest; v++) {
        for (const char *const *stmt = migrations[v]; *stmt && rc == 0; stmt++)
            rc = run_text(db, *stmt);
        char sql[96];
        snprintf(sql, sizeof(sql), "INSERT INTO schema_version (version) VALUES (%d)", v + 1);
        if (rc == 0)
            rc = run_text(db, sql);
        if (rc != 0)
            snprintf(err, err_len, "migrating to schema version %d failed: %s", v + 1,
                     mysql_error(db));
        else
            hs_log_info("store: MariaDB %s migrated to schema version %d", database, v + 1);
    }
    query_long(db, "SELECT RELEASE_LOCK('houston_migrate')", 0);
    return rc;
}
