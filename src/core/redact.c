#include "core/redact.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

void hs_redact_url(const char *url, char *out, size_t out_len)
{
    if (out_len == 0)
        return;
    /* Credentials end at the last '@' (a password may contain '@'; a host
     * may not) and start after "://" when there is one before it. */
    const char *at = strrchr(url, '@');
    if (at == NULL) {
        snprintf(out, out_len, "%s", url);
        return;
    }
    const char *scheme = strstr(url, "://");
    bool well_formed = scheme != NULL && scheme < at;
    const char *start = well_formed ? scheme + 3 : url;
    const char *colon = memchr(start, ':', (size_t)(at - start));
    if (colon != NULL) /* user:password: the user stays, the password goes */
        snprintf(out, out_len, "%.*s***%s", (int)(colon + 1 - url), url, at);
    else if (well_formed) /* user@host: no password */
        snprintf(out, out_len, "%s", url);
    else /* no scheme and no ':': what precedes '@' may be a password */
        snprintf(out, out_len, "***%s", at);
}
