/* Bit manipulation: popcount, count leading/trailing zeros, parity, ffs, rotates, byte swaps, shifts by variable
 * counts (logical and arithmetic) and bit-field style extract/insert. Built without -march, so the compiler uses
 * baseline x86-64 code (libgcc helpers for popcount, BSR/BSF for clz/ctz). */
#include <inttypes.h>
#include <stdio.h>

static volatile uint64_t samples[] = {
    1, 2, 3, 0x80, 0xff, 0x8000, 0x10001, 0x7fffffff, 0x80000000, 0xffffffff, 0x100000000, 0x0123456789abcdef,
    0x8000000000000000, 0xf0f0f0f0f0f0f0f0, 0xfffffffffffffffe, 0xffffffffffffffff, 0xdeadbeefcafebabe,
};
static volatile unsigned counts[] = {0, 1, 4, 7, 8, 15, 31, 32, 33, 63};
enum {
    NSAMPLES = sizeof(samples) / sizeof(samples[0]),
    NCOUNTS = sizeof(counts) / sizeof(counts[0]),
};

static uint64_t rotl64(uint64_t x, unsigned n)
{
    n &= 63;
    return (x << n) | (x >> ((64 - n) & 63));
}

static uint32_t rotr32(uint32_t x, unsigned n)
{
    n &= 31;
    return (x >> n) | (x << ((32 - n) & 31));
}

static uint16_t rotl16(uint16_t x, unsigned n)
{
    n &= 15;
    return (uint16_t)((x << n) | (x >> ((16 - n) & 15)));
}

static uint64_t reverse_bits(uint64_t x)
{
    uint64_t r = 0;
    for (int i = 0; i < 64; i++) {
        r = (r << 1) | (x & 1);
        x >>= 1;
    }
    return r;
}

static void counting(uint64_t x)
{
    uint32_t lo = (uint32_t)x;
    printf("%016" PRIx64 ": popcount=%d/%d clz=%d ctz=%d parity=%d ffs=%d clrsb=%d", x, __builtin_popcountll(x),
           __builtin_popcount(lo), __builtin_clzll(x), __builtin_ctzll(x), __builtin_parityll(x),
           __builtin_ffsll((long long)x), __builtin_clrsbll((long long)x));
    if (lo != 0)
        printf(" clz32=%d ctz32=%d", __builtin_clz(lo), __builtin_ctz(lo));
    putchar('\n');
}

static void swapping(uint64_t x)
{
    printf("  bswap16=%04x bswap32=%08" PRIx32 " bswap64=%016" PRIx64 " reverse=%016" PRIx64 "\n",
           __builtin_bswap16((uint16_t)x), __builtin_bswap32((uint32_t)x), __builtin_bswap64(x), reverse_bits(x));
}

static void shifting(uint64_t x, unsigned n)
{
    int64_t s = (int64_t)x;
    int32_t s32 = (int32_t)x;
    printf("  n=%2u shl=%016" PRIx64 " shr=%016" PRIx64 " sar=%016" PRIx64 " rotl=%016" PRIx64 " rotr32=%08" PRIx32
           " rotl16=%04x sar32=%08" PRIx32 "\n",
           n, x << n, x >> n, (uint64_t)(s >> n), rotl64(x, n), rotr32((uint32_t)x, n), rotl16((uint16_t)x, n),
           (uint32_t)(s32 >> (n & 31)));
}

static void fields(uint64_t x)
{
    /* Extract bits [12, 12+20), insert 0x5a5 at [40, 52), isolate and clear the lowest set bit. */
    uint64_t extracted = (x >> 12) & 0xfffff;
    uint64_t inserted = (x & ~(0xfffull << 40)) | (0x5a5ull << 40);
    printf("  extract=%05" PRIx64 " insert=%016" PRIx64 " lowest=%016" PRIx64 " cleared=%016" PRIx64 "\n",
           extracted, inserted, x & -x, x & (x - 1));
}

int main(void)
{
    for (int i = 0; i < NSAMPLES; i++) {
        uint64_t x = samples[i];
        counting(x);
        swapping(x);
        fields(x);
        for (int j = i % 3; j < NCOUNTS; j += 3)
            shifting(x, counts[j]);
    }

    /* Fold a long pseudo-random sequence through every operation into one checksum. */
    uint64_t x = 0x9e3779b97f4a7c15, sum = 0;
    for (int i = 0; i < 4000; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        uint64_t y = x | 1;
        sum += (uint64_t)__builtin_popcountll(x) + (uint64_t)__builtin_clzll(y) * 3 + (uint64_t)__builtin_ctzll(y) * 5;
        sum ^= rotl64(x, (unsigned)i) ^ __builtin_bswap64(sum);
        sum += (uint64_t)((int64_t)x >> (i & 63));
    }
    printf("checksum %016" PRIx64 "\n", sum);
    return 0;
}
