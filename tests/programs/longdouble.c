/* long double (x87 extended) arithmetic, formatting and parsing, and <fenv.h> rounding and flags. */
#include <fenv.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static volatile long double zero = 0.0L, one = 1.0L, three = 3.0L, tiny = LDBL_MIN;

static void show(const char *what, long double x) {
    if (fabsl(x) < 1e30L)
        printf("%-12s %La %.21Lg %.6Lf\n", what, x, x, x);
    else
        printf("%-12s %La %.21Lg\n", what, x, x);
}

static void flags(const char *what) {
    int f = fetestexcept(FE_ALL_EXCEPT);
    printf("%-12s%s%s%s%s%s\n", what, f & FE_INVALID ? " invalid" : "", f & FE_DIVBYZERO ? " divbyzero" : "",
           f & FE_OVERFLOW ? " overflow" : "", f & FE_UNDERFLOW ? " underflow" : "", f & FE_INEXACT ? " inexact" : "");
    feclearexcept(FE_ALL_EXCEPT);
}

int main(void) {
    show("1/3", one / three);
    show("sqrt(2)", sqrtl(2.0L));
    show("pi", 3.14159265358979323846264338327950288L);
    show("max", LDBL_MAX);
    show("min", LDBL_MIN);
    show("denormal", LDBL_MIN / 4096.0L);
    show("2^64+1", 18446744073709551617.0L);
    show("strtold", strtold("0.1", NULL));
    show("strtold hex", strtold("0x1.fffffffffffffffep+16383", NULL));
    show("sin(1)", sinl(1.0L));
    show("exp(1)", expl(1.0L));
    show("log(10)", logl(10.0L));
    show("atan2", atan2l(1.0L, -2.0L));
    show("pow", powl(1.5L, 40.0L));
    show("fmod", fmodl(1e30L, 7.0L));
    show("rint", rintl(2.5L));
    long long n = (long long)(one * 1e18L + 0.75L);
    printf("%-12s %lld\n", "to int", n);

    int modes[] = {FE_TONEAREST, FE_DOWNWARD, FE_UPWARD, FE_TOWARDZERO};
    const char *names[] = {"nearest", "downward", "upward", "towardzero"};
    for (int i = 0; i < 4; i++) {
        fesetround(modes[i]);
        printf("%-12s %d %La %La %.0Lf %ld\n", names[i], fegetround() == modes[i], one / three, -one / three,
               rintl(-2.5L), lrintl(7.5L));
    }
    fesetround(FE_TONEAREST);

    feclearexcept(FE_ALL_EXCEPT);
    flags("start");
    volatile long double r = one / zero;
    flags("1/0");
    r = zero / zero;
    flags("0/0");
    r = LDBL_MAX * three;
    flags("max*3");
    r = tiny * tiny;
    flags("min*min");
    r = one / three;
    flags("1/3");
    (void)r;
    return 0;
}
