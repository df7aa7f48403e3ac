/* ulid.h - ULIDs: 48-bit millisecond time + 80 random bits, 26 characters of
 * Crockford base32. Message and connection ids are ULIDs, so ids sort by time.
 *
 * hs_ulid_new() is monotonic within the process: two ids made in the same
 * millisecond (or after the clock stepped back) still compare in the order
 * they were made. It is thread-safe.
 */
#ifndef HS_CORE_ULID_H
#define HS_CORE_ULID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HS_ULID_LEN 26

typedef struct hs_ulid {
    uint8_t bytes[16]; /* big-endian: 6 bytes of time, then 10 of randomness */
} hs_ulid_t;

/* A monotonic generator; hs_ulid_new() uses a process-wide one. */
typedef struct hs_ulid_gen {
    uint64_t last_ms;
    hs_ulid_t last;
    bool started;
} hs_ulid_gen_t;

void hs_ulid_gen_init(hs_ulid_gen_t *gen);
/* Next id for time now_ms: random bits when time moved forward, else the last
 * id plus one. Returns 0, or HS_EINVAL when the 80 random bits overflow within
 * one millisecond (practically never). Not thread-safe on its own. */
int hs_ulid_gen_next(hs_ulid_gen_t *gen, uint64_t now_ms, hs_ulid_t *out);

/* Next id from the process-wide generator and the wall clock. Thread-safe. */
void hs_ulid_new(hs_ulid_t *out);

/* Writes 26 upper-case characters and a NUL. */
void hs_ulid_format(const hs_ulid_t *id, char out[HS_ULID_LEN + 1]);
/* Parses exactly len == 26 characters of Crockford base32, case-insensitive;
 * the excluded letters I, L, O, U are rejected rather than aliased, so one id
 * has one spelling. Returns 0 or HS_EINVAL (wrong length, bad character, or a
 * first character above '7', which would overflow 128 bits). */
int hs_ulid_parse(const char *s, size_t len, hs_ulid_t *out);
/* hs_ulid_parse for the one spelling hs_ulid_format writes (upper case):
 * returns 0 or HS_EINVAL, also for a lower-case letter; out is written only
 * on success. For a key that must stand for exactly one string, so that any
 * other spelling stays another key. */
int hs_ulid_parse_strict(const char *s, size_t len, hs_ulid_t *out);
/* Parses and re-formats in canonical upper case; returns 0 or HS_EINVAL. */
int hs_ulid_canonical(const char *s, size_t len, char out[HS_ULID_LEN + 1]);
uint64_t hs_ulid_time_ms(const hs_ulid_t *id);
/* Adds one to the whole 128-bit value (a carry out of the random part moves
 * the time on by a millisecond). Returns false, id unchanged, when it was
 * the largest ULID. */
bool hs_ulid_increment(hs_ulid_t *id);
int hs_ulid_cmp(const hs_ulid_t *a, const hs_ulid_t *b);

#endif
