/* Eight POSIX threads: a mutex-protected counter, a condition-variable queue, C11 atomics, join results,
   __thread storage per thread, distinct thread ids; then the cases that need the kernel's help with
   threads (a read() that blocks one thread while another writes, a signal to one thread, fork).
   Every line it prints is the same on every run, natively or under emu. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define THREADS 8
#define ROUNDS 2000
#define ITEMS 400

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;
static atomic_long atomic_counter;
static __thread long mine = 7;
static pid_t tids[THREADS];

static int queue[16], head, tail, count, done_producing;
static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER, not_full = PTHREAD_COND_INITIALIZER;
static long consumed_sum;

static void *worker(void *arg) {
    long id = (long)arg;
    mine = id * 100;
    tids[id] = (pid_t)syscall(SYS_gettid);
    for (int i = 0; i < ROUNDS; i++) {
        pthread_mutex_lock(&lock);
        counter++;
        pthread_mutex_unlock(&lock);
        atomic_fetch_add(&atomic_counter, 1);
        if (i % 500 == 0)
            sched_yield();
    }
    return (void *)(mine + 1);
}

static void *producer(void *arg) {
    (void)arg;
    for (int i = 1; i <= ITEMS; i++) {
        pthread_mutex_lock(&qlock);
        while (count == 16)
            pthread_cond_wait(&not_full, &qlock);
        queue[tail] = i;
        tail = (tail + 1) % 16;
        count++;
        pthread_cond_signal(&not_empty);
        pthread_mutex_unlock(&qlock);
    }
    pthread_mutex_lock(&qlock);
    done_producing = 1;
    pthread_cond_broadcast(&not_empty);
    pthread_mutex_unlock(&qlock);
    return NULL;
}

static void *consumer(void *arg) {
    long got = 0;
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&qlock);
        while (count == 0 && !done_producing)
            pthread_cond_wait(&not_empty, &qlock);
        if (count == 0) {
            pthread_mutex_unlock(&qlock);
            break;
        }
        int item = queue[head];
        head = (head + 1) % 16;
        count--;
        consumed_sum += item;
        got++;
        pthread_cond_signal(&not_full);
        pthread_mutex_unlock(&qlock);
    }
    return (void *)got;
}

static int pipe_fds[2];

static void *reader(void *arg) {
    char buf[32] = {0};
    (void)arg;
    ssize_t n = read(pipe_fds[0], buf, sizeof buf - 1);
    printf("reader got %zd bytes: %s\n", n, buf);
    return NULL;
}

static volatile sig_atomic_t usr1_tid;

static void on_usr1(int sig) {
    (void)sig;
    usr1_tid = (sig_atomic_t)syscall(SYS_gettid);
}

static volatile int spin_stop;
static volatile pid_t spinner_tid;

static void *spinner(void *arg) {
    (void)arg;
    spinner_tid = (pid_t)syscall(SYS_gettid);
    while (!spin_stop && !usr1_tid)
        ;
    return NULL;
}

static void *exiter(void *arg) {
    (void)arg;
    printf("a thread ends the process\n");
    fflush(stdout);
    exit(5);                        /* exit_group(2) from a thread that is not the main one */
}

static pthread_mutex_t robust;

static void *dies_holding(void *arg) {
    (void)arg;
    pthread_mutex_lock(&robust);
    return NULL;                    /* ends with the lock held: the kernel walks its robust list */
}

static int exit_group_from_thread(void) {
    pthread_t t;
    pthread_create(&t, NULL, exiter, NULL);
    pthread_join(t, NULL);
    printf("not reached\n");
    return 0;
}

static int robust_mutex(void) {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&robust, &attr);
    pthread_t t;
    pthread_create(&t, NULL, dies_holding, NULL);
    pthread_join(t, NULL);
    int err = pthread_mutex_lock(&robust);
    printf("lock after the owner died: %s\n", err == EOWNERDEAD ? "EOWNERDEAD" : strerror(err));
    pthread_mutex_consistent(&robust);
    pthread_mutex_unlock(&robust);
    printf("lock again: %d\n", pthread_mutex_lock(&robust));
    return 0;
}

static pthread_mutex_t pi_lock;
static long pi_counter;

static void *pi_worker(void *arg) {
    (void)arg;
    for (int i = 0; i < 3000; i++) {
        pthread_mutex_lock(&pi_lock);
        pi_counter++;
        if (i % 700 == 0)
            sched_yield();          /* holding the lock: the others block in FUTEX_LOCK_PI */
        pthread_mutex_unlock(&pi_lock);
    }
    return NULL;
}

static int priority_inheritance(void) {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_INHERIT);
    pthread_mutex_init(&pi_lock, &attr);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, pi_worker, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    printf("PI mutex counter %ld\n", pi_counter);
    return 0;
}

static int blocked_pipe[2];
static volatile int reader_ready;

static void on_usr2(int sig) { (void)sig; }

static void *interrupted_reader(void *arg) {
    char c;
    (void)arg;
    reader_ready = 1;
    ssize_t n = read(blocked_pipe[0], &c, 1);
    printf("read in the signalled thread: %zd (%s)\n", n, n < 0 ? strerror(errno) : "data");
    return NULL;
}

static void *cancelled_reader(void *arg) {
    char c;
    (void)arg;
    reader_ready = 1;
    read(blocked_pipe[0], &c, 1);   /* a cancellation point */
    printf("not reached\n");
    return NULL;
}

