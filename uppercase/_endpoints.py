"""
Server endpoint strings: the backlog every listener gets unless it says
otherwise, and a check that a socket passed by systemd is of the family its
endpoint string names.
"""

from __future__ import annotations

import os
import socket
from typing import Mapping

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


def splitFields(description: str) -> list[str]:
    """
    Split an endpoint string at its unescaped colons (C{\\:} is a colon
    inside a field), keeping the escapes.
    """
    fields, current, escaped = [], [], False
    for char in description:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == ":":
            fields.append("".join(current))
            current = []
        else:
            current.append(char)
    fields.append("".join(current))
    return fields


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


def systemdSocketProblem(description: str, environ: Mapping[str, str] = os.environ) -> str | None:
    """
    What is wrong, if anything, with listening on C{description} when it is
    a C{systemd:} endpoint whose socket systemd passed: a socket of another
    family than its C{domain=} says (an IPv6 socket read as IPv4 garbles
    every client's address), or an index or name systemd did not pass.

    @return: L{None} when there is nothing to say (including any endpoint
        that is not C{systemd:}, or when systemd passed no sockets, which
        Twisted reports itself).
    """
    fields = splitFields(description)
    if fields[0].lower() != "systemd" or "LISTEN_FDS" not in environ:
        return None
    options = dict(field.split("=", 1) for field in fields[1:] if "=" in field)
    try:
        count = int(environ["LISTEN_FDS"])
    except ValueError:
        return None
    if "name" in options:
        names = environ.get("LISTEN_FDNAMES", "").split(":")
        if options["name"] not in names[:count]:
            return f"systemd passed no socket named {options['name']!r}"
        index = names.index(options["name"])
    else:
        try:
            index = int(options.get("index", "0"))
        except ValueError:
            return None
        if not 0 <= index < count:
            return f"systemd passed {count} sockets, none with index {index}"
    domain = options.get("domain", "").upper()
    wanted = FAMILIES.get(domain)
    if wanted is None:
        return None
    fd = 3 + index
    try:
        probe = socket.socket(fileno=fd)
    except OSError as e:
        return f"descriptor {fd} from systemd is not a socket: {e.strerror}"
    try:
        family = probe.family
    finally:
        probe.detach()
    if family != wanted:
        actual = next((name for name, value in FAMILIES.items() if value == family), str(family))
        return (
            f"systemd socket {index} (descriptor {fd}) is {actual}, "
            f"but the endpoint says domain={domain}: use domain={actual}"
        )
    return None
