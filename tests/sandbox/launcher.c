/* The bootstrap sandbox's command launcher: every command of a world's bin/ (tests/sandbox/standins.py) is
 * this program. It hands the call to the world's command server (tests/sandbox/cmdserver.py, at the abstract
 * Unix socket named by $SANDBOX_STANDINS): its arguments, environment and umask, and, as file descriptors,
 * its standard streams and working directory; then it waits for the call's status and exits with it, or dies
 * of the same signal. The protocol is described in cmdserver.py; cmdserver.py also holds the same launcher in
 * Python, used where no C compiler is found. Compiled by cmdserver.build_launcher. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

extern char **environ;

static void fail(const char *what) {
    fprintf(stderr, "sandbox launcher: %s: %s\n", what, strerror(errno));
    exit(127);
}

struct buf {
    char *data;
    size_t len, cap;
};

static void put(struct buf *b, const char *s) {
    size_t n = strlen(s) + 1;
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->data = realloc(b->data, b->cap);
        if (!b->data) fail("realloc");
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

int main(int argc, char **argv) {
    const char *address = getenv("SANDBOX_STANDINS");
    if (!address || !*address) {
        fprintf(stderr, "sandbox launcher: $SANDBOX_STANDINS (the command server) is not set\n");
        return 127;
    }
    mode_t mask = umask(0);
    umask(mask);

    int fds[4], nfds = 0, open_mask = 0;
    for (int fd = 0; fd < 3; fd++) {
        if (fcntl(fd, F_GETFD) != -1) {
            fds[nfds++] = fd;
            open_mask |= 1 << fd;
        }
    }
    int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cwd < 0) fail("open .");
    fds[nfds++] = cwd;

    /* body: umask, open mask, argc, argv..., then the environment (each NUL-terminated) */
    struct buf body = {0};
    char number[32];
    snprintf(number, sizeof number, "%o", (unsigned)mask);
    put(&body, number);
    snprintf(number, sizeof number, "%d", open_mask);
    put(&body, number);
    snprintf(number, sizeof number, "%d", argc);
    put(&body, number);
    for (int i = 0; i < argc; i++) put(&body, argv[i]);
    for (char **e = environ; *e; e++) put(&body, *e);

    int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock < 0) fail("socket");
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    size_t alen = strlen(address);
    if (alen + 1 > sizeof sun.sun_path) {
        errno = ENAMETOOLONG;
        fail("$SANDBOX_STANDINS");
    }
    memcpy(sun.sun_path + 1, address, alen); /* abstract namespace: a leading NUL */
    if (connect(sock, (struct sockaddr *)&sun, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + alen)) < 0)
        fail("connect to the command server");

    char header[5] = {'C'};
    uint32_t len = htonl((uint32_t)body.len);
    memcpy(header + 1, &len, 4);
    struct iovec iov = {.iov_base = header, .iov_len = sizeof header};
    union {
        char space[CMSG_SPACE(sizeof fds)];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.space,
                         .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds)};
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
    memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * (size_t)nfds);
    ssize_t sent;
    while ((sent = sendmsg(sock, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR) {}
    if (sent != (ssize_t)sizeof header) fail("send to the command server");
    for (size_t off = 0; off < body.len;) {
        ssize_t n = send(sock, body.data + off, body.len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) fail("send to the command server");
        off += (size_t)n;
    }
    close(cwd);

    /* the status: 0-255 an exit code, 256 + N death by signal N */
    unsigned char reply[4];
    size_t got = 0;
    while (got < sizeof reply) {
        ssize_t n = recv(sock, reply + got, sizeof reply - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (n == 0) errno = ECONNRESET;
            fail("the command server");
        }
        got += (size_t)n;
    }
    uint32_t status;
    memcpy(&status, reply, 4);
    status = ntohl(status);
    if (status >= 256) {
        int sig = (int)(status - 256);
        signal(sig, SIG_DFL);
        raise(sig);
        return 128 + sig;
    }
    return (int)status;
}
