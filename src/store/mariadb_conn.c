/* mariadb_conn.c - reaching the MariaDB server, for the store's MariaDB
 * back-end: the store URL, a thread's connection (opened with the
 * timeouts and charset, its statements closed first when replaced), the
 * reconnect before a batch with backoff after a failed attempt, the wait
 * for the server at start-up, and the status of an error (hs_mariadb_status:
 * the connection's fault, a deadlock, or another). Apart from mariadb.c,
 * which is the statements and the engine's interface over a connection.
 *
 * A connection lost between batches is re-established before the next one
 * (mysql_ping first), at most once per backoff step (100 ms doubling to
 * 2 s): while the server cannot be reached every operation fails at once
 * with HS_EUNAVAIL (the API answers 503), without hammering the server. */
#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"
#include "core/redact.h"
#include "store/mariadb_internal.h"
#include <uv.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000

/* ---- the URL ------------------------------------------------------------ */

int hs_mariadb__parse_url(const char *url, target_t *t, char *err, size_t err_len)
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

/* Statements belong to the connection that prepared them. */
void hs_mariadb__close_statements(conn_t *c)
{
    for (int i = 0; i < STMT_COUNT; i++)
        md_stmt_close(&c->stmts[i]);
    for (int i = 0; i < HS_MD_TOPIC_STMTS; i++)
        md_stmt_close(&c->topic_stmts[i]);
    for (int i = 0; i < HS_MD_USER_STMTS; i++)
        md_stmt_close(&c->user_stmts[i]);
}

/* Remembers the connection's last error (statements keep their own). */
void hs_mariadb__record_error(conn_t *c)
{
    c->err.number = mysql_errno(c->db);
    snprintf(c->err.message, sizeof(c->err.message), "%s", mysql_error(c->db));
}

int hs_mariadb__connect(conn_t *c, char *err, size_t err_len)
{
    hs_mariadb__close_statements(c);
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
        hs_mariadb__record_error(c);
        return HS_EIO;
    }
    return 0;
}

/* Reconnects when the server went away since the last use; while it stays
 * away, tries again only after the backoff. */
int hs_mariadb__ensure_connected(conn_t *c)
{
    if (!c->down && c->db && mysql_ping(c->db) == 0)
        return 0;
    uint64_t now = uv_hrtime();
    if (c->down && now < c->retry_at_ns)
        return HS_EUNAVAIL;
    char err[512];
    if (hs_mariadb__connect(c, err, sizeof(err)) != 0) {
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

int hs_mariadb_status(const md_error_t *err)
{
    switch (err->number) {
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

/* At start-up the server may still be on its way (a container starting
 * beside this one): wait for it, up to wait_ms. A refused login or a
 * missing database is final at once. */
int hs_mariadb__connect_waiting(conn_t *c, uint64_t wait_ms, char *err, size_t err_len)
{
    int rc;
    uint64_t deadline = uv_hrtime() + wait_ms * 1000000ull;
    uint64_t pause_ms = BACKOFF_MIN_MS;
    while ((rc = hs_mariadb__connect(c, err, err_len)) != 0 &&
           hs_mariadb_status(&c->err) == HS_EUNAVAIL &&
           uv_hrtime() + pause_ms * 1000000ull < deadline) {
        if (pause_ms == BACKOFF_MIN_MS)
            hs_log_warn("store: %s; waiting for it", err);
        uv_sleep((unsigned)pause_ms);
        pause_ms = pause_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : pause_ms * 2;
    }
    return rc;
}
