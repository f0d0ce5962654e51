"""
C{uppercase-client -c udp:HOST:PORT}, the ping-like run: each verified
reply printed as over TCP, then the summary with the datagram counts
(C{9 sent, 9 received, 9 verified, 0 lost, rtt ...}), and an exit status:
0 only when every datagram was answered and verified; 1 otherwise, with
the reason in one line on standard error; 128 + N when interrupted by
signal N.
"""

from __future__ import annotations

import signal
from typing import IO, Any, Union

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from uppercase.cli.options import outputFailure
from uppercase.client._report import JSONReport, Output, RoundTrips, TextReport
from uppercase.client._settings import ClientSettings
from uppercase.client._udp import DatagramPing, openDatagram

__all__ = ["DatagramRun"]

COMMAND = "uppercase-client"

Report = Union[TextReport, JSONReport]


class DatagramRun:
    """
    One ping-like run over UDP.

    @ivar protocol: the run's protocol, whose counts the summary gives.
    """

    def __init__(
        self,
        reactor: Any,
        settings: ClientSettings,
        report: Report,
        stderr: IO[str],
        output: Output | None = None,
    ) -> None:
        self._reactor = reactor
        self._settings = settings
        self._report = report
        self._stderr = stderr
        self._rtts = RoundTrips()
        self._signal: int | None = None
        self._outputError: OSError | None = None
        if output is not None:
            output.onFailure = self._outputFailed
        self.protocol = DatagramPing(
            settings.message,
            count=settings.count,
            interval=settings.interval,
            timeout=settings.timeout,
            clock=reactor,
            onReply=self._reply,
            plain=settings.plain,
        )
        self._ended: Deferred[int] = Deferred()

    def start(self) -> Deferred[int]:
        """
        Open the socket and run.

        @return: fires with the exit status once the summary is printed.
        """
        try:
            opening = openDatagram(self._reactor, self._settings.connect, self.protocol)
        except Exception as e:
            self._finish(f"cannot reach {self._settings.connect}: {e}")
            return self._ended
        opening.addCallbacks(self._opened, self._cannotOpen)
        return self._ended

    def _opened(self, port: object) -> None:
        if self._signal is not None or self._outputError is not None:
            self.protocol.stop()
        else:
            self.protocol.begin()
        self.protocol.done.addCallback(lambda _: self._finish(self.protocol.failure))

    def _cannotOpen(self, failure: Failure) -> None:
        reason = str(failure.value).rstrip(".") or type(failure.value).__name__
        self._finish(f"cannot reach {self._settings.connect}: {reason}")

    def interrupt(self, signum: int) -> None:
        """
        Stop early because of signal C{signum}: send and wait for nothing
        more.
        """
        if self._signal is None:
            self._signal = signum
        self.protocol.stop()

    def _outputFailed(self, error: OSError) -> None:
        if self._outputError is None:
            self._outputError = error
            self._reactor.callLater(0, self.protocol.stop)

    def _reply(self, sequence: int, reply: bytes, rtt: float) -> None:
        self._rtts.add(rtt)
        self._report.reply(sequence, reply, rtt)

    def _finish(self, error: str | None) -> None:
        if self._ended.called:
            return
        if self._outputError is not None:
            status, error = outputFailure(self._outputError)
        elif error is not None:
            if error == "Connection refused":
                error = f"cannot reach {self._settings.connect}: {error}"
            status = 1
        elif self._signal is not None:
            error = f"interrupted by {signal.Signals(self._signal).name}"
            status = 128 + self._signal
        else:
            status = 0
        counts = self.protocol.tracker.counts
        self._report.summary(
            counts.sent, counts.received, counts.verified, self._rtts, error, counts.asDict()
        )
        if error is not None:
            try:
                self._stderr.write(f"{COMMAND}: {error}\n")
                self._stderr.flush()
            except OSError:
                pass
        self._ended.callback(status)
