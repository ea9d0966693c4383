/* clone3 (threads and processes from struct clone_args, CLONE_PIDFD, CLONE_CLEAR_SIGHAND, the errors of
   kernel/fork.c) and the signal masks of ppoll, pselect6, epoll_pwait and epoll_pwait2 (set for the wait,
   the old one back after it, the handler's frame holding the old one after EINTR).  Prints what it sees;
   run natively and under emu, the output must match. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/sched.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef CLONE_CLEAR_SIGHAND
#define CLONE_CLEAR_SIGHAND 0x100000000ULL
#endif

static long clone3_call(struct clone_args *args, size_t size) { return syscall(SYS_clone3, args, size); }

static const char *err(long r) { return r >= 0 ? "ok" : strerrorname_np(errno); }

/* -- clone3 ------------------------------------------------------------------------------------------- */
static volatile sig_atomic_t usr2_seen;
static void on_usr2(int sig) { (void)sig; usr2_seen = 1; }

static void clone3_processes(void) {
    struct clone_args args = {.exit_signal = SIGCHLD};
    long pid = clone3_call(&args, sizeof args);
    if (pid == 0)
        _exit(7);
    int status;
    waitpid(pid, &status, 0);
    printf("clone3 fork: child exit %d\n", WEXITSTATUS(status));

    int pidfd = -1;
    args = (struct clone_args){.flags = CLONE_PIDFD, .pidfd = (uintptr_t)&pidfd, .exit_signal = SIGCHLD};
    pid = clone3_call(&args, sizeof args);
    if (pid == 0)
        _exit(9);
    struct pollfd p = {pidfd, POLLIN, 0};
    int ready = poll(&p, 1, 5000);
    siginfo_t info = {0};
    long r = waitid(P_PIDFD, pidfd, &info, WEXITED);
    printf("clone3 CLONE_PIDFD: pidfd >= 3 %d, poll %d, waitid %s, status %d, same pid %d\n", pidfd >= 3, ready,
           err(r), info.si_status, info.si_pid == pid);
    close(pidfd);

    signal(SIGUSR2, on_usr2);
    args = (struct clone_args){.flags = CLONE_CLEAR_SIGHAND, .exit_signal = SIGCHLD};
    pid = clone3_call(&args, sizeof args);
    if (pid == 0) {
        struct sigaction now;
        sigaction(SIGUSR2, NULL, &now);
        _exit(now.sa_handler == SIG_DFL ? 5 : 6);
    }
    waitpid(pid, &status, 0);
    printf("clone3 CLONE_CLEAR_SIGHAND: the child's handler is the default %d\n", WEXITSTATUS(status) == 5);
    signal(SIGUSR2, SIG_DFL);
}

static void clone3_errors(void) {
    struct clone_args args = {.exit_signal = SIGCHLD};
    char big[8192] = {0};
    memcpy(big, &args, sizeof args);
#define TRY(what, call)                                                  \
    do {                                                                 \
        errno = 0;                                                       \
        long r_ = (call);                                                \
        if (r_ == 0)                                                     \
            _exit(0);                                                    \
        printf("%s: %ld %s\n", what, r_ < 0 ? r_ : 1L, err(r_));         \
        if (r_ > 0)                                                      \
            waitpid(r_, NULL, 0);                                        \
    } while (0)
    TRY("size 8", clone3_call(&args, 8));
    TRY("size past a page", clone3_call((struct clone_args *)big, 4097));
    big[200] = 1;
    TRY("unknown field set", clone3_call((struct clone_args *)big, 256));
    big[200] = 0;
    TRY("unknown fields zero", clone3_call((struct clone_args *)big, 256));
    TRY("bad pointer", clone3_call((struct clone_args *)8, sizeof args));
    args.flags = SIGCHLD;
    TRY("CSIGNAL bits in flags", clone3_call(&args, sizeof args));
    args.flags = 0;
    args.exit_signal = 0x1ff;
    TRY("exit_signal past CSIGNAL", clone3_call(&args, sizeof args));
    args.exit_signal = SIGCHLD;
    args.stack_size = 4096;
    TRY("stack_size without stack", clone3_call(&args, sizeof args));
    args.stack_size = 0;
    args.flags = CLONE_THREAD | CLONE_SIGHAND | CLONE_VM;
    TRY("CLONE_THREAD with exit_signal", clone3_call(&args, sizeof args));
    args.flags = CLONE_SIGHAND | CLONE_CLEAR_SIGHAND | CLONE_VM;
    args.exit_signal = 0;
    TRY("CLONE_SIGHAND with CLONE_CLEAR_SIGHAND", clone3_call(&args, sizeof args));
    args.flags = 0;
    args.exit_signal = SIGCHLD;
    pid_t want = 1;
    args.set_tid = (uintptr_t)&want;
    TRY("set_tid without set_tid_size", clone3_call(&args, sizeof args));
    args.set_tid = 0;
    args.set_tid_size = 1;
    TRY("set_tid_size without set_tid", clone3_call(&args, sizeof args));
    args.set_tid_size = 40;
    args.set_tid = (uintptr_t)&want;
    TRY("set_tid_size 40", clone3_call(&args, sizeof args));
    args.set_tid = 0;
    args.set_tid_size = 0;
    args.flags = 1ULL << 40;
    TRY("an unknown flag", clone3_call(&args, sizeof args));
}

