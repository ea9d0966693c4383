/* Memory as Linux manages it, one subtest per run (argv[1]); tests/user/test_memory.py runs each natively
 * and under emu and compares.  Every line printed is the same on both, so no addresses are printed
 * except as offsets. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static sigjmp_buf back;
static volatile uintptr_t fault_base;

static void on_segv(int sig, siginfo_t *info, void *ctx) {
    (void)ctx;
    printf("signal %d si_code %s si_addr %s\n", sig,
           info->si_code == SEGV_ACCERR ? "SEGV_ACCERR" : info->si_code == SEGV_MAPERR ? "SEGV_MAPERR" : "other",
           (uintptr_t)info->si_addr == fault_base ? "at the page" : "elsewhere");
    siglongjmp(back, 1);
}

static void catch_segv(void) {
    static char altstack[65536];
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
    sigaltstack(&ss, 0);
    struct sigaction sa = {0};
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigaction(SIGSEGV, &sa, 0);
}

/* "reserve": 2^36 bytes PROT_NONE|MAP_NORESERVE, then a few pages inside made usable and touched. */
static int reserve(void) {
    size_t size = (size_t)1 << 36;
    char *arena = mmap(0, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (arena == MAP_FAILED) { printf("reserve failed: %s\n", strerror(errno)); return 1; }
    printf("reserved 2^36\n");
    size_t offsets[] = {0, size / 2, size - 4096 * 4};
    for (int i = 0; i < 3; i++) {
        char *p = mmap(arena + offsets[i], 4096 * 4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                       -1, 0);
        if (p != arena + offsets[i]) { printf("map inside failed\n"); return 1; }
        for (int j = 0; j < 4; j++) p[j * 4096 + 7] = (char)(i * 4 + j);
    }
    int sum = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) sum += arena[offsets[i] + j * 4096 + 7];
    printf("sum %d\n", sum);
    catch_segv();
    fault_base = (uintptr_t)(arena + 4096 * 4);
    if (!sigsetjmp(back, 1)) { *(volatile char *)(arena + 4096 * 4) = 1; printf("no fault\n"); }
    printf("munmap %d\n", munmap(arena, size));
    return 0;
}

/* "code": run generated code, make it PROT_NONE, PROT_READ, unmap it, map other code there, then map a
 * file's code over it with MAP_FIXED (no write to the page: only the mapping changes). */
static int code(const char *path) {
    static const unsigned char ret42[] = {0xb8, 42, 0, 0, 0, 0xc3};      /* mov eax, 42; ret */
    static const unsigned char ret7[] = {0xb8, 7, 0, 0, 0, 0xc3};        /* mov eax, 7; ret */
    unsigned char *page = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memcpy(page, ret42, sizeof ret42);
    mprotect(page, 4096, PROT_READ | PROT_EXEC);
    int (*fn)(void) = (int (*)(void))page;
    long total = 0;
    for (int i = 0; i < 20000; i++) total += fn();                   /* hot: the JIT compiles it */
    printf("called %ld\n", total);
    catch_segv();
    fault_base = (uintptr_t)page;
    int prots[] = {PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE};
    for (int i = 0; i < 3; i++) {
        mprotect(page, 4096, prots[i]);
        if (!sigsetjmp(back, 1)) printf("prot %d: returned %d\n", prots[i], fn());
    }
    mprotect(page, 4096, PROT_READ | PROT_EXEC);
    printf("exec again: %d\n", fn());
    munmap(page, 4096);
    if (!sigsetjmp(back, 1)) printf("unmapped: returned %d\n", fn());
    unsigned char *again = mmap(page, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    memcpy(again, ret7, sizeof ret7);
    mprotect(again, 4096, PROT_READ | PROT_EXEC);
    printf("new code: %d\n", fn());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, ret42, sizeof ret42) != (ssize_t)sizeof ret42) return 1;
    void *over = mmap(again, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_FIXED, fd, 0);
    printf("MAP_FIXED file code over it: %d %d\n", over == again, fn());
    close(fd);
    unlink(path);
    return 0;
}

/* "data": a hot function reads and writes a page through the JIT's inline TLB; then the page is made
 * read-only, PROT_NONE, and unmapped: the same function's accesses fault as natively. */
static __attribute__((noinline)) long touch_page(volatile long *p, int write) {
    long sum = 0;
    for (int i = 0; i < 512; i += 8) {
        if (write) p[i] = i;
        sum += p[i];
    }
    return sum;
}

