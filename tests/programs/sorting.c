/* qsort and bsearch with user comparators: integers (ascending and descending), strings through an array of
 * pointers, and records sorted by key with the original index as tie-breaker so the result is fully determined. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NUMBERS = 1000, WORDS = 200, RECORDS = 300 };

struct record {
    int key;
    int index;
    double weight;
};

static uint64_t rng_state = 0x2545f4914f6cdd1d;

static uint32_t next_random(void)
{
    rng_state = rng_state * 6364136223846793005u + 1442695040888963407u;
    return (uint32_t)(rng_state >> 33);
}

static int ascending(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

static int descending(const void *a, const void *b)
{
    return ascending(b, a);
}

static int by_string(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int by_key_then_index(const void *a, const void *b)
{
    const struct record *x = a, *y = b;
    if (x->key != y->key)
        return (x->key > y->key) - (x->key < y->key);
    return (x->index > y->index) - (x->index < y->index);
}

static uint64_t checksum_longs(const long *v, int n)
{
    uint64_t h = 1469598103934665603u;
    for (int i = 0; i < n; i++)
        h = (h ^ (uint64_t)v[i]) * 1099511628211u;
    return h;
}

static void numbers(void)
{
    static long values[NUMBERS];
    for (int i = 0; i < NUMBERS; i++)
        values[i] = (long)(next_random() % 100000) - 50000;

    qsort(values, NUMBERS, sizeof(values[0]), ascending);
    int sorted = 1;
    for (int i = 1; i < NUMBERS; i++)
        sorted &= values[i - 1] <= values[i];
    printf("ascending sorted=%d min=%ld median=%ld max=%ld hash=%016" PRIx64 "\n", sorted, values[0],
           values[NUMBERS / 2], values[NUMBERS - 1], checksum_longs(values, NUMBERS));

    for (int i = 0; i < NUMBERS; i += NUMBERS / 8) {
        long probe = values[i] + i % 2;
        const long *hit = bsearch(&probe, values, NUMBERS, sizeof(values[0]), ascending);
        printf("bsearch %ld: %s\n", probe, hit ? "found" : "absent");
    }

    qsort(values, NUMBERS, sizeof(values[0]), descending);
    printf("descending first=%ld last=%ld hash=%016" PRIx64 "\n", values[0], values[NUMBERS - 1],
           checksum_longs(values, NUMBERS));

    /* Already sorted input and all-equal input are classic worst cases for naive quicksorts. */
    qsort(values, NUMBERS, sizeof(values[0]), descending);
    for (int i = 0; i < NUMBERS; i++)
        values[i] = 7;
    qsort(values, NUMBERS, sizeof(values[0]), ascending);
    printf("degenerate inputs ok, hash=%016" PRIx64 "\n", checksum_longs(values, NUMBERS));
}

static void words(void)
{
    static char storage[WORDS][12];
    static const char *pointers[WORDS];
    for (int i = 0; i < WORDS; i++) {
        int len = 1 + (int)(next_random() % 10);
        for (int j = 0; j < len; j++)
            storage[i][j] = (char)('a' + next_random() % 6);
        storage[i][len] = '\0';
        pointers[i] = storage[i];
    }
    qsort(pointers, WORDS, sizeof(pointers[0]), by_string);
    printf("words:");
    for (int i = 0; i < WORDS; i += 20)
        printf(" %s", pointers[i]);
    printf(" ... %s\n", pointers[WORDS - 1]);
}

static void records(void)
{
    static struct record items[RECORDS];
    for (int i = 0; i < RECORDS; i++) {
        items[i].key = (int)(next_random() % 50);
        items[i].index = i;
        items[i].weight = i * 0.5;
    }
    qsort(items, RECORDS, sizeof(items[0]), by_key_then_index);
    double total = 0;
    int ordered = 1;
    for (int i = 0; i < RECORDS; i++) {
        total += items[i].weight * (i % 7);
        if (i > 0)
            ordered &= by_key_then_index(&items[i - 1], &items[i]) < 0;
    }
    printf("records ordered=%d first=(%d,%d) last=(%d,%d) total=%.1f\n", ordered, items[0].key, items[0].index,
           items[RECORDS - 1].key, items[RECORDS - 1].index, total);
}

int main(void)
{
    numbers();
    words();
    records();
    return 0;
}
