/* sqlite_schema.c - the SQLite schema and its migrations, applied at open
 * under PRAGMA user_version. Apart from sqlite.c because the schema is data
 * that grows with every release, while the statements and the back-end's
 * functions do not (as mariadb_schema.c is to mariadb.c). */
#include "store/sqlite_schema.h"

#include <stdio.h>

#include "core/error.h"
#include "core/log.h"

/* The schema, one migration per version (PRAGMA user_version counts those
 * applied). Append only: a shipped migration is never edited, since files
 * already at its version would not see the change. */
static const char *const migrations[] = {
    /* 1: messages, connections, subscriptions */
    "CREATE TABLE messages ("
    "  id TEXT PRIMARY KEY,"
    "  topic TEXT NOT NULL,"
    "  content TEXT NOT NULL,"
    "  author TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX messages_topic_id ON messages (topic, id);"
    "CREATE TABLE connections ("
    "  id TEXT PRIMARY KEY,"
    "  node TEXT NOT NULL,"
    "  connected_at INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX connections_node ON connections (node);"
    "CREATE TABLE subscriptions ("
    "  connection_id TEXT NOT NULL,"
    "  topic TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  PRIMARY KEY (connection_id, topic)"
    ") WITHOUT ROWID;"
    "CREATE INDEX subscriptions_topic ON subscriptions (topic, connection_id);",
    /* 2: the user (a client token's "sub") of a connection */
    "ALTER TABLE connections ADD COLUMN user_sub TEXT;",
    /* 3: the highest message id a connection acknowledged (resume) */
    "ALTER TABLE connections ADD COLUMN last_ack TEXT;",
    /* 4: idempotency keys of publishes (IF NOT EXISTS: safe whatever its
     * position among migrations merged from elsewhere) */
    "CREATE TABLE IF NOT EXISTS idempotency_keys ("
    "  `key` TEXT PRIMARY KEY,"
    "  body_hash TEXT NOT NULL,"
    "  message_id TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS idempotency_keys_created ON idempotency_keys (created_at);",
    /* 5: which attach owns a connection (epoch, bumped by every resume) and
     * whether it is attached: a resume is a compare-and-set on both */
    "ALTER TABLE connections ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE connections ADD COLUMN attached INTEGER NOT NULL DEFAULT 1;",
    /* 6: the client's address (behind a trusted proxy, the one it relays for)
     * and when the connection was last detached (a resume without a cursor
     * replays from there) */
    "ALTER TABLE connections ADD COLUMN address TEXT;"
    "ALTER TABLE connections ADD COLUMN detached_at INTEGER;",
    /* 7: each topic's last message id, the store mints ids under it */
    "CREATE TABLE IF NOT EXISTS topic_sequences (topic TEXT PRIMARY KEY, last_id TEXT NOT NULL) "
    "WITHOUT ROWID;",
    /* 8: a topic's own retention (NULL: the default) and its prune horizon,
     * the highest id retention removed (a cursor below it reached into
     * pruned history). The file also turns to auto_vacuum=INCREMENTAL, once,
     * after the migrations (hs_sqlite_migrate). */
    "CREATE TABLE IF NOT EXISTS topic_settings ("
    "  topic TEXT PRIMARY KEY,"
    "  retention_age_ms INTEGER,"
    "  retention_count INTEGER,"
    "  pruned_id TEXT"
    ") WITHOUT ROWID;",
    /* 9: the ids of a batch publish with an Idempotency-Key, in order and
     * comma-separated: the answer to its repeat (its key row names the
     * first) */
    "CREATE TABLE IF NOT EXISTS idempotency_batches ("
    "  `key` TEXT PRIMARY KEY,"
    "  message_ids TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS idempotency_batches_created ON idempotency_batches (created_at);",
    /* 10: the connections of a user (GET /api/v1/users/{id}/connections) */
    "CREATE INDEX IF NOT EXISTS connections_user ON connections (user_sub, id);",
};

int hs_sqlite_exec(sqlite3 *db, const char *sql, char *err, size_t err_len)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, err_len, "%s", msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return HS_EIO;
    }
    return 0;
}

