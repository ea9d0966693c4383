/* The allocator under churn: a few thousand malloc/calloc/realloc/free calls of pseudo-random sizes, from tiny
 * chunks to blocks large enough to be served by mmap, with every block's contents checked before it is freed.
 * Only contents and counts are printed, never addresses. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SLOTS = 256, ROUNDS = 3000 };

struct block {
    unsigned char *data;
    size_t size;
    unsigned char tag;
};

static uint32_t rng_state = 12345;

static uint32_t next_random(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static size_t random_size(void)
{
    uint32_t r = next_random();
    if (r % 256 == 0)
        return 140000 + r % 60000; /* above the initial mmap threshold */
    if (r % 16 == 0)
        return 1000 + r % 5000;
    return 1 + r % 300;
}

/* Probing every 97th byte and the last one keeps the check cheap enough for an emulator. */
static int intact(const struct block *b)
{
    for (size_t i = 0; i < b->size; i += 97)
        if (b->data[i] != b->tag)
            return 0;
    return b->size == 0 || b->data[b->size - 1] == b->tag;
}

static void fill(struct block *b, size_t from)
{
    if (from < b->size)
        memset(b->data + from, b->tag, b->size - from);
}

int main(void)
{
    static struct block slots[SLOTS];
    unsigned long mallocs = 0, reallocs = 0, frees = 0, corrupt = 0;
    uint64_t live_bytes = 0, peak_bytes = 0;

    for (int round = 0; round < ROUNDS; round++) {
        struct block *b = &slots[next_random() % SLOTS];
        if (b->data == NULL) {
            b->size = random_size();
            b->tag = (unsigned char)(round | 1);
            b->data = malloc(b->size);
            if (b->data == NULL)
                return 2;
            fill(b, 0);
            mallocs++;
            live_bytes += b->size;
        } else if (next_random() % 3 == 0) {
            /* Grow or shrink in place of a free: the preserved prefix must survive the move. */
            size_t old = b->size, keep;
            b->size = random_size();
            keep = old < b->size ? old : b->size;
            unsigned char *moved = realloc(b->data, b->size);
            if (moved == NULL)
                return 2;
            b->data = moved;
            size_t saved = b->size;
            b->size = keep;
            corrupt += !intact(b);
            b->size = saved;
            fill(b, keep);
            reallocs++;
            live_bytes += b->size - old;
        } else {
            corrupt += !intact(b);
            free(b->data);
            b->data = NULL;
            frees++;
            live_bytes -= b->size;
        }
        if (live_bytes > peak_bytes)
            peak_bytes = live_bytes;
    }

    unsigned long remaining = 0;
    for (int i = 0; i < SLOTS; i++) {
        if (slots[i].data != NULL) {
            corrupt += !intact(&slots[i]);
            free(slots[i].data);
            remaining++;
        }
    }

    /* calloc must hand back zeroed memory, even when reusing freed chunks. */
    unsigned long nonzero = 0;
    for (int i = 0; i < 60; i++) {
        size_t n = 1 + next_random() % 2000;
        unsigned char *p = calloc(n, 1);
        if (p == NULL)
            return 2;
        for (size_t j = 0; j < n; j++)
            nonzero += p[j] != 0;
        memset(p, 0xab, n);
        free(p);
    }

    printf("mallocs=%lu reallocs=%lu frees=%lu remaining=%lu\n", mallocs, reallocs, frees, remaining);
    printf("peak live bytes=%" PRIu64 " final live bytes=%" PRIu64 "\n", peak_bytes, live_bytes);
    printf("corrupt blocks=%lu nonzero calloc bytes=%lu\n", corrupt, nonzero);
    return corrupt != 0 || nonzero != 0;
}
