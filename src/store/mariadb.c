/* mariadb.c - the store on MariaDB/MySQL (MariaDB Connector/C).
 *
 * Like the SQLite back-end it runs on the engine's two threads, each with
 * its own connection, so the loop never waits on the database. Statements
 * are built with mysql_real_escape_string (binary-safe: content may hold any
 * byte) into one growing buffer per connection. Ids and topics are ASCII
 * with binary collation, so ORDER BY id is ULID (= time) order.
 *
 * A connection lost between batches is re-established before the next one
 * (mysql_ping first), at most once per backoff step (100 ms doubling to
 * 2 s): while the server cannot be reached every operation fails at once
 * with HS_EUNAVAIL (the API answers 503), without hammering the server. A
 * batch that fails mid-way is rolled back and its writes report the error,
 * so nothing half-written remains. */
#include "store/mariadb.h"

#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/redact.h"
#include "core/log.h"
#include "store/engine.h"
#include <uv.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000

typedef struct target {
    char user[128];
    char password[128];
    char host[256];
    unsigned port;
    char database[128];
} target_t;

/* One thread's connection and its statement buffer. */
typedef struct conn {
    MYSQL *db;
    bool down;            /* the last attempt to reach the server failed */
    uint64_t retry_at_ns; /* no new attempt before this (uv_hrtime) */
    uint64_t backoff_ms;
    target_t target;
    char *sql;
    size_t len, cap;
} conn_t;

/* ---- the URL ------------------------------------------------------------ */

static int parse_url(const char *url, target_t *t, char *err, size_t err_len)
{
    memset(t, 0, sizeof(*t));
    const char *p = strstr(url, "://");
    if (p == NULL)
        goto bad;
    p += 3;
    const char *at = strrchr(p, '@');
    const char *slash = strchr(at ? at : p, '/');
    if (slash == NULL || slash[1] == '\0')
        goto bad;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        size_t user_len = (size_t)((colon ? colon : at) - p);
        if (user_len >= sizeof(t->user))
            goto bad;
        memcpy(t->user, p, user_len);
        if (colon) {
            size_t pass_len = (size_t)(at - colon - 1);
            if (pass_len >= sizeof(t->password))
                goto bad;
            memcpy(t->password, colon + 1, pass_len);
        }
        p = at + 1;
    }
    const char *colon = memchr(p, ':', (size_t)(slash - p));
    size_t host_len = (size_t)((colon ? colon : slash) - p);
    if (host_len == 0 || host_len >= sizeof(t->host))
        goto bad;
    memcpy(t->host, p, host_len);
    t->port = 3306;
    if (colon) {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (end != slash || port <= 0 || port > 65535)
            goto bad;
        t->port = (unsigned)port;
    }
    if (strlen(slash + 1) >= sizeof(t->database))
        goto bad;
    snprintf(t->database, sizeof(t->database), "%s", slash + 1);
    return 0;
bad:;
    char shown[512];
    hs_redact_url(url, shown, sizeof(shown));
    snprintf(err, err_len, "store URL '%s' is not mysql://user[:password]@host[:port]/database",
             shown);
    return HS_EINVAL;
}

/* ---- connections ----------------------------------------------------------- */

