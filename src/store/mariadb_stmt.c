/* mariadb_stmt.c - prepared statements on one MariaDB connection: prepare
 * once, bind parameters, read result rows as text (see mariadb_stmt.h).
 * Apart from mariadb.c because the binding and result buffers of the
 * mysql_stmt_* API are a mechanism of their own, and mariadb.c (the SQL of
 * each operation, connections and migrations) stays under ~800 lines. */
#include "store/mariadb_stmt.h"

#include <errmsg.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"

#define FIRST_COLUMN_CAP 64

md_param_t md_text(const char *s)
{
    if (s == NULL)
        return (md_param_t){.type = MD_PARAM_NULL};
    return (md_param_t){.type = MD_PARAM_TEXT, .data = s, .len = (unsigned long)strlen(s)};
}

md_param_t md_blob(const void *data, size_t len)
{
    return (md_param_t){.type = MD_PARAM_BLOB, .data = data, .len = (unsigned long)len};
}

md_param_t md_u64(uint64_t value)
{
    return (md_param_t){.type = MD_PARAM_U64, .u64 = value};
}

static unsigned fail(MYSQL_STMT *st, md_error_t *err)
{
    err->number = mysql_stmt_errno(st);
    snprintf(err->message, sizeof(err->message), "%s", mysql_stmt_error(st));
    if (err->number == 0) /* the API failed without a server error */
        err->number = CR_UNKNOWN_ERROR;
    return err->number;
}

/* Binds every result column as a string into the slot's buffers. */
static void bind_result(md_stmt_t *s)
{
    for (unsigned i = 0; i < s->columns; i++) {
        MYSQL_BIND *b = &s->result[i];
        memset(b, 0, sizeof(*b));
        b->buffer_type = MYSQL_TYPE_STRING;
        b->buffer = s->buf[i];
        b->buffer_length = s->cap[i] - 1; /* room for the NUL we add */
        b->length = &s->len[i];
        b->is_null = &s->is_null[i];
        b->error = &s->truncated[i];
    }
    mysql_stmt_bind_result(s->handle, s->result);
}

static unsigned prepare(MYSQL *db, md_stmt_t *s, const char *sql, md_error_t *err)
{
    s->handle = mysql_stmt_init(db);
    if (s->handle == NULL) {
        err->number = mysql_errno(db) ? mysql_errno(db) : CR_OUT_OF_MEMORY;
        snprintf(err->message, sizeof(err->message), "%s", mysql_error(db));
        return err->number;
    }
    if (mysql_stmt_prepare(s->handle, sql, (unsigned long)strlen(sql)) != 0) {
        unsigned rc = fail(s->handle, err);
        mysql_stmt_close(s->handle);
        s->handle = NULL;
        return rc;
    }
    s->columns = mysql_stmt_field_count(s->handle);
    if (s->columns > MD_MAX_COLUMNS)
        s->columns = MD_MAX_COLUMNS; /* a programming error: the SQL is ours */
    for (unsigned i = 0; i < s->columns; i++) {
        s->cap[i] = FIRST_COLUMN_CAP;
        s->buf[i] = hs_malloc(s->cap[i]);
    }
    if (s->columns)
        bind_result(s);
    return 0;
}

unsigned md_stmt_run(MYSQL *db, md_stmt_t *s, const char *sql, const md_param_t *params,
                     unsigned count, bool streamed, md_error_t *err)
{
    if (s->handle == NULL) {
        unsigned rc = prepare(db, s, sql, err);
        if (rc != 0)
            return rc;
    }
    MYSQL_BIND binds[MD_MAX_PARAMS];
    unsigned long lens[MD_MAX_PARAMS];
    if (count > MD_MAX_PARAMS)
        count = MD_MAX_PARAMS;
    memset(binds, 0, sizeof(binds));
    for (unsigned i = 0; i < count; i++) {
        const md_param_t *p = &params[i];
        MYSQL_BIND *b = &binds[i];
        switch (p->type) {
        case MD_PARAM_NULL:
            b->buffer_type = MYSQL_TYPE_NULL;
            break;
        case MD_PARAM_TEXT:
        case MD_PARAM_BLOB:
            b->buffer_type = p->type == MD_PARAM_TEXT ? MYSQL_TYPE_STRING : MYSQL_TYPE_BLOB;
            b->buffer = (void *)p->data;
            lens[i] = p->len;
            b->buffer_length = p->len;
            b->length = &lens[i];
            break;
        case MD_PARAM_U64:
            b->buffer_type = MYSQL_TYPE_LONGLONG;
            b->buffer = (void *)&p->u64;
            b->is_unsigned = 1;
            break;
        }
    }
    if (mysql_stmt_param_count(s->handle) != count) {
        snprintf(err->message, sizeof(err->message), "statement takes %lu parameters, given %u",
                 mysql_stmt_param_count(s->handle), count);
        err->number = CR_UNKNOWN_ERROR;
        return err->number;
    }
    if ((count && mysql_stmt_bind_param(s->handle, binds) != 0) ||
        mysql_stmt_execute(s->handle) != 0)
        return fail(s->handle, err);
    if (s->columns && !streamed && mysql_stmt_store_result(s->handle) != 0)
        return fail(s->handle, err);
    return 0;
}

uint64_t md_stmt_affected(md_stmt_t *s)
{
    return (uint64_t)mysql_stmt_affected_rows(s->handle);
}

int md_stmt_fetch(md_stmt_t *s, md_row_t *row, md_error_t *err)
{
    int rc = mysql_stmt_fetch(s->handle);
    if (rc == MYSQL_NO_DATA)
        return 0;
    if (rc != 0 && rc != MYSQL_DATA_TRUNCATED) {
        fail(s->handle, err);
        return -1;
    }
    bool rebind = false;
    for (unsigned i = 0; i < s->columns; i++) {
        row->col[i] = NULL;
        row->len[i] = 0;
        if (s->is_null[i])
            continue;
        unsigned long len = s->len[i];
        if (len + 1 > s->cap[i]) {
            /* Longer than its buffer: grow it and fetch that column again. */
            while (s->cap[i] < len + 1)
                s->cap[i] *= 2;
            s->buf[i] = hs_realloc(s->buf[i], s->cap[i]);
            MYSQL_BIND b = s->result[i];
            b.buffer = s->buf[i];
            b.buffer_length = s->cap[i] - 1;
            if (mysql_stmt_fetch_column(s->handle, &b, i, 0) != 0) {
                fail(s->handle, err);
                bind_result(s);
                return -1;
            }
            rebind = true;
        }
        s->buf[i][len] = '\0';
        row->col[i] = s->buf[i];
        row->len[i] = len;
    }
    if (rebind)
        bind_result(s); /* the next fetch writes into the grown buffers */
    return 1;
}

void md_stmt_end(md_stmt_t *s)
{
    if (s->handle && s->columns)
        mysql_stmt_free_result(s->handle);
}

void md_stmt_close(md_stmt_t *s)
{
    if (s->handle)
        mysql_stmt_close(s->handle);
    for (unsigned i = 0; i < s->columns; i++)
        hs_free(s->buf[i]);
    memset(s, 0, sizeof(*s));
}
