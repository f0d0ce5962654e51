/*
 * c_udp_echo: the ceiling baseline for UDP.  An uppercase UDP echo in C, one
 * thread, one blocking socket: recvmmsg up to BATCH datagrams (returning as
 * soon as one has come), uppercase ASCII a-z of each in place, sendmmsg each
 * back to its sender.  No Python server can beat it on the same machine; the
 * kernel's share of each datagram (receive, send, loopback delivery) is paid
 * by every server.
 *
 *   c_udp_echo PORT
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
#include <unistd.h>

#define BATCH 64
#define MAXDATAGRAM 65536

static unsigned char bufs[BATCH][MAXDATAGRAM];

static void die(const char *what) {
    perror(what);
    exit(2);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
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
        int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
        if (n < 0) {
            /* EINTR; or an ICMP error reported on the socket: not fatal. */
            if (errno == EINTR || errno == ECONNREFUSED) continue;
            die("recvmmsg");
        }
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
