/* Priority-inheritance futexes: PTHREAD_PRIO_INHERIT mutexes contended by six threads, a condition variable
   used with one, robust PI mutexes whose owner dies, and the futex word protocol through raw futex(2) calls
   (LOCK_PI, LOCK_PI2, TRYLOCK_PI, UNLOCK_PI, WAIT_REQUEUE_PI, CMP_REQUEUE_PI and their errors).  Prints what
   it sees; run natively and under emu, the output must match. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef FUTEX_LOCK_PI2
#define FUTEX_LOCK_PI2 13
#endif
#define THREADS 6
#define ROUNDS 400

static long futex(uint32_t *word, int op, uint32_t val, const void *timeout, uint32_t *word2, uint32_t val3) {
    return syscall(SYS_futex, word, op, val, timeout, word2, val3);
}

static pid_t tid(void) { return (pid_t)syscall(SYS_gettid); }

static const char *result(long r) { return r == 0 ? "ok" : strerrorname_np(errno); }

/* -- pthread mutexes with PTHREAD_PRIO_INHERIT --------------------------------------------------------- */
static pthread_mutex_t lock;
static long counter, in_section, overlaps;

static void *contend(void *arg) {
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        pthread_mutex_lock(&lock);
        if (in_section++)
            overlaps++;
        long c = counter;
        if (i % 7 == 0)
            sched_yield();      /* give up the CPU holding the lock: the others block in FUTEX_LOCK_PI */
        counter = c + 1;
        in_section--;
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

static void contended_mutex(void) {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_INHERIT);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(&lock, &attr);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, contend, NULL);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    printf("PI mutex: counter %ld of %d, overlaps %ld\n", counter, THREADS * ROUNDS, overlaps);
    pthread_mutex_lock(&lock);
    printf("relock by the owner: %s\n", strerrorname_np(pthread_mutex_lock(&lock)));
    pthread_mutex_unlock(&lock);
    struct timespec soon;
    clock_gettime(CLOCK_MONOTONIC, &soon);
    soon.tv_nsec += 1000000;
    if (soon.tv_nsec >= 1000000000) { soon.tv_sec++; soon.tv_nsec -= 1000000000; }
    printf("clocklock free: %s\n", strerrorname_np(pthread_mutex_clocklock(&lock, CLOCK_MONOTONIC, &soon)) ?: "0");
    pthread_mutex_unlock(&lock);
}

/* -- a condition variable with a PI mutex ------------------------------------------------------------------ */
static pthread_mutex_t qlock;
static pthread_cond_t qcond = PTHREAD_COND_INITIALIZER;
static int queue[64], head, tail, done;
static long consumed[4];

static void *consumer(void *arg) {
    long id = (long)arg;
    for (;;) {
        pthread_mutex_lock(&qlock);
        while (head == tail && !done)
            pthread_cond_wait(&qcond, &qlock);
        if (head == tail && done) {
            pthread_mutex_unlock(&qlock);
            return NULL;
        }
        consumed[id] += queue[head++ % 64];
        pthread_mutex_unlock(&qlock);
    }
}

static void condition_variable(void) {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_INHERIT);
    pthread_mutex_init(&qlock, &attr);
    pthread_t t[4];
    for (long i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, consumer, (void *)i);
    for (int v = 1; v <= 1000; v++) {
        pthread_mutex_lock(&qlock);
        while (tail - head >= 64) {
            pthread_mutex_unlock(&qlock);
            sched_yield();
            pthread_mutex_lock(&qlock);
        }
        queue[tail++ % 64] = v;
        pthread_cond_signal(&qcond);
        pthread_mutex_unlock(&qlock);
    }
    pthread_mutex_lock(&qlock);
    done = 1;
    pthread_cond_broadcast(&qcond);
    pthread_mutex_unlock(&qlock);
    long sum = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        sum += consumed[i];
    }
    printf("condition variable with a PI mutex: consumed %ld (expected %d)\n", sum, 1000 * 1001 / 2);
}

/* -- robust PI mutexes whose owner exits ------------------------------------------------------------------- */
static pthread_mutex_t robust;
static uint32_t *robust_word;

static void *take_and_die(void *arg) {
    pthread_mutex_lock(&robust);
    if (arg)   /* wait until the main thread is blocked in the kernel on it */
        while (!(__atomic_load_n(robust_word, __ATOMIC_SEQ_CST) & FUTEX_WAITERS))
            sched_yield();
    return NULL;
}

