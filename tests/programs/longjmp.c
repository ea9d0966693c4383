/* Non-local control flow: setjmp/longjmp out of deep recursion, longjmp(env, 0) returning 1, nested jump buffers,
 * volatile locals surviving the jump, and sigsetjmp/siglongjmp restoring the signal mask (rt_sigprocmask).
 * glibc mangles the saved stack and instruction pointers with a guard read through %fs. */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>

static jmp_buf outer, inner;
static int depth_reached;

static void dive(int depth, int limit)
{
    volatile char frame[64]; /* gives every level a real stack frame */
    frame[depth % 64] = (char)depth;
    depth_reached = depth;
    if (depth == limit)
        longjmp(outer, depth * 10);
    dive(depth + 1, limit);
    depth_reached = -1; /* never reached: the jump skips every pending return */
}

static int nested(int value)
{
    int code = setjmp(inner);
    if (code == 0)
        longjmp(inner, value);
    return code;
}

static void raise_error(int code)
{
    longjmp(outer, code);
}

static int blocked(int sig)
{
    sigset_t current;
    sigprocmask(SIG_BLOCK, NULL, &current);
    return sigismember(&current, sig);
}

int main(void)
{
    for (volatile int limit = 0; limit <= 200; limit += 50) {
        int code = setjmp(outer);
        if (code == 0)
            dive(0, limit);
        else
            printf("dive to %d: longjmp returned %d, depth reached %d\n", limit, code, depth_reached);
    }

    volatile int counter = 0;
    int code = setjmp(outer);
    counter++;
    if (code < 5)
        raise_error(code + 1);
    printf("retried until code %d, volatile counter %d\n", code, counter);

    if (setjmp(outer) == 0)
        raise_error(0);
    else
        printf("longjmp with 0 makes setjmp return 1\n");

    printf("nested: %d %d %d\n", nested(1), nested(-7), nested(0));

    /* sigsetjmp with savemask=1 restores the mask that was in force when it was called. */
    sigjmp_buf saved;
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    if (sigsetjmp(saved, 1) == 0) {
        sigprocmask(SIG_BLOCK, &usr1, NULL);
        printf("before siglongjmp: SIGUSR1 blocked=%d\n", blocked(SIGUSR1));
        siglongjmp(saved, 1);
    }
    printf("after siglongjmp: SIGUSR1 blocked=%d\n", blocked(SIGUSR1));

    /* savemask=0 leaves the mask as it is at the time of the jump. */
    if (sigsetjmp(saved, 0) == 0) {
        sigprocmask(SIG_BLOCK, &usr1, NULL);
        siglongjmp(saved, 2);
    }
    printf("after siglongjmp without savemask: SIGUSR1 blocked=%d\n", blocked(SIGUSR1));
    return 0;
}
