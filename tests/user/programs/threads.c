/* Eight POSIX threads: a mutex-protected counter, a condition-variable queue, C11 atomics, join results,
   __thread storage per thread, distinct thread ids; then the cases that need the kernel's help with
   threads (a read() that blocks one thread while another writes, a signal to one thread, fork).
   Every line it prints is the same on every run, natively or under emu. */
#define _GNU_SOURCE
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

int main(void) {
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
