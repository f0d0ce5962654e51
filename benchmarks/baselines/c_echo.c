/*
 * c_echo: the ceiling baseline.  An uppercase echo server in C, one thread,
 * epoll, non-blocking sockets: recv, uppercase ASCII in place, send at once.
 * No Python server can beat it on the same machine; a target above what it
 * reaches is out of reach for any server, because the kernel's share of each
 * round trip (recv, send, loopback delivery) is paid by every one of them.
 *
 *   c_echo PORT
 *
 * While a reply is not fully sent, the connection stops reading (flow
 * control), so memory stays bounded.  Build: cc -O3 -o c_echo c_echo.c (-O3 vectorizes the
 * uppercasing loop; at -O2 that loop alone halves the rate)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUFSIZE 65536

struct conn {
    int fd;
    size_t pending, offset; /* unsent reply bytes in buf[offset..offset+pending) */
    unsigned char buf[BUFSIZE];
};

static void die(const char *what) {
    perror(what);
    exit(2);
}

static void watch(int ep, int op, struct conn *c, unsigned events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(ep, op, c->fd, &ev) < 0 && op != EPOLL_CTL_DEL) die("epoll_ctl");
}

static void drop(int ep, struct conn *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

/* Send what is pending; 1 when all of it went, 0 when the socket is full. */
static int flush(struct conn *c) {
    while (c->pending) {
        ssize_t w = send(c->fd, c->buf + c->offset, c->pending, MSG_NOSIGNAL);
        if (w < 0) return errno == EAGAIN ? 0 : -1;
        c->offset += w;
        c->pending -= w;
    }
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1])),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    if (listen(lfd, 511) < 0) die("listen");
    int ep = epoll_create1(0);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0) die("epoll_ctl");
    struct epoll_event events[1024];
    for (;;) {
        int n = epoll_wait(ep, events, 1024, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int e = 0; e < n; e++) {
            struct conn *c = events[e].data.ptr;
            if (c == NULL) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    c = calloc(1, sizeof *c);
                    if (c == NULL) die("calloc");
                    c->fd = fd;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* as asyncio */
                    watch(ep, EPOLL_CTL_ADD, c, EPOLLIN);
                }
                continue;
            }
            if (c->pending) { /* EPOLLOUT: finish the reply, then read again */
                int sent = flush(c);
                if (sent < 0) drop(ep, c);
                else if (sent) watch(ep, EPOLL_CTL_MOD, c, EPOLLIN);
                continue;
            }
            ssize_t r = recv(c->fd, c->buf, BUFSIZE, 0);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN) continue;
                drop(ep, c);
                continue;
            }
            for (ssize_t i = 0; i < r; i++) /* branch-free: vectorized at -O3 */
                c->buf[i] -= ((unsigned char)(c->buf[i] - 97) < 26) << 5;
            c->offset = 0;
            c->pending = (size_t)r;
            int sent = flush(c);
            if (sent < 0) drop(ep, c);
            else if (!sent) watch(ep, EPOLL_CTL_MOD, c, EPOLLOUT);
        }
    }
}
