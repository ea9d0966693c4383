/* x86-64-v2 SIMD and the crypto extensions in one program: gcc's auto-vectorised loops for SSE4.1/SSE4.2
 * (min/max, pmulld, sign extension, blends, rounding) and intrinsics for SSSE3, SSE3, SSE4.1, SSE4.2 (CRC32C,
 * the string compares), AES-NI, PCLMULQDQ and SHA. The target pragma stands for -msse4.2 -maes -mpclmul -msha so
 * the program builds with the plain flags the program tests use. Prints one line per part. */
#pragma GCC target("sse4.2,aes,pclmul,sha")
#include <immintrin.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define N 1000

static int32_t a32[N], b32[N], c32[N];
static int8_t s8[N];
static float f[N], g[N];
static uint64_t state = 0x9E3779B97F4A7C15ULL;

static uint64_t next(void)
{
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

static uint64_t fnv(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static void show(const char *name, __m128i v)
{
    uint64_t lo = (uint64_t)_mm_cvtsi128_si64(v), hi = (uint64_t)_mm_extract_epi64(v, 1);
    printf("%-12s %016" PRIx64 "%016" PRIx64 "\n", name, hi, lo);
}

/* -- loops gcc vectorises with SSE4.1 ------------------------------------------------------------- */
static void vectorised(void)
{
    for (int i = 0; i < N; i++) {
        a32[i] = (int32_t)next();
        b32[i] = (int32_t)next() >> (i % 20);
        s8[i] = (int8_t)next();
        f[i] = (float)((int32_t)next() % 100000) / 64.0f;
    }
    for (int i = 0; i < N; i++)
        c32[i] = a32[i] < b32[i] ? a32[i] : b32[i]; /* pminsd */
    printf("min          %016" PRIx64 "\n", fnv(c32, sizeof c32));
    for (int i = 0; i < N; i++)
        c32[i] = (uint32_t)a32[i] > (uint32_t)b32[i] ? a32[i] : b32[i]; /* pmaxud */
    printf("max unsigned %016" PRIx64 "\n", fnv(c32, sizeof c32));
    for (int i = 0; i < N; i++)
        c32[i] = a32[i] * b32[i]; /* pmulld */
    printf("mul          %016" PRIx64 "\n", fnv(c32, sizeof c32));
    int32_t sum = 0;
    for (int i = 0; i < N; i++)
        sum += s8[i] * 3; /* pmovsxbd */
    printf("widen sum    %08" PRIx32 "\n", (uint32_t)sum);
    for (int i = 0; i < N; i++)
        c32[i] = s8[i] > 0 ? a32[i] : b32[i]; /* a blend */
    printf("select       %016" PRIx64 "\n", fnv(c32, sizeof c32));
    for (int i = 0; i < N; i++)
        g[i] = floorf(f[i]) + ceilf(f[i] * 0.5f) + truncf(-f[i]); /* roundps */
    printf("round        %016" PRIx64 "\n", fnv(g, sizeof g));
    int64_t dot = 0;
    for (int i = 0; i < N; i++)
        dot += (int64_t)a32[i] * b32[i]; /* pmuldq */
    printf("dot64        %016" PRIx64 "\n", (uint64_t)dot);
}

/* -- SSSE3, SSE3, SSE4.1 intrinsics --------------------------------------------------------------- */
static void intrinsics(void)
{
    __m128i x = _mm_set_epi64x((int64_t)next(), (int64_t)next()), y = _mm_set_epi64x((int64_t)next(), (int64_t)next());
    __m128i reverse = _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    show("pshufb", _mm_shuffle_epi8(x, reverse));
    show("phaddsw", _mm_hadds_epi16(x, y));
    show("pmaddubsw", _mm_maddubs_epi16(x, y));
    show("pmulhrsw", _mm_mulhrs_epi16(x, y));
    show("psignw", _mm_sign_epi16(x, y));
    show("pabsb", _mm_abs_epi8(y));
    show("palignr", _mm_alignr_epi8(x, y, 5));
    __m128 p = _mm_set_ps(1.5f, -2.25f, 1e-3f, 3e10f), q = _mm_set_ps(0.1f, 7.0f, -8.5f, 1.0f / 3);
    show("haddps", _mm_castps_si128(_mm_hadd_ps(p, q)));
    show("addsubps", _mm_castps_si128(_mm_addsub_ps(p, q)));
    show("dpps", _mm_castps_si128(_mm_dp_ps(p, q, 0xF3)));
    show("roundps", _mm_castps_si128(_mm_round_ps(_mm_mul_ps(p, q), _MM_FROUND_TO_NEAREST_INT)));
    show("mpsadbw", _mm_mpsadbw_epu8(x, y, 5));
    show("phminposuw", _mm_minpos_epu16(y));
    show("packusdw", _mm_packus_epi32(x, y));
    show("pinsr/pextr", _mm_insert_epi32(x, _mm_extract_epi8(y, 9), 2));
    show("blendv", _mm_blendv_epi8(x, y, _mm_xor_si128(x, y)));
    printf("ptest        %d %d\n", _mm_testz_si128(x, y), _mm_testc_si128(x, _mm_and_si128(x, y)));
}

/* -- SSE4.2 -------------------------------------------------------------------------------------------- */
static void strings(void)
{
    static const char text[] = "The quick brown fox jumps over the lazy dog, 0123456789 times!";
    uint64_t crc = ~0ULL;
    size_t i = 0;
    for (; i + 8 <= sizeof text; i += 8) {
        uint64_t word;
        memcpy(&word, text + i, 8);
        crc = _mm_crc32_u64(crc, word);
    }
    uint32_t crc32 = (uint32_t)crc;
    for (; i < sizeof text; i++)
        crc32 = _mm_crc32_u8(crc32, (unsigned char)text[i]);
    printf("crc32c       %08" PRIx32 "\n", ~crc32);
    __m128i digits = _mm_setr_epi8('0', '9', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    __m128i vowels = _mm_setr_epi8('a', 'e', 'i', 'o', 'u', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    for (size_t at = 0; at + 16 <= sizeof text; at += 16) {
        __m128i chunk = _mm_loadu_si128((const __m128i *)(text + at));
        int first_digit = _mm_cmpistri(digits, chunk, _SIDD_UBYTE_OPS | _SIDD_CMP_RANGES);
        int last_vowel = _mm_cmpistri(vowels, chunk, _SIDD_CMP_EQUAL_ANY | _SIDD_MOST_SIGNIFICANT);
        int the = _mm_cmpestri(_mm_setr_epi8('t', 'h', 'e', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), 3, chunk, 16,
                               _SIDD_CMP_EQUAL_ORDERED);
        __m128i mask = _mm_cmpistrm(vowels, chunk, _SIDD_CMP_EQUAL_ANY | _SIDD_UNIT_MASK);
        printf("cmpstr %2zu    %2d %2d %2d %04x\n", at, first_digit, last_vowel, the, _mm_movemask_epi8(mask));
    }
}

/* -- AES-128 (FIPS 197 C.1), a carry-less product, SHA-1 and SHA-256 rounds -------------------------------- */
static __m128i expand(__m128i key, __m128i assist)
{
    assist = _mm_shuffle_epi32(assist, 0xFF);
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    return _mm_xor_si128(key, assist);
}

#define EXPAND(i, rcon) keys[i] = expand(keys[i - 1], _mm_aeskeygenassist_si128(keys[i - 1], rcon))

static void crypto(void)
{
    __m128i keys[11];
    keys[0] = _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    EXPAND(1, 1); EXPAND(2, 2); EXPAND(3, 4); EXPAND(4, 8); EXPAND(5, 16);
    EXPAND(6, 32); EXPAND(7, 64); EXPAND(8, 128); EXPAND(9, 0x1B); EXPAND(10, 0x36);
    __m128i block = _mm_setr_epi8(0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, (char)0x88, (char)0x99,
                                  (char)0xaa, (char)0xbb, (char)0xcc, (char)0xdd, (char)0xee, (char)0xff);
    __m128i c = _mm_xor_si128(block, keys[0]);
    for (int i = 1; i < 10; i++)
        c = _mm_aesenc_si128(c, keys[i]);
    c = _mm_aesenclast_si128(c, keys[10]);
    show("aes128", c);
    __m128i d = _mm_xor_si128(c, keys[10]);
    for (int i = 9; i > 0; i--)
        d = _mm_aesdec_si128(d, _mm_aesimc_si128(keys[i]));
    show("aes128 back", _mm_aesdeclast_si128(d, keys[0]));
    __m128i x = _mm_set_epi64x((int64_t)next(), (int64_t)next()), y = _mm_set_epi64x((int64_t)next(), (int64_t)next());
    show("clmul 00", _mm_clmulepi64_si128(x, y, 0x00));
    show("clmul 11", _mm_clmulepi64_si128(x, y, 0x11));
    show("clmul 10", _mm_clmulepi64_si128(x, y, 0x10));
    __m128i abef = _mm_set_epi32(0x6a09e667, (int)0xbb67ae85, 0x510e527f, (int)0x9b05688c);
    __m128i cdgh = _mm_set_epi32(0x3c6ef372, (int)0xa54ff53a, 0x1f83d9ab, 0x5be0cd19);
    for (int i = 0; i < 16; i++) {
        __m128i wk = _mm_set_epi64x(0, (int64_t)next());
        __m128i t = _mm_sha256rnds2_epu32(cdgh, abef, wk);
        cdgh = abef;
        abef = t;
    }
    show("sha256rnds2", abef);
    show("sha256msg", _mm_sha256msg2_epu32(_mm_sha256msg1_epu32(x, y), y));
    __m128i e = _mm_set_epi32(0x67452301, (int)0xefcdab89, (int)0x98badcfe, 0x10325476);
    show("sha1rnds4", _mm_sha1rnds4_epu32(e, _mm_sha1nexte_epu32(x, y), 2));
    show("sha1msg", _mm_sha1msg2_epu32(_mm_sha1msg1_epu32(x, y), y));
}

int main(void)
{
    vectorised();
    intrinsics();
    strings();
    crypto();
    return 0;
}