/* -- signal masks of the waiting calls ----------------------------------------------------------------------- */
static volatile sig_atomic_t handled, frame_blocks_usr1;

static void on_usr1(int sig, siginfo_t *info, void *context) {
    (void)sig;
    (void)info;
    ucontext_t *uc = context;
    handled++;
    frame_blocks_usr1 = sigismember(&uc->uc_sigmask, SIGUSR1);
}

static int usr1_blocked(void) {
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    return sigismember(&now, SIGUSR1);
}

static void report(const char *what, long r) {
    printf("%s: %ld %s, handled %d, the frame's mask blocks SIGUSR1 %d, blocked after %d\n", what, r,
           r < 0 ? strerrorname_np(errno) : "ok", handled, frame_blocks_usr1, usr1_blocked());
    handled = 0;
    frame_blocks_usr1 = 0;
}

static void wait_masks(void) {
    struct sigaction sa = {.sa_sigaction = on_usr1, .sa_flags = SA_SIGINFO | SA_RESTART};
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t block, open, still;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, NULL);
    sigemptyset(&open);
    sigfillset(&still);
    int pipefd[2];
    pipe(pipefd);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN};
    epoll_ctl(ep, EPOLL_CTL_ADD, pipefd[0], &ev);
    struct timespec ten_ms = {0, 10000000};
    struct pollfd p = {pipefd[0], POLLIN, 0};
    fd_set readable;
    struct epoll_event out;

    raise(SIGUSR1);
    errno = 0;
    report("ppoll unblocking a pending signal", ppoll(&p, 1, NULL, &open));
    raise(SIGUSR1);
    errno = 0;
    report("ppoll keeping it blocked", ppoll(&p, 1, &ten_ms, &still));
    errno = 0;
    report("ppoll with no mask", ppoll(&p, 1, &ten_ms, NULL));
    sigset_t drop;
    sigemptyset(&drop);
    sigaddset(&drop, SIGUSR1);
    int sig;
    sigwait(&drop, &sig);
    printf("sigwait took the pending one: %d\n", sig == SIGUSR1);

    raise(SIGUSR1);
    FD_ZERO(&readable);
    FD_SET(pipefd[0], &readable);
    errno = 0;
    report("pselect unblocking", pselect(pipefd[0] + 1, &readable, NULL, NULL, NULL, &open));

    raise(SIGUSR1);
    errno = 0;
    report("epoll_pwait unblocking", epoll_pwait(ep, &out, 1, -1, &open));
    raise(SIGUSR1);
    errno = 0;
    report("epoll_pwait2 unblocking", syscall(SYS_epoll_pwait2, ep, &out, 1, NULL, &open, 8));
    raise(SIGUSR1);
    errno = 0;
    report("epoll_pwait2 keeping it blocked", syscall(SYS_epoll_pwait2, ep, &out, 1, &ten_ms, &still, 8));
    errno = 0;
    report("epoll_pwait with sigsetsize 4", syscall(SYS_epoll_pwait, ep, &out, 1, 0, &open, 4));
    errno = 0;
    report("ppoll with sigsetsize 4", syscall(SYS_ppoll, &p, 1, &ten_ms, &open, 4));
    write(pipefd[1], "x", 1);
    errno = 0;
    report("epoll_pwait ready at once, the signal pending", epoll_pwait(ep, &out, 1, -1, &open));
    sigwait(&drop, &sig);
    printf("the signal raised during the keeping wait was still pending: %d\n", sig == SIGUSR1);
}

/* sigsuspend in a threaded process: the thread parks, and the mask it had is back after the handler. */
static void *poker(void *arg) {
    (void)arg;
    for (int i = 0; i < 20; i++)
        sched_yield();
    kill(getpid(), SIGUSR1);
    return NULL;
}

static void sigsuspend_with_threads(void) {
    sigset_t block, none;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigemptyset(&none);
    sigprocmask(SIG_BLOCK, &block, NULL);
    pthread_t t;
    pthread_create(&t, NULL, poker, NULL);
    errno = 0;
    report("sigsuspend while another thread runs", sigsuspend(&none));
    pthread_join(t, NULL);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    clone3_processes();
    clone3_errors();
    wait_masks();
    sigsuspend_with_threads();
    return 0;
}
