"""
Server endpoint strings: the backlog every listener gets unless it says
otherwise, and a check that a socket passed by systemd is of the family its
endpoint string names.
"""

from __future__ import annotations

import os
import socket
from typing import Mapping

from uppercase.net.endpoints import fields as splitFields

DEFAULT_BACKLOG = 511
"""nginx's accept backlog rather than Twisted's 50, so that a burst of
connections is queued by the kernel instead of having its SYNs dropped (and
retried a second later)."""

BACKLOG_TYPES = ("tcp", "tcp6", "ssl", "unix")
"""Endpoint types that listen with a backlog of their own."""

PROXY_PREFIX = "haproxy:"
"""What C{--listen haproxy:ENDPOINT} starts with: a PROXY-protocol listener
on C{ENDPOINT}."""

FAMILIES = {"INET": socket.AF_INET, "INET6": socket.AF_INET6, "UNIX": socket.AF_UNIX}

SYSTEMD_FIRST_DESCRIPTOR = 3
"""The descriptor of the first socket systemd passes (C{SD_LISTEN_FDS_START})."""


def withDefaultBacklog(description: str, backlog: int = DEFAULT_BACKLOG) -> str:
    """
    C{description} with C{:backlog=N} added if it is a TCP, TLS or UNIX
    listener (behind C{haproxy:} or not) that does not set its own.
    """
    prefix = ""
    if description.startswith(PROXY_PREFIX):
        prefix, description = PROXY_PREFIX, description[len(PROXY_PREFIX) :]
    fields = splitFields(description)
    if fields[0].lower() in BACKLOG_TYPES and not any(
        field.startswith("backlog=") for field in fields[1:]
    ):
        description += f":backlog={backlog}"
    return prefix + description


def systemdSocketProblem(
    description: str,
    environ: Mapping[str, str] = os.environ,
    firstDescriptor: int = SYSTEMD_FIRST_DESCRIPTOR,
) -> str | None:
    """
    What is wrong, if anything, with listening on C{description} when it is
    a C{systemd:} endpoint: a socket of another family than its C{domain=}
    says (an IPv6 socket read as IPv4 garbles every client's address), or
    an index or name systemd did not pass.

    Twisted removes C{LISTEN_FDS} from the environment when it reads it (as
    C{sd_listen_fds} does); by then it has also checked that the index
    exists, and systemd's sockets are numbered from 3, so the socket is
    found by its number.  A socket given by C{name=} is checked only while
    the environment still says which it is.

    @return: L{None} when there is nothing to say (including any endpoint
        that is not C{systemd:}).
    """
    fields = splitFields(description)
    if fields[0].lower() != "systemd":
        return None
    options = dict(field.split("=", 1) for field in fields[1:] if "=" in field)
    index: int | None
    try:
        index = int(options["index"]) if "index" in options else None
    except ValueError:
        return None
    if "LISTEN_FDS" in environ:
        try:
            count = int(environ["LISTEN_FDS"])
        except ValueError:
            return None
        if "name" in options:
            names = environ.get("LISTEN_FDNAMES", "").split(":")[:count]
            if options["name"] not in names:
                return f"systemd passed no socket named {options['name']!r}"
            index = names.index(options["name"])
        elif index is not None and not 0 <= index < count:
            return f"systemd passed {count} sockets, none with index {index}"
    wanted = FAMILIES.get(options.get("domain", "").upper())
    if wanted is None or index is None:
        return None
    fd = firstDescriptor + index
    try:
        probe = socket.socket(fileno=fd)
    except OSError:
        return None  # Not a socket: Twisted says what it makes of it.
    try:
        family = probe.family
    finally:
        probe.detach()
    if family != wanted:
        actual = next((name for name, value in FAMILIES.items() if value == family), str(family))
        return (
            f"systemd socket {index} (descriptor {fd}) is {actual}, "
            f"but the endpoint says domain={options['domain']}: use domain={actual}"
        )
    return None


def systemdParseProblem(description: str, error: Exception) -> str | None:
    """
    What C{error}, raised by Twisted parsing C{description}, means when it
    is a C{systemd:} endpoint whose socket Twisted did not find: none was
    passed, or they were passed without names (C{LISTEN_FDNAMES}), which
    Twisted then ignores, so that every index is "out of range".

    @return: L{None} for any other endpoint or error.
    """
    fields = splitFields(description)
    if fields[0].lower() != "systemd" or not isinstance(error, (IndexError, KeyError)):
        return None
    options = dict(field.split("=", 1) for field in fields[1:] if "=" in field)
    which = (
        f"named {options['name']!r}" if "name" in options else f"with index {options.get('index')}"
    )
    return (
        f"systemd passed this process no socket {which} (Twisted takes systemd's sockets "
        "only when systemd names them, as systemd 227 and later do; "
        "systemd-socket-activate needs --fdname)"
    )
