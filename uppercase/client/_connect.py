r"""
Client endpoint strings as people type them, and connecting within a time
limit.

Twisted's endpoint strings separate their arguments with colons, so an IPv6
address needs its colons escaped: C{tcp:host=\:\:1:port=9527}.  People type
C{tcp:[::1]:9527} or C{tcp:host=[::1]:port=9527}; L{clientEndpoint} rewrites
those (L{escapeBrackets}) before L{clientFromString}.  L{checkDescription}
refuses, while the options are parsed, what Twisted would accept but then
connect somewhere else (C{tcp:host=::1:port=9527} is host "" port 1) or fail
only when connecting (C{timeout=-1}).
"""

from __future__ import annotations

import errno
import importlib.util
from typing import Any

from twisted.internet import error
from twisted.internet.defer import CancelledError, Deferred, maybeDeferred
from twisted.internet.endpoints import clientFromString
from twisted.internet.error import (
    ConnectError,
    ConnectingCancelledError,
    ConnectionRefusedError,
)
from twisted.internet.interfaces import (
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.python.failure import Failure

from uppercase._settings import wholeNumber
from uppercase.client._udp import parseUDP
from uppercase.net.endpoints import arguments, escapeBrackets, hasEmptyField, parseProblem

EXAMPLES = (
    "tcp:127.0.0.1:9527",
    "tcp:[::1]:9527",
    r"tcp:host=\:\:1:port=9527",
    "unix:/run/uppercase.sock",
    "tls:example.org:9527",
    "udp:127.0.0.1:9527",
)
"""Endpoint strings the help shows; a test checks that each one works."""

IPV6_FORMS = r"write tcp:[::1]:9527 or tcp:host=\:\:1:port=9527"

_HOST_AND_PORT = ("tcp", "ssl", "tls")
"""Endpoint types that take a host and a port, by position or by keyword."""


class ConnectTimeout(Exception):
    """
    A connection attempt was still pending after the time allowed.
    """

    def __init__(self, timeout: float) -> None:
        super().__init__(timeout)
        self.timeout = timeout

    def __str__(self) -> str:
        return f"timed out after {self.timeout:g}s"


def _checkWhole(name: str, value: str, least: int, most: int | None, wanted: str) -> None:
    try:
        number = wholeNumber(value)
    except ValueError:
        number = least - 1
    if number < least or (most is not None and number > most):
        raise ValueError(f"{name} must be {wanted}, not {value!r}")


def checkDescription(description: str, reactor: Any = None) -> None:
    """
    Check that C{description} (as typed, brackets allowed) is an endpoint
    string that L{clientEndpoint} can turn into an endpoint, and that the
    values Twisted only checks when connecting (a port, a timeout) are
    sound.

    @param reactor: what L{clientFromString} is given; the global reactor
        if L{None}.

    @raise ValueError: saying what is wrong, in one line.
    """
    escaped = escapeBrackets(description)
    args, kwargs = arguments(escaped)
    kind = args[0].lower() if args else ""
    positional = args[1:]
    if kind == "udp":
        parseUDP(description)  # not a stream endpoint: Twisted has no parser for it
        return
    if hasEmptyField(escaped) or (kind in ("tcp", "ssl") and len(positional) > 2):
        raise ValueError(f"an IPv6 address needs brackets or escaped colons: {IPV6_FORMS}")
    if kind in _HOST_AND_PORT:
        # As Twisted reads them: HOST:PORT, or host=HOST:PORT, or port=PORT.
        if len(positional) >= 2:
            port: str | None = positional[1]
        elif len(positional) == 1 and "host" in kwargs:
            port = positional[0]
        else:
            port = kwargs.get("port")
        if port is not None:
            _checkWhole("port", port, 1, 65535, "from 1 to 65535")
    timeout = kwargs.get("timeout")
    if timeout is None and kind == "tls" and len(positional) > 2:
        timeout = positional[2]
    if timeout is not None:
        _checkWhole("timeout", timeout, 0, None, "a whole number of seconds, 0 or more")
    if kind in ("tls", "ssl") and not hasTLS():
        raise ValueError("TLS needs pyOpenSSL: pip install 'uppercase[tls]'")
    if kind in ("tls", "ssl") and "trustRoots" in kwargs:
        # Twisted's parser would say only UnlistableError.  (client._tls
        # imports pyOpenSSL, the optional [tls] extra: only tls: loads it.)
        from uppercase.client._tls import checkTrustRoots

        checkTrustRoots(kwargs["trustRoots"])
    if reactor is None:
        from twisted.internet import reactor
    try:
        clientFromString(reactor, escaped)
    except Exception as e:
        raise ValueError(parseProblem(e, "tcp:, unix:, tls:, ssl:, udp:", description)) from None


def hasTLS() -> bool:
    """
    Whether pyOpenSSL, which Twisted's TLS endpoints need, is installed.
    """
    return importlib.util.find_spec("OpenSSL") is not None


def clientEndpoint(reactor: Any, description: str) -> IStreamClientEndpoint:
    """
    The endpoint for C{description} as typed: L{clientFromString} after
    L{escapeBrackets}; for C{tls:}, the same endpoint with a hostname check
    that refuses a certificate without subjectAltName too
    (L{uppercase.client._tls}).
    """
    escaped = escapeBrackets(description)
    args, kwargs = arguments(escaped)
    if args and args[0].lower() == "tls":
        # Only here: client._tls imports pyOpenSSL (the optional [tls] extra).
        from uppercase.client._tls import tlsEndpoint

        return tlsEndpoint(reactor, args[1:], kwargs)
    endpoint: IStreamClientEndpoint = clientFromString(reactor, escaped)
    return endpoint


def connectWithin(
    endpoint: IStreamClientEndpoint,
    factory: IProtocolFactory,
    timeout: float,
    clock: IReactorTime,
) -> Deferred[IProtocol]:
    """
    Connect, and cancel the attempt if it has not succeeded or failed
    within C{timeout} seconds, whatever the endpoint's own time limit.

    @return: fires with the connected protocol; fails with
        L{ConnectTimeout} after C{timeout} seconds, or with whatever the
        endpoint failed with (also when its C{connect} raised).
    """

    def timedOut(result: object, timeout: float) -> object:
        if isinstance(result, Failure):
            return Failure(ConnectTimeout(timeout))
        return result

    attempt: Deferred[IProtocol] = maybeDeferred(endpoint.connect, factory)
    attempt.addTimeout(timeout, clock, onTimeoutCancel=timedOut)
    return attempt


def describeTLSFailure(failure: Failure) -> tuple[str, str] | None:
    """
    The kind and the words of a TLS failure (see
    L{uppercase.client._tls.describeTLSFailure}), or L{None} for any other
    failure; pyOpenSSL is not imported for those.
    """
    value = failure.value
    if not type(value).__module__.startswith(("OpenSSL", "uppercase.client._tls")):
        return None
    # Only for OpenSSL's failures: client._tls imports pyOpenSSL (optional).
    from uppercase.client._tls import describeTLSFailure as describe

    return describe(failure)


def describeConnectFailure(failure: Failure) -> str:
    """
    Why a connection attempt failed, in a few words: C{Connection refused}
    as the C program says it, what failed in a TLS handshake, otherwise the
    error's own message.
    """
    error = failure.value
    if isinstance(error, ConnectionRefusedError):
        return "Connection refused"
    tls = describeTLSFailure(failure)
    if tls is not None:
        return f"TLS handshake failed: {tls[1]}"
    return str(error).rstrip(".") or type(error).__name__


def isCancellation(failure: Failure) -> bool:
    """
    Whether a connection attempt failed because it was cancelled (by a
    stop, not by L{connectWithin}'s time limit).
    """
    return bool(failure.check(CancelledError, ConnectingCancelledError))


def isWorthRetrying(failure: Failure) -> bool:
    """
    Whether a failed connection attempt may succeed later: a network error
    (refused, unreachable, timed out: a server restarting, a route coming
    back) may; a name that does not resolve, a UNIX socket path that does
    not exist, or anything else (a value the endpoint only checked when
    connecting, a bad TLS configuration) will not without someone acting.
    """
    if failure.check(error.DNSLookupError):
        return False
    if getattr(failure.value, "osError", None) in (errno.ENOENT, errno.ENOTDIR):
        return False  # no UNIX socket there (a ConnectError)
    return bool(failure.check(ConnectError, OSError, ConnectTimeout))


def errorKind(failure: Failure) -> str:
    """
    A short name for why a connection failed or ended (for TLS, what
    failed: C{untrusted certificate}, C{certificate name mismatch}, ...).
    """
    tls = describeTLSFailure(failure)
    if tls is not None:
        return tls[0]
    if failure.check(error.ConnectionRefusedError):
        return "refused"
    if failure.check(ConnectTimeout, error.TimeoutError, error.TCPTimedOutError):
        return "connect timeout"
    if failure.check(error.DNSLookupError):
        return "dns"
    if failure.check(error.NoRouteError):
        return "unreachable"
    if failure.check(error.ConnectionDone):
        return "closed by server"
    if failure.check(error.ConnectionAborted):
        return "aborted"
    if failure.check(error.ConnectionLost):
        return "reset"
    return type(failure.value).__name__
