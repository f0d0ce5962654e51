"""
The least a Python load client can do: plain epoll, non-blocking sockets, no
framework, no payload generation and no verification beyond counting reply
bytes.  benchmarks/client.py runs it beside uppercase-client as the ceiling
any Python client can reach on the machine (the counterpart of the C echo
among servers).

    python python_client.py PORT CONNS SIZE DEPTH WARMUP SECONDS

Prints one JSON object: {"round_trips_per_s": X}.
"""

from __future__ import annotations

import json
import select
import socket
import sys
import time


def main() -> None:
    port, conns, size, depth = (int(a) for a in sys.argv[1:5])
    warmup, seconds = float(sys.argv[5]), float(sys.argv[6])
    message = (b"abcdefgh" * (size // 8 + 1))[:size]
    poller = select.epoll()
    sockets = {}
    pending = {}
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        sockets[s.fileno()] = s
        pending[s.fileno()] = 0
        poller.register(s.fileno(), select.EPOLLIN)
        s.send(message * depth)
    trips = 0
    start = time.monotonic()
    measureFrom, end = start + warmup, start + warmup + seconds
    counted = None
    while True:
        now = time.monotonic()
        if counted is None and now >= measureFrom:
            counted = trips
        if now >= end:
            break
        for fd, _ in poller.poll(0):
            s = sockets[fd]
            got = pending[fd] + len(s.recv(262144))
            replies, pending[fd] = divmod(got, size)
            if replies:
                s.send(message * replies)
                trips += replies
    print(json.dumps({"round_trips_per_s": (trips - (counted or 0)) / seconds}))


if __name__ == "__main__":
    main()
