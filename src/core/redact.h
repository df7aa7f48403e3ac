/* redact.h - hiding the secrets of text that is shown (logs, error
 * messages, `houston config`).
 *
 * Pure functions; any thread.
 */
#ifndef HS_CORE_REDACT_H
#define HS_CORE_REDACT_H

#include <stddef.h>

/* Writes url to out (out_len bytes, always NUL-terminated) with its password
 * replaced by "***": the one function through which a database or Redis URL,
 * or any text that may be one, is shown. Meant for URLs that failed to parse
 * as well as good ones, so it assumes nothing about their shape:
 *
 *   mysql://user:secret@host/db   -> mysql://user:***@host/db
 *   mysql://user:p@ss@host/db     -> mysql://user:***@host/db  (the last '@' ends it)
 *   redis://:secret@host          -> redis://:***@host
 *   mysql://user@host/db          -> unchanged (no password)
 *   user:secret@host/db           -> user:***@host/db          (no scheme)
 *   mysql:/user:secret@host       -> mysql:***@host            (a malformed scheme)
 *   secret@host                   -> ***@host                  (no "://": cannot tell)
 *
 * Text without '@' is copied as it is. When out is too small the copy is
 * cut, never the password shown. */
void hs_redact_url(const char *url, char *out, size_t out_len);

#endif
