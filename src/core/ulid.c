#include "core/ulid.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"

static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* The process-wide generator behind hs_ulid_new(). */
static struct {
    pthread_mutex_t lock;
    hs_ulid_gen_t gen;
} ulid_singleton = {PTHREAD_MUTEX_INITIALIZER, {0}};

static void random_bytes(uint8_t *out, size_t len)
{
    if (RAND_bytes(out, (int)len) != 1) {
        /* OpenSSL's CSPRNG failing means the system RNG is broken; ids must
         * stay unique, so fall back to the clock and a counter mix. */
        static uint64_t counter;
        uint64_t x = hs_now_ms() ^ (++counter * 0x9e3779b97f4a7c15ull);
        for (size_t i = 0; i < len; i++) {
            x ^= x >> 33;
            x *= 0xff51afd7ed558ccdull;
            out[i] = (uint8_t)x;
        }
    }
}

void hs_ulid_gen_init(hs_ulid_gen_t *gen)
{
    memset(gen, 0, sizeof(*gen));
}

/* Adds one to the 80-bit random part; returns false on overflow. */
static bool increment_random(hs_ulid_t *id)
{
    for (int i = 15; i >= 6; i--) {
        if (++id->bytes[i] != 0)
            return true;
    }
    return false;
}

int hs_ulid_gen_next(hs_ulid_gen_t *gen, uint64_t now_ms, hs_ulid_t *out)
{
    if (gen->started && now_ms <= gen->last_ms) {
        /* Same millisecond, or the clock stepped back: keep the last time
         * and count up, so ids keep increasing. */
        hs_ulid_t next = gen->last;
        if (!increment_random(&next))
            return HS_EINVAL;
        gen->last = next;
        *out = next;
        return 0;
    }
    hs_ulid_t id;
    for (int i = 0; i < 6; i++)
        id.bytes[i] = (uint8_t)(now_ms >> (8 * (5 - i)));
    random_bytes(id.bytes + 6, 10);
    /* Leave headroom for increments within this millisecond. */
    id.bytes[6] &= 0x7f;
    gen->started = true;
    gen->last_ms = now_ms;
    gen->last = id;
    *out = id;
    return 0;
}

void hs_ulid_new(hs_ulid_t *out)
{
    pthread_mutex_lock(&ulid_singleton.lock);
    uint64_t now = hs_now_ms();
    if (hs_ulid_gen_next(&ulid_singleton.gen, now, out) != 0) {
        /* 2^79 ids in one millisecond: move to the next one. */
        ulid_singleton.gen.last_ms++;
        ulid_singleton.gen.started = false;
        hs_ulid_gen_next(&ulid_singleton.gen, ulid_singleton.gen.last_ms, out);
    }
    pthread_mutex_unlock(&ulid_singleton.lock);
}

/* 128 bits as 26 base32 digits, most significant first: two zero bits
 * above the top byte make 130 = 26 * 5, so the first digit carries 3 bits.
 * Bits go through an accumulator, a byte in and 5 bits out at a time (this
 * runs for every message id, on the publish path). */
void hs_ulid_format(const hs_ulid_t *id, char out[HS_ULID_LEN + 1])
{
    uint32_t acc = 0;
    int bits = 2, o = 0; /* the two leading zero bits */
    for (int i = 0; i < 16; i++) {
        acc = acc << 8 | id->bytes[i];
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            out[o++] = alphabet[(acc >> bits) & 31];
        }
    }
    out[HS_ULID_LEN] = '\0';
}

/* A digit's value plus one, 0 for a character that is not a digit
 * (Crockford base32: I, L, O and U are not; lower case is accepted). */
static const uint8_t digit_plus_one[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9,  ['9'] = 10, ['A'] = 11, ['a'] = 11, ['B'] = 12, ['b'] = 12, ['C'] = 13, ['c'] = 13,
    ['D'] = 14, ['d'] = 14, ['E'] = 15, ['e'] = 15, ['F'] = 16, ['f'] = 16, ['G'] = 17, ['g'] = 17,
    ['H'] = 18, ['h'] = 18, ['J'] = 19, ['j'] = 19, ['K'] = 20, ['k'] = 20, ['M'] = 21, ['m'] = 21,
    ['N'] = 22, ['n'] = 22, ['P'] = 23, ['p'] = 23, ['Q'] = 24, ['q'] = 24, ['R'] = 25, ['r'] = 25,
    ['S'] = 26, ['s'] = 26, ['T'] = 27, ['t'] = 27, ['V'] = 28, ['v'] = 28, ['W'] = 29, ['w'] = 29,
    ['X'] = 30, ['x'] = 30, ['Y'] = 31, ['y'] = 31, ['Z'] = 32, ['z'] = 32,
};

int hs_ulid_parse(const char *s, size_t len, hs_ulid_t *out)
{
    if (s == NULL || len != HS_ULID_LEN)
        return HS_EINVAL;
    hs_ulid_t id;
    uint32_t acc = 0;
    int bits = -2, o = 0; /* the first digit's two top bits are the padding */
    for (size_t i = 0; i < HS_ULID_LEN; i++) {
        int value = digit_plus_one[(unsigned char)s[i]] - 1;
        if (value < 0 || (i == 0 && value > 7))
            return HS_EINVAL;
        acc = acc << 5 | (uint32_t)value;
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            id.bytes[o++] = (uint8_t)(acc >> bits);
        }
    }
    *out = id;
    return 0;
}

int hs_ulid_parse_strict(const char *s, size_t len, hs_ulid_t *out)
{
    hs_ulid_t id;
    int rc = hs_ulid_parse(s, len, &id);
    if (rc != 0)
        return rc;
    /* What hs_ulid_parse accepts beyond the upper-case alphabet is lower
     * case; the rest (length, I/L/O/U, the first digit) it already checked,
     * so with upper case only, formatting id gives s back. */
    for (size_t i = 0; i < HS_ULID_LEN; i++) {
        if (s[i] >= 'a' && s[i] <= 'z')
            return HS_EINVAL;
    }
    *out = id;
    return 0;
}

int hs_ulid_canonical(const char *s, size_t len, char out[HS_ULID_LEN + 1])
{
    hs_ulid_t id;
    int rc = hs_ulid_parse(s, len, &id);
    if (rc == 0)
        hs_ulid_format(&id, out);
    return rc;
}

uint64_t hs_ulid_time_ms(const hs_ulid_t *id)
{
    uint64_t ms = 0;
    for (int i = 0; i < 6; i++)
        ms = (ms << 8) | id->bytes[i];
    return ms;
}

bool hs_ulid_increment(hs_ulid_t *id)
{
    hs_ulid_t next = *id;
    for (int i = 15; i >= 0; i--) {
        if (++next.bytes[i] != 0) {
            *id = next;
            return true;
        }
    }
    return false;
}

int hs_ulid_cmp(const hs_ulid_t *a, const hs_ulid_t *b)
{
    return memcmp(a->bytes, b->bytes, sizeof(a->bytes));
}
