"""
Client endpoint strings as people type them (brackets, escapes, the checks
Twisted leaves to connecting), and connecting within a time limit.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import (
    ConnectError,
    ConnectionRefusedError,
    DNSLookupError,
)
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from uppercase.cli import client as twistdClient
from uppercase.client import _connect

IPV6_HINT = r"write tcp:[::1]:9527 or tcp:host=\:\:1:port=9527"


class EndpointStringTests(SynchronousTestCase):
    """
    L{_connect}: endpoint strings as people type them.
    """

    def test_bracketsRewritten(self) -> None:
        """
        A bracketed IPv6 address at the start of an argument becomes
        Twisted's escaped form; everything else is left as it is.
        """
        cases = {
            "tcp:[::1]:9527": r"tcp:\:\:1:9527",
            "tcp:host=[::1]:port=9527": r"tcp:host=\:\:1:port=9527",
            "tcp:[fe80::1%lo]:9527": r"tcp:fe80\:\:1%lo:9527",
            "tls:[2001:db8::7]:9443": r"tls:2001\:db8\:\:7:9443",
            r"tcp:host=\:\:1:port=9527": r"tcp:host=\:\:1:port=9527",
            "tcp:127.0.0.1:9527": "tcp:127.0.0.1:9527",
            "unix:/run/[x]:timeout=3": "unix:/run/[x]:timeout=3",
            r"unix:\[::1]": r"unix:\[::1]",
        }
        for typed, rewritten in cases.items():
            self.assertEqual((typed, _connect.escapeBrackets(typed)), (typed, rewritten))

    def test_bracketedConnects(self) -> None:
        """
        The rewritten endpoint connects to the IPv6 address and port.
        """
        for typed in ("tcp:[::1]:9527", "tcp:host=[::1]:port=9527"):
            reactor = MemoryReactorClock()
            _connect.clientEndpoint(reactor, typed).connect(Factory.forProtocol(Protocol))
            self.assertEqual(reactor.tcpClients[0][:2], ("::1", 9527))

    def test_unescapedIPv6Refused(self) -> None:
        """
        An unbracketed, unescaped IPv6 address is refused with the forms
        that work, whether or not it contains C{::}.
        """
        for typed in (
            "tcp:host=::1:port=9527",
            "tcp:::1:9527",
            "tcp:2001:db8::1:9527",
            "tcp:host=2001:db8:0:0:0:0:0:1:port=9527",
        ):
            error = self.assertRaises(ValueError, _connect.checkDescription, typed)
            self.assertIn(IPV6_HINT, str(error))

    def test_timeoutChecked(self) -> None:
        """
        An endpoint's own C{timeout} must be a whole number of seconds, 0 or
        more, by keyword or (for C{tls}) by position.
        """
        for typed, value in (
            ("tcp:127.0.0.1:9527:timeout=-1", "-1"),
            ("unix:/run/u.sock:timeout=-5", "-5"),
            ("tcp:127.0.0.1:9527:timeout=soon", "soon"),
            ("tls:example.org:9527:-1", "-1"),
        ):
            error = self.assertRaises(ValueError, _connect.checkDescription, typed)
            self.assertEqual(
                str(error), f"timeout must be a whole number of seconds, 0 or more, not {value!r}"
            )

    def test_portChecked(self) -> None:
        """
        A TCP or TLS port must be from 1 to 65535; it and a timeout are
        written in ASCII digits (not C{9_527} or other scripts' digits,
        which Python's C{int} takes).
        """
        for typed, value in (
            ("tcp:127.0.0.1:0", "0"),
            ("tcp:127.0.0.1:9_527", "9_527"),
            ("tcp:127.0.0.1:\u0669\u0665\u0662\u0667", "\u0669\u0665\u0662\u0667"),
            ("tcp:127.0.0.1:8:timeout=1_0", None),
            ("tcp:127.0.0.1:65536", "65536"),
            ("tcp:host=127.0.0.1:port=70000", "70000"),
            ("tls:example.org:99999", "99999"),
        ):
            error = self.assertRaises(ValueError, _connect.checkDescription, typed)
            if value is None:
                self.assertIn("timeout must be a whole number", str(error))
            else:
                self.assertEqual(str(error), f"port must be from 1 to 65535, not {value!r}")

    def test_helpExamplesWork(self) -> None:
        """
        Every endpoint string the options' help shows is accepted, and
        connects where it says.
        """
        shown = set()
        for example in re.findall(
            r"\b(?:tcp|unix|tls):\S+", twistdClient.ClientOptions().getUsage()
        ):
            example = example.rstrip(".,;)")
            if example.count("]") > example.count("["):
                example = example[:-1]  # the end of "[default: ...]"
            shown.add(example)
        destinations = {
            "tcp:127.0.0.1:9527": ("tcp", "127.0.0.1", 9527),
            "tcp:[::1]:9527": ("tcp", "::1", 9527),
            r"tcp:host=\:\:1:port=9527": ("tcp", "::1", 9527),
            "unix:/run/uppercase.sock": ("unix", "/run/uppercase.sock"),
            "tls:example.org:9527": ("tls",),
        }
        self.assertEqual(shown, set(destinations))
        for example, where in destinations.items():
            if where[0] == "tls" and not _connect.hasTLS():
                continue  # see test_tlsWithoutPyOpenSSL
            _connect.checkDescription(example)
            reactor = MemoryReactorClock()
            endpoint = _connect.clientEndpoint(reactor, example)
            if where[0] == "tcp":
                endpoint.connect(Factory.forProtocol(Protocol))
                self.assertEqual(reactor.tcpClients[0][:2], where[1:])
            elif where[0] == "unix":
                endpoint.connect(Factory.forProtocol(Protocol))
                self.assertEqual(reactor.unixClients[0][0], where[1])

    def test_tlsWithoutPyOpenSSL(self) -> None:
        """
        Without pyOpenSSL, a C{tls:} endpoint is refused with a message
        that says what to install.
        """
        self.patch(_connect, "hasTLS", lambda: False)
        error = self.assertRaises(ValueError, _connect.checkDescription, "tls:example.org:9527")
        self.assertEqual(str(error), "TLS needs pyOpenSSL: pip install 'uppercase[tls]'")


@implementer(IStreamClientEndpoint)
class FakeEndpoint:
    """
    A client endpoint whose C{connect} returns a L{Deferred} the test fires,
    recording whether it was cancelled.
    """

    def __init__(self) -> None:
        self.cancelled = False
        self.attempt: Deferred[Any] = Deferred(lambda d: setattr(self, "cancelled", True))

    def connect(self, factory: Any) -> Deferred[Any]:
        return self.attempt


class ConnectWithinTests(SynchronousTestCase):
    """
    L{_connect.connectWithin} bounds a connection attempt on any endpoint.
    """

    def test_timesOut(self) -> None:
        """
        An attempt still pending after C{timeout} seconds is cancelled and
        fails with L{_connect.ConnectTimeout}, saying after how long.
        """
        clock = Clock()
        endpoint = FakeEndpoint()
        d = _connect.connectWithin(endpoint, Factory(), 2.5, clock)
        clock.advance(2.499)
        self.assertNoResult(d)
        clock.advance(0.001)
        self.assertTrue(endpoint.cancelled)
        failure = self.failureResultOf(d, _connect.ConnectTimeout)
        self.assertEqual(str(failure.value), "timed out after 2.5s")

    def test_connectedInTime(self) -> None:
        """
        An attempt that succeeds in time gives its protocol and leaves no
        timer.
        """
        clock = Clock()
        endpoint = FakeEndpoint()
        d = _connect.connectWithin(endpoint, Factory(), 2, clock)
        protocol = Protocol()
        endpoint.attempt.callback(protocol)
        self.assertIs(self.successResultOf(d), protocol)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_raisingEndpoint(self) -> None:
        """
        An endpoint whose C{connect} raises gives a failed L{Deferred}, not
        an exception, and leaves no timer.
        """

        @implementer(IStreamClientEndpoint)
        class Raising:
            def connect(self, factory: Any) -> Deferred[Any]:
                raise OverflowError("port must be 0-65535")

        clock = Clock()
        d = _connect.connectWithin(Raising(), Factory(), 2, clock)
        self.failureResultOf(d, OverflowError)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_worthRetrying(self) -> None:
        """
        Network failures (refused, timed out) are worth retrying; a name
        that does not resolve, a missing UNIX socket, or anything else (a
        bad value the endpoint only noticed when connecting) is not.
        """
        for error, expected in (
            (ConnectionRefusedError(), True),
            (DNSLookupError("nowhere.invalid"), False),
            (ConnectError(2, "No such file or directory"), False),
            (ConnectError(111, "Connection refused"), True),
            (_connect.ConnectTimeout(2), True),
            (ValueError("bad"), False),
            (OverflowError("port must be 0-65535"), False),
        ):
            self.assertEqual((error, _connect.isWorthRetrying(Failure(error))), (error, expected))
