/* mariadb.h - the MariaDB/MySQL back-end of the store (scale-out mode). */
#ifndef HS_STORE_MARIADB_H
#define HS_STORE_MARIADB_H

#include "store/store.h"

/* url: mysql://user[:password]@host[:port]/database (also mariadb://).
 * Connects twice (writer, reader) and migrates the schema. Blocking; call
 * before the loop runs. */
int hs_store_mariadb_open(uv_loop_t *loop, const char *url, const hs_store_options_t *options,
                          hs_store_t **out, char *err, size_t err_len);

#endif
