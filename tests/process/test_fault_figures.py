"""
Process tests: the measured figures of C{--fault} (issue 19), on loopback,
against the real C{twistd uppercase --fault ...} driven by the real
C{uppercase-client --json}: latency in the percentiles, bandwidth in MB/s,
toxicity's share and its seeded set, every corrupted byte where the seeded
generator put it, and each ending (reset, cut-off, stall) reported with the
byte counts it implies and exit status 1.
"""

from __future__ import annotations

import json
import platform
import socket
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.process._process import DEADLINE, Server, run, script
from uppercase.server import FaultSet, parseFault


def client(server: Server, *args: str, timeout: float = DEADLINE) -> tuple[int, dict[str, Any]]:
    """
    Run C{uppercase-client --json ARGS} against C{server}: its exit status
    and its summary (the last line of its output).
    """
    result = run(
        script("uppercase-client") + ["-c", f"tcp:127.0.0.1:{server.port}", "--json", *args],
        timeout=timeout,
    )
    lines = result.stdout.splitlines()
    if not lines:
        raise AssertionError(f"no output; stderr: {result.stderr}")
    summary = json.loads(lines[-1])
    assert summary["type"] == "summary", lines[-1]
    return result.returncode, summary


def affected(seed: int) -> list[int]:
    """
    Against a fresh server with C{close,after=1B,toxicity=0.5} and
    C{--fault-seed seed}, open 200 connections one after another (so that
    their accept order is known), each sending C{ab} and half-closing: the
    numbers (from 0) of those cut off after one byte (C{A} and a FIN rather
    than C{AB}).
    """
    server = Server("--quiet", "--fault", "close,after=1B,toxicity=0.5", "--fault-seed", str(seed))
    try:
        cut = []
        for number in range(200):
            with server.connect() as s:
                s.sendall(b"ab")
                s.shutdown(socket.SHUT_WR)
                received = b""
                while True:
                    chunk = s.recv(16)
                    if not chunk:
                        break
                    received += chunk
            if received == b"A":
                cut.append(number)
            elif received != b"AB":
                raise AssertionError(f"connection {number}: {received!r}")
        return cut
    finally:
        server.stop()


