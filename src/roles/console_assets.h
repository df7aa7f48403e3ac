/* console_assets.h - the web console's files (web/), compiled into the
 * binary: the table is generated at build time by cmake/embed_web.cmake.
 * Read-only data; any thread. */
#ifndef HS_ROLES_CONSOLE_ASSETS_H
#define HS_ROLES_CONSOLE_ASSETS_H

#include <stddef.h>

typedef struct hs_console_asset {
    const char *name;         /* file name in web/, e.g. "console.js" */
    const char *content_type; /* from the extension, with charset for text */
    const char *etag;         /* quoted: "\"<16 hex digits of SHA-256>\"" */
    const unsigned char *data;
    size_t len;
} hs_console_asset_t;

/* hs_console_asset_count entries, sorted by name, then one zeroed entry. */
extern const hs_console_asset_t hs_console_assets[];
extern const size_t hs_console_asset_count;

#endif
