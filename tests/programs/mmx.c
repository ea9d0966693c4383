/* MMX intrinsics (<mmintrin.h>, <xmmintrin.h>): saturating sums of pixels, packs, shuffles, and the
   x87 state after EMMS (a long double computed after MMX code). */
#include <mmintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <xmmintrin.h>

static void show(const char *what, __m64 v) {
    printf("%-10s %016llx\n", what, (unsigned long long)_mm_cvtm64_si64(v));
}

int main(void) {
    uint8_t pixels[64];
    for (int i = 0; i < 64; i++)
        pixels[i] = (uint8_t)(i * 37 + 11);
    __m64 sum = _mm_setzero_si64(), sat = _mm_setzero_si64(), sad = _mm_setzero_si64();
    for (int i = 0; i < 64; i += 8) {
        __m64 p = *(__m64 *)&pixels[i];
        sum = _mm_add_pi16(sum, _mm_unpacklo_pi8(p, _mm_setzero_si64()));
        sum = _mm_add_pi16(sum, _mm_unpackhi_pi8(p, _mm_setzero_si64()));
        sat = _mm_adds_pu8(sat, p);
        sad = _mm_add_pi32(sad, _mm_sad_pu8(p, _mm_set1_pi8(100)));
    }
    show("sum", sum);
    show("saturated", sat);
    show("sad", sad);
    __m64 a = _mm_set_pi16(-30000, 1000, -5, 32767), b = _mm_set_pi16(300, -2, 7, 2);
    show("mullo", _mm_mullo_pi16(a, b));
    show("mulhi", _mm_mulhi_pi16(a, b));
    show("madd", _mm_madd_pi16(a, b));
    show("packs", _mm_packs_pi16(a, b));
    show("packus", _mm_packs_pu16(a, b));
    show("packs32", _mm_packs_pi32(_mm_set_pi32(100000, -7), _mm_set_pi32(-100000, 65535)));
    show("cmpgt", _mm_cmpgt_pi16(a, b));
    show("sra", _mm_srai_pi16(a, 3));
    show("srl", _mm_srli_si64(a, 12));
    show("shuffle", _mm_shuffle_pi16(a, 0x1b));
    show("avg", _mm_avg_pu8(a, b));
    show("max", _mm_max_pi16(a, b));
    printf("%-10s %x %d\n", "movemask", _mm_movemask_pi8(a), _mm_extract_pi16(a, 3));
    __m128 f = _mm_cvtpi32_ps(_mm_setzero_ps(), _mm_set_pi32(-3, 16777217));
    float out[4];
    _mm_storeu_ps(out, f);
    show("cvtps2pi", _mm_cvtps_pi32(_mm_set_ps(0, 0, -2.5f, 3.5f)));
    show("cvttps2pi", _mm_cvttps_pi32(_mm_set_ps(0, 0, -2.5f, 3.5f)));
    _mm_empty();
    printf("%-10s %g %g\n", "cvtpi2ps", out[0], out[1]);
    volatile long double x = 1.0L;
    printf("%-10s %.20Lg\n", "after emms", x / 3.0L);
    return 0;
}
