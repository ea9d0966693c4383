/* Floating-point workloads for benchmarks/run.py: one x87 (long double) and one AVX2/FMA kernel.
   fp x87 N: N Newton steps of 1/sqrt in long double and a long double series, printed with %La.
   fp avx N: N passes of a single-precision dot product and saxpy over 4096 floats; built with
   -O3 -march=x86-64-v3 gcc vectorises them to 256-bit FMA code. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long double x87(long n) {
    long double sum = 0.0L, y = 1.0L;
    for (long i = 1; i <= n; i++) {
        long double x = (long double)i;
        y = y * (1.5L - 0.5L * x * y * y);          /* drifts toward 1/sqrt(i), stays finite */
        if (y <= 0.0L || y > 1.0L) y = 1.0L / x;
        sum += 1.0L / (x * x) + y * 1e-20L;
    }
    return sum;
}

#define N 4096
static float a[N], b[N], c[N];

static float avx(long passes) {
    float total = 0.0f;
    for (int i = 0; i < N; i++) {
        a[i] = (float)(i % 97) * 0.25f;
        b[i] = (float)(i % 89) * 0.5f;
    }
    for (long p = 0; p < passes; p++) {
        float dot = 0.0f;
        for (int i = 0; i < N; i++) dot += a[i] * b[i];
        for (int i = 0; i < N; i++) c[i] = 0.001f * a[i] + b[i];
        total += dot * 1e-9f + c[p % N];
    }
    return total;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: fp x87|avx N\n");
        return 2;
    }
    long n = atol(argv[2]);
    if (strcmp(argv[1], "x87") == 0)
        printf("x87 %ld: %La\n", n, x87(n));
    else
        printf("avx %ld: %a\n", n, (double)avx(n));
    return 0;
}
