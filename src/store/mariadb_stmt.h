/* mariadb_stmt.h - prepared statements on one MariaDB connection (private to
 * src/store; used by mariadb.c only).
 *
 * A statement is prepared on its first use and kept in its slot (an
 * md_stmt_t the caller owns, one per SQL text), like sqlite.c's stmt_for:
 * every later run only binds and executes. Parameters travel apart from the
 * SQL, so nothing is escaped and content may hold any byte. A statement
 * belongs to the connection that prepared it: when that connection is
 * replaced (a reconnect), the caller closes every slot first and the next
 * use prepares it again on the new connection.
 *
 * Results are read as text, one row at a time, into buffers the slot keeps
 * and grows (a column longer than its buffer is fetched again whole), so a
 * row is valid until the next fetch on that slot. Thread: the connection's.
 */
#ifndef HS_STORE_MARIADB_STMT_H
#define HS_STORE_MARIADB_STMT_H

#include <mysql.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MD_MAX_COLUMNS 8
/* The most parameters a statement takes (the topic listing's 13). */
#define MD_MAX_PARAMS 16

/* The last error of a connection (a statement's or the connection's). */
typedef struct md_error {
    unsigned number; /* MySQL error number, 0: none */
    char message[256];
} md_error_t;

typedef enum md_param_type {
    MD_PARAM_NULL,
    MD_PARAM_TEXT,
    MD_PARAM_BLOB,
    MD_PARAM_U64,
} md_param_type_t;

/* One parameter of a statement; points at the caller's data, which must
 * live until the run returns. */
typedef struct md_param {
    md_param_type_t type;
    const void *data;
    unsigned long len;
    unsigned long long u64;
} md_param_t;

/* A string (NULL binds SQL NULL). */
md_param_t md_text(const char *s);
/* len bytes, any of them NUL. */
md_param_t md_blob(const void *data, size_t len);
md_param_t md_u64(uint64_t value);

/* One prepared statement and its result buffers. Zero-initialised = not
 * prepared yet. */
typedef struct md_stmt {
    MYSQL_STMT *handle;
    unsigned columns; /* of its result; 0 for statements without one */
    MYSQL_BIND result[MD_MAX_COLUMNS];
    char *buf[MD_MAX_COLUMNS];
    size_t cap[MD_MAX_COLUMNS];
    unsigned long len[MD_MAX_COLUMNS];
    char is_null[MD_MAX_COLUMNS];
    char truncated[MD_MAX_COLUMNS];
} md_stmt_t;

/* A fetched row: col[i] NUL-terminated (NULL for SQL NULL), len[i] bytes. */
typedef struct md_row {
    const char *col[MD_MAX_COLUMNS];
    unsigned long len[MD_MAX_COLUMNS];
} md_row_t;

/* Prepares sql in slot when it is not yet, binds params and executes. A
 * statement with a result has it buffered on the client (all rows read)
 * unless streamed is true: then rows come from the server as they are
 * fetched, and md_stmt_end drops the rest. Returns 0, or the MySQL error
 * number (err filled). */
unsigned md_stmt_run(MYSQL *db, md_stmt_t *slot, const char *sql, const md_param_t *params,
                     unsigned count, bool streamed, md_error_t *err);

/* The rows the last run changed. */
uint64_t md_stmt_affected(md_stmt_t *slot);

/* The next row of the last run: 1 and row, 0 at the end, or -1 (err). */
int md_stmt_fetch(md_stmt_t *slot, md_row_t *row, md_error_t *err);

/* Ends reading the result of the last run (required before the
 * connection runs anything else when it was streamed). */
void md_stmt_end(md_stmt_t *slot);

/* Closes the statement and frees its buffers; the slot is unprepared. */
void md_stmt_close(md_stmt_t *slot);

#endif
