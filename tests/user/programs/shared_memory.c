/* MAP_SHARED memory across fork: process-shared semaphores and mutexes handing a counter back and forth,
   atomic increments from two processes, a shared file mapping, a private mapping that stays private, and
   SIGBUS past the end of a mapped file.  Prints what it sees; run natively and under emu, the output must
   match. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define ROUNDS 200

struct shared {
    sem_t ping, pong;
    long counter;
    pthread_mutex_t mutex;
    long total;
    long atomic;
    char trail[64];
};

static void wait_child(pid_t pid, const char *what) {
    int status;
    waitpid(pid, &status, 0);
    printf("%s: child exit %d\n", what, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

static void semaphores_and_mutexes(void) {
    struct shared *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    sem_init(&s->ping, 1, 0);
    sem_init(&s->pong, 1, 0);
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(&s->mutex, &attr);
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < ROUNDS; i++) {
            sem_wait(&s->ping);
            s->counter = s->counter * 3 % 1000003 + 1;
            sem_post(&s->pong);
        }
        for (int i = 0; i < 300; i++) {
            pthread_mutex_lock(&s->mutex);
            long t = s->total;
            if (i % 50 == 0)
                sched_yield();
            s->total = t + 1;
            pthread_mutex_unlock(&s->mutex);
        }
        for (int i = 0; i < 1000; i++)
            __atomic_fetch_add(&s->atomic, 1, __ATOMIC_SEQ_CST);
        _exit(0);
    }
    for (int i = 0; i < ROUNDS; i++) {
        s->counter = s->counter * 7 % 1000003;
        sem_post(&s->ping);
        sem_wait(&s->pong);
    }
    printf("counter after %d rounds each: %ld\n", ROUNDS, s->counter);
    for (int i = 0; i < 300; i++) {
        pthread_mutex_lock(&s->mutex);
        long t = s->total;
        if (i % 50 == 0)
            sched_yield();
        s->total = t + 1;
        pthread_mutex_unlock(&s->mutex);
    }
    for (int i = 0; i < 1000; i++)
        __atomic_fetch_add(&s->atomic, 1, __ATOMIC_SEQ_CST);
    wait_child(pid, "semaphores");
    printf("total under the shared mutex: %ld, atomic: %ld\n", s->total, s->atomic);
    munmap(s, sizeof *s);
}

/* A thread of the parent waits on a shared semaphore the child posts, while the parent's main thread runs. */
static sem_t *relay;

static void *relay_waiter(void *arg) {
    long *got = arg;
    for (int i = 0; i < 50; i++) {
        sem_wait(&relay[0]);
        ++*got;
        sem_post(&relay[1]);
    }
    return NULL;
}

static void a_thread_waits_for_another_process(void) {
    relay = mmap(NULL, 2 * sizeof(sem_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    sem_init(&relay[0], 1, 0);
    sem_init(&relay[1], 1, 0);
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 50; i++) {
            sem_post(&relay[0]);
            sem_wait(&relay[1]);
        }
        _exit(0);
    }
    long got = 0, spins = 0;
    pthread_t t;
    pthread_create(&t, NULL, relay_waiter, &got);
    for (int i = 0; i < 200000; i++)
        spins += i & 1;
    pthread_join(t, NULL);
    wait_child(pid, "relay");
    printf("the thread took %ld posts; the main thread spun %ld\n", got, spins);
}

static void file_and_private(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/shared.bin", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    ftruncate(fd, 4096);
    char *file = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int *private = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    *private = 1;
    pid_t pid = fork();
    if (pid == 0) {
        strcpy(file + 100, "written by the child through its mapping");
        *private = 2;
        _exit(0);
    }
    wait_child(pid, "file mapping");
    char back[64] = {0};
    pread(fd, back, sizeof back - 1, 100);
    printf("parent's mapping: '%s'\nthe file: '%s'\nprivate stays %d\n", file + 100, back, *private);
    pwrite(fd, "PWRITE", 6, 100);
    printf("after pwrite, the mapping: '%.20s'\n", file + 100);
    munmap(file, 4096);
    close(fd);
    fd = open(path, O_RDONLY);
    errno = 0;
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    printf("writable shared mapping of a read-only descriptor: %s\n", p == MAP_FAILED ? strerror(errno) : "mapped");
    char *ro = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    errno = 0;
    int r = mprotect(ro, 4096, PROT_READ | PROT_WRITE);
    printf("read-only: '%.6s', mprotect to writable: %d %s\n", ro + 100, r, strerror(errno));
    munmap(ro, 4096);
    close(fd);
    unlink(path);
}

