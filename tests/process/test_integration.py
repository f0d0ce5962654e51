"""
The installed twistd plugins and uppercase-client, run on loopback as a
user would run them.  Every wait is bounded (see L{_process.DEADLINE}).
"""

from __future__ import annotations

import os
import signal
import socket

from twisted.trial.unittest import SynchronousTestCase

from ._process import (
    DEADLINE,
    Server,
    Twistd,
    closedPort,
    receiveAll,
    run,
    script,
    sendInThread,
)


class ServerProcessTests(SynchronousTestCase):
    """
    C{twistd -n uppercase}, talked to over real sockets.
    """

    def setUp(self) -> None:
        self.server = Server()
        self.addCleanup(self.server.stop)

    def test_halfCloseSmall(self) -> None:
        """
        C{printf 'hello\\n' | nc -N}: the client shuts down its sending side
        at once, and still gets C{HELLO\\n} before the server closes.
        """
        with self.server.connect() as s:
            s.sendall(b"hello\n")
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(receiveAll(s), b"HELLO\n")

    def test_halfCloseLarge(self) -> None:
        """
        20 MB of random bytes piped through with a half-close all come back,
        uppercased, in order.
        """
        data = os.urandom(20 * 1024 * 1024)
        with self.server.connect() as s:
            sender = sendInThread(s, data)
            received = receiveAll(s)
            sender.join(DEADLINE)
        self.assertEqual(len(received), len(data))
        self.assertTrue(received == data.upper(), "reply differs")

    def test_manyClientsAtOnce(self) -> None:
        """
        Fifty clients connected at the same time are all served.
        """
        sockets = [self.server.connect() for _ in range(50)]
        try:
            for i, s in enumerate(sockets):
                s.sendall(f"client {i}\n".encode())
            for s in sockets:
                s.shutdown(socket.SHUT_WR)
            for i, s in enumerate(sockets):
                self.assertEqual(receiveAll(s), f"CLIENT {i}\n".encode())
        finally:
            for s in sockets:
                s.close()

    def test_connectionLogged(self) -> None:
        """
        The log shows the client's IP and port, the data, and the close.
        """
        with self.server.connect() as s:
            port = s.getsockname()[1]
            s.sendall(b"abc\n")
            s.shutdown(socket.SHUT_WR)
            receiveAll(s)
        self.server.waitFor(rf"Connection from 127\.0\.0\.1:{port} closed")
        self.assertIn(f"Connection from 127.0.0.1 port {port}", self.server.output)
        self.assertIn("Received 4 bytes from", self.server.output)

    def test_clientScript(self) -> None:
        """
        C{uppercase-client} prints every reply and exits 0.
        """
        result = run(
            script("uppercase-client")
            + ["-c", f"tcp:127.0.0.1:{self.server.port}", "-n", "3", "-i", "0.01"]
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        *replies, summary = result.stdout.splitlines()
        self.assertEqual(replies, ["HELLO"] * 3)
        self.assertRegex(
            summary,
            r"^3 sent, 3 received, 3 verified, "
            r"rtt min/avg/max/mdev = [\d.]+/[\d.]+/[\d.]+/[\d.]+ ms$",
        )
        self.assertEqual(result.stderr, "")

    def test_twistdClient(self) -> None:
        """
        C{twistd -n uppercase-client} verifies its replies and stops the
        reactor by itself.
        """
        client = Twistd(
            "uppercase-client",
            "--connect",
            f"tcp:127.0.0.1:{self.server.port}",
            "--count",
            "2",
            "--interval",
            "0",
        )
        client.waitFor(
            r"All 2 replies verified, rtt min/avg/max/mdev = [\d.]+/[\d.]+/[\d.]+/[\d.]+ ms"
        )
        self.assertEqual(client.wait(), 0)

    def test_sigtermStopsCleanly(self) -> None:
        """
        SIGTERM stops the server: an idle client sees a clean end of stream
        at once, and when it closes too the server exits by the signal
        (twistd re-raises it, as a process stopped by SIGTERM should), long
        before the shutdown timeout.
        """
        s = self.server.connect()
        self.addCleanup(s.close)
        s.sendall(b"x")
        self.assertEqual(s.recv(1), b"X")
        self.server.process.send_signal(signal.SIGTERM)
        self.assertEqual(receiveAll(s), b"")
        s.close()
        self.assertEqual(self.server.wait(5), -signal.SIGTERM)
        self.assertIn("Server Shut Down.", self.server.output)
        self.assertNotIn("Traceback", self.server.output)


class CommandLineErrorTests(SynchronousTestCase):
    """
    Mistakes on the command line get one clear line and a non-zero status.
    """

    def test_malformedListen(self) -> None:
        """
        A malformed C{--listen} is one line (plus a hint), status 2.
        """
        result = run(script("twistd") + ["-n", "--pidfile=", "uppercase", "-l", "tcp:nope"])
        self.assertEqual(result.returncode, 2)
        lines = result.stderr.splitlines()
        self.assertEqual(len(lines), 2, result.stderr)
        self.assertIn("--listen 'tcp:nope' is not a valid endpoint", lines[0])

    def test_clientRefused(self) -> None:
        """
        With nothing listening, the client says C{Connection refused} and
        exits 1, without a traceback.
        """
        port = closedPort()
        result = run(script("uppercase-client") + ["-c", f"tcp:127.0.0.1:{port}"])
        self.assertEqual(result.returncode, 1)
        self.assertEqual(
            result.stderr,
            f"uppercase-client: cannot connect to tcp:127.0.0.1:{port}: Connection refused\n",
        )


class JSONLogTests(SynchronousTestCase):
    """
    C{twistd --logger=uppercase.jsonlog.stdout} keeps every event's fields.
    """

    def test_fieldsKept(self) -> None:
        """
        Connection, data and close events come out as JSON objects with
        their fields: host, port, size, received.
        """
        import json

        server = Twistd(
            "--logger=uppercase.jsonlog.stdout",
            "uppercase",
            "--listen",
            "tcp:0:interface=127.0.0.1",
        )
        self.addCleanup(server.stop)
        port = int(server.waitFor(r"starting on (\d+)").group(1))
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as s:
            clientPort = s.getsockname()[1]
            s.sendall(b"abc")
            s.shutdown(socket.SHUT_WR)
            receiveAll(s)
        server.waitFor('"received": 3')
        events = [json.loads(line) for line in server.output.splitlines()]
        byFormat = {e["log_format"]: e for e in events}
        opened = byFormat["Connection from {host} port {port}"]
        self.assertEqual((opened["host"], opened["port"]), ("127.0.0.1", clientPort))
        self.assertEqual(byFormat["Received {size} bytes from {peer}: {data}"]["size"], 3)
        closed = byFormat["Connection from {peer} closed ({received} bytes received)"]
        self.assertEqual(closed["peer"], f"127.0.0.1:{clientPort}")
        # The plural word is in the format, not a field of junk data.
        self.assertNotIn("bytes", closed)
