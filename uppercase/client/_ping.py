"""
The repeating client: send a message, wait for the whole uppercased reply,
check it, wait, and repeat.

Replies arrive as a byte stream: a reply may come in several reads.  The
client checks each read as it arrives with the one reply verifier
(L{uppercase.client._verifier}), the one the load mode uses, and never treats one
read as one reply: a wrong byte fails the run at once, wherever it is.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from uppercase.client._connect import describeTLSFailure, errorKind
from uppercase.client._ending import CLOSED_EARLY, RESET, TIMED_OUT, EarlyEnd, endKind
from uppercase.client._report import counted
from uppercase.client._settings import ClientSettings
from uppercase.client._verifier import Mismatch, ReplyVerifier, echoHint
from uppercase.proxy._send import proxyPreamble

__all__ = [
    "STOP_GRACE",
    "ClientError",
    "ClientSettings",
    "ConnectionClosedEarly",
    "ReplyMismatch",
    "ReplyTimeout",
    "UppercaseClientFactory",
    "UppercaseClientProtocol",
]

log = Logger(namespace="uppercase.client")

_DEFAULT = ClientSettings()

STOP_GRACE = 2.0
"""Seconds a connection closed by L{UppercaseClientProtocol.stop} may take
to go away before it is aborted."""


class ClientError(Exception):
    """
    The exchange with the server did not go as it should.
    """


class ReplyTimeout(ClientError):
    """
    A reply did not arrive in full within the per-reply timeout.
    """

    def __init__(
        self, sequence: int, timeout: float, received: int, end: EarlyEnd | None = None
    ) -> None:
        super().__init__(sequence, timeout, received, end)
        self.sequence = sequence
        self.timeout = timeout
        self.received = received
        """Bytes of the reply that did arrive."""
        self.end = end
        """The connection's bytes received and owed when it timed out."""

    def __str__(self) -> str:
        if self.end is not None:
            return (
                f"{self.end.detail()}: reply {self.sequence} incomplete "
                f"after {self.timeout:g} s (--timeout)"
            )
        return (
            f"reply {self.sequence} timed out after {self.timeout:g}s "
            f"({counted(self.received, 'byte')} of it received)"
        )


class ReplyMismatch(ClientError):
    """
    The server sent something other than the reply due: the ASCII-uppercase
    of the message (or the message itself, for a plain echo).

    @ivar sequence: the reply's number (from 1).
    @ivar mismatch: where the first wrong byte is, and the bytes around it
        (the load mode's L{Mismatch}: one rule for both).
    """

    def __init__(self, sequence: int, mismatch: Mismatch, hint: str = "") -> None:
        super().__init__(sequence, mismatch)
        self.sequence = sequence
        self.mismatch = mismatch
        self.hint = hint

    @property
    def offset(self) -> int:
        """
        Where the first wrong byte is in the reply.
        """
        return self.mismatch.messageOffset

    def __str__(self) -> str:
        if self.mismatch.unexpected:
            return self.mismatch.detail()
        return f"reply {self.sequence} does not match at {self.mismatch.detail()}{self.hint}"


class ConnectionClosedEarly(ClientError):
    """
    The connection ended before every reply had arrived.

    @ivar kind: how it ended, as TCP said it and as the load mode counts it
        (L{uppercase.client._connect.errorKind}): C{closed by server} (a
        FIN), C{reset} (a reset, or another error of the connection), ...
    @ivar reason: Twisted's words for it.
    @ivar end: the bytes received and owed when it ended (a reset, or a
        FIN while a reply was owed: C{closed early}), or L{None}.
    """

    def __init__(
        self,
        verified: int,
        count: int,
        reason: str,
        kind: str = "closed",
        end: EarlyEnd | None = None,
    ) -> None:
        super().__init__(verified, count, reason, kind, end)
        self.verified = verified
        self.count = count
        self.reason = reason
        self.kind = kind
        self.end = end

    def __str__(self) -> str:
        total = self.count or self.verified
        replies = "reply" if total == 1 else "replies"
        wanted = f" of {self.count:,}" if self.count else ""
        if self.end is not None and self.end.kind in (RESET, CLOSED_EARLY):
            return f"connection {self.end.detail()}; {self.verified:,}{wanted} {replies} verified"
        how = f"connection {self.kind} after {self.verified:,}{wanted} {replies}"
        if self.kind in ("closed by server", "reset"):
            return how
        return f"{how}: {self.reason}"