static sigjmp_buf escape;
static volatile siginfo_t seen;

static void on_bus(int sig, siginfo_t *info, void *context) {
    (void)context;
    seen = *info;
    siglongjmp(escape, sig);
}

static void past_the_end(const char *dir, int flags, const char *what) {
    char path[512];
    snprintf(path, sizeof path, "%s/short.bin", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    write(fd, "short file", 10);
    volatile char *map = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, flags, fd, 0);
    struct sigaction sa = {.sa_sigaction = on_bus, .sa_flags = SA_SIGINFO};
    sigaction(SIGBUS, &sa, NULL);
    printf("%s: first page '%.10s', byte past the end of the file %d\n", what, (char *)map, map[100]);
    int sig = sigsetjmp(escape, 1);
    if (sig == 0) {
        map[4096 + 5] = 1;
        printf("%s: no signal\n", what);
    } else {
        printf("%s: signal %d code %d at page offset %ld\n", what, sig, seen.si_code,
               (long)((char *)seen.si_addr - (char *)map));
    }
    errno = 0;
    ssize_t n = write(1, (char *)map + 2 * 4096, 4);
    printf("%s: write(2) from past the end: %zd %s\n", what, n, strerror(errno));
    signal(SIGBUS, SIG_DFL);
    munmap((void *)map, 3 * 4096);
    close(fd);
    unlink(path);
}

/* A signal ends a wait on a process-shared semaphore (no SA_RESTART: EINTR); the child sends it once the
   parent is among the semaphore's waiters (glibc counts them in the high half of its 64-bit word). */
struct poke {
    sem_t sem;
    volatile int handled;
};
static struct poke *poke;

static void on_poke(int sig) {
    (void)sig;
    poke->handled = 1;
}

static void a_signal_ends_a_shared_wait(void) {
    poke = mmap(NULL, sizeof *poke, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    sem_init(&poke->sem, 1, 0);
    struct sigaction sa = {.sa_handler = on_poke};
    sigaction(SIGUSR1, &sa, NULL);
    pid_t parent = getpid(), pid = fork();
    if (pid == 0) {
        uint64_t *data = (uint64_t *)&poke->sem;
        while (!(__atomic_load_n(data, __ATOMIC_SEQ_CST) >> 32))
            sched_yield();
        kill(parent, SIGUSR1);
        while (!poke->handled)
            sched_yield();
        sem_post(&poke->sem);
        _exit(0);
    }
    int r = sem_wait(&poke->sem);
    int e = errno;
    printf("sem_wait: %d %s, handler ran %d\n", r, r ? strerror(e) : "ok", poke->handled);
    printf("then, after the post: %d\n", sem_wait(&poke->sem));
    wait_child(pid, "signal");
    signal(SIGUSR1, SIG_DFL);
}

/* A JIT's pattern: code written through a writable shared alias of the memfd it runs from. */
static void code_through_an_alias(void) {
    int fd = memfd_create("jit", 0);
    ftruncate(fd, 4096);
    unsigned char *rw = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int (*fn)(void) = (int (*)(void))mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);
    int sum = 0;
    for (int v = 1; v <= 3; v++) {
        unsigned char code[] = {0xb8, (unsigned char)v, 0, 0, 0, 0xc3};      /* mov eax, v; ret */
        memcpy(rw, code, sizeof code);
        for (int i = 0; i < 100; i++)
            sum += fn();
    }
    printf("code rewritten through a writable alias: %d\n", sum);
    close(fd);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    semaphores_and_mutexes();
    a_thread_waits_for_another_process();
    file_and_private(dir);
    past_the_end(dir, MAP_PRIVATE, "private");
    past_the_end(dir, MAP_SHARED, "shared");
    code_through_an_alias();
    a_signal_ends_a_shared_wait();
    return 0;
}
