/* Integer arithmetic: 8- to 64-bit wraparound, signed/unsigned conversions and 128-bit math via __int128. */
#include <inttypes.h>
#include <stdio.h>

typedef unsigned __int128 u128;
typedef __int128 i128;

/* Values come through volatile storage so that -O2 cannot fold the arithmetic away. */
static volatile uint64_t samples[] = {
    0, 1, 2, 3, 7, 0xff, 0x100, 0x7fff, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff,
    0x100000000, 0x123456789abcdef0, 0x7fffffffffffffff, 0x8000000000000000, 0xfffffffffffffffe,
    0xffffffffffffffff, 0xdeadbeefcafebabe,
};
enum { NSAMPLES = sizeof(samples) / sizeof(samples[0]) };

static void print_u128(u128 v)
{
    char digits[40];
    int n = 0;
    do {
        digits[n++] = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v != 0);
    while (n > 0)
        putchar(digits[--n]);
}

static void print_i128(i128 v)
{
    if (v < 0) {
        putchar('-');
        print_u128(-(u128)v);
    } else {
        print_u128((u128)v);
    }
}

static void narrow_conversions(uint64_t x)
{
    int8_t s8 = (int8_t)x;
    uint8_t u8 = (uint8_t)x;
    int16_t s16 = (int16_t)x;
    uint16_t u16 = (uint16_t)x;
    int32_t s32 = (int32_t)x;
    printf("  narrow: s8=%d u8=%u s16=%d u16=%u s32=%" PRId32 " s64=%" PRId64 "\n", s8, u8, s16, u16, s32,
           (int64_t)x);
    /* Sign extension back to 64 bits, then zero extension. */
    printf("  widen: %016" PRIx64 " %016" PRIx64 " %016" PRIx64 "\n", (uint64_t)(int64_t)s8, (uint64_t)(int64_t)s16,
           (uint64_t)(int64_t)s32);
}

static void wrapping(uint64_t a, uint64_t b)
{
    uint32_t a32 = (uint32_t)a, b32 = (uint32_t)b;
    printf("  u64: add=%016" PRIx64 " sub=%016" PRIx64 " mul=%016" PRIx64 " neg=%016" PRIx64 "\n", a + b, a - b,
           a * b, -a);
    printf("  u32: add=%08" PRIx32 " sub=%08" PRIx32 " mul=%08" PRIx32 "\n", a32 + b32, a32 - b32, a32 * b32);
    /* Signed results of modular arithmetic; the conversion back to signed is defined by GCC as modular. */
    printf("  s64: add=%" PRId64 " mul=%" PRId64 "\n", (int64_t)(a + b), (int64_t)(a * b));
    printf("  cmp: s<=%d u<=%d s32<=%d u32<=%d\n", (int64_t)a < (int64_t)b, a < b, (int32_t)a32 < (int32_t)b32,
           a32 < b32);
}

static void wide(uint64_t a, uint64_t b)
{
    u128 product = (u128)a * b;
    i128 sproduct = (i128)(int64_t)a * (int64_t)b;
    printf("  u128 mul: hi=%016" PRIx64 " lo=%016" PRIx64 " = ", (uint64_t)(product >> 64), (uint64_t)product);
    print_u128(product);
    printf("\n  i128 mul: ");
    print_i128(sproduct);
    putchar('\n');
    u128 big = product * 0x1000003 + a;
    if (b != 0) {
        printf("  u128 div: ");
        print_u128(big / b);
        printf(" rem ");
        print_u128(big % b);
        putchar('\n');
    }
    i128 sbig = sproduct - (i128)a * 977;
    if ((int64_t)b != 0) {
        printf("  i128 div: ");
        print_i128(sbig / (int64_t)b);
        printf(" rem ");
        print_i128(sbig % (int64_t)b);
        putchar('\n');
    }
}

int main(void)
{
    for (int i = 0; i < NSAMPLES; i++) {
        uint64_t a = samples[i];
        uint64_t b = samples[(i * 7 + 3) % NSAMPLES];
        printf("a=%016" PRIx64 " b=%016" PRIx64 "\n", a, b);
        narrow_conversions(a);
        wrapping(a, b);
        wide(a, b);
    }

    /* Integer promotions: unsigned char and short promote to int, unsigned int does not. */
    unsigned char uc = 200;
    signed char sc = -56;
    unsigned short us = 65535;
    unsigned int ui = 1;
    int minus_one = -1;
    printf("promote: uc+uc=%d sc*uc=%d us*us=%d -1<1u=%d -1L<1L=%d\n", uc + uc, sc * uc, (int)(us * (unsigned)us),
           (unsigned)minus_one < ui, (long)minus_one < (long)ui);

    /* A long chain of mixed operations folded into one checksum. */
    uint64_t h = 0xcbf29ce484222325;
    int64_t s = 1;
    for (int i = 0; i < 2000; i++) {
        h = (h ^ (uint64_t)i) * 0x100000001b3;
        s = s * -3 + (int64_t)(h >> 60) - i;
        if (s > 1000000000 || s < -1000000000)
            s /= 7;
    }
    printf("checksum: %016" PRIx64 " %" PRId64 "\n", h, s);
    return 0;
}
