/* printf conversions for integers and doubles (flags, width, precision, negative zero, infinities, NaN, denormals
 * and extreme exponents), SSE2 arithmetic and conversions, and statically linked libm. glibc picks FMA or SSE2
 * variants of exp/sin/log at run time, so transcendental results are printed to 12 significant digits only. */
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>

/* Loaded through volatile storage so that -O2 cannot evaluate the math at compile time. */
static volatile double samples[] = {
    0.0, -0.0, 1.0, -1.5, 0.1, 2.5, 3.5, 1.005, 123456.789, -987654321.125, 1e15, 1e16, 1e21, 1e-5, 1e-300,
    5e-324, 2.2250738585072014e-308, DBL_MAX, 1.0 / 3.0, 9.999999999999999e22,
};
enum { NSAMPLES = sizeof(samples) / sizeof(samples[0]) };

static void integers(void)
{
    long big = LONG_MAX, small = LONG_MIN;
    unsigned long ubig = ULONG_MAX;
    printf("[%d] [%5d] [%-5d] [%05d] [%+d] [% d] [%.3d] [%ld] [%ld] [%lu]\n", 42, 42, 42, -42, 42, 42, 7, big, small,
           ubig);
    printf("[%x] [%X] [%#x] [%#o] [%o] [%08lx] [%#lX] [%hhd] [%hu] [%lld] [%llu] [%zu] [%c]\n", 255u, 255u, 255u, 8u,
           0u, 0xbeefUL, 0xcafeUL, (signed char)200, (unsigned short)70000, LLONG_MIN, ULLONG_MAX, sizeof(double),
           'Q');
    printf("[%*d] [%-*d] [%.*d] [%s] [%.3s] [%10.4s]\n", 6, 1, 4, 2, 5, 3, "text", "truncate", "abcdefgh");
}

static void doubles(void)
{
    for (int i = 0; i < NSAMPLES; i++) {
        double x = samples[i];
        printf("%-24.17g|%e|%.3f|%g|%.0f|%+.2E|%G|%12.4g|%#.3g|%a\n", x, x, x, x, x, -x, x, x, x, x);
    }
    double inf = samples[17] * 10, nan_value = inf - inf;
    printf("specials: %f %e %g %F %f %5.1f\n", inf, -inf, nan_value, inf, fabs(nan_value), -inf);
    printf("signbit(-0.0)=%d -0.0==0.0=%d copysign=%g\n", signbit(samples[1]) != 0, samples[1] == 0.0,
           copysign(3.0, samples[1]));
    printf("float: %f %.9g %.9g\n", (double)1.1f, (double)(float)samples[4], (double)FLT_MIN);
}

static void conversions(void)
{
    static volatile double values[] = {-1.5, -0.5, 0.5, 1.5, 2.5, 1e10, -1e10, 9.2e18, 1.8e19, 4294967295.9};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        double v = values[i];
        printf("%g: (int64)=%" PRId64 " (uint64)=%" PRIu64 " rint=%g floor=%g ceil=%g trunc=%g round=%g lround=%ld\n",
               v, v > -9.2e18 && v < 9.2e18 ? (int64_t)v : INT64_MIN, v >= 0 ? (uint64_t)v : 0, rint(v), floor(v),
               ceil(v), trunc(v), round(v), lround(v));
    }
    static volatile int64_t ints[] = {0, 1, -1, INT64_MAX, INT64_MIN, 9007199254740993};
    static volatile uint64_t uints[] = {UINT64_MAX, 1ull << 63, 9007199254740993};
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
        printf("(double)%" PRId64 " = %.17g, (float) = %.9g\n", ints[i], (double)ints[i], (double)(float)ints[i]);
    for (size_t i = 0; i < sizeof(uints) / sizeof(uints[0]); i++)
        printf("(double)%" PRIu64 "u = %.17g\n", uints[i], (double)uints[i]);
}

static void arithmetic(void)
{
    double a = samples[8], b = samples[18];
    printf("+ %.17g - %.17g * %.17g / %.17g\n", a + b, a - b, a * b, a / b);
    printf("compare: %d %d %d %d\n", a < b, a > b, samples[1] == samples[0], isnan(samples[0] / samples[0]) != 0);
    printf("fmin=%g fmax=%g fmod=%.17g remainder=%.17g hypot=%.17g\n", fmin(a, b), fmax(a, b), fmod(a, 7.25),
           remainder(a, 7.25), hypot(3.0, samples[2] * 4));
    double sum = 0;
    for (int i = 1; i <= 1000; i++)
        sum += 1.0 / ((double)i * i);
    printf("basel sum=%.17g\n", sum);
}

static void libm(void)
{
    static volatile double args[] = {0.0, 0.5, 1.0, 2.0, 10.0, 100.0, -3.25};
    for (size_t i = 0; i < sizeof(args) / sizeof(args[0]); i++) {
        double x = args[i];
        printf("x=%g sqrt=%.17g exp=%.12g log1p=%.12g sin=%.12g cos=%.12g atan=%.12g pow=%.12g cbrt=%.12g\n", x,
               sqrt(fabs(x)), exp(x), x > -1 ? log1p(x) : 0.0, sin(x), cos(x), atan(x), pow(1.5, x), cbrt(x));
    }
    printf("log(2)=%.12g log10(1000)=%.12g atan2(1,-1)=%.12g tanh(0.5)=%.12g sqrtf=%.9g\n", log(samples[2] * 2),
           log10(samples[2] * 1000), atan2(samples[2], -samples[2]), tanh(samples[2] / 2),
           (double)sqrtf((float)samples[2] * 2));
    int exponent;
    double mantissa = frexp(samples[8], &exponent), integral;
    double fraction = modf(samples[9], &integral);
    printf("frexp=%.17g,%d ldexp=%g modf=%g,%.17g\n", mantissa, exponent, ldexp(samples[2], -1074), fraction,
           integral);
}

int main(void)
{
    integers();
    doubles();
    conversions();
    arithmetic();
    libm();
    return 0;
}
