"""
The UDP echo against clients nobody here wrote: socat, ncat, Perl's core
C{Net::Ping} in C{udp} mode (against the C{--plain} echo, as it expects the
RFC 862 echo service), and Python's asyncio datagram client.

Each tool is installed in CI (.ci/run: C{socat}, C{ncat}, C{perl}); a test
whose tool is missing is skipped locally, and fails in CI.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from ._process import DEADLINE
from .test_udp import UDPServer


def tool(name: str, package: str) -> str:
    """
    The path of command C{name}: skip the test if it is missing, unless
    in CI, where that fails it.
    """
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            raise AssertionError(f"{name} is missing (.ci/run installs {package})")
        raise SkipTest(f"{name} is not installed (apt-get install {package})")
    return path


def feed(argv: list[str], data: bytes, linger: float = 1.0) -> bytes:
    """
    Run C{argv} with C{data} on its standard input, which stays open
    C{linger} seconds more (a UDP tool that sees its input end may quit
    before the reply comes), and return its standard output.
    """
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert process.stdin is not None
    process.stdin.write(data)
    process.stdin.flush()
    try:
        process.wait(linger)
    except subprocess.TimeoutExpired:
        pass
    process.stdin.close()
    assert process.stdout is not None
    try:
        process.wait(DEADLINE)
    except subprocess.TimeoutExpired:
        process.kill()
    return process.stdout.read()


class ToolTests(SynchronousTestCase):
    """
    Datagram tools get their datagram back, uppercased (or unchanged with
    C{--plain}).
    """

    def server(self, *args: str) -> UDPServer:
        server = UDPServer(*args)
        self.addCleanup(server.stop)
        return server

    def test_socat(self) -> None:
        """
        C{socat - UDP:127.0.0.1:PORT} prints the uppercased line.
        """
        socat = tool("socat", "socat")
        server = self.server()
        out = feed([socat, "-t", "2", "-", f"UDP:127.0.0.1:{server.port}"], b"hello socat\n")
        self.assertEqual(out, b"HELLO SOCAT\n")

    def test_ncat(self) -> None:
        """
        C{ncat -u 127.0.0.1 PORT} prints the line unchanged from the
        C{--plain} server.
        """
        ncat = tool("ncat", "ncat")
        server = self.server("--plain")
        out = feed([ncat, "-u", "-i", "2", "127.0.0.1", str(server.port)], b"hello ncat\n")
        self.assertEqual(out, b"hello ncat\n")

    def test_netPingUDP(self) -> None:
        """
        Perl's core C{Net::Ping} in C{udp} mode, aimed at the port, finds
        the C{--plain} echo alive; the uppercase echo, which changes its
        128 bytes (0 to 127, a-z among them), is not the echo it expects.
        """
        perl = tool("perl", "perl")
        program = (
            "use Net::Ping; my $p = Net::Ping->new('udp', 5, 128); "
            "$p->port_number($ARGV[0]); print $p->ping('127.0.0.1') ? 'alive' : 'unreachable';"
        )
        plain = self.server("--plain")
        result = subprocess.run(
            [perl, "-e", program, str(plain.port)], capture_output=True, timeout=DEADLINE
        )
        self.assertEqual(result.stdout, b"alive", result.stderr)
        upper = self.server()
        program = program.replace("5, 128", "1, 128")
        result = subprocess.run(
            [perl, "-e", program, str(upper.port)], capture_output=True, timeout=DEADLINE
        )
        self.assertEqual(result.stdout, b"unreachable", result.stderr)

    def test_asyncio(self) -> None:
        """
        Python's asyncio datagram client gets each datagram back, in its
        own datagram, unchanged from the C{--plain} server (9,000 bytes
        too, more than Twisted reads by default).
        """
        server = self.server("--plain")
        # Not a 0-byte one: asyncio sends none (test_udp sends one).
        sent = [b"one", b"\x00\xffbinary", b"x" * 9000]

        class Client(asyncio.DatagramProtocol):
            def __init__(self) -> None:
                self.received: asyncio.Queue[bytes] = asyncio.Queue()

            def datagram_received(self, data: bytes, addr: object) -> None:
                self.received.put_nowait(data)

        async def exchange() -> list[bytes]:
            loop = asyncio.get_running_loop()
            transport, client = await loop.create_datagram_endpoint(
                Client, remote_addr=("127.0.0.1", server.port)
            )
            try:
                replies = []
                for datagram in sent:
                    transport.sendto(datagram)
                    replies.append(await asyncio.wait_for(client.received.get(), DEADLINE))
                return replies
            finally:
                transport.close()

        self.assertEqual(asyncio.run(exchange()), sent)
        self.assertEqual(server.stop(), -signal.SIGTERM)
        self.assertNotIn("Traceback", server.output)
