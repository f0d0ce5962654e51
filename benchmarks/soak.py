"""
Soak test: a minute (by default) of mixed clients against a real server.

Starts C{twistd -n uppercase --quiet} on a free loopback port, then runs
workers that each, until the time is up, pick one kind of client:

  fast          ping-pong of 1 KiB messages
  slow          sends 256 KiB and reads it back in 512-byte sips
  resetting     sends 128 KiB without reading, then resets (RST)
  idle          connects, says nothing for a few seconds, then one message
  half-closing  sends 1 MiB, shuts down its sending side, reads to the end

Every byte that comes back is checked as it arrives, by the client's own
reply verifier (L{uppercase.client.ReplyVerifier}), which says where a wrong
byte is.  At the end the server's open
descriptors and memory are compared with their values before the load, and
its log is searched for tracebacks.  Exit status 0 means: no wrong byte,
no leak, no error.

    python benchmarks/soak.py [--seconds 60] [--workers 40]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter

from uppercase.client import ReplyVerifier

LOOPBACK = "127.0.0.1"


class Failed(Exception):
    pass


class Check:
    """
    What one connection of C{kind} expects back, checked as it arrives.
    """

    def __init__(self, kind: str, unit: int) -> None:
        self.kind = kind
        self.verifier = ReplyVerifier(unit)

    def sent(self, data: bytes) -> None:
        self.verifier.expect(data.upper())

    def received(self, data: bytes) -> None:
        _, _, found = self.verifier.feed(data)
        if found:
            raise Failed(f"{self.kind}: {found[0]}")

    def complete(self) -> int:
        """
        Every byte due arrived: how many.
        """
        if self.verifier.due:
            raise Failed(
                f"{self.kind}: {self.verifier.received:,} of "
                f"{self.verifier.received + self.verifier.due:,} bytes came back"
            )
        return self.verifier.received


async def fast(port: int, rng: random.Random) -> int:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    check = Check("fast", 1024)
    for _ in range(rng.randint(5, 50)):
        message = rng.randbytes(1024)
        check.sent(message)
        writer.write(message)
        check.received(await reader.readexactly(len(message)))
    writer.close()
    await writer.wait_closed()
    return check.complete()


async def slow(port: int, rng: random.Random) -> int:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    data = rng.randbytes(256 * 1024)
    check = Check("slow", 512)
    check.sent(data)
    writer.write(data)
    writer.write_eof()
    while True:
        chunk = await reader.read(512)
        if not chunk:
            break
        check.received(chunk)
        await asyncio.sleep(0.0005)
    writer.close()
    return check.complete()


async def resetting(port: int, rng: random.Random) -> int:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    writer.write(rng.randbytes(128 * 1024))
    await asyncio.sleep(rng.uniform(0, 0.05))
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
    return 0


async def idle(port: int, rng: random.Random) -> int:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    await asyncio.sleep(rng.uniform(1, 4))
    check = Check("idle", 11)
    check.sent(b"still here\n")
    writer.write(b"still here\n")
    check.received(await reader.readexactly(11))
    writer.close()
    await writer.wait_closed()
    return check.complete()


async def halfClosing(port: int, rng: random.Random) -> int:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    data = rng.randbytes(1024 * 1024)
    check = Check("half-closing", 64 * 1024)
    check.sent(data)
    writer.write(data)
    writer.write_eof()
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            break
        check.received(chunk)
    writer.close()
    return check.complete()


KINDS = {
    "fast": fast,
    "slow": slow,
    "resetting": resetting,
    "idle": idle,
    "half-closing": halfClosing,
}


async def worker(port: int, seed: int, deadline: float, stats: Counter, errors: list) -> None:
    rng = random.Random(seed)
    while time.monotonic() < deadline:
        kind = rng.choice(list(KINDS))
        try:
            verified = await asyncio.wait_for(KINDS[kind](port, rng), 30)
            stats[kind + " bytes"] += verified
            stats[kind] += 1
        except Failed as e:
            errors.append(str(e))
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as e:
            errors.append(f"{kind}: {type(e).__name__}: {e}")


def serverState(pid: int) -> tuple[int, int]:
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    with open(f"/proc/{pid}/status") as status:
        rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return fds, rss


def startServer(log: str) -> tuple[subprocess.Popen, int]:
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    out = open(log, "w")
    process = subprocess.Popen(
        [
            twistd,
            "-n",
            "--pidfile=",
            "uppercase",
            "--quiet",
            "--listen",
            f"tcp:0:interface={LOOPBACK}:backlog=511",
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=os.path.dirname(log),
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        match = re.search(r"starting on (\d+)", open(log).read())
        if match:
            return process, int(match.group(1))
        time.sleep(0.05)
    process.kill()
    raise SystemExit("soak: the server did not start")


async def load(port: int, seconds: float, workers: int) -> tuple[Counter, list]:
    stats: Counter = Counter()
    errors: list = []
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(worker(port, seed, deadline, stats, errors) for seed in range(workers)))
    return stats, errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        log = os.path.join(folder, "server.log")
        process, port = startServer(log)
        try:
            # Warm up (PyPy's JIT, allocator arenas) before the baseline.
            asyncio.run(load(port, min(5.0, args.seconds / 6), 10))
            time.sleep(1)
            before = serverState(process.pid)
            started = time.monotonic()
            stats, errors = asyncio.run(load(port, args.seconds, args.workers))
            elapsed = time.monotonic() - started
            time.sleep(2)  # let the server finish closing what the load left
            after = serverState(process.pid)
        finally:
            process.terminate()
            process.wait(30)
        text = open(log).read()
    print(f"soak: {elapsed:.0f}s, {args.workers} workers, server on port {port}")
    for kind in KINDS:
        print(
            f"  {kind:13} {stats[kind]:6} connections {stats[kind + ' bytes']:>12,} bytes verified"
        )
    print(f"  descriptors  {before[0]} before, {after[0]} after")
    print(f"  memory       {before[1] / 1024:.1f} MiB before, {after[1] / 1024:.1f} MiB after")
    problems = list(errors)
    if after[0] > before[0]:
        problems.append(f"{after[0] - before[0]} descriptors leaked")
    if after[1] - before[1] > 32 * 1024:
        problems.append(f"memory grew by {(after[1] - before[1]) / 1024:.1f} MiB")
    for marker in ("Traceback", "Unhandled"):
        if marker in text:
            problems.append(f"{marker} in the server log")
    for problem in problems[:20]:
        print("  PROBLEM:", problem)
    print("soak:", "FAILED" if problems else "passed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
