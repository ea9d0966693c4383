/* sendmsg/recvmsg/sendmmsg/recvmmsg on AF_UNIX sockets: a pipe's descriptor passed to a forked child
   with SCM_RIGHTS, truncated control data, SCM_CREDENTIALS, datagrams with msg_name, and the errors
   Linux gives for bad arguments.  Prints what it sees; run natively and under emu, the output must match. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static int send_fds(int sock, const int *fds, int n, const char *text) {
    struct iovec iov = {(void *)text, strlen(text)};
    char control[CMSG_SPACE(sizeof(int) * 4)] = {0};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                         .msg_controllen = CMSG_SPACE(sizeof(int) * n)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * n);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
    return sendmsg(sock, &msg, 0);
}

static void pass_a_pipe_to_a_child(void) {
    int sv[2], p[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    pipe(p);
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        close(p[0]);
        close(p[1]);
        char buf[64] = {0}, control[CMSG_SPACE(sizeof(int))];
        struct iovec iov = {buf, sizeof buf - 1};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                             .msg_controllen = sizeof control};
        ssize_t n = recvmsg(sv[1], &msg, MSG_CMSG_CLOEXEC);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        int fd = -1;
        memcpy(&fd, CMSG_DATA(c), sizeof fd);
        char line[128];
        int len = snprintf(line, sizeof line, "child got %zd bytes '%s', level %d type %d len %zu, cloexec %d\n",
                           n, buf, c->cmsg_level, c->cmsg_type, (size_t)c->cmsg_len,
                           (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
        write(fd, line, len);
        _exit(0);
    }
    close(sv[1]);
    printf("sendmsg: %d\n", send_fds(sv[0], &p[1], 1, "take this"));
    close(p[1]);
    int status;
    waitpid(pid, &status, 0);
    char buf[256] = {0};
    ssize_t n = read(p[0], buf, sizeof buf - 1);
    printf("parent read %zd: %s", n, buf);
    printf("child exit %d\n", WEXITSTATUS(status));
    close(p[0]);
    close(sv[0]);
}

static void truncated_control(void) {
    int sv[2], p[2];
    socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
    pipe(p);
    int three[3] = {p[0], p[1], p[0]};
    printf("send three: %d\n", send_fds(sv[0], three, 3, "three"));
    char buf[16], control[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {buf, sizeof buf};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    ssize_t n = recvmsg(sv[1], &msg, 0);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof fd);
    printf("received %zd, ctrunc %d, controllen %zu, cmsg_len %zu, fd open %d, cloexec %d\n", n,
           (msg.msg_flags & MSG_CTRUNC) != 0, (size_t)msg.msg_controllen, (size_t)c->cmsg_len,
           fcntl(fd, F_GETFD) >= 0, (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
    write(p[1], "x", 1);
    char x = 0;
    ssize_t got = read(fd, &x, 1);
    printf("through the passed read end: %zd '%c'\n", got, x);
    close(fd);
    /* no control buffer at all: every descriptor is dropped, MSG_CTRUNC */
    send_fds(sv[0], three, 2, "two");
    struct msghdr bare = {.msg_iov = &iov, .msg_iovlen = 1};
    n = recvmsg(sv[1], &bare, 0);
    printf("bare received %zd, ctrunc %d, controllen %zu\n", n, (bare.msg_flags & MSG_CTRUNC) != 0,
           (size_t)bare.msg_controllen);
    close(sv[0]);
    close(sv[1]);
    close(p[0]);
    close(p[1]);
}