class FigureTests(SynchronousTestCase):
    """
    The figures the issue promises, measured.
    """

    def test_latency(self) -> None:
        """
        C{latency,delay=20ms} at C{--rate 200} for 3 s after 2 s of
        warm-up: p50 between 20 and 23 ms, every message verified, and p99
        under 30 ms, or on PyPy p90 under 25 ms.

        PyPy's client pauses itself for 5-25 ms a few times a second
        while its JIT compiles and its GC runs, for well over 10 s (seen
        with a probe timing each turn of the reactor), and an open loop
        counts a reply read late as late: p99 is 6 messages of 600, and
        PyPy's were 22.7-31.5 ms in 10 runs, while against a PyPy server
        a CPython client measured 22.2-23.8 ms.  So on PyPy this asserts
        what its client can measure: p90 (21.5-22.4 ms there).
        """
        server = Server("--quiet", "--fault", "latency,delay=20ms")
        self.addCleanup(server.stop)
        status, summary = client(server, "--rate", "200", "--duration", "3", "--warmup", "2")
        self.assertEqual((status, summary["verified"]), (0, summary["sent"]), summary["error"])
        latency = summary["latency_ms"]
        self.assertTrue(20 <= latency["p50"] <= 23, latency)
        if platform.python_implementation() == "PyPy":
            self.assertLess(latency["p90"], 25, latency)
        else:
            self.assertLess(latency["p99"], 30, latency)

    def test_bandwidth(self) -> None:
        """
        C{bandwidth,rate=1MB} and C{--stream} on one connection (2.5 MB):
        0.9 to 1.1 MB/s, every byte verified.
        """
        server = Server("--quiet", "--fault", "bandwidth,rate=1MB")
        self.addCleanup(server.stop)
        status, summary = client(
            server, "--stream", "--connections", "1", "--size", "100000", "--count", "25"
        )
        self.assertEqual((status, summary["stream_bytes"]), (0, 2500000), summary["error"])
        self.assertTrue(0.9 <= summary["mb_per_s"] <= 1.1, summary["mb_per_s"])

    def test_toxicity(self) -> None:
        """
        C{toxicity=0.5} over 200 connections: 70 to 130 affected; the same
        set, in accept order, against a fresh server with the same
        C{--fault-seed}; another set with another seed.
        """
        first = affected(7)
        self.assertTrue(70 <= len(first) <= 130, len(first))
        self.assertEqual(affected(7), first)
        other = affected(8)
        self.assertTrue(70 <= len(other) <= 130, len(other))
        self.assertNotEqual(other, first)

    def test_corrupt(self) -> None:
        """
        C{corrupt,probability=1}: every message is reported as a mismatch,
        and each one listed has its flipped byte (expected XOR received is
        0x80) inside the message, at the offset the server's seeded
        generator chose for that reply (one message in flight: one reply
        chunk each).
        """
        server = Server("--quiet", "--fault", "corrupt,probability=1", "--fault-seed", "5")
        self.addCleanup(server.stop)
        status, summary = client(server, "--connections", "1", "--count", "50")
        self.assertEqual(status, 1)
        self.assertEqual(
            (summary["sent"], summary["mismatch_count"], summary["failed"]), (50, 50, 50)
        )
        self.assertEqual(summary["errors"], {"mismatch": 50})
        drawn = FaultSet([parseFault("corrupt,probability=1")], seed=5).draw(set(), 0.0)
        assert drawn is not None
        mismatches = summary["mismatches"]
        self.assertEqual(len(mismatches), 10)
        for number, mismatch in enumerate(mismatches, 1):
            offset = mismatch["message_offset"]
            self.assertEqual(mismatch["message"], number)
            self.assertTrue(0 <= offset < summary["size"], mismatch)
            self.assertEqual(mismatch["offset"], (number - 1) * summary["size"] + offset)
            at = offset - mismatch["excerpt_start"]
            expected = bytes.fromhex(mismatch["expected_hex"])[at]
            received = bytes.fromhex(mismatch["received_hex"])[at]
            self.assertEqual(expected ^ received, 0x80, mismatch)
            self.assertEqual(drawn.corrupt(bytes(summary["size"])).index(0x80), offset)

    def test_reset(self) -> None:
        """
        C{reset,after=64KB}: the connection is reported reset after exactly
        64,000 bytes received (64 replies of 1,000 bytes), exit status 1.
        """
        server = Server("--quiet", "--fault", "reset,after=64KB")
        self.addCleanup(server.stop)
        status, summary = client(server, "--connections", "1", "--size", "1000", "--count", "100")
        self.assertEqual(status, 1)
        self.assertEqual(summary["verified"], 64)
        self.assertEqual(
            summary["ended_early"],
            [{"connection": 1, "kind": "reset", "received_bytes": 64000, "owed_bytes": 1000}],
        )
        self.assertEqual(
            summary["error"],
            "every connection was lost (1 reset); first: "
            "connection 1: reset after 64,000 bytes received, 1,000 owed",
        )

    def test_closeAfter(self) -> None:
        """
        C{close,after=10KB}: the connection is reported closed early after
        exactly 10,000 bytes (of the 11,000 sent by then), exit status 1.
        """
        server = Server("--quiet", "--fault", "close,after=10KB")
        self.addCleanup(server.stop)
        status, summary = client(server, "--connections", "1", "--size", "1000", "--count", "100")
        self.assertEqual(status, 1)
        self.assertEqual(summary["verified"], 10)
        self.assertEqual(
            summary["ended_early"],
            [
                {
                    "connection": 1,
                    "kind": "closed early",
                    "received_bytes": 10000,
                    "owed_bytes": 1000,
                }
            ],
        )
        self.assertEqual(
            summary["error"],
            "every connection was lost (1 closed early); first: "
            "connection 1: closed early (10,000 of 11,000 bytes)",
        )

    def test_stall(self) -> None:
        """
        C{stall,after=1s} at 100 messages of 100 bytes a second for 3 s,
        C{--timeout 2}: a reply timeout after the bytes of the first
        second's replies (about 100, all verified), the rest of the 30,000
        owed, exit status 1.

        About 100: the client starts sending once connected, after the
        server's second began at accept, but the stall is a timer on the
        server's reactor, which fires late when that is busy (PyPy's, while
        its JIT compiles: 102 were echoed there), so up to 5% more.
        """
        server = Server("--quiet", "--fault", "stall,after=1s")
        self.addCleanup(server.stop)
        status, summary = client(
            server, "--rate", "100", "--size", "100", "--duration", "3", "--timeout", "2"
        )
        self.assertEqual(status, 1)
        [ended] = summary["ended_early"]
        received = ended["received_bytes"]
        self.assertEqual(ended["kind"], "reply timeout")
        self.assertEqual(received, summary["verified"] * 100)
        self.assertTrue(9500 <= received <= 10500, received)
        self.assertEqual(received + ended["owed_bytes"], summary["sent"] * 100)
        self.assertEqual(summary["sent"], 300)
        self.assertTrue(
            summary["error"].endswith(
                f"connection 1: timed out after {received:,} bytes received, "
                f"{ended['owed_bytes']:,} owed"
            ),
            summary["error"],
        )
