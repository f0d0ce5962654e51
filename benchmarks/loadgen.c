/*
 * loadgen: a load generator for uppercase echo servers that is not the
 * bottleneck.  One thread, epoll, non-blocking sockets, no allocation on the
 * data path.  Every byte that comes back is checked against the
 * ASCII-uppercase of what was sent.
 *
 *   loadgen HOST PORT MODE CONNS SIZE DEPTH WARMUP SECONDS [RATE]
 *
 *   MODE pingpong: each connection keeps DEPTH messages of SIZE bytes in
 *                  flight; a round trip is one whole reply verified.
 *                  With RATE (messages per second in all, > 0) the loop is
 *                  open instead: message i falls due at start + i / RATE,
 *                  goes to connection i % CONNS whether or not replies have
 *                  come (DEPTH is then ignored), and its latency counts
 *                  from its due time.
 *   MODE stream:   each connection sends continuously (SIZE-byte writes)
 *                  and reads everything back (full duplex).
 *
 * Prints one JSON object on one line:
 *
 *   {"mode": "pingpong", "conns": 100, "size": 1024, "depth": 8,
 *    "seconds": 3.000, "round_trips": N, "bytes": N,
 *    "round_trips_per_s": X, "mb_per_s": X, "idle": X, "wrong": 0,
 *    "rate": 0.0, "latency_count": N,
 *    "latency_us": {"p50": X, "p90": X, "p99": X, "p99.9": X, "max": X}}
 *
 * round trips and bytes verified per second over SECONDS, measured after
 * WARMUP seconds; the count of wrong bytes (always 0 for a correct server;
 * the run stops at the first one); "idle": the share of the measured time
 * the load generator polled and found nothing to do, i.e. waited for the
 * server; "rate": RATE (0 for the closed loop).  "latency_us" (pingpong
 * only; null for stream, or when nothing was measured) gives round-trip
 * latency percentiles in microseconds over the "latency_count" replies to
 * messages sent (closed loop) or due (open loop) in the measured time: from
 * the moment a message's slot in the pipeline opened, or its due time, to
 * the moment its whole reply had arrived.  Percentiles are exact (all
 * latencies are kept and sorted: the nearest-rank value).  The fields
 * before "rate" are what benchmarks/run.py reads; they keep their meaning.
 *
 * It polls without sleeping (epoll_wait with a zero timeout).  A sleeping
 * load generator has to be woken by the server's every reply, and on a
 * virtual machine that wake-up (an inter-processor interrupt) is paid on the
 * server's core: it made a slow server look twice as slow again.  Spinning
 * on its own core, the load generator never needs waking, and what is
 * measured is the server.
 *
 * With LOADGEN_PROXY=v1 in the environment, each connection first sends a
 * PROXY protocol v1 header (its own addresses), as HAProxy's send-proxy
 * does, for servers listening with haproxy:.
 *
 * Build: cc -O3 -o loadgen loadgen.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PATTERN 65536 /* the sent stream repeats this many bytes */

static unsigned char pattern[PATTERN], expected[PATTERN];

#define RING 65536 /* messages in flight per connection, at most */

struct conn {
    int fd;
    uint64_t sent, received; /* stream positions, in bytes */
    uint64_t budget;         /* bytes allowed to be sent so far */
    int writing;             /* EPOLLOUT registered */
    double *stamps;          /* when each message in flight was due */
    uint64_t pushed, popped; /* messages stamped, messages answered */
};

static double *latencies; /* seconds */
static size_t nlatencies, capLatencies;

static void keepLatency(double seconds) {
    if (nlatencies == capLatencies) {
        capLatencies = capLatencies ? 2 * capLatencies : 1 << 20;
        latencies = realloc(latencies, capLatencies * sizeof *latencies);
        if (!latencies) {
            perror("realloc");
            exit(2);
        }
    }
    latencies[nlatencies++] = seconds;
}