static void credentials(void) {
    int sv[2], on = 1;
    socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
    setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &on, sizeof on);
    struct ucred mine = {getpid(), getuid(), getgid()};
    char control[CMSG_SPACE(sizeof(struct ucred))] = {0};
    struct iovec iov = {"cred", 4};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_CREDENTIALS;
    c->cmsg_len = CMSG_LEN(sizeof mine);
    memcpy(CMSG_DATA(c), &mine, sizeof mine);
    printf("send credentials: %zd\n", sendmsg(sv[0], &msg, 0));
    struct ucred other = {getppid(), getuid(), getgid()};
    memcpy(CMSG_DATA(c), &other, sizeof other);
    errno = 0;
    ssize_t r = sendmsg(sv[0], &msg, 0);
    printf("the parent's pid (EPERM unless privileged): %zd %s\n", r, strerror(errno));
    char buf[8], rcontrol[CMSG_SPACE(sizeof(struct ucred))];
    struct iovec riov = {buf, sizeof buf};
    struct msghdr rmsg = {.msg_iov = &riov, .msg_iovlen = 1, .msg_control = rcontrol,
                          .msg_controllen = sizeof rcontrol};
    ssize_t n = recvmsg(sv[1], &rmsg, 0);
    struct cmsghdr *rc = CMSG_FIRSTHDR(&rmsg);
    struct ucred got;
    memcpy(&got, CMSG_DATA(rc), sizeof got);
    printf("received %zd, type %d, pid is mine %d, uid is mine %d\n", n, rc->cmsg_type, got.pid == getpid(),
           got.uid == getuid());
    close(sv[0]);
    close(sv[1]);
}

static void datagrams_with_names(const char *dir) {
    struct sockaddr_un a = {.sun_family = AF_UNIX}, b = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s/a.sock", dir);
    snprintf(b.sun_path, sizeof b.sun_path, "%s/b.sock", dir);
    int sa = socket(AF_UNIX, SOCK_DGRAM, 0), sb = socket(AF_UNIX, SOCK_DGRAM, 0);
    bind(sa, (struct sockaddr *)&a, sizeof a);
    bind(sb, (struct sockaddr *)&b, sizeof b);
    struct iovec parts[3] = {{"gather", 6}, {"ed ", 3}, {"datagram", 8}};
    struct msghdr msg = {.msg_name = &b, .msg_namelen = sizeof b, .msg_iov = parts, .msg_iovlen = 3};
    printf("sendmsg to b: %zd\n", sendmsg(sa, &msg, 0));
    char first[5] = {0}, second[32] = {0};
    struct iovec scatter[2] = {{first, 4}, {second, sizeof second - 1}};
    struct sockaddr_un from;
    memset(&from, 0xAA, sizeof from);
    struct msghdr in = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = scatter, .msg_iovlen = 2};
    ssize_t n = recvmsg(sb, &in, 0);
    printf("received %zd: '%s' + '%s' from %s (namelen %u is the path's %d)\n", n, first, second,
           strrchr(from.sun_path, '/'), in.msg_namelen,
           in.msg_namelen == offsetof(struct sockaddr_un, sun_path) + strlen(a.sun_path) + 1);
    /* a short datagram buffer: MSG_TRUNC, the rest is lost */
    sendmsg(sa, &msg, 0);
    char small[6] = {0};
    struct iovec one = {small, 5};
    struct msghdr trunc = {.msg_iov = &one, .msg_iovlen = 1};
    n = recvmsg(sb, &trunc, 0);
    printf("short buffer: %zd '%s' trunc %d\n", n, small, (trunc.msg_flags & MSG_TRUNC) != 0);
    /* several at once */
    struct mmsghdr many[3];
    struct iovec texts[3] = {{"one", 3}, {"two", 3}, {"three", 5}};
    for (int i = 0; i < 3; i++)
        many[i] = (struct mmsghdr){.msg_hdr = {.msg_name = &b, .msg_namelen = sizeof b, .msg_iov = &texts[i],
                                               .msg_iovlen = 1}};
    int sent = sendmmsg(sa, many, 3, 0);
    printf("sendmmsg: %d, lens %u %u %u\n", sent, many[0].msg_len, many[1].msg_len, many[2].msg_len);
    char bufs[4][8];
    struct iovec rv[4];
    struct mmsghdr got[4];
    for (int i = 0; i < 4; i++) {
        memset(bufs[i], 0, sizeof bufs[i]);
        rv[i] = (struct iovec){bufs[i], sizeof bufs[i] - 1};
        got[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &rv[i], .msg_iovlen = 1}};
    }
    int m = recvmmsg(sb, got, 4, MSG_WAITFORONE, NULL);
    printf("recvmmsg: %d:", m);
    for (int i = 0; i < m; i++)
        printf(" %s(%u)", bufs[i], got[i].msg_len);
    printf("\n");
    errno = 0;
    n = recvmsg(sb, &trunc, MSG_DONTWAIT);
    printf("nothing left, MSG_DONTWAIT: %zd %s\n", n, strerror(errno));
    close(sa);
    close(sb);
    unlink(a.sun_path);
    unlink(b.sun_path);
}

