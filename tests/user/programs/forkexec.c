/* fork, execve, wait and friends: a parent starts children (itself again, with a role in argv[1]) and prints
   what it learns about them, so that a native and an emulated run can be compared line by line. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *self;

static pid_t start(const char *role, int in) {
    pid_t pid = fork();
    if (pid == 0) {
        if (in >= 0) {
            dup2(in, 0);
            close(in);
        }
        execl(self, self, role, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void report(const char *what, pid_t pid) {
    int status;
    pid_t got = waitpid(pid, &status, 0);
    if (got != pid)
        printf("%s: waitpid failed: %s\n", what, strerror(errno));
    else if (WIFEXITED(status))
        printf("%s: exited with %d\n", what, WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        printf("%s: killed by signal %d (%s)\n", what, WTERMSIG(status), strsignal(WTERMSIG(status)));
}

static void try_exec(const char *what, const char *path) {
    pid_t pid = fork();
    if (pid == 0) {
        execl(path, path, "arg", (char *)NULL);
        printf("exec %s: %s\n", what, strerror(errno));
        _exit(0);
    }
    report(what, pid);
}

static int role(const char *name) {
    if (!strcmp(name, "reader")) {
        char line[64] = {0};
        ssize_t n = read(0, line, sizeof line - 1);
        printf("child read %zd bytes: %s", n, line);
        return 7;
    }
    if (!strcmp(name, "kill-self")) {
        kill(getpid(), SIGTERM);
        pause();
        return 99;
    }
    if (!strcmp(name, "abort"))
        abort();
    if (!strcmp(name, "fds")) {
        printf("in the exec'd child: fd 5 %s, fd 6 %s\n", fcntl(5, F_GETFD) < 0 ? "closed" : "open",
               fcntl(6, F_GETFD) < 0 ? "closed" : "open");
        return 0;
    }
    if (!strcmp(name, "group")) {
        setpgid(0, 0);
        printf("child's own group: %d, session unchanged: %d\n", getpgid(0) == getpid(), getsid(0) == getsid(getppid()));
        pid_t sid = setsid();
        printf("setsid in a group leader: %d %s\n", sid, strerror(errno));
        return 0;
    }
    return 2;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    self = argv[0];
    if (argc > 1)
        return role(argv[1]);

    int p[2];
    if (pipe(p) != 0)
        return 1;
    pid_t reader = start("reader", p[0]);
    close(p[0]);
    if (write(p[1], "hello through a pipe\n", 21) != 21)
        return 1;
    close(p[1]);
    report("reader", reader);
    report("kill-self", start("kill-self", -1));
    report("abort", start("abort", -1));

    int keep[2], drop[2];
    if (pipe(keep) != 0 || pipe2(drop, O_CLOEXEC) != 0)
        return 1;
    dup2(keep[0], 5);
    dup3(drop[0], 6, O_CLOEXEC);
    report("fds", start("fds", -1));

    pid_t group = fork();
    if (group == 0) {
        execl(self, self, "group", (char *)NULL);
        _exit(127);
    }
    report("group", group);

    try_exec("a missing file", "/nonexistent/program");
    char dir[] = "/tmp/forkexecXXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char path[64];
    snprintf(path, sizeof path, "%s/data", dir);
    FILE *f = fopen(path, "w");
    fputs("not a program\n", f);
    fclose(f);
    try_exec("a file without x", path);
    chmod(path, 0755);
    try_exec("a text file with x", path);
    try_exec("a directory", dir);
    snprintf(path, sizeof path, "%s/script", dir);
    f = fopen(path, "w");
    fputs("#!/bin/busybox sh\necho \"script: ${0##*/} $1\"\n", f);
    fclose(f);
    chmod(path, 0755);
    try_exec("a #! script", path);
    unlink(path);
    snprintf(path, sizeof path, "%s/data", dir);
    unlink(path);
    rmdir(dir);

    pid_t v = vfork();
    if (v == 0)
        _exit(4);
    report("vfork", v);
    printf("system(): %d\n", WEXITSTATUS(system("exit 5")));
    siginfo_t info;
    pid_t w = fork();
    if (w == 0)
        _exit(6);
    memset(&info, 0, sizeof info);
    waitid(P_PID, w, &info, WEXITED);
    printf("waitid: pid matches %d, CLD_EXITED %d, status %d\n", info.si_pid == w, info.si_code == CLD_EXITED,
           info.si_status);
    pid_t none = wait(NULL);
    printf("no children left: %d %s\n", none, strerror(errno));
    signal(SIGCHLD, SIG_IGN);
    if (fork() == 0)
        _exit(8);
    none = wait(NULL);
    printf("SIGCHLD ignored, a child that exited is not waited for: %d %s\n", none, strerror(errno));
    return 0;
}
