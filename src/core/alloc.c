#include "core/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void out_of_memory(size_t size)
{
    fprintf(stderr, "houston: out of memory (allocating %zu bytes)\n", size);
    abort();
}

void *hs_malloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL)
        out_of_memory(size);
    return p;
}

void *hs_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL)
        out_of_memory(count * size);
    return p;
}

void *hs_realloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (p == NULL)
        out_of_memory(size);
    return p;
}

char *hs_strdup(const char *s)
{
    return hs_strndup(s, strlen(s));
}

char *hs_strndup(const char *s, size_t len)
{
    char *p = hs_malloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void hs_free(void *ptr)
{
    free(ptr);
}
