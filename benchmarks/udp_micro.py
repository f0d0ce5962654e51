"""
Micro-benchmarks of the UDP echo's per-datagram work, in one process
(docs/performance.md, "UDP"): nanoseconds per datagram, median of 5 timeit
runs, on the interpreter running it.

  python benchmarks/udp_micro.py

- echo-memory: DatagramEcho.datagramReceived on one of Twisted's own UDP
  ports whose socket's sendto does nothing (Twisted's Port.write, or what
  the echo sends with instead): our work and Twisted's, no system call;
- echo-loopback: the same with the port's real socket, sending to a
  loopback socket that is drained between rounds (with the sendto);
- recvfrom / recvfrom_into: reading queued 512-byte datagrams, as
  Twisted's Port.doRead does (recvfrom(65536)) and into one reused buffer
  (recvfrom_into, then a copy of the bytes read);
- doRead-twisted / doRead-into: Twisted's UDP port reading them to a
  protocol that does nothing, as Twisted does and as
  uppercase.net.transport.readDatagramsInto makes it (PyPy's default).
"""

from __future__ import annotations

import socket
import statistics
import sys
import timeit
from typing import Any, Callable

from twisted.internet import udp
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor

from uppercase.echo import DatagramEcho

__all__ = ["main"]

ROUNDS = 5
DATAGRAM = b"0123456789abcdef" * 32  # 512 bytes, as workload (v)
SOURCE = ("127.0.0.1", 40000)


def median(run: Callable[[], None], number: int) -> float:
    """Nanoseconds per call of C{run}, the median of L{ROUNDS}."""
    times = timeit.repeat(run, number=number, repeat=ROUNDS)
    return statistics.median(times) / number * 1e9


def echoOnPort(quiet: bool = True) -> tuple[DatagramEcho, Any]:
    """The server's echo (limits lifted, --quiet) on one of Twisted's UDP ports."""
    from uppercase.server._udp import DatagramServer

    server = DatagramServer(Clock(), logData=not quiet)
    protocol = server.buildProtocol()
    port = udp.Port(0, protocol, "127.0.0.1", 65536, MemoryReactor())
    port._bindSocket()
    return protocol, port


def echoMemory() -> float:
    protocol, port = echoOnPort()

    class Quiet:
        sendto = staticmethod({}.get)  # two arguments, does nothing, in C

    real, port.socket = port.socket, Quiet()
    protocol.makeConnection(port)
    received = protocol.datagramReceived
    try:
        return median(lambda: received(DATAGRAM, SOURCE), 200_000)
    finally:
        real.close()


def echoLoopback() -> float:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setblocking(False)
    target = sink.getsockname()
    protocol, port = echoOnPort()
    protocol.makeConnection(port)
    received = protocol.datagramReceived

    def batch() -> None:
        for _ in range(100):
            received(DATAGRAM, target)
        try:
            while True:
                sink.recv(65536)
        except BlockingIOError:
            pass

    try:
        # per datagram, the drain's recv included in both variants alike
        return median(batch, 200) / 100
    finally:
        port.socket.close()
        sink.close()


def receiving(into: bool) -> float:
    reader = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    reader.bind(("127.0.0.1", 0))
    reader.setblocking(False)
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    writer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    address = reader.getsockname()
    buffer = bytearray(65536)
    view = memoryview(buffer)

    def fill() -> None:
        for _ in range(100):
            writer.sendto(DATAGRAM, address)

    def drainFrom() -> None:
        recvfrom = reader.recvfrom
        try:
            while True:
                recvfrom(65536)
        except BlockingIOError:
            pass

    def drainInto() -> None:
        recvfrom_into = reader.recvfrom_into
        try:
            while True:
                n, _ = recvfrom_into(buffer)
                bytes(view[:n])
        except BlockingIOError:
            pass

    drain = drainInto if into else drainFrom
    samples = []
    for _ in range(ROUNDS):
        total = 0.0
        for _ in range(200):
            fill()
            total += timeit.timeit(drain, number=1)
        samples.append(total / 200 / 100 * 1e9)
    reader.close()
    writer.close()
    return statistics.median(samples)


def portReading(into: bool) -> float:
    """Twisted's Port.doRead, or readDatagramsInto's, on queued datagrams."""
    from twisted.internet.protocol import DatagramProtocol

    from uppercase.net.transport import readDatagramsInto

    port = udp.Port(0, DatagramProtocol(), "127.0.0.1", 65536, MemoryReactor())
    port.startListening()
    port.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    if into:
        readDatagramsInto(port, enable=True)
    writer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    address = port.socket.getsockname()
    samples = []
    for _ in range(ROUNDS):
        total = 0.0
        for _ in range(200):
            for _ in range(100):
                writer.sendto(DATAGRAM, address)
            total += timeit.timeit(port.doRead, number=1)
        samples.append(total / 200 / 100 * 1e9)
    port.socket.close()
    writer.close()
    return statistics.median(samples)


def main() -> None:
    print(sys.implementation.name, sys.version.split()[0])
    print(f"echo-memory    {echoMemory():8.0f} ns/datagram")
    print(f"echo-loopback  {echoLoopback():8.0f} ns/datagram")
    print(f"recvfrom       {receiving(False):8.0f} ns/datagram")
    print(f"recvfrom_into  {receiving(True):8.0f} ns/datagram")
    print(f"doRead-twisted {portReading(False):8.0f} ns/datagram")
    print(f"doRead-into    {portReading(True):8.0f} ns/datagram")


if __name__ == "__main__":
    main()
