/* Self-modifying code, as x86 runs it: stores into code are seen by the very next instruction fetch.
   1. a function whose immediate is patched before every call (a loop rewriting another block);
   2. a store that overwrites the next instruction of the block that is running;
   both run often enough to become hot in a JIT. */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

int main(void) {
    unsigned char *page = mmap(0, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    static const unsigned char patched[] = {0xb8, 1, 0, 0, 0, 0xc3};       /* mov eax, imm32; ret */
    memcpy(page, patched, sizeof patched);
    int (*first)(void) = (int (*)(void))page;
    long total = 0;
    for (int i = 0; i < 300; i++) {
        page[1] = (unsigned char)i;
        total += first();
    }
    printf("patched before each call: %ld\n", total);

    static const unsigned char inside[] = {
        0xc6, 0x05, 0x01, 0x00, 0x00, 0x00, 0x2a,   /* mov byte ptr [rip + 1], 42: the next instruction's immediate */
        0xb8, 0x07, 0x00, 0x00, 0x00,               /* mov eax, 7 (becomes mov eax, 42 before it runs) */
        0xc3,                                       /* ret */
    };
    memcpy(page + 64, inside, sizeof inside);
    int (*second)(void) = (int (*)(void))(page + 64);
    total = 0;
    for (int i = 0; i < 300; i++) {
        page[64 + 8] = 7;
        total += second();
    }
    printf("stored over the next instruction: %ld\n", total);
    return 0;
}
