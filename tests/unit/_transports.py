"""In-memory transports that model what the tests need of a TCP transport."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport


def ascii_upper(data: bytes) -> bytes:
    """
    The oracle: C toupper in the C locale, byte by byte, written without
    bytes.upper so that it checks the implementation instead of repeating it.
    """
    return bytes(b - 32 if 97 <= b <= 122 else b for b in data)


class BufferingTransport(StringTransport):
    """
    A L{StringTransport} that also models a file-descriptor transport's
    write buffer (C{_tempDataLen}, C{dataBuffer}, C{offset}) and its
    half-close (C{loseWriteConnection}).

    Bytes written stay "unsent" until L{flushToKernel} is called.
    """

    def __init__(self, host: str = "192.0.2.7", port: int = 40000) -> None:
        super().__init__(peerAddress=IPv4Address("TCP", host, port))
        self._tempDataLen = 0
        self.dataBuffer = b""
        self.offset = 0
        self.writeDisconnecting = False

    def write(self, data: bytes) -> None:
        super().write(data)
        self._tempDataLen += len(data)

    def flushToKernel(self) -> None:
        self._tempDataLen = 0

    def loseWriteConnection(self) -> None:
        self.writeDisconnecting = True
