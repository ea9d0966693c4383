/* AVX, AVX2, FMA and F16C as a compiler uses them: loops gcc -O3 -march=x86-64-v3 vectorises over int,
   float and double (VEX arithmetic, FMA contraction, conversions), and intrinsics from <immintrin.h> for
   what a compiler does not emit by itself (gathers, masked loads, permutes, half floats).  Every result
   is printed, so the output under emu must equal the host's bit for bit. */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define N 1000

static int32_t ia[N], ib[N], ic[N];
static int16_t sa[N], sb[N], sc[N];
static uint8_t ua[N], ub[N], uc[N];
static float fa[N], fb[N], fc[N], fd[N];
static double da[N], db[N], dc[N];

static uint64_t hash(const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static uint32_t seed = 12345;
static uint32_t next(void) { seed = seed * 1103515245u + 12345u; return seed >> 8; }

__attribute__((noinline)) static void integer_loops(void) {
    for (int i = 0; i < N; i++) ic[i] = (ia[i] + ib[i]) ^ (ia[i] << 3) ^ (ib[i] >> 2) ^ ((uint32_t)ia[i] >> 5);
    for (int i = 0; i < N; i++) sc[i] = sa[i] > sb[i] ? sa[i] : sb[i];
    for (int i = 0; i < N; i++) sc[i] += (int16_t)(sa[i] - sb[i]) & 0x7ff;
    for (int i = 0; i < N; i++) uc[i] = ua[i] > ub[i] ? ua[i] : ub[i];
    for (int i = 0; i < N; i++) uc[i] = (uint8_t)((uc[i] + ua[i] + 1) >> 1);
    uint32_t sum = 0;
    for (int i = 0; i < N; i++) sum += (uint32_t)(ia[i] & ib[i]);
    printf("integers: %016llx %016llx %016llx %08x\n", (unsigned long long)hash(ic, sizeof ic),
           (unsigned long long)hash(sc, sizeof sc), (unsigned long long)hash(uc, sizeof uc), sum);
}

__attribute__((noinline)) static void float_loops(void) {
    for (int i = 0; i < N; i++) fd[i] = fa[i] * fb[i] + fc[i];          /* FMA contraction */
    for (int i = 0; i < N; i++) fc[i] = fa[i] / (fb[i] + 3.0f) - fc[i] * 0.5f;
    for (int i = 0; i < N; i++) da[i] = da[i] * db[i] - dc[i];
    for (int i = 0; i < N; i++) dc[i] = (double)fa[i] * 1.5 + (double)ia[i];
    for (int i = 0; i < N; i++) fb[i] = (float)ib[i] / 7.0f;
    for (int i = 0; i < N; i++) ib[i] = (int32_t)(fa[i] * 1000.0f);
    for (int i = 0; i < N; i++) db[i] = __builtin_sqrt(db[i] * db[i] + 1.0);
    printf("floats: %016llx %016llx %016llx %016llx %016llx %016llx %016llx\n",
           (unsigned long long)hash(fd, sizeof fd), (unsigned long long)hash(fc, sizeof fc),
           (unsigned long long)hash(da, sizeof da), (unsigned long long)hash(dc, sizeof dc),
           (unsigned long long)hash(fb, sizeof fb), (unsigned long long)hash(ib, sizeof ib),
           (unsigned long long)hash(db, sizeof db));
    printf("samples: %.9g %.9g %.17g %.17g\n", fd[7], fc[500], da[123], db[999]);
}

static void print256(const char *name, __m256i v) {
    uint32_t out[8];
    _mm256_storeu_si256((__m256i *)out, v);
    printf("%s:", name);
    for (int i = 0; i < 8; i++) printf(" %08x", out[i]);
    printf("\n");
}

__attribute__((noinline)) static void intrinsics(void) {
    __m256i x = _mm256_loadu_si256((const __m256i *)ia), y = _mm256_loadu_si256((const __m256i *)(ia + 8));
    static const int32_t order[8] = {3, 4, 2, 5, 1, 6, 0, 7};
    __m256i index = _mm256_loadu_si256((const __m256i *)order);
    print256("permutevar8x32", _mm256_permutevar8x32_epi32(x, index));
    print256("permute4x64", _mm256_permute4x64_epi64(x, 0x4E));
    print256("permute2x128", _mm256_permute2x128_si256(x, y, 0x21));
    print256("blend_epi32", _mm256_blend_epi32(x, y, 0xA5));
    print256("sllv", _mm256_sllv_epi32(x, _mm256_and_si256(y, _mm256_set1_epi32(31))));
    print256("srav", _mm256_srav_epi32(x, _mm256_and_si256(y, _mm256_set1_epi32(63))));
    print256("broadcastd", _mm256_broadcastd_epi32(_mm256_castsi256_si128(y)));
    print256("unpacklo_epi16", _mm256_unpacklo_epi16(x, y));
    print256("packs_epi32", _mm256_packs_epi32(x, y));
    __m256i offsets = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)ib), _mm256_set1_epi32(511));
    print256("i32gather", _mm256_i32gather_epi32(ia, offsets, 4));
    __m256i mask = _mm256_loadu_si256((const __m256i *)(ic + 16));
    print256("mask_i32gather", _mm256_mask_i32gather_epi32(y, ia, offsets, mask, 4));
    __m256 loaded = _mm256_maskload_ps(fa + 3, mask);
    print256("maskload_ps", _mm256_castps_si256(loaded));
    float stored[8];
    memset(stored, 0x5a, sizeof stored);
    _mm256_maskstore_ps(stored, mask, _mm256_loadu_ps(fc));
    print256("maskstore_ps", _mm256_loadu_si256((const __m256i *)stored));
    __m256 f = _mm256_loadu_ps(fa), g = _mm256_loadu_ps(fb), h = _mm256_loadu_ps(fc);
    print256("fmaddsub", _mm256_castps_si256(_mm256_fmaddsub_ps(f, g, h)));
    print256("fnmsub", _mm256_castps_si256(_mm256_fnmsub_ps(f, g, h)));
    __m128i halves = _mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT);
    print256("cvtps_ph/cvtph_ps", _mm256_castps_si256(_mm256_cvtph_ps(halves)));
    print256("cmp_ps", _mm256_castps_si256(_mm256_cmp_ps(f, g, _CMP_NLE_UQ)));
    printf("testz %d testc %d movemask %08x movemask_ps %02x\n", _mm256_testz_si256(x, y),
           _mm256_testc_si256(x, mask), _mm256_movemask_epi8(x), _mm256_movemask_ps(f));
    print256("insert/extract", _mm256_inserti128_si256(y, _mm256_extracti128_si256(x, 1), 0));
    _mm256_zeroupper();
}

int main(void) {
    for (int i = 0; i < N; i++) {
        ia[i] = (int32_t)next() - (1 << 23);
        ib[i] = (int32_t)next() % 5000 - 2500;
        sa[i] = (int16_t)next();
        sb[i] = (int16_t)next();
        ua[i] = (uint8_t)next();
        ub[i] = (uint8_t)next();
        fa[i] = (float)((int32_t)next() - (1 << 23)) / 4096.0f;
        fb[i] = (float)(next() % 1000) / 3.0f;
        fc[i] = (float)((int32_t)next() % 777);
        da[i] = (double)next() / 65536.0;
        db[i] = (double)((int32_t)next() % 1000000) / 17.0;
        dc[i] = (double)next() / 3.0;
    }
    integer_loops();
    float_loops();
    intrinsics();
    return 0;
}
