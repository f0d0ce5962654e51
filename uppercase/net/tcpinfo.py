"""
What TCP saw on a connection, from the kernel (Linux): C{TCP_INFO}'s
retransmissions and smoothed round-trip time, and how many sent bytes the
peer has not yet taken (C{SIOCOUTQ}), read through the transport's public
C{getHandle()}.  Elsewhere, or on a UNIX socket, there is nothing to read:
reports say "n/a", and L{unsentInKernel} says L{None}.
"""

from __future__ import annotations

import socket
import struct
import sys
from dataclasses import dataclass
from typing import Any, Iterable

from uppercase.net.interfaces import IUnsentInKernel

__all__ = ["TCPInfo", "readTCPInfo", "receivedAgo", "summarize", "unsentInKernel"]

_LAYOUT = struct.Struct("=8B24I")
"""The start of Linux's C{struct tcp_info}: eight one-byte fields
(C{tcpi_retransmits} third), then 32-bit fields from C{tcpi_rto}
to C{tcpi_total_retrans} (the 24th)."""

_RETRANSMITS = 2
_LAST_DATA_RECV = 8 + 11
_LAST_ACK_RECV = 8 + 12
_RTT = 8 + 15
_RTTVAR = 8 + 16
_TOTAL_RETRANS = 8 + 23

TCP_INFO: int | None = getattr(socket, "TCP_INFO", None) if sys.platform == "linux" else None

SIOCOUTQ: int | None = 0x5411 if sys.platform == "linux" else None
"""Linux's C{ioctl} for a TCP socket's bytes sent and not yet acknowledged
(C{termios.TIOCOUTQ}); other systems spell it differently or not at all."""

_INT = struct.Struct("i")


@dataclass(frozen=True)
class TCPInfo:
    """
    One connection's C{TCP_INFO}.

    @ivar retransmits: retransmissions of the oldest unacknowledged segment
        now (the kernel's current back-off).
    @ivar totalRetrans: segments retransmitted over the connection's life.
    @ivar rtt: the kernel's smoothed round-trip time, in milliseconds.
    @ivar rttvar: its mean deviation, in milliseconds.
    """

    retransmits: int
    totalRetrans: int
    rtt: float
    rttvar: float

    @classmethod
    def unpack(cls, raw: bytes) -> TCPInfo:
        fields = _LAYOUT.unpack_from(raw)
        return cls(
            retransmits=fields[_RETRANSMITS],
            totalRetrans=fields[_TOTAL_RETRANS],
            rtt=fields[_RTT] / 1000,
            rttvar=fields[_RTTVAR] / 1000,
        )


def _socketOf(transport: Any) -> socket.socket | None:
    """
    The TCP socket under C{transport}, looking through a TLS wrapper (its
    public C{transport}); L{None} for anything else.
    """
    for candidate in (transport, getattr(transport, "transport", None)):
        getHandle = getattr(candidate, "getHandle", None)
        if getHandle is None:
            continue
        try:
            handle = getHandle()
        except Exception:
            continue
        if isinstance(handle, socket.socket):
            return handle
    return None


def _tcpSocketOf(transport: Any) -> socket.socket | None:
    sock = _socketOf(transport)
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    return sock


def unsentInKernel(transport: Any) -> int | None:
    """
    How many bytes C{transport}'s TCP socket holds that the peer has not
    yet taken (Linux's C{SIOCOUTQ}: written to the kernel and not yet
    acknowledged), or L{None} where that cannot be read: another system, a
    UNIX socket (whose count is of memory, not bytes), an in-memory
    transport, a closed socket.  On TLS it counts the encrypted bytes.

    A transport that provides L{IUnsentInKernel} reports it itself, as
    L{uppercase.testing.StreamTransport} does.
    """
    if IUnsentInKernel.providedBy(transport):
        value = transport.unsentInKernel()
        return None if value is None else int(value)
    if SIOCOUTQ is None:
        return None
    sock = _tcpSocketOf(transport)
    if sock is None:
        return None
    import fcntl

    try:
        raw = fcntl.ioctl(sock.fileno(), SIOCOUTQ, bytes(_INT.size))
    except (OSError, ValueError):
        return None
    return int(_INT.unpack(raw)[0])


def _rawTCPInfo(transport: Any) -> bytes | None:
    if TCP_INFO is None:
        return None
    sock = _tcpSocketOf(transport)
    if sock is None:
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, _LAYOUT.size)
    except OSError:
        return None
    return raw if len(raw) >= _LAYOUT.size else None


def readTCPInfo(transport: Any) -> TCPInfo | None:
    """
    The C{TCP_INFO} of C{transport}'s socket, or L{None} where the platform
    or the transport has none.
    """
    raw = _rawTCPInfo(transport)
    return None if raw is None else TCPInfo.unpack(raw)


def receivedAgo(transport: Any) -> float | None:
    """
    Seconds since C{transport}'s TCP socket last received anything from its
    peer -- data, or an acknowledgement of what it sent (the peer reading)
    -- or was connected, to the kernel's millisecond (the lesser of
    C{tcpi_last_data_recv} and C{tcpi_last_ack_recv}); L{None} where
    L{readTCPInfo} has nothing.
    """
    raw = _rawTCPInfo(transport)
    if raw is None:
        return None
    fields = _LAYOUT.unpack_from(raw)
    return min(int(fields[_LAST_DATA_RECV]), int(fields[_LAST_ACK_RECV])) / 1000


def summarize(infos: Iterable[TCPInfo | None]) -> dict[str, Any] | None:
    """
    Over the connections that had C{TCP_INFO}: their count, retransmitted
    segments in all, and the kernel's RTT (median and largest, ms); L{None}
    if none had any.
    """
    known = [info for info in infos if info is not None]
    if not known:
        return None
    rtts = sorted(info.rtt for info in known)
    return {
        "connections": len(known),
        "retransmits": sum(info.totalRetrans for info in known),
        "rtt_ms_median": rtts[len(rtts) // 2],
        "rtt_ms_max": rtts[-1],
        "rttvar_ms_max": max(info.rttvar for info in known),
    }