static int data(void) {
    volatile long *page = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    long total = 0;
    for (int i = 0; i < 2000; i++) total += touch_page(page, i & 1);
    printf("hot: %ld\n", total);
    catch_segv();
    fault_base = (uintptr_t)page;
    mprotect((void *)page, 4096, PROT_READ);
    if (!sigsetjmp(back, 1)) printf("read-only, read: %ld\n", touch_page(page, 0));
    if (!sigsetjmp(back, 1)) printf("read-only, write: %ld\n", touch_page(page, 1));
    mprotect((void *)page, 4096, PROT_NONE);
    if (!sigsetjmp(back, 1)) printf("PROT_NONE, read: %ld\n", touch_page(page, 0));
    mprotect((void *)page, 4096, PROT_READ | PROT_WRITE);
    printf("read-write again: %ld\n", touch_page(page, 0));
    madvise((void *)page, 4096, MADV_DONTNEED);
    printf("after MADV_DONTNEED: %ld\n", touch_page(page, 0));
    munmap((void *)page, 4096);
    if (!sigsetjmp(back, 1)) printf("unmapped, read: %ld\n", touch_page(page, 0));
    return 0;
}

/* "maps": what /proc/self/maps says of an anonymous mapping, a file mapping at an offset, the heap,
 * the stack and the vsyscall page (addresses differ between runs: only the facts are printed). */
static void describe(const char *what, uintptr_t address) {
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[512];
    while (fgets(line, sizeof line, maps)) {
        unsigned long start, end, offset;
        char perms[8], name[400] = "";
        if (sscanf(line, "%lx-%lx %7s %lx %*s %*s %399[^\n]", &start, &end, perms, &offset, name) < 4) continue;
        if (start <= address && address < end) {
            const char *base = strrchr(name, '/');
            printf("%s: %s offset %lx name [%s]\n", what, perms, offset, base ? base + 1 : name);
            fclose(maps);
            return;
        }
    }
    printf("%s: not in maps\n", what);
    fclose(maps);
}

