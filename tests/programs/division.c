/* Division and remainder: by constants (which GCC turns into multiply-and-shift) and by runtime divisors
 * (DIV/IDIV), signed and unsigned, 8 to 64 bits, with negative operands. INT_MIN / -1 is avoided (undefined). */
#include <inttypes.h>
#include <stdio.h>

static volatile int64_t dividends[] = {
    0, 1, -1, 7, -7, 99, -1000, 123456789, -123456789, 2147483647, -2147483648, 4294967295, -4294967296,
    0x123456789abcdef, -0x123456789abcdef, INT64_MAX, INT64_MIN + 1, INT64_MIN,
};
static volatile int64_t divisors[] = {1, -1, 2, -3, 7, 10, -16, 255, -1000003, 0x10000, INT64_MAX};
enum {
    NDIVIDENDS = sizeof(dividends) / sizeof(dividends[0]),
    NDIVISORS = sizeof(divisors) / sizeof(divisors[0]),
};

static void by_constants(int64_t x)
{
    uint64_t u = (uint64_t)x;
    int32_t x32 = (int32_t)x;
    uint32_t u32 = (uint32_t)x;
    printf("%" PRId64 ":\n", x);
    printf("  s64 /3=%" PRId64 " %%3=%" PRId64 " /7=%" PRId64 " %%7=%" PRId64 " /10=%" PRId64 " %%10=%" PRId64
           " /16=%" PRId64 " %%16=%" PRId64 " /-5=%" PRId64 " %%-5=%" PRId64 " /1000000007=%" PRId64 "\n",
           x / 3, x % 3, x / 7, x % 7, x / 10, x % 10, x / 16, x % 16, x / -5, x % -5, x / 1000000007);
    printf("  u64 /3=%" PRIu64 " %%3=%" PRIu64 " /7=%" PRIu64 " /10=%" PRIu64 " %%10=%" PRIu64 " /16=%" PRIu64
           " /1000000007=%" PRIu64 "\n",
           u / 3, u % 3, u / 7, u / 10, u % 10, u / 16, u / 1000000007);
    printf("  s32 /3=%" PRId32 " %%3=%" PRId32 " /7=%" PRId32 " /10=%" PRId32 " %%-10=%" PRId32 " /16=%" PRId32
           "\n",
           x32 / 3, x32 % 3, x32 / 7, x32 / 10, x32 % -10, x32 / 16);
    printf("  u32 /3=%" PRIu32 " /7=%" PRIu32 " %%7=%" PRIu32 " /10=%" PRIu32 " /641=%" PRIu32 "\n", u32 / 3,
           u32 / 7, u32 % 7, u32 / 10, u32 / 641);
}

static void by_variables(int64_t x, int64_t d)
{
    uint64_t u = (uint64_t)x, ud = (uint64_t)d;
    int32_t x32 = (int32_t)x, d32 = (int32_t)d;
    uint32_t u32 = (uint32_t)x, ud32 = (uint32_t)d;
    int16_t x16 = (int16_t)x, d16 = (int16_t)d;
    int8_t x8 = (int8_t)x, d8 = (int8_t)d;
    uint8_t u8 = (uint8_t)x, ud8 = (uint8_t)d;

    printf("%" PRId64 " by %" PRId64 ": s64 %" PRId64 " %" PRId64 "; u64 %" PRIu64 " %" PRIu64, x, d, x / d,
           x % d, u / ud, u % ud);
    if (d32 != 0 && !(x32 == INT32_MIN && d32 == -1))
        printf("; s32 %" PRId32 " %" PRId32, x32 / d32, x32 % d32);
    if (ud32 != 0)
        printf("; u32 %" PRIu32 " %" PRIu32, u32 / ud32, u32 % ud32);
    if (d16 != 0)
        printf("; s16 %d %d", x16 / d16, x16 % d16);
    if (d8 != 0)
        printf("; s8 %d %d", x8 / d8, x8 % d8);
    if (ud8 != 0)
        printf("; u8 %u %u", u8 / ud8, u8 % ud8);
    putchar('\n');
}

int main(void)
{
    for (int i = 0; i < NDIVIDENDS; i++)
        by_constants(dividends[i]);
    for (int i = 0; i < NDIVIDENDS; i++)
        for (int j = 0; j < NDIVISORS; j++)
            if (!(dividends[i] == INT64_MIN && divisors[j] == -1))
                by_variables(dividends[i], divisors[j]);

    /* A running checksum that mixes quotients and remainders of a pseudo-random sequence. */
    uint64_t seed = 88172645463325252u, sum = 0;
    for (int i = 0; i < 3000; i++) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        int64_t n = (int64_t)seed;
        int64_t d = (int64_t)(seed >> 40) - (1 << 23);
        if (d == 0 || d == -1)
            continue;
        sum = sum * 31 + (uint64_t)(n / d) + (uint64_t)(n % d) + seed % (uint64_t)(i + 1) + (uint32_t)seed / 10u;
    }
    printf("checksum %016" PRIx64 "\n", sum);
    return 0;
}
