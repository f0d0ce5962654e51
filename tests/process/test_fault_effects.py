"""
C{uppercase-client} (ping, load, C{--json}, C{--stream}) against small
Python servers that misbehave on loopback exactly as the server's faults
will: a reset (RST) after N reply bytes, a FIN after N, a stall (no more
reading or sending), one byte flipped in every reply.  Each run reports
what happened with the byte counts the fault implies, in one line, exit
status 1.  Every wait is bounded; nothing sleeps but the reset's wait for
its bytes to be acknowledged.
"""

from __future__ import annotations

import fcntl
import json
import socket
import struct
import termios
import threading
import time

from twisted.trial.unittest import SynchronousTestCase

from ._process import DEADLINE, run, script


class FaultyServer:
    """
    A TCP server on a free loopback port, in threads: each connection's
    bytes come back uppercased until C{after} reply bytes were sent; then
    C{reset} (SO_LINGER 0 and close, once those bytes were acknowledged),
    C{close} (a FIN, then what the client sends is read and dropped), or
    C{stall} (neither reading nor sending until the test ends).  With
    C{corrupt}, the byte at that offset of every C{size}-byte message is
    flipped (XOR 0x80) and nothing else happens.
    """

    def __init__(
        self, then: str, after: int = 0, corrupt: int | None = None, size: int = 0
    ) -> None:
        self.then, self.after, self.corrupt, self.size = then, after, corrupt, size
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port: int = self._listener.getsockname()[1]
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()
        for s in self._open:
            s.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._open.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        sent = 0
        try:
            while self.corrupt is not None or sent < self.after:
                data = conn.recv(65536)
                if not data:
                    return conn.close()
                reply = bytearray(data.upper())
                if self.corrupt is not None:
                    for i in range(len(reply)):
                        if (sent + i) % self.size == self.corrupt:
                            reply[i] ^= 0x80
                else:
                    reply = reply[: self.after - sent]
                conn.sendall(reply)
                sent += len(reply)
            if self.then == "reset":
                deadline = time.monotonic() + DEADLINE
                while _unacknowledged(conn) and time.monotonic() < deadline:
                    time.sleep(0.001)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
            elif self.then == "close":
                conn.shutdown(socket.SHUT_WR)
                while conn.recv(65536):
                    pass
                conn.close()
        except OSError:
            pass


