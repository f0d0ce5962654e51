"""
The server's settings, each defined once: L{ServerSettings} (see
L{uppercase._settings}).  C{twistd uppercase} derives its options from it;
L{uppercase.server._factory.UppercaseFactory} and L{uppercase.server._service.UppercaseService}
take their defaults from L{DEFAULTS}.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Tuple

from twisted.internet.endpoints import serverFromString

from uppercase._settings import (
    Options,
    SettingError,
    Settings,
    checkSeconds,
    checkWholeNumber,
    setting,
    showSeconds,
    wholeNumber,
)
from uppercase.net.adopt import workerDescription
from uppercase.net.endpoints import parseProblem
from uppercase.server._endpoints import PROXY_PREFIX, systemdParseProblem, withDefaultBacklog
from uppercase.server._faultspec import FaultSpec
from uppercase.server._udp import isUDP, parseUDP

LISTEN_TYPES = "tcp:, tcp6:, unix:, ssl:, udp:, systemd:, haproxy:"
"""The endpoint types C{--listen} takes, named after an unknown one."""

SITE_TYPES = "tcp:, tcp6:, unix:, ssl:, systemd:"
"""The endpoint types C{--metrics} and C{--control} take."""


def checkServerEndpoint(description: str, option: str = "--listen", worker: bool = False) -> None:
    """
    Parse C{description} as a server endpoint string (after the C{haproxy:}
    prefix, and with the default backlog) without listening.

    @param worker: whether this is a worker of C{--workers}, which parses no
        C{systemd:} endpoint: the supervisor has its socket, and passes it.
    @raise SettingError: saying what is wrong with it.
    """
    # The global reactor is imported here, when an endpoint is checked, not
    # when settings are: importing it installs the default reactor, and
    # twistd chooses the reactor after it has read the options.
    from twisted.internet import reactor

    proxied = description.startswith(PROXY_PREFIX)
    if isUDP(description[len(PROXY_PREFIX) :] if proxied else description):
        _checkUDP(description, option)
        return
    trailing = len(description) - len(description.rstrip("\\"))
    if trailing % 2:
        # Twisted's parser fails on it with "generator raised StopIteration",
        # and the added backlog would be read as part of the last field.
        raise SettingError(
            f"{option} {description!r} is not a valid endpoint: it ends with a lone "
            "backslash (\\: is a colon in a value, \\\\ a backslash)"
        )
    endpoint = withDefaultBacklog(description)
    if option == "--listen" and endpoint.startswith(PROXY_PREFIX):
        endpoint = endpoint[len(PROXY_PREFIX) :]
    if worker:
        endpoint = workerDescription(endpoint)
    try:
        serverFromString(reactor, endpoint)
    except Exception as e:
        types = LISTEN_TYPES if option == "--listen" else SITE_TYPES
        reason = systemdParseProblem(endpoint, e) or parseProblem(e, types, description)
        raise SettingError(f"{option} {description!r} is not a valid endpoint: {reason}") from None


def _checkUDP(description: str, option: str) -> None:
    if option != "--listen":
        raise SettingError(
            f"{option} {description!r} is not a valid endpoint: "
            "it is served over a stream (tcp:, unix:, ssl:), not UDP"
        )
    if description.startswith(PROXY_PREFIX):
        raise SettingError(
            f"{option} {description!r} is not a valid endpoint: "
            "PROXY headers come before a stream, not on UDP"
        )
    try:
        parseUDP(description)
    except ValueError as e:
        raise SettingError(f"{option} {description!r} is not a valid endpoint: {e}") from None


MAX_WORKERS = 256
"""The most workers C{--workers} runs (C{auto} included): each is a whole
process, and costs its supervisor a few descriptors."""


def workerCount(text: str, cpus: Callable[[], int | None] = os.cpu_count) -> int:
    """
    The number of workers C{--workers} asks for: a whole number from 1 to
    L{MAX_WORKERS}, or C{auto} for one per CPU (at most L{MAX_WORKERS}).

    @raise ValueError: for anything else.
    """
    if str(text).strip().lower() == "auto":
        return min(max(cpus() or 1, 1), MAX_WORKERS)
    value = wholeNumber(text)
    if not 1 <= value <= MAX_WORKERS:
        raise ValueError(f"from 1 to {MAX_WORKERS}")
    return value


def _checkWorkers(options: Options, name: str) -> None:
    raw = options[name]
    try:
        options[name] = workerCount(raw)
    except ValueError:
        raise SettingError(
            f"--{name} must be a whole number from 1 to {MAX_WORKERS}, or auto, not {raw!r}"
        ) from None


def _checkMetrics(options: Options, name: str) -> None:
    if options[name] is not None:
        checkServerEndpoint(options[name], f"--{name}")


def _checkSeed(options: Options, name: str) -> None:
    if options[name] is not None:
        checkWholeNumber(options, name)


@dataclass(frozen=True)
class ServerSettings(Settings):
    """
    How the server runs.

    @ivar listen: server endpoint strings (C{--listen}, given once each).
    @ivar logData: whether every received chunk is logged (not C{--quiet}).
    """

    idleTimeout: float = setting(
        300.0,
        None,
        "Close a connection after this many seconds with nothing received or sent (0: never).",
        checkSeconds,
        showSeconds,
        name="idle-timeout",
    )
    maxConnections: int = setting(
        10000,
        None,
        "Most connections open at once (0: as many as descriptors allow).",
        checkWholeNumber,
        name="max-connections",
    )
    maxPerIP: int = setting(
        0,
        None,
        "Most connections open at once from one address (0: unlimited).",
        checkWholeNumber,
        name="max-per-ip",
    )
    maxPendingHeaders: int = setting(
        1000,
        None,
        "Most connections to haproxy: listeners still waiting for their PROXY header at "
        "once, apart from --max-connections (0: as many as descriptors allow).",
        checkWholeNumber,
        name="max-pending-headers",
    )
    shutdownTimeout: float = setting(
        10.0,
        None,
        "How long a connection the server closes on SIGTERM/SIGINT may take to finish "
        "gracefully before it is aborted (one closed for being idle: how long it may go "
        "without progress).",
        checkSeconds,
        showSeconds,
        name="shutdown-timeout",
    )
    workers: int = setting(
        1,
        None,
        "Worker processes, each a whole server serving every --listen (auto: one per CPU; "
        "1: this process alone).",
        _checkWorkers,
        name="workers",
    )
    metrics: str | None = setting(
        None,
        None,
        "Serve Prometheus metrics at /metrics on this endpoint "
        "(e.g. tcp:9100:interface=127.0.0.1). Off by default.",
        _checkMetrics,
        name="metrics",
    )
    udpRatePerSource: int = setting(
        1000,
        None,
        "Most UDP datagrams a second echoed to one address; past it they are dropped "
        "and counted (0: unlimited).",
        checkWholeNumber,
        name="udp-rate-per-source",
    )
    udpBytesPerSource: int = setting(
        1000000,
        None,
        "Most UDP bytes a second echoed to one address; past it datagrams are dropped "
        "and counted (0: unlimited; at least 65507 lets every datagram through).",
        checkWholeNumber,
        name="udp-bytes-per-source",
    )
    udpRate: int = setting(
        10000,
        None,
        "Most UDP datagrams a second echoed in all; past it they are dropped and "
        "counted (0: unlimited).",
        checkWholeNumber,
        name="udp-rate",
    )
    faultSeed: int | None = setting(
        None,
        None,
        "Seed for every random choice --fault makes, so that a run can be repeated "
        "(default: a random seed, logged at start).",
        _checkSeed,
        name="fault-seed",
    )
    control: str | None = setting(
        None,
        None,
        "Serve a JSON API at /faults on this endpoint to list, add, remove and clear "
        "faults while the server runs (e.g. tcp:9528:interface=127.0.0.1). Off by default.",
        _checkMetrics,
        name="control",
    )
    listen: Tuple[str, ...] = ("tcp:9527",)
    faults: Tuple[FaultSpec, ...] = ()
    """The faults to apply (C{--fault}, given once each)."""
    logData: bool = True
    plain: bool = False
    """Echo every byte back unchanged (RFC 862) instead of uppercased (C{--plain})."""


DEFAULTS = ServerSettings()
"""Every default of the server, in one place."""
