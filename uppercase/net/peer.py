"""How a peer's address is shown in log events and counted by per-address limits."""

from __future__ import annotations

import ipaddress

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.interfaces import IAddress

UNIX_PEER = "unix"
"""The host of a UNIX-socket peer: such peers have no address of their own
(a client rarely binds its socket to a path), and all count as one."""


def describePeer(address: IAddress | None) -> tuple[str, int | None]:
    """
    Split a peer address into the host and port that log events carry and
    per-address limits count.

    An IPv4-mapped IPv6 address (C{::ffff:1.2.3.4}, as a dual-stack socket
    reports IPv4 peers) is the IPv4 address it maps, so that one client is
    one host whichever socket it reached.

    @return: C{(host, port)} for IPv4 and IPv6 peers; C{(UNIX_PEER, None)}
        for UNIX-socket peers; C{("unknown", None)} when there is no address;
        C{(repr(address), None)} for anything else.
    """
    if isinstance(address, IPv6Address):
        return unmapped(address.host), address.port
    if isinstance(address, IPv4Address):
        return address.host, address.port
    if isinstance(address, UNIXAddress):
        return UNIX_PEER, None
    if address is None:
        return "unknown", None
    return repr(address), None


def unmapped(host: str) -> str:
    """
    C{host} without its IPv4-mapped IPv6 form (C{::ffff:1.2.3.4} becomes
    C{1.2.3.4}); any other host unchanged.
    """
    if host[:7].lower() != "::ffff:":
        return host
    try:
        mapped = ipaddress.IPv6Address(host.split("%", 1)[0]).ipv4_mapped
    except ValueError:
        return host
    return host if mapped is None else str(mapped)


def socketPath(address: IAddress) -> str:
    """
    The path of a UNIX socket's address, as text (C{?} if it has none).
    """
    name = getattr(address, "name", None)
    if isinstance(name, bytes):
        name = name.decode("utf-8", "backslashreplace")
    return name or "?"


def formatPeer(host: str, port: int | None) -> str:
    """
    Render a host and port the way people type them: C{1.2.3.4:5},
    C{[::1]:5}, or just the host when there is no port.
    """
    if port is None:
        return host
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"
