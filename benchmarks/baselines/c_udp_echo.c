/*
 * c_udp_echo: the ceiling baseline for UDP.  An uppercase UDP echo in C, one
 * thread, one blocking socket: recvmmsg up to BATCH datagrams (returning as
 * soon as one has come), uppercase ASCII a-z of each in place, sendmmsg each
 * back to its sender.  No Python server can beat it on the same machine; the
 * kernel's share of each datagram (receive, send, loopback delivery) is paid
 * by every server.
 *
 *   c_udp_echo PORT [SPIN]
 *
 * After each batch it polls without sleeping for up to SPIN microseconds
 * (100 by default; 0: never) before it blocks.  A server that blocks as soon
 * as it has answered must be woken for the next datagram, and on a virtual
 * machine that wake-up costs more than the echo: the blocking C echo
 * answered one socket's ping-pong at half the rate of the five-line Twisted
 * echo, which is slow enough to find the next datagram already waiting.
 * Spinning briefly, it never needs waking under load, and sleeps when idle.
 *
 * Binds 127.0.0.1:PORT.  A datagram the kernel cannot take back at once
 * (a full send buffer) is dropped, as a UDP echo may; nothing is buffered.
 * Datagrams up to 65,507 bytes (the IPv4 maximum) come back whole.
 * Build: cc -O3 -o c_udp_echo c_udp_echo.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define MAXDATAGRAM 65536

static unsigned char bufs[BATCH][MAXDATAGRAM];

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

int main(int argc, char **argv) {
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: %s PORT [SPIN]\n", argv[0]);
        return 2;
    }
    double spin = (argc == 3 ? atof(argv[2]) : 100.0) / 1e6, lastWork = 0;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) die("socket");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1])),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    static struct mmsghdr msgs[BATCH];
    static struct iovec iovs[BATCH];
    static struct sockaddr_in peers[BATCH];
    for (;;) {
        for (int i = 0; i < BATCH; i++) {
            iovs[i].iov_base = bufs[i];
            iovs[i].iov_len = MAXDATAGRAM;
            msgs[i].msg_hdr = (struct msghdr){.msg_name = &peers[i],
                                              .msg_namelen = sizeof peers[i],
                                              .msg_iov = &iovs[i],
                                              .msg_iovlen = 1};
        }
        int n = recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT, NULL);
        if (n < 0 && errno == EAGAIN && now() - lastWork >= spin)
            n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
        if (n < 0) {
            /* Nothing yet (spinning); EINTR; or an ICMP error reported on the
               socket: not fatal. */
            if (errno == EAGAIN || errno == EINTR || errno == ECONNREFUSED) continue;
            die("recvmmsg");
        }
        lastWork = now();
        for (int i = 0; i < n; i++) {
            unsigned char *b = bufs[i];
            unsigned int len = msgs[i].msg_len;
            for (unsigned int k = 0; k < len; k++) /* branch-free: vectorized at -O3 */
                b[k] -= ((unsigned char)(b[k] - 97) < 26) << 5;
            iovs[i].iov_len = len;
        }
        for (int done = 0; done < n;) {
            int w = sendmmsg(fd, msgs + done, n - done, MSG_DONTWAIT);
            if (w < 0) {
                if (errno == EINTR) continue;
                /* Full buffer or an unreachable sender: drop this one. */
                done++;
                continue;
            }
            done += w;
        }
    }
}
