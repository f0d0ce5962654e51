"""
The C{uppercase-client} command: run the repeating client once, print each
reply, and exit 0 only if every reply arrived and matched.
"""

from __future__ import annotations

import sys
from typing import IO, Any, NoReturn

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import connectProtocol
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import react
from twisted.python import usage
from twisted.python.failure import Failure

from ._client_tap import ClientOptions
from ._connect import clientEndpoint
from ._report import JSONReport, RoundTrips, TextReport
from .client import UppercaseClientProtocol

COMMAND = "uppercase-client"


class _Options(ClientOptions):
    synopsis = f"Usage: {COMMAND} " + ClientOptions.synopsis
    optFlags = [
        ["rtt", None, "Show each reply's round-trip time after it."],
        ["json", None, "Print one JSON object per reply, then a summary object."],
    ]


def describeConnectFailure(failure: Failure, endpoint: str) -> str:
    """
    The one line that says why connecting failed.
    """
    error = failure.value
    if isinstance(error, ConnectionRefusedError):
        reason = "Connection refused"
    else:
        reason = str(error).rstrip(".") or type(error).__name__
    return f"cannot connect to {endpoint}: {reason}"


def main(reactor: Any, *argv: str) -> Deferred[None]:
    """
    Parse C{argv}, connect, and run the client; the returned L{Deferred}
    fails with L{SystemExit} carrying the exit status when anything went
    wrong, after one line on standard error.
    """
    config = _Options()
    try:
        config.parseOptions(list(argv))
    except usage.UsageError as e:
        _fail(f"{e}\nTry '{COMMAND} --help' for help.", status=2)
    out: IO[bytes] = sys.stdout.buffer
    report = JSONReport(out) if config["json"] else TextReport(out, config["rtt"])
    rtts = RoundTrips()

    def printReply(sequence: int, reply: bytes, rtt: float) -> None:
        rtts.add(rtt)
        report.reply(sequence, reply, rtt)

    def summarize(error: str | None) -> None:
        report.summary(protocol.sent, protocol.received, protocol.verified, rtts, error)

    settings = config.settings
    protocol = UppercaseClientProtocol.fromSettings(settings, clock=reactor, onReply=printReply)
    endpoint = clientEndpoint(reactor, settings.connect)

    def connected(_: object) -> Deferred[None]:
        # Ctrl-C (or SIGTERM) stops the reactor: close the connection
        # cleanly first, and count that as the end of the run.
        trigger = reactor.addSystemEventTrigger("before", "shutdown", protocol.stop)

        def forgetTrigger(result: object) -> object:
            reactor.removeSystemEventTrigger(trigger)
            return result

        def succeeded(_: None) -> None:
            summarize(None)

        def failed(failure: Failure) -> None:
            summarize(failure.getErrorMessage())
            _fail(failure.getErrorMessage())

        return protocol.done.addBoth(forgetTrigger).addCallbacks(succeeded, failed)

    def connectFailed(failure: Failure) -> None:
        _fail(describeConnectFailure(failure, config["connect"]))

    def runFailed(failure: Failure) -> Failure | None:
        if failure.check(SystemExit):
            return failure
        _fail(failure.getErrorMessage())

    d = connectProtocol(endpoint, protocol)
    d.addCallbacks(connected, connectFailed)
    d.addErrback(runFailed)
    return d


def _fail(message: str, status: int = 1) -> NoReturn:
    sys.stderr.write(f"{COMMAND}: {message}\n")
    sys.stderr.flush()
    raise SystemExit(status)


def run() -> None:
    """
    The console-script entry point.
    """
    react(main, sys.argv[1:])