static void robust_owner_dies(void) {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_INHERIT);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&robust, &attr);
    robust_word = (uint32_t *)&robust.__data.__lock;
    for (long waiting = 0; waiting < 2; waiting++) {
        pthread_t t;
        pthread_create(&t, NULL, take_and_die, (void *)waiting);
        if (waiting)
            while (!(__atomic_load_n(robust_word, __ATOMIC_SEQ_CST) & FUTEX_TID_MASK))
                sched_yield();
        else
            pthread_join(t, NULL);
        int r = pthread_mutex_lock(&robust);
        printf("robust PI, owner died %s: %s, owner is me %d\n", waiting ? "while I waited" : "before",
               strerrorname_np(r), (int)(*robust_word & FUTEX_TID_MASK) == tid());
        pthread_mutex_consistent(&robust);
        pthread_mutex_unlock(&robust);
        if (waiting)
            pthread_join(t, NULL);
    }
}

/* -- a signal while waiting in pthread_mutex_lock: the wait goes on (ERESTARTNOINTR), no EINTR ------------ */
static pthread_mutex_t held;
static volatile int release_it, released, poked, waiter_done;

static void on_poke(int sig) {
    (void)sig;
    poked = 1;
}

static void *holder(void *arg) {
    (void)arg;
    pthread_mutex_lock(&held);
    while (!release_it)
        sched_yield();
    released = 1;
    pthread_mutex_unlock(&held);
    return NULL;
}

static void *blocked_locker(void *arg) {
    int *after_release = arg;
    pthread_mutex_lock(&held);
    *after_release = released;
    pthread_mutex_unlock(&held);
    waiter_done = 1;
    return NULL;
}

static void signal_during_lock(void) {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_INHERIT);
    pthread_mutex_init(&held, &attr);
    struct sigaction sa = {.sa_handler = on_poke};       /* no SA_RESTART */
    sigaction(SIGUSR1, &sa, NULL);
    uint32_t *word = (uint32_t *)&held.__data.__lock;
    pthread_t a, b;
    int after_release = -1;
    pthread_create(&a, NULL, holder, NULL);
    while (!(__atomic_load_n(word, __ATOMIC_SEQ_CST) & FUTEX_TID_MASK))
        sched_yield();
    pthread_create(&b, NULL, blocked_locker, &after_release);
    while (!(__atomic_load_n(word, __ATOMIC_SEQ_CST) & FUTEX_WAITERS))
        sched_yield();
    pthread_kill(b, SIGUSR1);
    while (!poked)
        sched_yield();
    int early = waiter_done;
    release_it = 1;
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    printf("signal during a PI lock wait: handled %d, returned early %d, took it after the release %d\n", poked,
           early, after_release);
    signal(SIGUSR1, SIG_DFL);
}

/* -- the futex word protocol ----------------------------------------------------------------------------- */
static uint32_t pi_word, cond_word, requeued_owned;

static char waiter_saw[128];