static volatile sig_atomic_t pipes;
static void on_pipe(int sig) { (void)sig; pipes++; }

static void errors(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    struct iovec iov = {"x", 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
#define TRY(what, call)                                                \
    do {                                                               \
        errno = 0;                                                     \
        long r_ = (long)(call);                                        \
        printf("%s: %ld %s\n", what, r_, r_ < 0 ? strerror(errno) : "ok"); \
    } while (0)
    msg.msg_iovlen = 1025;
    TRY("iovlen 1025", sendmsg(sv[0], &msg, 0));
    msg.msg_iovlen = 1;
    msg.msg_iov = (struct iovec *)8;
    TRY("iov at a bad address", sendmsg(sv[0], &msg, 0));
    struct iovec bad = {(void *)8, 4};
    msg.msg_iov = &bad;
    TRY("data at a bad address", sendmsg(sv[0], &msg, 0));
    msg.msg_iov = &iov;
    TRY("msghdr at a bad address", sendmsg(sv[0], (struct msghdr *)8, 0));
    char control[CMSG_SPACE(sizeof(int))] = {0};
    struct cmsghdr *c = (struct cmsghdr *)control;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = sizeof control + 8;
    TRY("cmsg_len past the buffer", sendmsg(sv[0], &msg, 0));
    c->cmsg_len = CMSG_LEN(sizeof(int));
    int closed = 999;
    memcpy(CMSG_DATA(c), &closed, sizeof closed);
    TRY("a closed descriptor", sendmsg(sv[0], &msg, 0));
    c->cmsg_type = 77;
    TRY("an unknown control message", sendmsg(sv[0], &msg, 0));
    msg.msg_controllen = (size_t)1 << 40;
    TRY("controllen 2^40", sendmsg(sv[0], &msg, 0));
    msg.msg_control = NULL;
    msg.msg_controllen = 0;
    msg.msg_name = control;
    msg.msg_namelen = 200;
    TRY("namelen 200 on a connected stream", sendmsg(sv[0], &msg, 0));
    int dgram = socket(AF_UNIX, SOCK_DGRAM, 0);
    TRY("namelen 200 on a datagram socket", sendmsg(dgram, &msg, 0));
    close(dgram);
    msg.msg_name = NULL;
    msg.msg_namelen = 0;
    TRY("sendmsg on a pipe", sendmsg(1, &msg, MSG_DONTWAIT) < 0 && errno == ENOTSOCK ? -1 : 0);
    TRY("recvmsg into a bad buffer", (write(sv[1], "y", 1), recvmsg(sv[0], &msg, 0)));
    TRY("sendmsg on a closed fd", sendmsg(12345, &msg, 0));
    close(sv[1]);
    signal(SIGPIPE, on_pipe);
    msg.msg_iov = &iov;
    TRY("sendmsg to a closed peer", sendmsg(sv[0], &msg, 0));
    TRY("again with MSG_NOSIGNAL", sendmsg(sv[0], &msg, MSG_NOSIGNAL));
    TRY("sendto to a closed peer", sendto(sv[0], "z", 1, 0, NULL, 0));
    printf("SIGPIPE handled %d times\n", pipes);
    signal(SIGPIPE, SIG_DFL);
    close(sv[0]);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    pass_a_pipe_to_a_child();
    truncated_control();
    credentials();
    datagrams_with_names(argc > 1 ? argv[1] : "/tmp");
    errors();
    return 0;
}
