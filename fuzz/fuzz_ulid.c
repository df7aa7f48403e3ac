/* libFuzzer: the ULID parser. Invariants: whatever parses re-formats to the
 * canonical spelling of the same id, and parsing that gives the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/ulid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hs_ulid_t id, again;
    if (hs_ulid_parse((const char *)data, size, &id) != 0)
        return 0;
    char text[HS_ULID_LEN + 1];
    hs_ulid_format(&id, text);
    if (hs_ulid_parse(text, HS_ULID_LEN, &again) != 0 || memcmp(&id, &again, sizeof(id)) != 0)
        abort();
    if (strncasecmp(text, (const char *)data, HS_ULID_LEN) != 0)
        abort();
    return 0;
}