static int connect_db(conn_t *c, char *err, size_t err_len)
{
    if (c->db)
        mysql_close(c->db);
    c->db = mysql_init(NULL);
    unsigned timeout = 5;
    mysql_options(c->db, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    mysql_options(c->db, MYSQL_OPT_READ_TIMEOUT, &timeout);
    mysql_options(c->db, MYSQL_OPT_WRITE_TIMEOUT, &timeout);
    mysql_options(c->db, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    const target_t *t = &c->target;
    if (mysql_real_connect(c->db, t->host, t->user, t->password[0] ? t->password : NULL,
                           t->database, t->port, NULL, 0) == NULL) {
        snprintf(err, err_len, "cannot connect to MariaDB at %s:%u/%s: %s", t->host, t->port,
                 t->database, mysql_error(c->db));
        return HS_EIO;
    }
    return 0;
}

/* Reconnects when the server went away since the last use; while it stays
 * away, tries again only after the backoff. */
static int ensure_connected(conn_t *c)
{
    if (!c->down && c->db && mysql_ping(c->db) == 0)
        return 0;
    uint64_t now = uv_hrtime();
    if (c->down && now < c->retry_at_ns)
        return HS_EUNAVAIL;
    char err[512];
    if (connect_db(c, err, sizeof(err)) != 0) {
        if (!c->down)
            hs_log_error("store: %s; retrying with backoff, answering 503 meanwhile", err);
        c->down = true;
        c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
        if (c->backoff_ms > BACKOFF_MAX_MS)
            c->backoff_ms = BACKOFF_MAX_MS;
        c->retry_at_ns = now + c->backoff_ms * 1000000ull;
        return HS_EUNAVAIL;
    }
    hs_log_info("store: connected to MariaDB at %s:%u again", c->target.host, c->target.port);
    c->down = false;
    c->backoff_ms = 0;
    return 0;
}

/* The error of the last statement: HS_EUNAVAIL when the connection is the
 * cause (the next use reconnects), HS_EAGAIN when InnoDB gave up the
 * transaction over a lock (a deadlock between publishers writing the same
 * idempotency keys in other orders: the engine runs the batch again), else
 * HS_EIO. */
static int statement_error(conn_t *c)
{
    switch (mysql_errno(c->db)) {
    case ER_LOCK_DEADLOCK:
    case ER_LOCK_WAIT_TIMEOUT:
        return HS_EAGAIN;
    case CR_SERVER_GONE_ERROR:
    case CR_SERVER_LOST:
    case CR_CONNECTION_ERROR:
    case CR_CONN_HOST_ERROR:
    case CR_SERVER_LOST_EXTENDED:
    case CR_UNKNOWN_HOST:
        return HS_EUNAVAIL;
    default:
        return HS_EIO;
    }
}

/* ---- building statements ----------------------------------------------------- */

static void sql_reserve(conn_t *c, size_t more)
{
    if (c->len + more + 1 <= c->cap)
        return;
    size_t cap = c->cap ? c->cap : 1024;
    while (cap < c->len + more + 1)
        cap *= 2;
    c->sql = hs_realloc(c->sql, cap);
    c->cap = cap;
}

static void sql_start(conn_t *c)
{
    c->len = 0;
    sql_reserve(c, 0);
    c->sql[0] = '\0';
}

static void sql_add(conn_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sql_add(conn_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    sql_reserve(c, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(c->sql + c->len, c->cap - c->len, fmt, ap);
    va_end(ap);
    c->len += (size_t)n;
}

/* Appends 'value' quoted and escaped; binary-safe. */
static void sql_quote(conn_t *c, const char *value, size_t len)
{
    sql_reserve(c, 2 * len + 3);
    c->sql[c->len++] = '\'';
    c->len += mysql_real_escape_string(c->db, c->sql + c->len, value, (unsigned long)len);
    c->sql[c->len++] = '\'';
    c->sql[c->len] = '\0';
}

static void sql_str(conn_t *c, const char *value)
{
    sql_quote(c, value, strlen(value));
}

static void sql_str_or_null(conn_t *c, const char *value)
{
    if (value)
        sql_str(c, value);
    else
        sql_add(c, "NULL");
}

static int run(conn_t *c)
{
    return mysql_real_query(c->db, c->sql, (unsigned long)c->len) == 0 ? 0 : statement_error(c);
}

static int run_text(conn_t *c, const char *sql)
{
    return mysql_query(c->db, sql) == 0 ? 0 : statement_error(c);
}

/* ---- schema ------------------------------------------------------------------- */

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

static const char *const *const migrations[] = {migration_1, migration_2, migration_3,
                                                migration_4, migration_5, migration_6};

static long query_long(conn_t *c, const char *sql, long fallback)
{
    long value = fallback;
    if (run_text(c, sql) != 0)
        return fallback;
    MYSQL_RES *res = mysql_store_result(c->db);
    MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
    if (row && row[0])
        value = strtol(row[0], NULL, 10);
    mysql_free_result(res);
    return value;
}

static int migrate(conn_t *c, char *err, size_t err_len)
{
    int latest = (int)(sizeof(migrations) / sizeof(migrations[0]));
    if (query_long(c, "SELECT GET_LOCK('houston_migrate', 30)", 0) != 1) {
        snprintf(err, err_len, "could not take the migration lock: %s", mysql_error(c->db));
        return HS_EIO;
    }
    int rc = run_text(c, "CREATE TABLE IF NOT EXISTS schema_version (version INT NOT NULL) "
                         "ENGINE=InnoDB");
    long version = query_long(c, "SELECT MAX(version) FROM schema_version", 0);
    if (rc == 0 && version > latest) {
        snprintf(err, err_len, "database has schema version %ld, newer than this houston (%d)",
                 version, latest);
        rc = HS_EINVAL;
    }
    for (int v = (int)version; rc == 0 && v < latest; v++) {
        for (const char *const *stmt = migrations[v]; *stmt && rc == 0; stmt++)
            rc = run_text(c, *stmt);
        char sql[96];
        snprintf(sql, sizeof(sql), "INSERT INTO schema_version (version) VALUES (%d)", v + 1);
        if (rc == 0)
            rc = run_text(c, sql);
        if (rc != 0)
            snprintf(err, err_len, "migrating to schema version %d failed: %s", v + 1,
                     mysql_error(c->db));
        else
            hs_log_info("store: MariaDB %s migrated to schema version %d", c->target.database,
                        v + 1);
    }
    query_long(c, "SELECT RELEASE_LOCK('houston_migrate')", 0);
    return rc;
}

/* ---- writes ---------------------------------------------------------------------- */

static int affected(conn_t *c, size_t *count)
{
    my_ulonglong n = mysql_affected_rows(c->db);
    if (n == (my_ulonglong)-1)
        return HS_EIO;
    if (count)
        *count = (size_t)n;
    return 0;
}

static int insert_message(conn_t *c, hs_store_op_t *op)
{
    sql_start(c);
    sql_add(c, "INSERT INTO messages (id, topic, content, author, created_at) VALUES (");
    sql_str(c, op->a);
    sql_add(c, ",");
    sql_str(c, op->b);
    sql_add(c, ",");
    sql_quote(c, op->content, op->content_len);
    sql_add(c, ",");
    sql_str(c, op->author);
    sql_add(c, ",%llu)", (unsigned long long)op->ms);
    return run(c);
}

static int fetch_messages(conn_t *c, hs_store_op_t *op, size_t cap);

/* Several publishers may insert one key at once. The insert waits for
 * another transaction's uncommitted row with that key and, once it commits,
 * finds the duplicate (0 rows): exactly one message is stored. ON DUPLICATE
 * KEY UPDATE (not INSERT IGNORE) because it takes the row's exclusive lock
 * at once: with IGNORE two transactions would both hold a shared lock and
 * deadlock when upgrading it for the read below. The reads after it are
 * locking reads, which see the latest committed rows rather than this
 * transaction's snapshot (REPEATABLE READ). A key that expired (not yet
 * purged) or whose message is gone is taken over by this publish. */
static int put_message_once(conn_t *c, hs_store_op_t *op)
{
    sql_start(c);
    sql_add(c, "INSERT INTO idempotency_keys (`key`, body_hash, message_id, created_at) "
               "VALUES (");
    sql_str(c, op->key);
    sql_add(c, ",");
    sql_str(c, op->key_hash);
    sql_add(c, ",");
    sql_str(c, op->a);
    sql_add(c, ",%llu) ON DUPLICATE KEY UPDATE `key`=`key`", (unsigned long long)op->ms);
    size_t n = 0;
    if (run(c) != 0 || affected(c, &n) != 0)
        return statement_error(c);
    if (n == 0) {
        sql_start(c);
        sql_add(c, "SELECT body_hash, message_id, created_at FROM idempotency_keys WHERE `key`=");
        sql_str(c, op->key);
        sql_add(c, " FOR UPDATE");
        if (run(c) != 0)
            return statement_error(c);
        MYSQL_RES *res = mysql_store_result(c->db);
        MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
        if (row == NULL || !row[0] || !row[1] || !row[2]) {
            mysql_free_result(res);
            return HS_EIO;
        }
        bool same = strcmp(row[0], op->key_hash) == 0;
        char message_id[HS_ULID_LEN + 1];
        snprintf(message_id, sizeof(message_id), "%s", row[1]);
        bool take_over = strtoull(row[2], NULL, 10) < op->not_before_ms;
        mysql_free_result(res);
        if (!take_over && !same)
            return HS_EINVAL;
        if (!take_over) {
            sql_start(c);
            sql_add(c, "SELECT id, topic, content, author, created_at FROM messages WHERE id=");
            sql_str(c, message_id);
            sql_add(c, " LOCK IN SHARE MODE");
            if (run(c) != 0 || fetch_messages(c, op, 1) != 0)
                return statement_error(c);
            if (op->count == 1)
                return HS_EEXIST;
        }
        sql_start(c);
        sql_add(c, "UPDATE idempotency_keys SET body_hash=");
        sql_str(c, op->key_hash);
        sql_add(c, ", message_id=");
        sql_str(c, op->a);
        sql_add(c, ", created_at=%llu WHERE `key`=", (unsigned long long)op->ms);
        sql_str(c, op->key);
        if (run(c) != 0)
            return statement_error(c);
    }
    int rc = insert_message(c, op);
    if (rc == 0)
        hs_store_op_add_message(op, 1, op->a, op->b, op->content, op->content_len, op->author,
                                op->ms);
    return rc;
}

/* Runs the statement built; HS_ENOTFOUND when it changed no row (the
 * epoch-guarded connection writes: the epoch always changes or the row
 * goes, so "changed" is "matched"). */
static int run_changed(conn_t *c)
{
    size_t changed = 0;
    if (run(c) != 0 || affected(c, &changed) != 0)
        return statement_error(c);
    return changed ? 0 : HS_ENOTFOUND;
}

static int md_write(void *conn, hs_store_op_t *op)
{
    conn_t *c = conn;
    sql_start(c);
    switch (op->kind) {
    case HS_OP_PUT_MESSAGE:
        return insert_message(c, op);
    case HS_OP_PUT_MESSAGE_ONCE:
        return put_message_once(c, op);
    case HS_OP_PURGE_KEYS:
        sql_add(c, "DELETE FROM idempotency_keys WHERE created_at < %llu",
                (unsigned long long)op->ms);
        return run(c) == 0 ? affected(c, &op->count) : statement_error(c);
    case HS_OP_ADD_SUBSCRIPTION: {
        sql_add(c, "INSERT IGNORE INTO subscriptions (connection_id, topic, created_at) VALUES (");
        sql_str(c, op->a);
        sql_add(c, ",");
        sql_str(c, op->b);
        sql_add(c, ",%llu)", (unsigned long long)op->ms);
        size_t n = 0;
        if (run(c) != 0 || affected(c, &n) != 0)
            return statement_error(c);
        if (n == 1) {
            op->created_ms = op->ms;
            return 0;
        }
        sql_start(c);
        sql_add(c, "SELECT created_at FROM subscriptions WHERE connection_id=");
        sql_str(c, op->a);
        sql_add(c, " AND topic=");
        sql_str(c, op->b);
        if (run(c) != 0)
            return statement_error(c);
        MYSQL_RES *res = mysql_store_result(c->db);
        MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
        op->created_ms = row && row[0] ? strtoull(row[0], NULL, 10) : op->ms;
        mysql_free_result(res);
        return HS_EEXIST;
    }
    case HS_OP_REMOVE_SUBSCRIPTION:
        sql_add(c, "DELETE FROM subscriptions WHERE connection_id=");
        sql_str(c, op->a);
        if (op->b) {
            sql_add(c, " AND topic=");
            sql_str(c, op->b);
        }
        return run(c) == 0 ? affected(c, &op->count) : statement_error(c);
    case HS_OP_ADD_CONNECTION:
        sql_add(c, "REPLACE INTO connections (id, node, connected_at, user_sub, address) VALUES (");
        sql_str(c, op->a);
        sql_add(c, ",");
        sql_str(c, op->b);
        sql_add(c, ",%llu,", (unsigned long long)op->ms);
        sql_str_or_null(c, op->content);
        sql_add(c, ",");
        sql_str_or_null(c, op->address);
        sql_add(c, ")");
        return run(c);
    case HS_OP_GET_CONNECTION: {
        sql_add(
            c,
            "SELECT node, connected_at, user_sub, last_ack, epoch, attached, address, detached_at "
            "FROM connections WHERE id=");
        sql_str(c, op->a);
        if (run(c) != 0)
            return statement_error(c);
        MYSQL_RES *res = mysql_store_result(c->db);
        if (res == NULL)
            return statement_error(c);
        MYSQL_ROW row = mysql_fetch_row(res);
        if (row) {
            op->found = true;
            op->out_node = hs_strdup(row[0] ? row[0] : "");
            op->created_ms = row[1] ? strtoull(row[1], NULL, 10) : 0;
            op->out_user = row[2] ? hs_strdup(row[2]) : NULL;
            op->out_ack = row[3] ? hs_strdup(row[3]) : NULL;
            op->out_epoch = row[4] ? strtoull(row[4], NULL, 10) : 0;
            op->out_attached = row[5] && strcmp(row[5], "0") != 0;
            op->out_address = row[6] ? hs_strdup(row[6]) : NULL;
            op->out_detached_ms = row[7] ? strtoull(row[7], NULL, 10) : 0;
        }
        mysql_free_result(res);
        if (!op->found)
            return 0;
        sql_start(c);
        sql_add(c, "SELECT connection_id, topic, created_at FROM subscriptions WHERE "
                   "connection_id=");
        sql_str(c, op->a);
        sql_add(c, " ORDER BY created_at, topic");
        if (run(c) != 0)
            return statement_error(c);
        res = mysql_store_result(c->db);
        if (res == NULL)
            return statement_error(c);
        while ((row = mysql_fetch_row(res)) != NULL)
            hs_store_op_add_subscription(op, row[0], row[1], strtoull(row[2], NULL, 10));
        mysql_free_result(res);
        return 0;
    }
    case HS_OP_REMOVE_CONNECTION:
        sql_add(c, "DELETE FROM subscriptions WHERE connection_id=");
        sql_str(c, op->a);
        if (run(c) != 0)
            return statement_error(c);
        sql_start(c);
        sql_add(c, "DELETE FROM connections WHERE id=");
        sql_str(c, op->a);
        return run(c);
    case HS_OP_SET_LAST_ACK:
        sql_add(c, "UPDATE connections SET last_ack=");
        sql_str(c, op->b);
        sql_add(c, " WHERE id=");
        sql_str(c, op->a);
        return run(c);
    case HS_OP_CLAIM_CONNECTION:
        sql_add(c, "UPDATE connections SET node=");
        sql_str(c, op->b);
        sql_add(c, ", epoch=epoch+1, attached=1, address=");
        sql_str_or_null(c, op->address);
        sql_add(c, " WHERE id=");
        sql_str(c, op->a);
        sql_add(c, " AND epoch=%llu AND attached=0", (unsigned long long)op->ms);
        return run_changed(c);
    case HS_OP_RELEASE_CONNECTION:
        sql_add(c, "UPDATE connections SET attached=0, detached_at=%llu WHERE id=",
                (unsigned long long)op->at_ms);
        sql_str(c, op->a);
        sql_add(c, " AND epoch=%llu", (unsigned long long)op->ms);
        return run_changed(c);
    case HS_OP_EXPIRE_CONNECTION: {
        sql_add(c, "DELETE s FROM subscriptions s JOIN connections c ON s.connection_id = c.id "
                   "WHERE c.id=");
        sql_str(c, op->a);
        sql_add(c, " AND c.epoch=%llu AND c.attached=0", (unsigned long long)op->ms);
        if (run(c) != 0)
            return statement_error(c);
        /* Subscriptions left without a connection (stored by an API
         * subscribe racing the kick that removed it, its command to the node
         * lost) go too. */
        sql_start(c);
        sql_add(c, "DELETE FROM subscriptions WHERE connection_id=");
        sql_str(c, op->a);
        sql_add(c, " AND NOT EXISTS (SELECT 1 FROM connections WHERE id=");
        sql_str(c, op->a);
        sql_add(c, ")");
        if (run(c) != 0)
            return statement_error(c);
        sql_start(c);
        sql_add(c, "DELETE FROM connections WHERE id=");
        sql_str(c, op->a);
        sql_add(c, " AND epoch=%llu AND attached=0", (unsigned long long)op->ms);
        return run_changed(c);
    }
    case HS_OP_REMOVE_NODE:
        sql_add(c, "DELETE s FROM subscriptions s JOIN connections c ON s.connection_id = c.id "
                   "WHERE c.node=");
        sql_str(c, op->a);
        if (run(c) != 0)
            return statement_error(c);
        sql_start(c);
        sql_add(c, "DELETE FROM connections WHERE node=");
        sql_str(c, op->a);
        return run(c) == 0 ? affected(c, &op->count) : statement_error(c);
    default:
        return HS_EINVAL;
    }
}

/* ---- reads ------------------------------------------------------------------------- */

/* With a byte bound (a resume's replay) the rows are streamed from the
 * server (mysql_use_result) rather than all held at once, and no row is
 * kept after the bound; freeing the result reads and drops the rest. */
static int fetch_messages(conn_t *c, hs_store_op_t *op, size_t cap)
{
    size_t bytes = 0, max_bytes = op->kind == HS_OP_LIST_MESSAGES ? op->query.max_bytes : 0;
    MYSQL_RES *res = max_bytes ? mysql_use_result(c->db) : mysql_store_result(c->db);
    if (res == NULL)
        return statement_error(c);
    MYSQL_ROW row;
    while ((max_bytes == 0 || bytes < max_bytes) && (row = mysql_fetch_row(res)) != NULL) {
        unsigned long *lens = mysql_fetch_lengths(res);
        bytes += lens[2];
        hs_store_op_add_message(op, cap, row[0], row[1], row[2], lens[2], row[3],
                                strtoull(row[4], NULL, 10));
    }
    bool failed = max_bytes && mysql_errno(c->db) != 0;
    mysql_free_result(res);
    return failed ? statement_error(c) : 0;
}

static int md_read(void *conn, hs_store_op_t *op)
{
    conn_t *c = conn;
    int rc = ensure_connected(c);
    if (rc != 0)
        return rc;
    sql_start(c);
    switch (op->kind) {
    case HS_OP_GET_MESSAGE:
        sql_add(c, "SELECT id, topic, content, author, created_at FROM messages WHERE id=");
        sql_str(c, op->a);
        if (run(c) != 0 || fetch_messages(c, op, 1) != 0)
            return statement_error(c);
        return op->count == 1 ? 0 : HS_ENOTFOUND;
    case HS_OP_LIST_MESSAGES: {
        bool forward = op->query.forward;
        sql_add(c, "SELECT id, topic, content, author, created_at FROM messages WHERE topic=");
        sql_str(c, op->a);
        if (op->query.has_cursor) {
            sql_add(c, forward ? " AND id > " : " AND id < ");
            sql_str(c, op->cursor);
        }
        sql_add(c, " ORDER BY id %s LIMIT %u", forward ? "ASC" : "DESC", op->query.limit);
        if (run(c) != 0)
            return statement_error(c);
        return fetch_messages(c, op, op->query.limit);
    }
    case HS_OP_LIST_SUBSCRIPTIONS: {
        sql_add(c, "SELECT connection_id, topic, created_at FROM subscriptions WHERE ");
        if (op->a) {
            sql_add(c, "connection_id=");
            sql_str(c, op->a);
        }
        if (op->a && op->b)
            sql_add(c, " AND ");
        if (op->b) {
            sql_add(c, "topic=");
            sql_str(c, op->b);
        }
        sql_add(c, op->a ? " ORDER BY created_at, topic" : " ORDER BY created_at, connection_id");
        if (run(c) != 0)
            return statement_error(c);
        MYSQL_RES *res = mysql_store_result(c->db);
        if (res == NULL)
            return statement_error(c);
        MYSQL_ROW row;
        while ((row = mysql_fetch_row(res)) != NULL)
            hs_store_op_add_subscription(op, row[0], row[1], strtoull(row[2], NULL, 10));
        mysql_free_result(res);
        return 0;
    }
    default:
        return HS_EINVAL;
    }
}

/* ---- the engine's interface ----------------------------------------------------------- */

static int md_begin(void *conn)
{
    conn_t *c = conn;
    int rc = ensure_connected(c);
    return rc != 0 ? rc : run_text(c, "START TRANSACTION");
}

static int md_commit(void *conn)
{
    return run_text(conn, "COMMIT");
}

static void md_rollback(void *conn)
{
    run_text(conn, "ROLLBACK");
}

static void md_savepoint(void *conn)
{
    run_text(conn, "SAVEPOINT op");
}

static void md_release(void *conn, bool undo)
{
    if (undo)
        run_text(conn, "ROLLBACK TO SAVEPOINT op");
    run_text(conn, "RELEASE SAVEPOINT op");
}

static const char *md_error(void *conn)
{
    conn_t *c = conn;
    return c->db ? mysql_error(c->db) : "not connected";
}

static void md_close(void *conn)
{
    conn_t *c = conn;
    if (c->db)
        mysql_close(c->db);
    mysql_thread_end();
    hs_free(c->sql);
    hs_free(c);
}

static const hs_store_engine_ops_t mariadb_engine_ops = {
    .name = "mariadb",
    .begin = md_begin,
    .commit = md_commit,
    .rollback = md_rollback,
    .savepoint = md_savepoint,
    .release = md_release,
    .write = md_write,
    .read = md_read,
    .error = md_error,
    .close = md_close,
};

int hs_store_mariadb_open(uv_loop_t *loop, const char *url, const hs_store_options_t *options,
                          hs_store_t **out, char *err, size_t err_len)
{
    target_t target;
    int rc = parse_url(url, &target, err, err_len);
    if (rc != 0)
        return rc;
    conn_t *conns[2];
    for (int i = 0; i < 2; i++) {
        conns[i] = hs_calloc(1, sizeof(conn_t));
        conns[i]->target = target;
    }
    /* At start-up the server may still be on its way (a container starting
     * beside this one): wait for it, up to options->connect_wait_ms. A
     * refused login or a missing database is final at once. */
    uint64_t deadline = uv_hrtime() + options->connect_wait_ms * 1000000ull;
    uint64_t pause_ms = BACKOFF_MIN_MS;
    while ((rc = connect_db(conns[0], err, err_len)) != 0 &&
           statement_error(conns[0]) == HS_EUNAVAIL &&
           uv_hrtime() + pause_ms * 1000000ull < deadline) {
        if (pause_ms == BACKOFF_MIN_MS)
            hs_log_warn("store: %s; waiting for it", err);
        uv_sleep((unsigned)pause_ms);
        pause_ms = pause_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : pause_ms * 2;
    }
    if (rc == 0)
        rc = migrate(conns[0], err, err_len);
    if (rc == 0)
        rc = connect_db(conns[1], err, err_len);
    if (rc != 0) {
        for (int i = 0; i < 2; i++) {
            if (conns[i]->db)
                mysql_close(conns[i]->db);
            hs_free(conns[i]->sql);
            hs_free(conns[i]);
        }
        return rc;
    }
    *out = hs_store_engine_start(loop, &mariadb_engine_ops, conns[0], conns[1], options->batch_max,
                                 options->idempotency_window_ms);
    hs_log_info("store: MariaDB %s:%u/%s open", target.host, target.port, target.database);
    return 0;
}
