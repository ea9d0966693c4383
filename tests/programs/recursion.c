/* Deep and wide recursion: Ackermann, naive Fibonacci, mutual recursion, Towers of Hanoi and a recursive
 * permutation generator. Exercises CALL/RET, the stack and callee-saved registers. */
#include <stdio.h>

static unsigned long calls;

static unsigned long ackermann(unsigned long m, unsigned long n)
{
    calls++;
    if (m == 0)
        return n + 1;
    if (n == 0)
        return ackermann(m - 1, 1);
    return ackermann(m - 1, ackermann(m, n - 1));
}

static long fib(int n)
{
    calls++;
    return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

static int is_odd(unsigned n);

static int is_even(unsigned n)
{
    return n == 0 ? 1 : is_odd(n - 1);
}

static int is_odd(unsigned n)
{
    return n == 0 ? 0 : is_even(n - 1);
}

static unsigned long hanoi(int disks, int from, int to, int via, unsigned long *signature)
{
    if (disks == 0)
        return 0;
    unsigned long moves = hanoi(disks - 1, from, via, to, signature);
    *signature = *signature * 31 + (unsigned long)(from * 3 + to);
    return moves + 1 + hanoi(disks - 1, via, to, from, signature);
}

static void permute(char *items, int k, int n, unsigned long *count, unsigned long *signature)
{
    if (k == n) {
        (*count)++;
        for (int i = 0; i < n; i++)
            *signature = *signature * 7 + (unsigned long)items[i];
        if (*count <= 3 || *count % 100 == 0)
            printf("permutation %lu: %s\n", *count, items);
        return;
    }
    for (int i = k; i < n; i++) {
        char t = items[k];
        items[k] = items[i];
        items[i] = t;
        permute(items, k + 1, n, count, signature);
        items[i] = items[k];
        items[k] = t;
    }
}

int main(void)
{
    for (unsigned long m = 0; m <= 3; m++) {
        for (unsigned long n = 0; n <= 4; n++) {
            calls = 0;
            unsigned long a = ackermann(m, n);
            printf("ackermann(%lu, %lu) = %lu in %lu calls\n", m, n, a, calls);
        }
    }
    for (int n = 0; n <= 20; n += 5) {
        calls = 0;
        long f = fib(n);
        printf("fib(%d) = %ld in %lu calls\n", n, f, calls);
    }
    printf("is_even(10001)=%d is_odd(7777)=%d\n", is_even(10001), is_odd(7777));

    unsigned long signature = 0;
    unsigned long moves = hanoi(10, 1, 3, 2, &signature);
    printf("hanoi(10) = %lu moves, signature %lx\n", moves, signature);

    char items[] = "abcdef";
    unsigned long count = 0;
    signature = 0;
    permute(items, 0, 6, &count, &signature);
    printf("%lu permutations, signature %lx, restored %s\n", count, signature, items);
    return 0;
}
