/* A fork bomb that stops at EAGAIN: fork children that wait on a pipe until fork fails, report how many
 * it made and why it stopped, let them go, reap them, then fork once more.  With "exec" it first
 * execs itself, so the limit must survive an execve.  tests/user/test_memory.py runs it under
 * `emu run --max-processes N`. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "exec")) {
        execl("/proc/self/exe", argv[0], "bomb", (char *)0);
        perror("execl");
        return 1;
    }
    int gate[2];
    if (pipe(gate)) return 1;
    int made = 0;
    for (;;) {
        pid_t pid = fork();
        if (pid == 0) {
            char c;
            close(gate[1]);
            while (read(gate[0], &c, 1) > 0) {}
            _exit(0);
        }
        if (pid < 0) {
            printf("forked %d, then %s\n", made, errno == EAGAIN ? "EAGAIN" : strerror(errno));
            break;
        }
        if (++made > 10000) break;
    }
    close(gate[1]);
    int reaped = 0;
    while (wait(0) > 0) reaped++;
    printf("reaped %d\n", reaped);
    pid_t pid = fork();
    if (pid == 0) _exit(3);
    int status = 0;
    waitpid(pid, &status, 0);
    printf("after reaping: fork %s, child exit %d\n", pid > 0 ? "ok" : "failed", WEXITSTATUS(status));
    return 0;
}
