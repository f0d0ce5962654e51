"""
Behind a real HAProxy (Debian's package): the PROXY protocol, v1 and v2,
gives the server the client's address, and half-close still works.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from typing import TYPE_CHECKING

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from ._process import DEADLINE, Server, closedPort, receiveAll, sendInThread
from .test_robustness import poll

HAPROXY: str = shutil.which("haproxy") or (
    "/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else ""
)

CONFIG = """\
global
    maxconn 200
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend front
    bind 127.0.0.1:{front}
    default_backend back
backend back
    server uppercase 127.0.0.1:{back} {sendProxy}
"""


class HAProxy:
    """
    C{haproxy -db} in front of C{127.0.0.1:back}, on a free port.
    """

    def __init__(self, back: int, sendProxy: str) -> None:
        self.port = closedPort()
        self._folder = tempfile.TemporaryDirectory()
        config = os.path.join(self._folder.name, "haproxy.cfg")
        with open(config, "w") as f:
            f.write(CONFIG.format(front=self.port, back=back, sendProxy=sendProxy))
        self.process = subprocess.Popen(
            [HAPROXY, "-db", "-f", config],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not poll(self._accepting):
            self.stop()
            raise AssertionError("haproxy did not start")

    def _accepting(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._folder.cleanup()


if TYPE_CHECKING:
    _TestCase = SynchronousTestCase
else:
    _TestCase = object


class BehindHAProxyMixin(_TestCase):
    sendProxy = ""

    def setUp(self) -> None:
        if not HAPROXY:
            if os.environ.get("CI"):
                raise AssertionError("haproxy is not installed (.ci/run installs it)")
            raise SkipTest("haproxy is not installed (apt-get install haproxy)")
        self.server = Server(listen="haproxy:tcp:0:interface=127.0.0.1")
        self.addCleanup(self.server.stop)
        self.proxy = HAProxy(self.server.port, self.sendProxy)
        self.addCleanup(self.proxy.stop)

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.proxy.port), timeout=DEADLINE)

    def test_clientAddressLogged(self) -> None:
        """
        The server logs the client's own port, not HAProxy's.
        """
        with self.connect() as s:
            port = s.getsockname()[1]
            s.sendall(b"hello\n")
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(receiveAll(s), b"HELLO\n")
        self.server.waitFor(rf"Connection from 127\.0\.0\.1 port {port}\b")

    def test_halfCloseLarge(self) -> None:
        """
        4 MiB piped through HAProxy with a half-close all come back.
        """
        data = os.urandom(4 * 1024 * 1024)
        with self.connect() as s:
            sender = sendInThread(s, data)
            received = receiveAll(s)
            sender.join(DEADLINE)
        self.assertTrue(received == data.upper(), f"{len(received)} bytes back")


class SendProxyV1Tests(BehindHAProxyMixin, SynchronousTestCase):
    """
    HAProxy with C{send-proxy} (PROXY protocol v1).
    """

    sendProxy = "send-proxy"


class SendProxyV2Tests(BehindHAProxyMixin, SynchronousTestCase):
    """
    HAProxy with C{send-proxy-v2} (PROXY protocol v2).
    """

    sendProxy = "send-proxy-v2"


def readmeConfig() -> str:
    """
    The HAProxy configuration the documentation shows (docs/endpoints.md,
    once in the README), as written (its first code block that starts with
    C{defaults}).
    """
    page = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "endpoints.md")
    with open(page) as f:
        text = f.read()
    match = re.search(r"```\n((?:\s*defaults\n).*?)```", text, re.S)
    assert match is not None, "no HAProxy configuration in docs/endpoints.md"
    lines = match.group(1).splitlines()
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return "\n".join(line[indent:] for line in lines) + "\n"


class ReadmeConfigTests(SynchronousTestCase):
    """
    The README's HAProxy configuration, run as written (health checks
    included) in front of two servers started as the README says, with only
    the ports changed.
    """

    def setUp(self) -> None:
        if not HAPROXY:
            if os.environ.get("CI"):
                raise AssertionError("haproxy is not installed (.ci/run installs it)")
            raise SkipTest("haproxy is not installed (apt-get install haproxy)")

    def test_healthChecksNotLogged(self) -> None:
        """
        HAProxy's checks (a PROXY v2 LOCAL header, then a reset, every 2 s
        per server) find both servers up, and neither server logs them; a
        client through HAProxy is served and logged with its own port.
        """
        self.checksNotLogged(readmeConfig())

    def test_sendProxyV1ChecksNotLogged(self) -> None:
        """
        The same with C{check send-proxy} and C{option tcp-check}: the
        checks send a PROXY v1 header with addresses, then reset; they are
        not logged as losses (nor at all), as v2 LOCAL checks are not.
        """
        # Checked every 0.2 s, for a second after both are found up.
        config = readmeConfig().replace("send-proxy-v2 check", "send-proxy check inter 200")
        config = config.replace("balance leastconn\n", "balance leastconn\noption tcp-check\n")
        self.assertIn("option tcp-check", config)
        self.checksNotLogged(config, settle=1.0)

    def checksNotLogged(self, config: str, settle: float = 0.0) -> None:
        """
        Run HAProxy with C{config} (the README's, or a variant) in front of
        two servers until it has found both up (and C{settle} seconds more
        of checks), then send one client through it: only that client is
        logged.
        """
        servers = []
        for _ in range(2):
            server = Server(listen="haproxy:tcp:0:interface=127.0.0.1")
            self.addCleanup(server.stop)
            servers.append(server)
        front = closedPort()
        self.assertIn(" check", config)
        config = config.replace("bind :9527", f"bind 127.0.0.1:{front}")
        config = config.replace("127.0.0.1:9601", f"127.0.0.1:{servers[0].port}")
        config = config.replace("127.0.0.1:9602", f"127.0.0.1:{servers[1].port}")
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder)
        stats = os.path.join(folder, "stats.sock")
        files = {"readme.cfg": config, "stats.cfg": f"global\n    stats socket {stats}\n"}
        for name, text in files.items():
            with open(os.path.join(folder, name), "w") as f:
                f.write(text)
        process = subprocess.Popen(
            [HAPROXY, "-db"]
            + [arg for name in files for arg in ("-f", os.path.join(folder, name))],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.addCleanup(process.wait, DEADLINE)
        self.addCleanup(process.terminate)

        def checked() -> bool:
            rows = serverStats(stats)
            return len(rows) == 2 and all(
                row["status"] == "UP" and row["check_status"] == "L4OK" for row in rows
            )

        self.assertTrue(poll(checked), serverStats(stats) if os.path.exists(stats) else "no stats")
        time.sleep(settle)
        with socket.create_connection(("127.0.0.1", front), timeout=DEADLINE) as s:
            port = s.getsockname()[1]
            s.sendall(b"through\n")
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(receiveAll(s), b"THROUGH\n")
        self.assertTrue(
            poll(lambda: f"port {port}" in "".join(server.output for server in servers))
        )
        output = "".join(server.output for server in servers)
        self.assertEqual(output.count("Connection from 127.0.0.1 port"), 1, output)
        self.assertNotIn(" lost:", output)


def serverStats(path: str) -> list[dict[str, str]]:
    """
    HAProxy's C{show stat} for the backend's servers, from its stats socket.
    """
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(DEADLINE)
            s.connect(path)
            s.sendall(b"show stat\n")
            text = receiveAll(s).decode()
    except OSError:
        return []
    rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
    return [row for row in rows if row["svname"] not in ("FRONTEND", "BACKEND")]
