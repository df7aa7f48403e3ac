/* mariadb_schema.h - the MariaDB schema (private to src/store). */
#ifndef HS_STORE_MARIADB_SCHEMA_H
#define HS_STORE_MARIADB_SCHEMA_H

#include <mysql.h>
#include <stddef.h>

/* Applies the migrations db lacks, each once, under a named lock (several
 * houston processes may start at once). Blocking. Returns 0, or an error
 * with a reason in err (a schema newer than this houston: HS_EINVAL). */
int hs_mariadb_migrate(MYSQL *db, const char *database, char *err, size_t err_len);

#endif
