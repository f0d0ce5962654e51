"""
The C{uppercase-client} command: run the repeating client once, print each
reply, and exit 0 only if every reply arrived and matched.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import clientFromString, connectProtocol
from twisted.internet.error import ConnectError, ConnectionRefusedError
from twisted.internet.task import react
from twisted.python import usage
from twisted.python.failure import Failure

from ._client_tap import ClientOptions
from .client import ClientError, UppercaseClientProtocol

COMMAND = "uppercase-client"


class _Options(ClientOptions):
    synopsis = f"Usage: {COMMAND} " + ClientOptions.synopsis


def describeFailure(failure: Failure, endpoint: str) -> str:
    """
    The one line that says why a run failed.
    """
    error = failure.value
    if isinstance(error, ConnectionRefusedError):
        return f"cannot connect to {endpoint}: Connection refused"
    if isinstance(error, ConnectError):
        return f"cannot connect to {endpoint}: {str(error).rstrip('.')}"
    if isinstance(error, ClientError):
        return str(error)
    return failure.getErrorMessage()


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
    out = getattr(sys.stdout, "buffer", sys.stdout)

    def printReply(sequence: int, reply: bytes, rtt: float) -> None:
        out.write(reply)
        out.flush()

    protocol = UppercaseClientProtocol(
        config["message"],
        count=config["count"],
        interval=config["interval"],
        timeout=config["timeout"],
        clock=reactor,
        onReply=printReply,
    )
    endpoint = clientFromString(reactor, config["connect"])
    d = connectProtocol(endpoint, protocol)
    d.addCallback(lambda _: protocol.done)

    def report(failure: Failure) -> None:
        _fail(describeFailure(failure, config["connect"]))

    d.addErrback(report)
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
