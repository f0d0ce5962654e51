"""
C{uppercase-client -c udp:...}: its options, the ping-like run on a fake
reactor (L{uppercase.cli.udpcommand.DatagramRun}), and C{twistd
uppercase-client -c udp:...}.
"""

from __future__ import annotations

import io
import json
from typing import Any, List

from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from uppercase.cli import client as twistdClient
from uppercase.cli import command
from uppercase.cli.udpcommand import DatagramRun
from uppercase.client._report import JSONReport, TextReport
from uppercase.load.prober import LoadService


def parse(*argv: str) -> twistdClient.ClientOptions:
    options = twistdClient.ClientOptions()
    options.parseOptions(list(argv))
    return options


class OptionTests(SynchronousTestCase):
    def test_udpRefuses(self) -> None:
        """
        What makes no sense over UDP, a C{--size} that no datagram can
        carry with its header, and C{--max-loss} without UDP or over 100
        are one-line usage errors.
        """
        for argv, words in [
            (["--stream"], "--stream streams bytes over a connection: not over udp:"),
            (["--send-proxy", "v1"], "--send-proxy starts a connection with a header"),
            (["--size", "26"], "--size over udp: must be from 27"),
            (["--size", "65508"], "to 65,507, not 65,508"),
            (["--max-loss", "101"], "--max-loss must be a percentage, at most 100, not 101"),
            (["--max-loss", "x"], "--max-loss must be a percentage, not 'x'"),
            (["-c", "tcp:127.0.0.1:9527", "--max-loss", "1"], "it needs -c udp:HOST:PORT"),
        ]:
            with self.assertRaises(usage.UsageError) as raised:
                parse("-c", "udp:127.0.0.1:9527", *argv)
            self.assertIn(words, str(raised.exception))

    def test_plainAndMaxLoss(self) -> None:
        """
        C{--plain} is a flag that does not make a load run; C{--max-loss}
        is a percentage that does.
        """
        settings = parse("-c", "udp:127.0.0.1:9527", "--plain").settings
        self.assertTrue(settings.plain)
        self.assertFalse(settings.isLoad)
        settings = parse("-c", "udp:127.0.0.1:9527", "--max-loss", "2.5").settings
        self.assertEqual(settings.maxLoss, 2.5)
        self.assertTrue(settings.isLoad)

    def test_prepare(self) -> None:
        """
        The command runs a L{DatagramRun} for a C{udp:} endpoint unless a
        load option is given.
        """
        self.assertIsInstance(command.prepare(Clock(), ["-c", "udp:[::1]:7"]), DatagramRun)
        self.assertNotIsInstance(
            command.prepare(Clock(), ["-c", "udp:[::1]:7", "--rate", "5"]), DatagramRun
        )


class UDPReactor(Clock):
    """
    A clock that opens UDP ports in memory.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ports: List[FakeUDPPort] = []

    def resolve(self, name: str) -> Any:
        return succeed("192.0.2.1")

    def listenUDP(self, port: int, protocol: Any, interface: str = "") -> FakeUDPPort:
        udp = FakeUDPPort(protocol, interface)
        self.ports.append(udp)
        return udp


class FakeUDPPort:
    def __init__(self, protocol: Any, interface: str) -> None:
        self.protocol = protocol
        self.interface = interface
        self.written: List[bytes] = []
        self.peer: Any = None
        protocol.makeConnection(self)

    def connect(self, host: str, port: int) -> None:
        self.peer = (host, port)

    def write(self, datagram: bytes) -> None:
        self.written.append(datagram)
        self.protocol.datagramReceived(datagram.upper(), self.peer)

    def stopListening(self) -> None:
        self.protocol.doStop()


class DatagramRunTests(SynchronousTestCase):
    def run_(self, *argv: str, json_: bool = False) -> tuple[int, str, str, UDPReactor]:
        reactor = UDPReactor()
        options = twistdClient.ClientOptions()
        options.parseOptions(list(argv))
        out, err = io.BytesIO(), io.StringIO()
        report = JSONReport(out) if json_ else TextReport(out)
        ended = DatagramRun(reactor, options.settings, report, err).start()
        reactor.pump([0.5] * 10)
        return self.successResultOf(ended), out.getvalue().decode(), err.getvalue(), reactor

    def test_replies(self) -> None:
        """
        Each reply printed as over TCP, then the summary with the loss; the
        name resolved and the socket connected to it; status 0.
        """
        status, out, err, reactor = self.run_("-c", "udp:example.org:7", "-n", "2", "-i", "0.5")
        self.assertEqual(status, 0)
        self.assertEqual(reactor.ports[0].peer, ("192.0.2.1", 7))
        lines = out.splitlines()
        self.assertEqual(lines[:2], ["HELLO", "HELLO"])
        self.assertTrue(lines[2].startswith("2 sent, 2 received, 2 verified, 0 lost, rtt "))
        self.assertEqual(err, "")

    def test_ipv6(self) -> None:
        """
        An IPv6 address is used as it is, on an IPv6 socket.
        """
        status, out, err, reactor = self.run_("-c", "udp:[::1]:7", "-n", "1")
        self.assertEqual((status, reactor.ports[0].peer), (0, ("::1", 7)))
        self.assertEqual(reactor.ports[0].interface, "::")

    def test_plainMismatch(self) -> None:
        """
        C{--plain} against an uppercasing peer: every reply corrupted,
        status 1 and one line saying where.
        """
        status, out, err, reactor = self.run_(
            "-c", "udp:127.0.0.1:7", "-n", "2", "--plain", json_=True
        )
        summary = json.loads(out.splitlines()[-1])
        self.assertEqual(status, 1)
        self.assertEqual(summary["datagrams"]["corrupted"], 2)
        self.assertEqual(summary["verified"], 0)
        self.assertEqual(err.count("\n"), 1)
        self.assertIn("reply 1 does not match at byte 26", err)


class TwistdTests(SynchronousTestCase):
    def test_udpIsAProber(self) -> None:
        """
        C{twistd uppercase-client -c udp:...} runs the prober (a load run
        with its log and metrics), at ping's pace unless a load option says
        otherwise.
        """
        options = parse("-c", "udp:127.0.0.1:7", "-i", "0.5")
        service = twistdClient.makeService(options, reactor=Clock(), exitStatus=lambda s: None)
        assert isinstance(service, LoadService)
        self.assertEqual((service.settings.rate, service.settings.count), (2.0, 9))
        options = parse("-c", "udp:127.0.0.1:7", "--rate", "100", "-n", "0")
        service = twistdClient.makeService(options, reactor=Clock(), exitStatus=lambda s: None)
        assert isinstance(service, LoadService)
        self.assertEqual(service.settings.rate, 100)
