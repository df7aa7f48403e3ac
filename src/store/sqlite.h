/* sqlite.h - the SQLite back-end of the store (embedded mode). */
#ifndef HS_STORE_SQLITE_H
#define HS_STORE_SQLITE_H

#include "store/store.h"

/* Opens (creating if needed) the database at path and migrates its schema.
 * Blocking; call before the loop runs. */
int hs_store_sqlite_open(uv_loop_t *loop, const char *path, const hs_store_options_t *options,
                         hs_store_t **out, char *err, size_t err_len);

#endif
