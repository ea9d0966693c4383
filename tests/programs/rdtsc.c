/* The time-stamp counter advances while a program computes, between system calls (under emu: with the
   instructions retired, in every tier). */
#include <stdio.h>
#include <x86intrin.h>

int main(void) {
    volatile unsigned long sum = 0;
    unsigned long long before = __rdtsc();
    for (unsigned long i = 0; i < 100000; i++)
        sum += i;
    unsigned long long after = __rdtsc();
    printf("sum %lu\n", sum);
    printf("rdtsc %s\n", after > before + 100000 ? "advanced over the loop" : "did not advance");
    return 0;
}