static int compareDoubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double nearestRank(double percentile) {
    size_t rank = (size_t)(percentile / 100.0 * nlatencies + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > nlatencies) rank = nlatencies;
    return latencies[rank - 1] * 1e6;
}

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
    if (argc != 9 && argc != 10) {
        fprintf(stderr, "usage: %s HOST PORT pingpong|stream CONNS SIZE DEPTH WARMUP SECONDS [RATE]\n", argv[0]);
        return 2;
    }
    double rate = argc == 10 ? atof(argv[9]) : 0.0;
    const char *proxyMode = getenv("LOADGEN_PROXY");
    int proxy = proxyMode != NULL && strcmp(proxyMode, "v1") == 0;
    const char *host = argv[1];
    int port = atoi(argv[2]);
    int stream = strcmp(argv[3], "stream") == 0;
    int nconns = atoi(argv[4]);
    uint64_t size = strtoull(argv[5], NULL, 10);
    uint64_t depth = strtoull(argv[6], NULL, 10);
    double warmup = atof(argv[7]), seconds = atof(argv[8]);
    if (size == 0 || size > PATTERN || PATTERN % size != 0 || nconns <= 0) {
        fprintf(stderr, "loadgen: SIZE must divide %d; CONNS > 0\n", PATTERN);
        return 2;
    }
    /* Mixed letters, digits and bytes >= 0x80: uppercasing changes some. */
    uint32_t x = 2463534242u;
    for (int i = 0; i < PATTERN; i++) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        unsigned char c = (x % 3 == 0) ? (unsigned char)('a' + x % 26) : (unsigned char)(x >> 8);
        pattern[i] = c;
        expected[i] = (c >= 'a' && c <= 'z') ? c - 32 : c;
    }

    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "loadgen: HOST must be an IPv4 address\n");
        return 2;
    }
    int ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    struct conn *conns = calloc(nconns, sizeof *conns);
    for (int i = 0; i < nconns; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) die("socket");
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
        if (proxy) {
            struct sockaddr_in local;
            socklen_t len = sizeof local;
            if (getsockname(fd, (struct sockaddr *)&local, &len) < 0) die("getsockname");
            char header[108];
            int n = snprintf(header, sizeof header, "PROXY TCP4 %s %s %d %d\r\n", host, host,
                             ntohs(local.sin_port), port);
            if (send(fd, header, n, 0) != n) die("send PROXY header");
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0) die("fcntl");
        conns[i].fd = fd;
        conns[i].budget = stream ? UINT64_MAX : rate > 0 ? 0 : depth * size;
        conns[i].writing = 1;
        if (!stream) {
            conns[i].stamps = malloc(RING * sizeof(double));
            if (!conns[i].stamps) die("malloc");
        }
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
    }

    static unsigned char buf[262144];
    struct epoll_event events[1024];
    double start = now(), measureFrom = start + warmup, end = measureFrom + seconds;
    uint64_t trips = 0, bytes = 0, wrong = 0;
    int measuring = 0;
    uint64_t tripsAtStart = 0, bytesAtStart = 0;
    double idle = 0, lastPoll = start;
    int lastPollEmpty = 0;
    uint64_t due = 0; /* open loop: messages due so far */
    if (!stream && rate <= 0) {
        for (int i = 0; i < nconns; i++)
            for (uint64_t k = 0; k < depth; k++) conns[i].stamps[conns[i].pushed++ % RING] = start;
    }
    for (;;) {
        double t = now();
        if (!stream && rate > 0) {
            /* Open loop: hand out what fell due, stamped with its due time. */
            uint64_t dueNow = (uint64_t)((t - start) * rate) + 1;
            while (due < dueNow) {
                struct conn *c = &conns[due % nconns];
                if (c->pushed - c->popped >= RING) break; /* backlog: it keeps its turn */
                c->stamps[c->pushed++ % RING] = start + due / rate;
                c->budget += size;
                if (!c->writing) {
                    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT,
                                             .data.u32 = (uint32_t)(due % nconns)};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                    c->writing = 1;
                }
                due++;
            }
        }
        if (measuring && lastPollEmpty) idle += t - lastPoll;
        lastPoll = t;
        if (!measuring && t >= measureFrom) {
            measuring = 1;
            tripsAtStart = trips;
            bytesAtStart = bytes;
        }
        if (t >= end) break;
        int n = epoll_wait(ep, events, 1024, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        lastPollEmpty = n == 0;
        for (int e = 0; e < n; e++) {
            struct conn *c = &conns[events[e].data.u32];
            if (events[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                for (;;) {
                    ssize_t r = recv(c->fd, buf, sizeof buf, 0);
                    if (r < 0) {
                        if (errno == EAGAIN) break;
                        die("recv");
                    }
                    if (r == 0) {
                        fprintf(stderr, "loadgen: server closed a connection\n");
                        return 1;
                    }
                    /* Check against the expected stream, wrapping the pattern. */
                    ssize_t done = 0;
                    while (done < r) {
                        uint64_t at = c->received % PATTERN;
                        ssize_t chunk = r - done;
                        if ((uint64_t)chunk > PATTERN - at) chunk = PATTERN - at;
                        if (memcmp(buf + done, expected + at, chunk) != 0) {
                            wrong++;
                            fprintf(stderr, "loadgen: wrong byte near offset %llu\n",
                                    (unsigned long long)c->received);
                            goto report;
                        }
                        done += chunk;
                        c->received += chunk;
                    }
                    bytes += r;
                    if (!stream) {
                        uint64_t before = (c->received - r) / size, after = c->received / size;
                        trips += after - before;
                        if (after > before) {
                            double at = now();
                            for (uint64_t k = before; k < after; k++) {
                                double stamp = c->stamps[c->popped++ % RING];
                                if (stamp >= measureFrom && at <= end) keepLatency(at - stamp);
                                if (rate <= 0) c->stamps[c->pushed++ % RING] = at;
                            }
                            if (rate <= 0) c->budget += (after - before) * size;
                        }
                    } else {
                        trips = bytes / size;
                    }
                    if ((size_t)r < sizeof buf) break;
                }
            }
            /* Send while the budget allows and the socket takes it. */
            while (c->sent < c->budget) {
                uint64_t at = c->sent % PATTERN;
                uint64_t want = c->budget - c->sent;
                if (want > PATTERN - at) want = PATTERN - at;
                if (want > 65536) want = 65536;
                if (stream && want > size) want = size;
                ssize_t w = send(c->fd, pattern + at, want, MSG_NOSIGNAL);
                if (w < 0) {
                    if (errno == EAGAIN) break;
                    die("send");
                }
                c->sent += w;
            }
            int needWrite = c->sent < c->budget;
            if (needWrite != c->writing) {
                struct epoll_event ev = {.events = EPOLLIN | (needWrite ? EPOLLOUT : 0),
                                         .data.u32 = events[e].data.u32};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                c->writing = needWrite;
            }
        }
    }
report:;
    double elapsed = now() - measureFrom;
    if (elapsed > seconds) elapsed = seconds;
    char latency[256] = "null";
    if (nlatencies) {
        qsort(latencies, nlatencies, sizeof *latencies, compareDoubles);
        snprintf(latency, sizeof latency,
                 "{\"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, \"p99.9\": %.1f, \"max\": %.1f}",
                 nearestRank(50), nearestRank(90), nearestRank(99), nearestRank(99.9),
                 latencies[nlatencies - 1] * 1e6);
    }
    printf("{\"mode\": \"%s\", \"conns\": %d, \"size\": %llu, \"depth\": %llu, "
           "\"seconds\": %.3f, \"round_trips\": %llu, \"bytes\": %llu, "
           "\"round_trips_per_s\": %.1f, \"mb_per_s\": %.2f, \"idle\": %.3f, \"wrong\": %llu, "
           "\"rate\": %.1f, \"latency_count\": %zu, \"latency_us\": %s}\n",
           stream ? "stream" : "pingpong", nconns, (unsigned long long)size,
           (unsigned long long)depth, elapsed, (unsigned long long)(trips - tripsAtStart),
           (unsigned long long)(bytes - bytesAtStart),
           (trips - tripsAtStart) / elapsed, (bytes - bytesAtStart) / elapsed / 1e6,
           elapsed > 0 ? idle / elapsed : 0.0,
           (unsigned long long)wrong, rate, nlatencies, latency);
    return wrong ? 1 : 0;
}
