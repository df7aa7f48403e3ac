/* sqlite_schema.h - the SQLite schema (private to src/store). */
#ifndef HS_STORE_SQLITE_SCHEMA_H
#define HS_STORE_SQLITE_SCHEMA_H

#include <sqlite3.h>
#include <stddef.h>

/* Runs sql (statements without results); on failure writes SQLite's reason
 * into err and returns HS_EIO. */
int hs_sqlite_exec(sqlite3 *db, const char *sql, char *err, size_t err_len);

/* Applies the migrations the file at path lacks, each once, in order.
 * Blocking. Returns 0, or an error with a reason in err (a schema newer
 * than this houston: HS_EINVAL). */
int hs_sqlite_migrate(sqlite3 *db, const char *path, char *err, size_t err_len);

#endif
