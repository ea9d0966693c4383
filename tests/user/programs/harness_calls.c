/* The descriptors test harnesses and event loops use: eventfd, epoll, socketpair and AF_UNIX sockets,
   timerfd, memfd and close_range.  Prints what it sees; run natively and under emu the output is the same. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(x) do { if ((x) < 0) { printf("%s: %s\n", #x, strerror(errno)); exit(1); } } while (0)
/* A call's result and, when it failed, its errno (read after the call: argument order is unspecified). */
#define SHOW(label, x) do { errno = 0; long r_ = (long)(x); \
    printf("%s: %ld %s\n", label, r_, r_ < 0 ? strerror(errno) : ""); } while (0)

static void eventfds(void) {
    int e = eventfd(3, EFD_CLOEXEC);
    uint64_t v = 4;
    CHECK(write(e, &v, 8));
    CHECK(read(e, &v, 8));
    printf("eventfd counter %llu\n", (unsigned long long)v);
    int s = eventfd(2, EFD_SEMAPHORE | EFD_NONBLOCK);
    read(s, &v, 8); printf("semaphore read %llu\n", (unsigned long long)v);
    read(s, &v, 8);
    SHOW("semaphore empty", read(s, &v, 8));
    close(e); close(s);
}

static void epolls(void) {
    int p[2]; CHECK(pipe(p));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0x1122334455667788ULL}, out[4];
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
    SHOW("add twice", epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
    SHOW("nothing ready", epoll_wait(ep, out, 4, 0));
    CHECK(write(p[1], "x", 1));
    int n = epoll_wait(ep, out, 4, 1000);
    printf("ready: %d events %#x data %#llx\n", n, out[0].events, (unsigned long long)out[0].data.u64);
    ev.events = EPOLLIN | EPOLLET; ev.data.u64 = 7;
    CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev));
    SHOW("edge, first", epoll_wait(ep, out, 4, 0));
    SHOW("edge, again", epoll_wait(ep, out, 4, 0));
    CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL));
    SHOW("after del", epoll_wait(ep, out, 4, 0));
    SHOW("maxevents 0", epoll_wait(ep, out, 0, 0));
    SHOW("not an epoll", epoll_wait(p[0], out, 4, 0));
    SHOW("epoll of itself", epoll_ctl(ep, EPOLL_CTL_ADD, ep, &ev));
    close(ep); close(p[0]); close(p[1]);
}

static void socketpairs(void) {
    int sv[2]; char buf[16] = {0};
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    CHECK(write(sv[0], "ping", 4));
    CHECK(read(sv[1], buf, sizeof buf));
    CHECK(send(sv[1], "pong", 4, MSG_NOSIGNAL));
    int n = recv(sv[0], buf, sizeof buf, 0);
    printf("socketpair: %.*s\n", n, buf);
    SHOW("empty recv", recv(sv[0], buf, sizeof buf, MSG_DONTWAIT));
    int type; socklen_t len = sizeof type;
    CHECK(getsockopt(sv[0], SOL_SOCKET, SO_TYPE, &type, &len));
    printf("SO_TYPE %d len %d\n", type, (int)len);
    CHECK(shutdown(sv[1], SHUT_WR));
    SHOW("after shutdown", read(sv[0], buf, sizeof buf));
    SHOW("not a socket", shutdown(1, SHUT_RD));
    close(sv[0]); close(sv[1]);
    CHECK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
    send(sv[0], "one", 3, 0); send(sv[0], "two!", 4, 0);
    SHOW("first datagram", recv(sv[1], buf, sizeof buf, 0));
    SHOW("second datagram", recv(sv[1], buf, sizeof buf, 0));
    close(sv[0]); close(sv[1]);
}

static void named_sockets(const char *dir) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s/sock", dir);
    int srv = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(bind(srv, (struct sockaddr *)&addr, sizeof addr));
    CHECK(listen(srv, 4));
    pid_t child = fork();
    if (child == 0) {
        int c = socket(AF_UNIX, SOCK_STREAM, 0);
        CHECK(connect(c, (struct sockaddr *)&addr, sizeof addr));
        CHECK(write(c, "hello over a path", 17));
        _exit(0);
    }
    struct sockaddr_un peer; socklen_t plen = sizeof peer;
    int conn = accept4(srv, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
    CHECK(conn);
    char buf[32]; int n = 0, got;
    while ((got = read(conn, buf + n, sizeof buf - n)) > 0) n += got;
    int status; waitpid(child, &status, 0);
    printf("accepted (peer addrlen %d): %.*s, child status %d\n", (int)plen, n, buf, WEXITSTATUS(status));
    struct sockaddr_un mine; socklen_t mlen = sizeof mine;
    CHECK(getsockname(srv, (struct sockaddr *)&mine, &mlen));
    printf("bound to .../%s\n", strrchr(mine.sun_path, '/') + 1);
    int again = socket(AF_UNIX, SOCK_STREAM, 0);
    SHOW("bind again", bind(again, (struct sockaddr *)&addr, sizeof addr));
    SHOW("connect to nobody", connect(again, (struct sockaddr *)&(struct sockaddr_un){AF_UNIX, "/nonexistent/s"},
                                      sizeof(struct sockaddr_un)));
    close(conn); close(srv); unlink(addr.sun_path);
}

static void timerfds(void) {
    int t = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    struct itimerspec spec = {.it_value = {0, 20 * 1000 * 1000}}, cur;
    CHECK(timerfd_settime(t, 0, &spec, NULL));
    uint64_t expirations = 0;
    CHECK(read(t, &expirations, 8));
    printf("timer expired: %s\n", expirations >= 1 ? "yes" : "no");
    CHECK(timerfd_gettime(t, &cur));
    printf("disarmed: %ld %ld\n", (long)cur.it_value.tv_sec, cur.it_value.tv_nsec);
    SHOW("bad clock", timerfd_create(12345, 0));
    close(t);
}

static void memfds(void) {
    int m = memfd_create("emu-test", MFD_CLOEXEC);
    CHECK(write(m, "in memory", 9));
    char buf[16] = {0};
    CHECK(pread(m, buf, 2, 3));
    CHECK(ftruncate(m, 4096));
    struct stat st; CHECK(fstat(m, &st));
    printf("memfd: %s size %ld\n", buf, (long)st.st_size);
    close(m);
}

static void close_ranges(void) {
    int first = dup2(1, 50), second = dup2(1, 60);
    CHECK(close_range(55, ~0U, CLOSE_RANGE_CLOEXEC));
    printf("cloexec on 60: %d, on 50: %d\n", fcntl(second, F_GETFD), fcntl(first, F_GETFD));
    CHECK(close_range(50, 70, 0));
    SHOW("closed", fcntl(first, F_GETFD));
    SHOW("reversed", close_range(9, 3, 0));
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    eventfds();
    epolls();
    socketpairs();
    named_sockets(argc > 1 ? argv[1] : "/tmp");
    timerfds();
    memfds();
    close_ranges();
    return 0;
}