static int maps(const char *path) {
    char *anon = mmap(0, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mprotect(anon + 4096, 4096, PROT_READ);
    describe("anonymous", (uintptr_t)anon);
    describe("its read-only middle", (uintptr_t)anon + 4096);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    char block[3 * 4096] = {0};
    if (write(fd, block, sizeof block) != (ssize_t)sizeof block) return 1;
    char *file = mmap(0, 8192, PROT_READ, MAP_PRIVATE, fd, 4096);
    describe("file", (uintptr_t)file + 4096);
    void *heap = sbrk(0);
    sbrk(8192);
    describe("heap", (uintptr_t)heap);
    int local = 0;
    describe("stack", (uintptr_t)&local);
    describe("vsyscall", 0xffffffffff600000);
    unlink(path);
    return 0;
}

/* "dontneed": MADV_DONTNEED on anonymous memory (zeros) and on a private file mapping (the file again). */
static int dontneed(const char *path) {
    char *anon = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    strcpy(anon, "anonymous");
    strcpy(anon + 4096, "second");
    printf("madvise %d\n", madvise(anon, 4096, MADV_DONTNEED));
    printf("anon after: [%s] [%s]\n", anon, anon + 4096);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    char block[6000];
    memset(block, 'f', sizeof block);
    memcpy(block, "file contents", 13);
    if (write(fd, block, sizeof block) != (ssize_t)sizeof block) return 1;
    char *file = mmap(0, 12288, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    printf("file before: [%.13s] tail %d\n", file, file[6000]);
    memcpy(file, "private write", 13);
    file[8000] = 'x';
    printf("file written: [%.13s] %c\n", file, file[8000]);
    if (pwrite(fd, "FILE", 4, 0) != 4) return 1;     /* the file changes under the private copy */
    printf("private copy kept: [%.13s]\n", file);
    printf("madvise %d\n", madvise(file, 12288, MADV_DONTNEED));
    printf("file after: [%.13s] tail %d %d\n", file, file[6000], file[8000]);
    int zero = open("/dev/zero", O_RDWR);
    char *z = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE, zero, 0);
    z[4100] = 'z';
    printf("/dev/zero: %d %c,", z[0], z[4100]);
    printf(" after madvise %d", madvise(z, 8192, MADV_DONTNEED));
    printf(" %d\n", z[4100]);
    int ends[2];
    if (pipe(ends)) return 1;
    printf("a pipe: %s\n", mmap(0, 4096, PROT_READ, MAP_PRIVATE, ends[0], 0) == MAP_FAILED ? strerror(errno) : "mapped");
    int r = madvise(file + 12288 * 64, 4096, MADV_DONTNEED);
    printf("unmapped range: %d %s\n", r, strerror(errno));
    unlink(path);
    return 0;
}

/* "remap": mremap grows in place, moves, shrinks, MREMAP_FIXED; MAP_FIXED_NOREPLACE; munmap holes. */
static int remap(void) {
    char *a = mmap(0, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(a + 4096, 2 * 4096);                         /* a hole of two pages, then the last page */
    strcpy(a, "kept");
    char *b = mremap(a, 4096, 3 * 4096, 0);
    printf("grown in place: %d [%s]\n", b == a, b);
    b[2 * 4096] = 'z';
    printf("into the blocker: %s\n", mmap(a + 3 * 4096, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS
                                          | MAP_FIXED_NOREPLACE, -1, 0) == MAP_FAILED ? strerror(errno) : "mapped");
    printf("noreplace: %s\n", mmap(a, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0)
                                  == MAP_FAILED ? strerror(errno) : "mapped");
    printf("no move: %s\n", mremap(a, 3 * 4096, 5 * 4096, 0) == MAP_FAILED ? strerror(errno) : "grew");
    char *c = mremap(a, 3 * 4096, 5 * 4096, MREMAP_MAYMOVE);
    printf("moved: %d [%s] %c %d\n", c != a, c, c[2 * 4096], c[4 * 4096]);
    catch_segv();
    fault_base = (uintptr_t)a;
    if (!sigsetjmp(back, 1)) printf("old address: %d\n", *(volatile char *)a);
    char *d = mremap(c, 5 * 4096, 4096, 0);
    printf("shrunk: %d [%s]\n", d == c, d);
    fault_base = (uintptr_t)(c + 4096);
    if (!sigsetjmp(back, 1)) printf("past the end: %d\n", *(volatile char *)(c + 4096));
    char *target = mmap(0, 4 * 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *e = mremap(d, 4096, 2 * 4096, MREMAP_MAYMOVE | MREMAP_FIXED, target + 4096);
    printf("fixed: %d [%s] %d\n", e == target + 4096, e, e[4096]);
    printf("overlap: %s\n", mremap(e, 4096, 4096, MREMAP_MAYMOVE | MREMAP_FIXED, e) == MAP_FAILED ? strerror(errno)
                                                                                                   : "moved");
    printf("unmapped source: %s\n", mremap(d, 4096, 4096, MREMAP_MAYMOVE) == MAP_FAILED ? strerror(errno) : "moved");
    return 0;
}

/* "stack": the stack grows on touch; RLIMIT_STACK lowered at run time stops it (SIGSEGV on the alternate
 * stack). */
static int depth(int n) {
    volatile char frame[1024];
    frame[0] = (char)n;
    return n == 0 ? frame[0] : depth(n - 1) + frame[0] - frame[0];
}

static int stack(void) {
    printf("4 MiB deep: %d\n", depth(4000));
    struct rlimit rl = {6 << 20, RLIM_INFINITY};
    setrlimit(RLIMIT_STACK, &rl);
    catch_segv();
    fault_base = 0;
    if (!sigsetjmp(back, 1)) printf("7 MiB deep: %d\n", depth(7000));
    return 0;
}

/* "rlimit_as": RLIMIT_AS caps the mappings: ENOMEM past it, fine below it. */
static int rlimit_as(void) {
    struct rlimit rl = {256 << 20, RLIM_INFINITY};
    setrlimit(RLIMIT_AS, &rl);
    void *big = mmap(0, 512 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    printf("512 MiB: %s\n", big == MAP_FAILED ? strerror(errno) : "mapped");
    void *small = mmap(0, 16 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("16 MiB: %s\n", small == MAP_FAILED ? strerror(errno) : "mapped");
    void *p = malloc(300 << 20);
    printf("malloc 300 MiB: %s\n", p ? "got memory" : "NULL");
    return 0;
}

/* "rlimit_data": RLIMIT_DATA limits private writable mappings and the break, not read-only or shared ones. */
static int rlimit_data(void) {
    struct rlimit rl = {64 << 20, RLIM_INFINITY};
    setrlimit(RLIMIT_DATA, &rl);
    void *big = mmap(0, 128 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("128 MiB writable private: %s\n", big == MAP_FAILED ? strerror(errno) : "mapped");
    void *ro = mmap(0, 128 << 20, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("128 MiB read-only: %s\n", ro == MAP_FAILED ? strerror(errno) : "mapped");
    errno = 0;
    int r = mprotect(ro, 128 << 20, PROT_READ | PROT_WRITE);
    printf("made writable: %d %s\n", r, strerror(errno));
    void *shared = mmap(0, 128 << 20, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    printf("128 MiB writable shared: %s\n", shared == MAP_FAILED ? strerror(errno) : "mapped");
    void *small = mmap(0, 8 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("8 MiB writable private: %s\n", small == MAP_FAILED ? strerror(errno) : "mapped");
    errno = 0;
    void *grown = sbrk(100 << 20);
    printf("sbrk 100 MiB: %s\n", grown == (void *)-1 ? strerror(errno) : "grown");
    grown = sbrk(1 << 20);
    printf("sbrk 1 MiB: %s\n", grown == (void *)-1 ? strerror(errno) : "grown");
    void *p = malloc(200 << 20);
    printf("malloc 200 MiB: %s\n", p ? "got memory" : "NULL");
    rl.rlim_cur = 0;
    setrlimit(RLIMIT_DATA, &rl);
    void *tiny = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("soft limit 0, hard unlimited: %s\n", tiny == MAP_FAILED ? strerror(errno) : "mapped");
    return 0;
}

/* "growsdown": a MAP_GROWSDOWN mapping grows down on a fault below it, as the stack does. */
static int growsdown(void) {
    char *hole = mmap(0, 16 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    munmap(hole, 16 << 20);
    char *top = hole + (16 << 20) - 4096;
    char *g = mmap(top, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_GROWSDOWN,
                   -1, 0);
    printf("mapped at the top of the hole: %d\n", g == top);
    volatile char *below = g - 5 * 4096;
    *below = 42;
    printf("five pages below: %d\n", *below);
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[512];
    unsigned long lo, hi;
    while (fgets(line, sizeof line, maps))
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && hi == (unsigned long)(g + 4096))
            printf("the mapping now starts %lu pages lower\n", ((unsigned long)g - lo) / 4096);
    fclose(maps);
    return 0;
}

/* "vsyscall": call the legacy vsyscall page's entry points; reading it is SIGSEGV. */
static int vsyscall(void) {
    time_t (*vtime)(time_t *) = (time_t (*)(time_t *))0xffffffffff600400;
    int (*vgettimeofday)(struct timeval *, void *) = (int (*)(struct timeval *, void *))0xffffffffff600000;
    long (*vgetcpu)(unsigned *, unsigned *, void *) = (long (*)(unsigned *, unsigned *, void *))0xffffffffff600800;
    time_t stored = 0, got = vtime(&stored);
    time_t now = time(0);
    printf("time: %s, stored %s\n", got >= now - 2 && got <= now ? "now" : "wrong", stored == got ? "too" : "not");
    struct timeval tv;
    int r = vgettimeofday(&tv, 0);
    printf("gettimeofday: %d %s\n", r, tv.tv_sec >= now - 2 && tv.tv_sec <= now + 2 ? "now" : "wrong");
    unsigned cpu = 1000, node = 1000;
    long c = vgetcpu(&cpu, &node, 0);
    printf("getcpu: %ld %s\n", c, cpu < 1000 && node < 1000 ? "set" : "unset");
    catch_segv();
    fault_base = 0xffffffffff600000;
    if (!sigsetjmp(back, 1)) printf("read: %d\n", *(volatile unsigned char *)0xffffffffff600000);
    fault_base = 0xffffffffff600100;
    void (*middle)(void) = (void (*)(void))0xffffffffff600100;
    if (!sigsetjmp(back, 1)) { middle(); printf("middle returned\n"); }
    return 0;
}

/* "commit": malloc 1 MiB blocks (each its own mmap) until malloc fails: ENOMEM at the commitment limit. */
static int commit(void) {
    long n = 0;
    while (malloc(1 << 20) != 0 && n < 1 << 20) n++;
    printf("malloc failed after %ld MiB: %s\n", n, strerror(errno));
    return 0;
}

/* "touch": touch the pages of a huge MAP_NORESERVE mapping until the process is killed. */
static int touch(void) {
    char *p = mmap(0, (size_t)1 << 34, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) { printf("mmap failed: %s\n", strerror(errno)); return 1; }
    for (size_t at = 0; at < (size_t)1 << 34; at += 4096) p[at] = 1;
    printf("touched 16 GiB\n");
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, 0, _IONBF, 0);
    const char *t = argc > 1 ? argv[1] : "";
    if (!strcmp(t, "reserve")) return reserve();
    if (!strcmp(t, "code")) return code(argc > 2 ? argv[2] : "code.tmp");
    if (!strcmp(t, "data")) return data();
    if (!strcmp(t, "maps")) return maps(argc > 2 ? argv[2] : "maps.tmp");
    if (!strcmp(t, "dontneed")) return dontneed(argc > 2 ? argv[2] : "dontneed.tmp");
    if (!strcmp(t, "remap")) return remap();
    if (!strcmp(t, "stack")) return stack();
    if (!strcmp(t, "rlimit_as")) return rlimit_as();
    if (!strcmp(t, "rlimit_data")) return rlimit_data();
    if (!strcmp(t, "growsdown")) return growsdown();
    if (!strcmp(t, "vsyscall")) return vsyscall();
    if (!strcmp(t, "commit")) return commit();
    if (!strcmp(t, "touch")) return touch();
    fprintf(stderr, "unknown subtest %s\n", t);
    return 2;
}
