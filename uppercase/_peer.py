"""How a peer's address is shown in log events."""

from __future__ import annotations

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.interfaces import IAddress


def describePeer(address: IAddress) -> tuple[str, int | None]:
    """
    Split a peer address into the host and port that log events carry.

    @return: C{(host, port)} for IPv4 and IPv6 peers; C{(path or "unix", None)}
        for UNIX-socket peers; C{(repr(address), None)} for anything else.
    """
    if isinstance(address, (IPv4Address, IPv6Address)):
        return address.host, address.port
    if isinstance(address, UNIXAddress):
        name = address.name
        if isinstance(name, bytes):
            return name.decode("utf-8", "replace") or "unix", None
        return name or "unix", None
    return repr(address), None


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
