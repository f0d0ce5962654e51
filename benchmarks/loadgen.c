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
 *   MODE udp:      CONNS UDP sockets, DEPTH datagrams of SIZE bytes in
 *                  flight on each (or RATE datagrams per second in all), a
 *                  per-datagram timeout; see udpMain below.  A round trip is
 *                  one datagram's reply verified; it adds "lost", "late",
 *                  "unsent", "in_flight" and "timeout" to the JSON.
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

/* Mixed letters, digits and bytes >= 0x80: uppercasing changes some. */
static void fillPattern(void) {
    uint32_t x = 2463534242u;
    for (int i = 0; i < PATTERN; i++) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        unsigned char c = (x % 3 == 0) ? (unsigned char)('a' + x % 26) : (unsigned char)(x >> 8);
        pattern[i] = c;
        expected[i] = (c >= 'a' && c <= 'z') ? c - 32 : c;
    }
}

/*
 * MODE udp: SOCKETS connected UDP sockets to HOST:PORT (CONNS is their
 * count).  Each datagram is SIZE bytes (16 to 65,507): a 16-byte header of
 * upper-case hex digits, which uppercasing leaves as it is (the slot it
 * occupies, 4 digits, and its sequence number on its socket, 12), then bytes
 * of the pattern chosen by the sequence number.  A reply must be exactly
 * the ASCII-uppercase of a datagram sent, byte for byte; one that is not is
 * "wrong" and stops the run.  Closed loop: each socket keeps DEPTH datagrams
 * in flight, sending the next as soon as one is answered.  Open loop (RATE
 * > 0): datagram i falls due at start + i / RATE and goes to socket
 * i % SOCKETS, whatever is in flight (up to UDP_SLOTS per socket; beyond
 * that it waits for a slot, and its latency counts from its due time).
 *
 * Loss: a datagram with no reply within LOADGEN_TIMEOUT seconds (from the
 * environment; 1 by default) is counted "lost" and its slot reused, so a
 * lost datagram never stalls the run.  A reply that comes after that, or a
 * second reply to one datagram, is counted "late" (verified, not counted as
 * a round trip).  "lost", "late", and "unsent" (send() refused by a full
 * socket buffer: retried) count what happened in the measured time; "in_flight"
 * is what was still unanswered at its end.
 */
#define UDP_HEADER 16
#define UDP_MAX 65507
#define UDP_SLOTS 4096

enum { SLOT_FREE, SLOT_QUEUED, SLOT_FLYING };

struct udpSlot {
    uint64_t seq;
    double stamp;  /* when the slot opened (closed loop) or it fell due */
    double sentAt; /* when send() took it: the timeout counts from here */
    int state;
};

struct udpSocket {
    int fd;
    uint64_t nextSeq;
    struct udpSlot *slots;
    int *queue; /* slots to send, first in first out */
    int queueHead, queueLen;
    int *freeSlots;
    int nfree;
    int flying;
};

static uint64_t udpOffset(uint64_t seq, uint64_t size) {
    return (seq * 61) % (PATTERN - (size - UDP_HEADER) + 1);
}

static void udpFormat(unsigned char *out, int slot, uint64_t seq, uint64_t size, const unsigned char *body) {
    static const char hex[] = "0123456789ABCDEF";
    for (int k = 0; k < 4; k++) out[k] = hex[(slot >> (4 * (3 - k))) & 15];
    for (int k = 0; k < 12; k++) out[4 + k] = hex[(seq >> (4 * (11 - k))) & 15];
    memcpy(out + UDP_HEADER, body + udpOffset(seq, size), size - UDP_HEADER);
}