def _unacknowledged(conn: socket.socket) -> int:
    """
    Bytes in the kernel's send queue not acknowledged yet (C{SIOCOUTQ}).
    """
    buf = fcntl.ioctl(conn.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    return int(struct.unpack("i", buf)[0])


def client(port: int, *args: str) -> tuple[int, str, str]:
    done = run(script("uppercase-client") + ["-c", f"tcp:127.0.0.1:{port}", *args])
    return done.returncode, done.stdout, done.stderr


class FaultEffectTests(SynchronousTestCase):
    def serve(self, then: str, after: int = 0, **kwargs: int) -> int:
        server = FaultyServer(then, after, **kwargs)
        self.addCleanup(server.close)
        return server.port

    def test_loadReset(self) -> None:
        """
        A reset after 64,000 reply bytes on each of 2 connections (4
        messages of 1,000 bytes in flight): each is reported as C{reset
        after 64,000 bytes received, 4,000 owed}, in one line on standard
        error; exit status 1.
        """
        port = self.serve("reset", 64_000)
        status, out, err = client(
            port, "--connections", "2", "--count", "1000", "--size", "1000", "--pipeline", "4"
        )
        self.assertEqual(status, 1, err)
        self.assertIn("errors: 2 reset (after 64,000 bytes received)\n", out)
        self.assertIn("  connection 1: reset after 64,000 bytes received, 4,000 owed\n", out)
        self.assertIn("  connection 2: reset after 64,000 bytes received, 4,000 owed\n", out)
        # Whichever connection's reset came first.
        self.assertRegex(
            err,
            r"^uppercase-client: every connection was lost \(2 reset\); "
            r"first: connection [12]: reset after 64,000 bytes received, 4,000 owed\n$",
        )

    def test_loadCloseJSON(self) -> None:
        """
        A FIN after exactly 10,000 reply bytes: C{closed early (10,000 of
        14,000 bytes)} in C{--json}'s summary, with its counts.
        """
        port = self.serve("close", 10_000)
        args = ("--count", "1000", "--size", "1000", "--pipeline", "4", "--json")
        status, out, err = client(port, *args)
        self.assertEqual(status, 1, err)
        summary = json.loads(out.splitlines()[-1])
        self.assertEqual(summary["errors"], {"closed early": 1})
        self.assertEqual(
            summary["ended_early"],
            [
                {
                    "connection": 1,
                    "kind": "closed early",
                    "received_bytes": 10_000,
                    "owed_bytes": 4_000,
                }
            ],
        )
        self.assertEqual(
            summary["received_bytes_by_error"], {"closed early": {"min": 10_000, "max": 10_000}}
        )
        self.assertEqual(summary["verified"], 10)
        self.assertIn("closed early (10,000 of 14,000 bytes)", summary["error"])

    def test_loadStall(self) -> None:
        """
        A server that stops reading and replying after 100,000 bytes: a
        time-out after --timeout, with the bytes received and owed.
        """
        port = self.serve("stall", 100_000)
        args = ("--count", "1000", "--size", "1000", "--pipeline", "4", "--timeout", "1")
        status, out, err = client(port, *args)
        self.assertEqual(status, 1, err)
        self.assertIn("errors: 1 reply timeout (after 100,000 bytes received)\n", out)
        self.assertIn("connection 1: timed out after 100,000 bytes received, 4,000 owed\n", err)

    def test_loadCorrupt(self) -> None:
        """
        Byte 100 of every reply flipped: every one of the 50 messages is a
        mismatch at offset 100, the first ten listed.
        """
        port = self.serve("corrupt", corrupt=100, size=1000)
        args = ("--connections", "2", "--count", "50", "--size", "1000", "--json")
        status, out, err = client(port, *args)
        self.assertEqual(status, 1, err)
        summary = json.loads(out.splitlines()[-1])
        self.assertEqual((summary["mismatch_count"], summary["failed"]), (50, 50))
        self.assertEqual({m["message_offset"] for m in summary["mismatches"]}, {100})
        self.assertEqual(
            [m["offset"] for m in summary["mismatches"]],
            [(m["message"] - 1) * 1000 + 100 for m in summary["mismatches"]],
        )
        self.assertEqual(err.count("\n"), 1)
        self.assertIn("uppercase-client: 50 wrong replies; first: connection ", err)

    def test_streamReset(self) -> None:
        """
        C{--stream} reset after 64,000 bytes: C{reset after 64,000 bytes
        received}, with what was still owed.
        """
        port = self.serve("reset", 64_000)
        status, out, err = client(port, "--stream", "--count", "1000", "--size", "1000")
        self.assertEqual(status, 1, err)
        self.assertIn("errors: 1 reset (after 64,000 bytes received)\n", out)
        self.assertRegex(err, r"connection 1: reset after 64,000 bytes received, [\d,]+ owed\n$")

    def test_streamClose(self) -> None:
        """
        C{--stream} cut off by a FIN after 10,000 bytes.
        """
        port = self.serve("close", 10_000)
        status, out, err = client(port, "--stream", "--count", "1000", "--size", "1000")
        self.assertEqual(status, 1, err)
        self.assertRegex(err, r"connection 1: closed early \(10,000 of [\d,]+ bytes\)\n$")

    def test_pingCloseAndReset(self) -> None:
        """
        The ping client cut off mid-reply (9 of 12 bytes: the second
        'HELLO' half sent): closed early by a FIN, reset by an RST.
        """
        for then, line in (
            ("close", "connection closed early (9 of 12 bytes); 1 of 3 replies verified"),
            ("reset", "connection reset after 9 bytes received, 3 owed; 1 of 3 replies verified"),
        ):
            port = self.serve(then, 9)
            status, out, err = client(port, "--count", "3", "--interval", "0.01")
            self.assertEqual((status, err), (1, f"uppercase-client: {line}\n"))

    def test_pingStall(self) -> None:
        """
        The ping client against a stall after 9 bytes: a time-out with the
        bytes received and owed.
        """
        port = self.serve("stall", 9)
        status, out, err = client(port, "--count", "3", "--interval", "0.01", "--timeout", "1")
        self.assertEqual(
            (status, err),
            (
                1,
                "uppercase-client: timed out after 9 bytes received, 3 owed: "
                "reply 2 incomplete after 1 s (--timeout)\n",
            ),
        )
