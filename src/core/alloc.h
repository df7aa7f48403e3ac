/* alloc.h - allocation wrappers.
 *
 * Allocation failure is handled here, once: every function aborts the process
 * with a message when memory cannot be had, so callers never check for NULL.
 */
#ifndef HS_CORE_ALLOC_H
#define HS_CORE_ALLOC_H

#include <stddef.h>

void *hs_malloc(size_t size);
void *hs_calloc(size_t count, size_t size);
void *hs_realloc(void *ptr, size_t size);
char *hs_strdup(const char *s);
/* Copies len bytes of s and appends a NUL. */
char *hs_strndup(const char *s, size_t len);
void hs_free(void *ptr);

#endif