/* The value of n upper-case hex digits, or -1 if any is not one. */
static int64_t udpHex(const unsigned char *p, int n) {
    int64_t v = 0;
    for (int k = 0; k < n; k++) {
        int d = p[k] >= '0' && p[k] <= '9' ? p[k] - '0' : p[k] >= 'A' && p[k] <= 'F' ? p[k] - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static void udpQueue(struct udpSocket *s, int nslots, int slot, double stamp) {
    struct udpSlot *sl = &s->slots[slot];
    sl->seq = s->nextSeq++;
    sl->stamp = stamp;
    sl->state = SLOT_QUEUED;
    s->queue[(s->queueHead + s->queueLen++) % nslots] = slot;
}

static void udpRelease(struct udpSocket *s, int slot, int closed, int nslots, double t) {
    if (closed) {
        udpQueue(s, nslots, slot, t);
    } else {
        s->slots[slot].state = SLOT_FREE;
        s->freeSlots[s->nfree++] = slot;
    }
}

static int udpMain(int argc, char **argv) {
    double rate = argc == 10 ? atof(argv[9]) : 0.0;
    const char *host = argv[1];
    int port = atoi(argv[2]);
    int nsockets = atoi(argv[4]);
    uint64_t size = strtoull(argv[5], NULL, 10);
    uint64_t depth = strtoull(argv[6], NULL, 10);
    double warmup = atof(argv[7]), seconds = atof(argv[8]);
    const char *timeoutText = getenv("LOADGEN_TIMEOUT");
    double timeout = timeoutText ? atof(timeoutText) : 1.0;
    int closed = rate <= 0;
    int nslots = closed ? (int)depth : UDP_SLOTS;
    if (size < UDP_HEADER || size > UDP_MAX || nsockets <= 0 || timeout <= 0 ||
        (closed && (depth == 0 || depth > UDP_SLOTS))) {
        fprintf(stderr, "loadgen: udp: SIZE from %d to %d; SOCKETS > 0; DEPTH from 1 to %d; "
                        "LOADGEN_TIMEOUT > 0\n", UDP_HEADER, UDP_MAX, UDP_SLOTS);
        return 2;
    }
    fillPattern();
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "loadgen: HOST must be an IPv4 address\n");
        return 2;
    }
    int ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    struct udpSocket *socks = calloc(nsockets, sizeof *socks);
    double start = now(), measureFrom = start + warmup, end = measureFrom + seconds;
    for (int i = 0; i < nsockets; i++) {
        struct udpSocket *s = &socks[i];
        s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (s->fd < 0) die("socket");
        if (connect(s->fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
        s->slots = calloc(nslots, sizeof *s->slots);
        s->queue = calloc(nslots, sizeof *s->queue);
        s->freeSlots = calloc(nslots, sizeof *s->freeSlots);
        if (!s->slots || !s->queue || !s->freeSlots) die("calloc");
        for (int k = nslots - 1; k >= 0; k--) s->freeSlots[s->nfree++] = k;
        if (closed) {
            s->nfree = 0;
            for (int k = 0; k < nslots; k++) udpQueue(s, nslots, k, start);
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) < 0) die("epoll_ctl");
    }
    static unsigned char out[UDP_MAX], buf[65536], want[UDP_MAX];
    struct epoll_event events[1024];
    uint64_t trips = 0, bytes = 0, wrong = 0, lost = 0, late = 0, unsent = 0;
    uint64_t tripsAtStart = 0, bytesAtStart = 0, lostAtStart = 0, lateAtStart = 0, unsentAtStart = 0;
    int measuring = 0;
    double idle = 0, lastPoll = start, lastSweep = start;
    int lastPollEmpty = 0;
    uint64_t due = 0;
    for (;;) {
        double t = now();
        if (!closed) {
            uint64_t dueNow = (uint64_t)((t - start) * rate) + 1;
            while (due < dueNow) {
                struct udpSocket *s = &socks[due % nsockets];
                if (s->nfree == 0) break; /* every slot in flight: it keeps its turn */
                udpQueue(s, nslots, s->freeSlots[--s->nfree], start + due / rate);
                due++;
            }
        }
        if (measuring && lastPollEmpty) idle += t - lastPoll;
        lastPoll = t;
        if (!measuring && t >= measureFrom) {
            measuring = 1;
            tripsAtStart = trips;
            bytesAtStart = bytes;
            lostAtStart = lost;
            lateAtStart = late;
            unsentAtStart = unsent;
        }
        if (t >= end) break;
        if (t - lastSweep >= 0.005) { /* the per-datagram timeout, to 5 ms */
            lastSweep = t;
            for (int i = 0; i < nsockets; i++) {
                struct udpSocket *s = &socks[i];
                for (int k = 0; k < nslots && s->flying; k++) {
                    struct udpSlot *sl = &s->slots[k];
                    if (sl->state == SLOT_FLYING && t - sl->sentAt > timeout) {
                        lost++;
                        s->flying--;
                        udpRelease(s, k, closed, nslots, t);
                    }
                }
            }
        }
        /* Send what is queued, while the sockets take it. */
        for (int i = 0; i < nsockets; i++) {
            struct udpSocket *s = &socks[i];
            while (s->queueLen) {
                int k = s->queue[s->queueHead];
                struct udpSlot *sl = &s->slots[k];
                udpFormat(out, k, sl->seq, size, pattern);
                ssize_t w = send(s->fd, out, size, 0);
                if (w < 0) {
                    if (errno == EAGAIN || errno == ENOBUFS) {
                        unsent++;
                        break;
                    }
                    if (errno == ECONNREFUSED) continue; /* an earlier ICMP error: send again */
                    die("send");
                }
                sl->state = SLOT_FLYING;
                sl->sentAt = now();
                s->flying++;
                s->queueHead = (s->queueHead + 1) % nslots;
                s->queueLen--;
            }
        }
        int n = epoll_wait(ep, events, 1024, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        lastPollEmpty = n == 0;
        for (int e = 0; e < n; e++) {
            struct udpSocket *s = &socks[events[e].data.u32];
            for (;;) {
                ssize_t r = recv(s->fd, buf, sizeof buf, 0);
                if (r < 0) {
                    if (errno == EAGAIN) break;
                    if (errno == ECONNREFUSED) continue; /* nobody there: the timeout counts it */
                    die("recv");
                }
                int64_t slot = r >= UDP_HEADER ? udpHex(buf, 4) : -1;
                int64_t seq = r >= UDP_HEADER ? udpHex(buf + 4, 12) : -1;
                if ((uint64_t)r != size || slot < 0 || slot >= nslots || seq < 0 || (uint64_t)seq >= s->nextSeq) {
                    wrong++;
                    fprintf(stderr, "loadgen: udp: a reply of %zd bytes that was never sent\n", r);
                    goto report;
                }
                udpFormat(want, (int)slot, (uint64_t)seq, size, expected);
                if (memcmp(buf, want, size) != 0) {
                    wrong++;
                    fprintf(stderr, "loadgen: udp: wrong bytes in the reply to datagram %lld\n", (long long)seq);
                    goto report;
                }
                struct udpSlot *sl = &s->slots[slot];
                if (sl->state != SLOT_FLYING || sl->seq != (uint64_t)seq) {
                    late++;
                    continue;
                }
                double at = now();
                trips++;
                bytes += r;
                if (sl->stamp >= measureFrom && at <= end) keepLatency(at - sl->stamp);
                s->flying--;
                udpRelease(s, (int)slot, closed, nslots, at);
            }
        }
    }
report:;
    double elapsed = now() - measureFrom;
    if (elapsed > seconds) elapsed = seconds;
    uint64_t inFlight = 0;
    for (int i = 0; i < nsockets; i++) inFlight += socks[i].flying;
    char latency[256] = "null";
    if (nlatencies) {
        qsort(latencies, nlatencies, sizeof *latencies, compareDoubles);
        snprintf(latency, sizeof latency,
                 "{\"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, \"p99.9\": %.1f, \"max\": %.1f}",
                 nearestRank(50), nearestRank(90), nearestRank(99), nearestRank(99.9),
                 latencies[nlatencies - 1] * 1e6);
    }
    printf("{\"mode\": \"udp\", \"conns\": %d, \"size\": %llu, \"depth\": %llu, "
           "\"seconds\": %.3f, \"round_trips\": %llu, \"bytes\": %llu, "
           "\"round_trips_per_s\": %.1f, \"mb_per_s\": %.2f, \"idle\": %.3f, \"wrong\": %llu, "
           "\"rate\": %.1f, \"latency_count\": %zu, \"latency_us\": %s, "
           "\"lost\": %llu, \"late\": %llu, \"unsent\": %llu, \"in_flight\": %llu, \"timeout\": %g}\n",
           nsockets, (unsigned long long)size, (unsigned long long)depth, elapsed,
           (unsigned long long)(trips - tripsAtStart), (unsigned long long)(bytes - bytesAtStart),
           elapsed > 0 ? (trips - tripsAtStart) / elapsed : 0.0,
           elapsed > 0 ? (bytes - bytesAtStart) / elapsed / 1e6 : 0.0,
           elapsed > 0 ? idle / elapsed : 0.0, (unsigned long long)wrong, rate, nlatencies, latency,
           (unsigned long long)(lost - lostAtStart), (unsigned long long)(late - lateAtStart),
           (unsigned long long)(unsent - unsentAtStart), (unsigned long long)inFlight, timeout);
    return wrong ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc != 9 && argc != 10) {
        fprintf(stderr, "usage: %s HOST PORT pingpong|stream|udp CONNS SIZE DEPTH WARMUP SECONDS [RATE]\n", argv[0]);
        return 2;
    }
    if (strcmp(argv[3], "udp") == 0) return udpMain(argc, argv);
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
    fillPattern();

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
