"""
Specification of L{uppercase.load.stream}: one C{--stream} connection, full duplex, verified.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IProtocolFactory,
)

from tests.unit.load.test_run import LOAD, LoadRunCase
from uppercase.client._settings import ClientSettings
from uppercase.load.result import RunResult
from uppercase.load.run import LoadRun
from uppercase.server import UppercaseFactory
from uppercase.testing import MemoryConnection, asciiUpper, connectInMemory


class StreamRunTests(LoadRunCase):
    """
    C{--stream} through the real echo, in memory.
    """

    def test_streamThroughServer(self) -> None:
        """
        Three 64 KiB units each way through the server: every byte verified,
        the half-close answered by the server's close, status 0.
        """
        connections: list[MemoryConnection] = []

        def connect(factory: IProtocolFactory) -> Deferred[Any]:
            protocol = factory.buildProtocol(None)  # type: ignore[arg-type]
            server = UppercaseFactory(self.clock, logData=False)
            connections.append(connectInMemory(server, protocol))  # type: ignore[arg-type]
            d: Deferred[Any] = Deferred()
            d.callback(protocol)
            return d

        settings = dataclasses.replace(LOAD, stream=True, count=3, size=65536)
        self.loadRun = LoadRun(settings, self.clock, connect, self.observer)
        self.done = self.loadRun.start()
        connections[0].flush()
        result = self.result()
        self.assertEqual((result.streamBytes, result.status, result.errors), (3 * 65536, 0, {}))

    def test_streamCorruptionLocated(self) -> None:
        """
        A stream of 2 x 1000 bytes whose echo has one wrong byte at 1500:
        reported at that offset (unit 2, byte 500), then the half-close
        and the server's close end the run with status 1.
        """
        settings = dataclasses.replace(LOAD, stream=True, count=2, size=1000)
        self.start(settings)
        transport = self.connect.succeed()
        self.assertTrue(transport.writeDisconnected)  # all sent, then half-closed
        reply = bytearray(asciiUpper(transport.value()))
        self.assertEqual(len(reply), 2000)
        reply[1500] ^= 0x20
        transport.receive(bytes(reply[:700]))
        transport.receive(bytes(reply[700:]))
        transport.receiveEOF()
        result = self.result()
        [mismatch] = result.mismatches
        self.assertEqual(
            (mismatch.connection, mismatch.message, mismatch.offset, mismatch.messageOffset),
            (1, 2, 1500, 500),
        )
        self.assertEqual((result.streamBytes, result.status), (2000, 1))

    def test_streamClosedEarly(self) -> None:
        """
        A server that closes before every byte came back: "closed early".
        """
        settings = dataclasses.replace(LOAD, stream=True, count=2, size=1000)
        self.start(settings)
        transport = self.connect.succeed()
        transport.protocol.readConnectionLost()
        result = self.result()
        self.assertEqual((result.errors, result.status), ({"closed early": 1}, 1))


class PlainTests(LoadRunCase):
    """
    With C{plain} (C{--plain}), load runs expect every reply unchanged:
    through the server's plain echo, in memory, messages and streams are
    verified; against the other echo, the run fails, saying what the
    replies look like.
    """

    def throughServer(self, settings: ClientSettings, serverPlain: bool) -> RunResult:
        """
        Run C{settings} to its end through the server's echo, plain or not.
        """
        connections: list[MemoryConnection] = []

        def connect(factory: IProtocolFactory) -> Deferred[Any]:
            protocol = factory.buildProtocol(None)  # type: ignore[arg-type]
            server = UppercaseFactory(self.clock, logData=False, plain=serverPlain)
            connections.append(connectInMemory(server, protocol))  # type: ignore[arg-type]
            d: Deferred[Any] = Deferred()
            d.callback(protocol)
            return d

        self.loadRun = LoadRun(settings, self.clock, connect, self.observer)
        self.done = self.loadRun.start()
        for _ in range(10):
            for connection in connections:
                connection.flush()
            self.clock.advance(0)
        return self.result()

    def test_messagesVerified(self) -> None:
        """
        Text and random messages of several sizes (shorter than a random
        message's header too), pipelined, all verified.
        """
        for payload, size in (("text", 7), ("random", 5), ("random", 300)):
            settings = dataclasses.replace(
                LOAD, count=20, size=size, payload=payload, pipeline=4, plain=True
            )
            result = self.throughServer(settings, serverPlain=True)
            self.assertEqual((result.verified, result.status), (20, 0), (payload, size))

    def test_streamVerified(self) -> None:
        """
        C{--stream --plain}: every byte verified through the plain echo.
        """
        settings = dataclasses.replace(LOAD, stream=True, count=3, size=65536, plain=True)
        result = self.throughServer(settings, serverPlain=True)
        self.assertEqual((result.streamBytes, result.status, result.errors), (3 * 65536, 0, {}))

    def test_withoutPlainAgainstPlainEcho(self) -> None:
        """
        Without C{plain}, the plain echo's replies are all wrong, and the
        reason says they came back unchanged.
        """
        result = self.throughServer(dataclasses.replace(LOAD, count=4), serverPlain=True)
        self.assertEqual((result.failed, result.status), (4, 1))
        self.assertTrue(
            (result.failure or "").endswith("(unchanged: is it a plain RFC 862 echo? try --plain)"),
            result.failure,
        )

    def test_plainAgainstUppercaseEcho(self) -> None:
        """
        With C{plain}, the uppercase echo's streamed replies are wrong, and
        the reason says they came back uppercased.
        """
        settings = dataclasses.replace(LOAD, stream=True, count=2, size=1000, plain=True)
        result = self.throughServer(settings, serverPlain=False)
        self.assertEqual(result.status, 1)
        self.assertTrue(
            (result.failure or "").endswith(
                "(uppercased: is it the uppercase echo? it expects no --plain)"
            ),
            result.failure,
        )