/* Reads PRAGMA user_version; -1 when it cannot be read. */
static int schema_version(sqlite3 *db)
{
    sqlite3_stmt *stmt;
    int version = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &stmt, NULL) == SQLITE_OK) {
        if (sqlite3_step(stmt) == SQLITE_ROW)
            version = sqlite3_column_int(stmt, 0);
        sqlite3_finalize(stmt);
    }
    return version;
}

/* Reads PRAGMA auto_vacuum (0 none, 1 full, 2 incremental); -1 on error. */
static int auto_vacuum_mode(sqlite3 *db)
{
    sqlite3_stmt *stmt;
    int mode = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA auto_vacuum", -1, &stmt, NULL) == SQLITE_OK) {
        if (sqlite3_step(stmt) == SQLITE_ROW)
            mode = sqlite3_column_int(stmt, 0);
        sqlite3_finalize(stmt);
    }
    return mode;
}

/* Retention frees pages; with auto_vacuum=INCREMENTAL the pruner can give
 * free pages back (PRAGMA incremental_vacuum), so the file stops growing
 * under a steady publish. A new file takes the mode before its first table;
 * an existing one needs a VACUUM, once (it rewrites the file: as long as
 * copying it takes, at start-up, logged). */
static int use_incremental_vacuum(sqlite3 *db, const char *path, char *err, size_t err_len)
{
    char reason[256] = "";
    if (auto_vacuum_mode(db) == 2)
        return 0;
    if (hs_sqlite_exec(db, "PRAGMA auto_vacuum = INCREMENTAL", reason, sizeof(reason)) != 0)
        goto fail;
    if (auto_vacuum_mode(db) == 2)
        return 0; /* an empty file: taken at once */
    hs_log_info("store: %s: turning on incremental auto-vacuum (VACUUM, once)", path);
    if (hs_sqlite_exec(db, "VACUUM", reason, sizeof(reason)) != 0)
        goto fail;
    return 0;
fail:
    snprintf(err, err_len, "cannot set incremental auto-vacuum on '%s': %s", path, reason);
    return HS_EIO;
}

static int migrate_steps(sqlite3 *db, const char *path, char *err, size_t err_len);

/* The migrations, then incremental auto-vacuum (a new file takes it before
 * its first table). */
int hs_sqlite_migrate(sqlite3 *db, const char *path, char *err, size_t err_len)
{
    if (schema_version(db) == 0 && use_incremental_vacuum(db, path, err, err_len) != 0)
        return HS_EIO;
    int rc = migrate_steps(db, path, err, err_len);
    return rc != 0 ? rc : use_incremental_vacuum(db, path, err, err_len);
}

/* Applies the migrations the file lacks, each once, in order, each in its own
 * transaction with the version bump, so a crash leaves the file at a whole
 * version. The version is read again under BEGIN IMMEDIATE (the write lock):
 * two processes starting on one file cannot both apply the same step. */
static int migrate_steps(sqlite3 *db, const char *path, char *err, size_t err_len)
{
    int latest = (int)(sizeof(migrations) / sizeof(migrations[0]));
    for (;;) {
        char reason[256] = "";
        if (hs_sqlite_exec(db, "BEGIN IMMEDIATE", reason, sizeof(reason)) != 0) {
            snprintf(err, err_len, "cannot open sqlite database '%s': %s", path, reason);
            return HS_EIO;
        }
        int version = schema_version(db);
        if (version < 0)
            snprintf(err, err_len, "cannot open sqlite database '%s': %s", path,
                     sqlite3_errmsg(db));
        if (version < 0 || version >= latest) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            if (version < 0)
                return HS_EIO;
            if (version > latest) {
                snprintf(err, err_len,
                         "database '%s' has schema version %d, newer than this houston (%d)", path,
                         version, latest);
                return HS_EINVAL;
            }
            return 0;
        }
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", version + 1);
        if (hs_sqlite_exec(db, migrations[version], reason, sizeof(reason)) != 0 ||
            hs_sqlite_exec(db, sql, reason, sizeof(reason)) != 0 ||
            hs_sqlite_exec(db, "COMMIT", reason, sizeof(reason)) != 0) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            snprintf(err, err_len, "migrating '%s' to schema version %d failed: %s", path,
                     version + 1, reason);
            return HS_EIO;
        }
        hs_log_info("store: %s migrated to schema version %d", path, version + 1);
    }
}
