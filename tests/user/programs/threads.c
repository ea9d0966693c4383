/* Eight POSIX threads: a mutex-protected counter, a condition-variable queue, C11 atomics, join results,
   __thread storage per thread, distinct thread ids; then the cases that need the kernel's help with
   threads (a read() that blocks one thread while another writes, a signal to one thread, fork).
   Every line it prints is the same on every run, natively or under emu. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int main(int argc, char **argv) {
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