class TLSHandshakeFailed(ClientError):
    """
    The TLS handshake failed, so nothing was sent: C{reason} says what
    failed, in words (L{uppercase.client._connect.describeTLSFailure}).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return f"TLS handshake failed: {self.reason}"


ReplyCallback = Callable[[int, bytes, float], None]
"""Called with the sequence number (from 1), the reply, and its round-trip
time in seconds, for every reply that arrived in full and matched."""


def _ignoreReply(sequence: int, reply: bytes, rtt: float) -> None:
    pass


class UppercaseClientProtocol(Protocol):
    """
    Send C{message} + C{\\n} C{count} times (0: forever), C{interval} seconds
    apart, and check that each reply is its ASCII-uppercase (or, if
    C{plain}, the message unchanged: an RFC 862 echo's reply).

    @ivar done: fires when the connection is gone: with L{None} if every
        reply arrived and matched, otherwise with a L{ClientError} (or the
        transport's own failure) saying what went wrong.
    @ivar sent: how many messages were sent.
    @ivar received: how many replies arrived in full (matching or not).
    @ivar verified: how many replies arrived and matched.

    C{preamble}, if given, is called with the transport on connecting and
    what it returns is written first (a PROXY header, for C{--send-proxy}).
    """

    transport: Any
    """A stream transport (C{ITransport} with C{abortConnection})."""

    def __init__(
        self,
        message: bytes = _DEFAULT.message,
        *,
        count: int = _DEFAULT.count,
        interval: float = _DEFAULT.interval,
        timeout: float = _DEFAULT.timeout,
        clock: IReactorTime,
        onReply: ReplyCallback = _ignoreReply,
        firstSequence: int = 1,
        preamble: Callable[[Any], bytes] | None = None,
        plain: bool = False,
    ) -> None:
        self._preamble = preamble
        self._request = message + b"\n"
        self._expected = self._request if plain else self._request.upper()
        self._plain = plain
        self.count = count
        self.interval = interval
        self.timeout = timeout
        self._clock = clock
        self._onReply = onReply
        self._sequence = firstSequence - 1
        self.sent = 0
        self.received = 0
        self.verified = 0
        self.done: Deferred[None] = Deferred()
        self._verifier = ReplyVerifier(len(self._expected))
        self._waiting = False
        self._sentAt = 0.0
        self._timer: IDelayedCall | None = None
        self._error: Failure | None = None
        self._finished = False
        self._stopping = False
        self._lost = False
        self._aborted = False
        self._abortTimer: IDelayedCall | None = None

    @classmethod
    def fromSettings(
        cls,
        settings: ClientSettings,
        *,
        clock: IReactorTime,
        onReply: ReplyCallback = _ignoreReply,
        firstSequence: int = 1,
    ) -> UppercaseClientProtocol:
        """
        A protocol that sends C{settings.message}, C{settings.count} times,
        with C{settings.interval} and C{settings.timeout}.
        """
        return cls(
            settings.message,
            count=settings.count,
            interval=settings.interval,
            timeout=settings.timeout,
            clock=clock,
            onReply=onReply,
            firstSequence=firstSequence,
            preamble=proxyPreamble(settings.sendProxy) if settings.sendProxy else None,
            plain=settings.plain,
        )

    def connectionMade(self) -> None:
        if self._stopping:
            self.transport.loseConnection()
            return
        if self._preamble is not None:
            self.transport.write(self._preamble(self.transport))
        self._send()

    def _send(self) -> None:
        self._sequence += 1
        self._waiting = True
        self._sentAt = self._clock.seconds()
        self._timer = self._clock.callLater(self.timeout, self._timedOut)
        self._verifier.expect(self._expected)
        self.transport.write(self._request)
        self.sent += 1

    def dataReceived(self, data: bytes) -> None:
        if self._error is not None or self._stopping:
            return
        done, _, found = self._verifier.feed(data)
        if found:
            mismatch = found[0]
            self.received += done
            sequence = self._sequence - self.sent + mismatch.message
            self._fail(ReplyMismatch(sequence, mismatch, echoHint(mismatch, self._plain)))
        elif done:
            self._replyComplete(self._expected)

    def _replyComplete(self, reply: bytes) -> None:
        self._waiting = False
        self._cancelTimer()
        self.received += 1
        self.verified += 1
        self._onReply(self._sequence, reply, self._clock.seconds() - self._sentAt)
        if self.count and self.verified >= self.count:
            self._finished = True
            self.transport.loseConnection()
        else:
            self._timer = self._clock.callLater(self.interval, self._send)

    def stop(self, grace: float = STOP_GRACE) -> Deferred[None]:
        """
        End the run early (the user pressed Ctrl-C): send nothing more,
        ignore what still arrives, and close the connection; abort it if it
        is still there C{grace} seconds later (at once if C{grace} is 0, as
        for a second Ctrl-C).  C{done} then fires with L{None}, unless the
        run had already failed.

        @return: C{done}.
        """
        if self._error is None and not self._finished:
            self._finished = True
            self._stopping = True
            self._cancelTimer()
            if self.transport is not None:
                self.transport.loseConnection()
        closing = self.transport is not None and not self._lost
        if closing and self._error is None and not self._aborted:
            if grace <= 0:
                self._abort()
            elif self._abortTimer is None:
                self._abortTimer = self._clock.callLater(grace, self._abort)
        return self.done

    def _abort(self) -> None:
        self._cancelAbortTimer()
        self._aborted = True
        self.transport.abortConnection()

    def _cancelAbortTimer(self) -> None:
        if self._abortTimer is not None and self._abortTimer.active():
            self._abortTimer.cancel()
        self._abortTimer = None

    def _timedOut(self) -> None:
        self._timer = None
        verifier = self._verifier
        received = verifier.received - (verifier.completed * verifier.unit)
        end = EarlyEnd(0, TIMED_OUT, verifier.received, verifier.due)
        self._fail(ReplyTimeout(self._sequence, self.timeout, received, end))

    def _fail(self, error: ClientError) -> None:
        self._cancelTimer()
        self._error = Failure(error)
        self.transport.abortConnection()

    def _cancelTimer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        self._lost = True
        self._cancelTimer()
        self._cancelAbortTimer()
        if self._error is not None:
            outcome: Failure | None = self._error
        elif self._finished:
            outcome = None
        else:
            outcome = self._lostEarly(reason)
        if self.done.called:
            return
        if outcome is None:
            self.done.callback(None)
        else:
            self.done.errback(outcome)

    def _lostEarly(self, reason: Failure) -> Failure:
        """
        Why the run failed, the connection having ended for C{reason}
        before every reply had arrived.
        """
        tls = describeTLSFailure(reason)
        if tls is not None and not self.received:
            return Failure(TLSHandshakeFailed(tls[1]))
        verifier = self._verifier
        kind = endKind(errorKind(reason), verifier.due)
        end = EarlyEnd(0, kind, verifier.received, verifier.due)
        return Failure(
            ConnectionClosedEarly(self.verified, self.count, reason.getErrorMessage(), kind, end)
        )


class UppercaseClientFactory(Factory):
    """
    Build L{UppercaseClientProtocol}s that share one budget of replies, so
    that a client which reconnects (under C{ClientService}) carries on where
    the previous connection stopped instead of starting over.

    @ivar settings: what each connection does.
    @ivar verified: replies that arrived and matched, over all connections.
    @ivar finished: fires with L{None} once C{count} replies were verified;
        fails with L{ReplyMismatch} as soon as the server sends a wrong
        reply, since reconnecting cannot fix that.
    """

    noisy = False

    def __init__(
        self,
        settings: ClientSettings,
        *,
        clock: IReactorTime,
        onReply: ReplyCallback = _ignoreReply,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.onReply = onReply
        self.verified = 0
        self.finished: Deferred[None] = Deferred()
        self._current: UppercaseClientProtocol | None = None

    def buildProtocol(self, addr: IAddress | None) -> UppercaseClientProtocol:
        count = self.settings.count
        remaining = count - self.verified if count else 0
        protocol = UppercaseClientProtocol.fromSettings(
            dataclasses.replace(self.settings, count=remaining),
            clock=self.clock,
            onReply=self._replyVerified,
            firstSequence=self.verified + 1,
        )
        protocol.factory = self
        self._current = protocol
        protocol.done.addBoth(self._forget, protocol).addErrback(self._connectionFailed)
        return protocol

    def stop(self) -> None:
        """
        Close the current connection, if any, cleanly (see
        L{UppercaseClientProtocol.stop}).
        """
        if self._current is not None:
            self._current.stop()

    def _forget(self, result: object, protocol: UppercaseClientProtocol) -> object:
        if self._current is protocol:
            self._current = None
        return result

    def _replyVerified(self, sequence: int, reply: bytes, rtt: float) -> None:
        self.verified += 1
        self.onReply(sequence, reply, rtt)
        count = self.settings.count
        if count and self.verified >= count and not self.finished.called:
            self.finished.callback(None)

    def _connectionFailed(self, failure: Failure) -> None:
        if failure.check(ReplyMismatch):
            if not self.finished.called:
                self.finished.errback(failure)
            return None
        log.warn(
            "Connection ended early: {reason}",
            reason=failure.getErrorMessage(),
        )
        return None
