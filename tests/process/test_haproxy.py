"""
Behind a real HAProxy (Debian's package): the PROXY protocol, v1 and v2,
gives the server the client's address, and half-close still works.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from ._process import DEADLINE, Server, closedPort, receiveAll, sendInThread
from .test_robustness import poll

HAPROXY = shutil.which("haproxy") or (
    "/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None
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


class BehindHAProxyMixin:
    sendProxy = ""

    def setUp(self) -> None:
        if HAPROXY is None:
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