static int interrupted_calls(void) {
    struct sigaction sa = {0};
    sa.sa_handler = on_usr2;        /* no SA_RESTART: the blocked read fails with EINTR */
    sigaction(SIGUSR2, &sa, NULL);
    pipe(blocked_pipe);
    pthread_t t;
    pthread_create(&t, NULL, interrupted_reader, NULL);
    while (!reader_ready)
        sched_yield();
    usleep(20000);
    pthread_kill(t, SIGUSR2);
    pthread_join(t, NULL);
    reader_ready = 0;
    pthread_create(&t, NULL, cancelled_reader, NULL);
    while (!reader_ready)
        sched_yield();
    usleep(20000);
    pthread_cancel(t);
    void *result;
    pthread_join(t, &result);
    printf("cancelled: %s\n", result == PTHREAD_CANCELED ? "yes" : "no");
    return 0;
}

static uint32_t word_a, word_b;
static atomic_int arrived;

static long futex(uint32_t *uaddr, int op, uint32_t val, long val2, uint32_t *uaddr2, uint32_t val3) {
    return syscall(SYS_futex, uaddr, op, val, val2, uaddr2, val3);
}

static void *futex_waiter(void *arg) {
    (void)arg;
    atomic_fetch_add(&arrived, 1);
    while (futex(&word_a, FUTEX_WAIT_PRIVATE, 0, 0, NULL, 0) != 0 && errno == EINTR)
        ;
    return NULL;
}

static int futex_operations(void) {
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, futex_waiter, NULL);
    while (atomic_load(&arrived) < 4)
        sched_yield();
    long requeued = 0;
    while (requeued < 4) {          /* all four end up waiting on word_b, whenever each started waiting */
        usleep(1000);
        requeued += futex(&word_a, FUTEX_CMP_REQUEUE_PRIVATE, 0, 4, &word_b, 0);
    }
    long woken = futex(&word_a, FUTEX_WAKE_OP_PRIVATE, 1, 4, &word_b,
                       FUTEX_OP(FUTEX_OP_ADD, 5, FUTEX_OP_CMP_EQ, 0));
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    printf("requeued %ld, woken by WAKE_OP %ld, word_b %u\n", requeued, woken, word_b);
    long r = futex(&word_a, FUTEX_CMP_REQUEUE_PRIVATE, 0, 1, &word_b, 9);
    printf("CMP_REQUEUE with a stale value: %ld (%s)\n", r, strerror(errno));
    struct timespec short_wait = {0, 1000000};
    r = futex(&word_a, FUTEX_WAIT_PRIVATE, 0, (long)&short_wait, NULL, 0);
    printf("a timed wait: %ld (%s)\n", r, strerror(errno));
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "interrupt") == 0)
        return interrupted_calls();
    if (argc > 1 && strcmp(argv[1], "futex") == 0)
        return futex_operations();
    if (argc > 1 && strcmp(argv[1], "pi") == 0)
        return priority_inheritance();
    if (argc > 1 && strcmp(argv[1], "exit_group") == 0)
        return exit_group_from_thread();
    if (argc > 1 && strcmp(argv[1], "robust") == 0)
        return robust_mutex();
    pthread_t t[THREADS];
    mine = 1;
    for (long i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    long results = 0;
    for (int i = 0; i < THREADS; i++) {
        void *r;
        pthread_join(t[i], &r);
        results += (long)r;
    }
    printf("counter %ld atomic %ld results %ld main's __thread %ld\n", counter, atomic_load(&atomic_counter), results,
           mine);
    int distinct = 1;
    pid_t self = (pid_t)syscall(SYS_gettid);
    for (int i = 0; i < THREADS; i++) {
        if (tids[i] == self || tids[i] == getpid())
            distinct = 0;
        for (int j = 0; j < i; j++)
            if (tids[i] == tids[j])
                distinct = 0;
    }
    printf("thread ids distinct: %s; main's tid is the pid: %s\n", distinct ? "yes" : "no",
           self == getpid() ? "yes" : "no");

    pthread_t p, c[3];
    pthread_create(&p, NULL, producer, NULL);
    for (int i = 0; i < 3; i++)
        pthread_create(&c[i], NULL, consumer, NULL);
    pthread_join(p, NULL);
    long items = 0;
    for (int i = 0; i < 3; i++) {
        void *r;
        pthread_join(c[i], &r);
        items += (long)r;
    }
    printf("consumed %ld items, sum %ld\n", items, consumed_sum);

    pipe(pipe_fds);
    pthread_t r;
    pthread_create(&r, NULL, reader, NULL);
    for (volatile int i = 0; i < 200000; i++)
        ;
    write(pipe_fds[1], "through the pipe", 16);
    pthread_join(r, NULL);

    signal(SIGUSR1, on_usr1);
    pthread_t s;
    pthread_create(&s, NULL, spinner, NULL);
    while (!spinner_tid)
        sched_yield();
    pthread_kill(s, SIGUSR1);
    pthread_join(s, NULL);
    printf("SIGUSR1 ran on the spinner: %s\n", usr1_tid == spinner_tid ? "yes" : "no");

    pthread_create(&s, NULL, spinner, NULL);
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        printf("child: one thread, tid is pid: %s\n", syscall(SYS_gettid) == getpid() ? "yes" : "no");
        fflush(stdout);
        _exit(3);
    }
    int status;
    waitpid(child, &status, 0);
    spin_stop = 1;
    pthread_join(s, NULL);
    printf("child exited with %d\n", WEXITSTATUS(status));
    return 0;
}
