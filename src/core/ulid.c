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

void hs_ulid_format(const hs_ulid_t *id, char out[HS_ULID_LEN + 1])
{
    /* 128 bits as 26 base32 digits: the first digit carries 3 bits. */
    const uint8_t *b = id->bytes;
    int bit = -2; /* position of the current 5-bit group, in bits, from the top of 130 */
    for (int i = 0; i < HS_ULID_LEN; i++, bit += 5) {
        unsigned value = 0;
        for (int k = 0; k < 5; k++) {
            int pos = bit + k;
            unsigned v = 0;
            if (pos >= 0)
                v = (b[pos / 8] >> (7 - pos % 8)) & 1u;
            value = (value << 1) | v;
        }
        out[i] = alphabet[value];
    }
    out[HS_ULID_LEN] = '\0';
}

static int decode_char(char c)
{
    if (c >= 'a' && c <= 'z')
        c = (char)(c - 'a' + 'A');
    if (c == 'I' || c == 'L' || c == 'O' || c == 'U')
        return -1;
    const char *p = memchr(alphabet, c, 32);
    return p ? (int)(p - alphabet) : -1;
}

int hs_ulid_parse(const char *s, size_t len, hs_ulid_t *out)
{
    if (s == NULL || len != HS_ULID_LEN)
        return HS_EINVAL;
    hs_ulid_t id;
    memset(&id, 0, sizeof(id));
    int bit = -2;
    for (size_t i = 0; i < HS_ULID_LEN; i++, bit += 5) {
        int value = decode_char(s[i]);
        if (value < 0 || (i == 0 && value > 7))
            return HS_EINVAL;
        for (int k = 0; k < 5; k++) {
            int pos = bit + k;
            if (pos < 0)
                continue;
            if ((value >> (4 - k)) & 1)
                id.bytes[pos / 8] |= (uint8_t)(1u << (7 - pos % 8));
        }
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

int hs_ulid_cmp(const hs_ulid_t *a, const hs_ulid_t *b)
{
    return memcmp(a->bytes, b->bytes, sizeof(a->bytes));
}