static void *pi_waiter(void *arg) {
    (void)arg;
    long r = futex(&pi_word, FUTEX_LOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    snprintf(waiter_saw, sizeof waiter_saw, "waiter: LOCK_PI %s, owner is me %d, waiters bit %d", result(r),
             (int)(pi_word & FUTEX_TID_MASK) == tid(), (pi_word & FUTEX_WAITERS) != 0);
    futex(&pi_word, FUTEX_UNLOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    return NULL;
}

static void *requeue_waiter(void *arg) {
    (void)arg;
    long r = futex(&cond_word, FUTEX_WAIT_REQUEUE_PI_PRIVATE, 0, NULL, &pi_word, 0);
    if (r == 0 && (int)(pi_word & FUTEX_TID_MASK) == tid())
        __atomic_fetch_add(&requeued_owned, 1, __ATOMIC_SEQ_CST);
    futex(&pi_word, FUTEX_UNLOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    return NULL;
}

static void word_protocol(void) {
    long r = futex(&pi_word, FUTEX_LOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    printf("LOCK_PI on 0: %s, word is my tid %d\n", result(r), (int)pi_word == tid());
    r = futex(&pi_word, FUTEX_LOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    printf("LOCK_PI again: %ld %s\n", r, result(r));
    r = futex(&pi_word, FUTEX_UNLOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    printf("UNLOCK_PI: %s, word %u\n", result(r), pi_word);
    r = futex(&pi_word, FUTEX_UNLOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    printf("UNLOCK_PI of a free word: %ld %s\n", r, result(r));
    r = futex(&pi_word, FUTEX_TRYLOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    printf("TRYLOCK_PI on 0: %s\n", result(r));
    futex(&pi_word, FUTEX_UNLOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    pi_word = 0x3ffffff0;        /* a TID that names no thread */
    r = futex(&pi_word, FUTEX_LOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    printf("LOCK_PI owned by no thread: %ld %s\n", r, result(r));
    r = futex(&pi_word, FUTEX_TRYLOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    printf("TRYLOCK_PI owned by no thread: %ld %s\n", r, result(r));
    pi_word = FUTEX_OWNER_DIED;
    r = futex(&pi_word, FUTEX_LOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    printf("LOCK_PI on OWNER_DIED: %s, owner died kept %d\n", result(r),
           pi_word == (FUTEX_OWNER_DIED | (uint32_t)tid()));
    futex(&pi_word, FUTEX_UNLOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    pi_word = 0;
    struct timespec abs;
    clock_gettime(CLOCK_MONOTONIC, &abs);
    r = futex(&pi_word, FUTEX_LOCK_PI2 | FUTEX_PRIVATE_FLAG, 0, &abs, NULL, 0);
    printf("LOCK_PI2 on 0 with a past deadline: %s\n", result(r));
    r = futex(&pi_word, FUTEX_LOCK_PI | FUTEX_CLOCK_REALTIME, 0, NULL, NULL, 0);
    printf("LOCK_PI with FUTEX_CLOCK_REALTIME: %ld %s\n", r, result(r));

    /* a waiter blocks in LOCK_PI; FUTEX_WAKE on the word is EINVAL; UNLOCK_PI hands it over */
    pthread_t t;
    pthread_create(&t, NULL, pi_waiter, NULL);
    while (!(__atomic_load_n(&pi_word, __ATOMIC_SEQ_CST) & FUTEX_WAITERS))
        sched_yield();
    r = futex(&pi_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    printf("FUTEX_WAKE with a PI waiter: %ld %s\n", r, result(r));
    struct timespec past;
    clock_gettime(CLOCK_MONOTONIC, &past);
    r = futex(&pi_word, FUTEX_LOCK_PI2 | FUTEX_PRIVATE_FLAG, 0, &past, NULL, 0);
    printf("LOCK_PI2 by the owner: %ld %s\n", r, result(r));
    r = futex(&pi_word, FUTEX_UNLOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    printf("UNLOCK_PI with a waiter: %s\n", result(r));
    pthread_join(t, NULL);
    printf("%s\nafter the waiter's unlock: word %u\n", waiter_saw, pi_word);

    /* WAIT_REQUEUE_PI and CMP_REQUEUE_PI: three waiters moved onto a PI word the main thread holds */
    r = futex(&cond_word, FUTEX_WAIT_REQUEUE_PI_PRIVATE, 1, NULL, &pi_word, 0);
    printf("WAIT_REQUEUE_PI with a changed word: %ld %s\n", r, result(r));
    r = futex(&cond_word, FUTEX_WAIT_REQUEUE_PI_PRIVATE, 0, NULL, &cond_word, 0);
    printf("WAIT_REQUEUE_PI onto itself: %ld %s\n", r, result(r));
    r = futex(&cond_word, FUTEX_CMP_REQUEUE_PI_PRIVATE, 2, (void *)1L, &pi_word, 0);
    printf("CMP_REQUEUE_PI waking 2: %ld %s\n", r, result(r));
    r = futex(&cond_word, FUTEX_CMP_REQUEUE_PI_PRIVATE, 1, (void *)1L, &pi_word, 5);
    printf("CMP_REQUEUE_PI with a changed word: %ld %s\n", r, result(r));
    futex(&pi_word, FUTEX_LOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    pthread_t w[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&w[i], NULL, requeue_waiter, NULL);
    long moved = 0;
    while (moved < 3) {
        r = futex(&cond_word, FUTEX_CMP_REQUEUE_PI_PRIVATE, 1, (void *)(long)INT_MAX, &pi_word, 0);
        if (r > 0)
            moved += r;
        else
            sched_yield();
    }
    printf("CMP_REQUEUE_PI moved %ld, the lock still mine %d, waiters bit %d\n", moved,
           (int)(pi_word & FUTEX_TID_MASK) == tid(), (pi_word & FUTEX_WAITERS) != 0);
    futex(&pi_word, FUTEX_UNLOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    for (int i = 0; i < 3; i++)
        pthread_join(w[i], NULL);
    printf("requeued waiters that returned owning the PI word: %u, word %u\n", requeued_owned, pi_word);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    contended_mutex();
    condition_variable();
    robust_owner_dies();
    signal_during_lock();
    word_protocol();
    return 0;
}
