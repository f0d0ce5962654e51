"""
C{twistd -n uppercase --plain}, the plain echo (RFC 862), on real sockets:
every listener and transport (TCP, UNIX, TLS, PROXY behind a real HAProxy,
C{--workers}, systemd socket activation) sends every byte back unchanged,
and C{uppercase-client --plain} verifies it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from ._process import (
    DEADLINE,
    Twistd,
    closedPort,
    receiveAll,
    requireTLS,
    run,
    script,
    sendInThread,
)
from .test_endpoints import makeCertificate
from .test_haproxy import HAPROXY, HAProxy
from .test_systemd import ACTIVATE, Activated

EVERY_BYTE = bytes(range(256)) * 1024
"""256 KiB holding every byte value, C{a}-C{z}, NUL and 0x80-0xff included."""


def exchange(family: int, address: tuple[str, int] | str, data: bytes = EVERY_BYTE) -> bytes:
    """
    Send C{data} while reading, half-close, and read until the server
    closes: what came back.
    """
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(DEADLINE)
        s.connect(address)
        sender = sendInThread(s, data)
        received = receiveAll(s)
        sender.join(DEADLINE)
    return received


def plainClient(connect: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """
    C{uppercase-client --plain}: two messages, then a short stream.
    """
    return run(
        script("uppercase-client") + ["--plain", "-c", connect, "-n", "2", "-i", "0", *extra]
    )


class PlainServerTests(SynchronousTestCase):
    """
    One C{--plain} server listening on TCP, UNIX, TLS and PROXY-protocol
    endpoints at once.
    """

    def setUp(self) -> None:
        self.folder = tempfile.mkdtemp()
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", self.folder]))

    def test_everyListener(self) -> None:
        """
        Every byte value comes back unchanged, with the half-close
        answered, on TCP, UNIX and PROXY (behind HAProxy, v2) listeners;
        C{uppercase-client --plain} verifies its replies over TCP and TLS;
        the start-up line names the plain echo.
        """
        requireTLS()
        if not HAPROXY:
            if os.environ.get("CI"):
                raise AssertionError("haproxy is not installed (.ci/run installs it)")
            raise SkipTest("haproxy is not installed (apt-get install haproxy)")
        key, cert, roots = makeCertificate(self.folder)
        path = os.path.join(self.folder, "plain.sock")
        tcp, tls, proxied = closedPort(), closedPort(), closedPort()
        server = Twistd(
            "uppercase",
            "--plain",
            "--quiet",
            "--listen",
            f"tcp:{tcp}:interface=127.0.0.1",
            "--listen",
            f"unix:{path}",
            "--listen",
            f"ssl:{tls}:interface=127.0.0.1:privateKey={key}:certKey={cert}",
            "--listen",
            f"haproxy:tcp:{proxied}:interface=127.0.0.1",
        )
        self.addCleanup(server.stop)
        server.waitFor(r"serving on .* \(plain echo, RFC 862\)$")
        proxy = HAProxy(proxied, "send-proxy-v2")
        self.addCleanup(proxy.stop)
        addresses: list[tuple[int, tuple[str, int] | str]] = [
            (socket.AF_INET, ("127.0.0.1", tcp)),
            (socket.AF_UNIX, path),
            (socket.AF_INET, ("127.0.0.1", proxy.port)),
        ]
        for family, address in addresses:
            received = exchange(family, address)
            self.assertTrue(received == EVERY_BYTE, f"{address}: {len(received)} bytes back")
        for connect in [f"tcp:127.0.0.1:{tcp}", f"tls:localhost:{tls}:trustRoots={roots}"]:
            result = plainClient(connect)
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertTrue(
                result.stdout.startswith("hello\nhello\n2 sent, 2 received, 2 verified")
            )
            stream = plainClient(connect, "--stream", "--count", "4", "--size", "65536")
            self.assertEqual(stream.returncode, 0, stream.stderr + stream.stdout)
            self.assertIn("262,144 bytes verified", stream.stdout)

    def test_uppercaseClientToldWhy(self) -> None:
        """
        The client without C{--plain} against a plain server fails in one
        line that says the replies came back unchanged; with C{--plain}
        against the uppercase server, that they came back uppercased.
        """
        plain = Twistd("uppercase", "--plain", "--quiet", "--listen", "tcp:0:interface=127.0.0.1")
        self.addCleanup(plain.stop)
        upper = Twistd("uppercase", "--quiet", "--listen", "tcp:0:interface=127.0.0.1")
        self.addCleanup(upper.stop)
        plainPort = int(plain.waitFor(r"starting on (\d+)").group(1))
        upperPort = int(upper.waitFor(r"starting on (\d+)").group(1))
        wrong = run(script("uppercase-client") + ["-c", f"tcp:127.0.0.1:{plainPort}", "-n", "1"])
        self.assertEqual(wrong.returncode, 1)
        self.assertEqual(
            wrong.stderr,
            "uppercase-client: reply 1 does not match at byte 0: expected 48, received 68; "
            'bytes 0-5: expected 48 45 4c 4c 4f 0a "HELLO.", received 68 65 6c 6c 6f 0a '
            '"hello." (unchanged: is it a plain RFC 862 echo? try --plain)\n',
        )
        load = plainClient(f"tcp:127.0.0.1:{upperPort}", "--rate", "100", "--count", "5")
        self.assertEqual(load.returncode, 1)
        [line] = load.stderr.splitlines()
        self.assertTrue(line.startswith("uppercase-client: 5 wrong replies; first: "), line)
        self.assertTrue(
            line.endswith("(uppercased: is it the uppercase echo? it expects no --plain)"), line
        )

    def test_workers(self) -> None:
        """
        C{--plain --workers 2}: the workers serve the plain echo too.
        """
        port = closedPort()
        server = Twistd(
            "uppercase",
            "--plain",
            "--quiet",
            "--workers",
            "2",
            "--listen",
            f"tcp:{port}:interface=127.0.0.1",
        )
        self.addCleanup(server.stop)
        for n in (1, 2):
            server.waitFor(rf"Worker {n} \(pid \d+\) is serving")
        self.assertIn("(plain echo, RFC 862)", server.waitFor(r"\[worker 1\] .*serving on").string)
        for _ in range(4):
            received = exchange(socket.AF_INET, ("127.0.0.1", port))
            self.assertTrue(received == EVERY_BYTE, f"{len(received)} bytes back")
        result = plainClient(f"tcp:127.0.0.1:{port}", "--connections", "4", "--count", "40")
        self.assertEqual(result.returncode, 0, result.stderr + result.stdout)

    def test_systemdSocketActivation(self) -> None:
        """
        Under C{systemd-socket-activate}, with the example unit's command
        and C{--plain}, the activated server echoes unchanged.
        """
        if ACTIVATE is None:
            if os.environ.get("CI"):
                raise AssertionError("systemd-socket-activate is missing (.ci/run installs it)")
            raise SkipTest("systemd-socket-activate is not installed (apt-get install systemd)")
        server = Activated(closedPort(), extra=["--plain"])
        self.addCleanup(server.stop)
        server.waitFor("Listening on")
        received = exchange(socket.AF_INET, ("127.0.0.1", server.port))
        self.assertTrue(received == EVERY_BYTE, f"{len(received)} bytes back")
        self.assertIn(
            "serving on systemd:domain=INET6:index=0 (plain echo, RFC 862)", server.output
        )
