/* store.c - picks the back-end named by the store URL. */
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/redact.h"
#include "store/mariadb.h"
#include "store/sqlite.h"
#include "store/store.h"

int hs_store_open(uv_loop_t *loop, const char *url, const hs_store_options_t *options,
                  hs_store_t **out, char *err, size_t err_len)
{
    static const hs_store_options_t defaults = {.batch_max = 512};
    char shown[512]; /* the URL in an error: its password masked */
    hs_redact_url(url, shown, sizeof(shown));
    if (options == NULL || options->batch_max == 0)
        options = &defaults;
    if (strncmp(url, "sqlite:", 7) == 0) {
        const char *path = url + 7;
        if (strncmp(path, "//", 2) == 0)
            path += 2; /* sqlite://PATH */
        if (path[0] == '\0') {
            snprintf(err, err_len, "store URL '%s' has no file path", shown);
            return HS_EINVAL;
        }
        return hs_store_sqlite_open(loop, path, options, out, err, err_len);
    }
    if (strncmp(url, "mysql://", 8) == 0 || strncmp(url, "mariadb://", 10) == 0)
        return hs_store_mariadb_open(loop, url, options, out, err, err_len);
    snprintf(err, err_len,
             "unsupported store URL '%s' (supported: sqlite:PATH, mysql://user:pass@host:port/db)",
             shown);
    return HS_EINVAL;
}
