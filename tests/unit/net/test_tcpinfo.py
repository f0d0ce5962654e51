"""Specification of reading the kernel's send queue (L{unsentInKernel})."""

from __future__ import annotations

import socket
import sys

from twisted.internet.address import IPv4Address
from twisted.trial.unittest import SynchronousTestCase

from uppercase.net import tcpinfo
from uppercase.net.tcpinfo import receivedAgo, unsentInKernel
from uppercase.proxy import ProxiedTransport
from uppercase.testing import StreamTransport


class Handle:
    """
    A transport whose public C{getHandle()} gives C{handle}.
    """

    def __init__(self, handle: object) -> None:
        self.handle = handle

    def getHandle(self) -> object:
        return self.handle


class Wrapper:
    """
    A transport like Twisted's TLS one: its own handle is not a socket, and
    the transport beneath it (its public C{transport}) has the socket.
    """

    def __init__(self, transport: object) -> None:
        self.transport = transport

    def getHandle(self) -> object:
        return object()


def loopbackPair(test: SynchronousTestCase) -> tuple[socket.socket, socket.socket]:
    """
    A connected loopback TCP pair (sender, receiver); the receiver's buffer
    is small, so that a sender that is not read from soon fills the kernel.
    """
    if sys.platform != "linux":
        test.skipTest("SIOCOUTQ is read on Linux only")
    listener = socket.socket()
    test.addCleanup(listener.close)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    receiver = socket.socket()
    test.addCleanup(receiver.close)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    receiver.connect(listener.getsockname())
    sender, _ = listener.accept()
    test.addCleanup(sender.close)
    return sender, receiver


class UnsentInKernelTests(SynchronousTestCase):
    """
    How many bytes a TCP socket's kernel holds that the peer has not taken,
    or None where that cannot be read.
    """

    def fill(self, sender: socket.socket) -> int:
        """
        Send from C{sender} until the kernel takes no more; the bytes sent.
        """
        sender.setblocking(False)
        sent = 0
        try:
            while True:
                sent += sender.send(b"x" * 65536)
        except BlockingIOError:
            return sent

    def test_fullSocket(self) -> None:
        """
        A socket whose peer does not read holds some of what was sent, and
        says so; an idle one holds nothing.
        """
        sender, _ = loopbackPair(self)
        self.assertEqual(unsentInKernel(Handle(sender)), 0)
        sent = self.fill(sender)
        queued = unsentInKernel(Handle(sender))
        assert queued is not None
        self.assertGreater(queued, 0)
        self.assertLessEqual(queued, sent)

    def test_throughWrapper(self) -> None:
        """
        Under a wrapper whose own handle is not a socket (TLS), the socket
        of the transport beneath it is read.
        """
        sender, _ = loopbackPair(self)
        self.fill(sender)
        self.assertEqual(unsentInKernel(Wrapper(Handle(sender))), unsentInKernel(Handle(sender)))

    def test_unknown(self) -> None:
        """
        No handle, a UNIX socket (whose count is of memory, not bytes), or a
        closed socket: unknown.
        """
        self.assertIsNone(unsentInKernel(object()))
        self.assertIsNone(unsentInKernel(Handle(object())))
        unix, other = socket.socketpair(socket.AF_UNIX)
        self.addCleanup(unix.close)
        self.addCleanup(other.close)
        self.assertIsNone(unsentInKernel(Handle(unix)))
        closed = socket.socket()
        closed.close()
        self.assertIsNone(unsentInKernel(Handle(closed)))

    def test_otherSystems(self) -> None:
        """
        Where there is no C{SIOCOUTQ}, nothing is read: unknown.
        """
        sender, _ = loopbackPair(self)
        self.fill(sender)
        self.patch(tcpinfo, "SIOCOUTQ", None)
        self.assertIsNone(unsentInKernel(Handle(sender)))

    def test_transportReportsItself(self) -> None:
        """
        A transport that provides L{IUnsentInKernel} is asked: an in-memory
        one has no kernel (0), and a test can play one.
        """
        transport = StreamTransport()
        self.assertEqual(unsentInKernel(transport), 0)
        transport.kernelUnsent = 1234
        self.assertEqual(unsentInKernel(transport), 1234)
        transport.kernelUnsent = None
        self.assertIsNone(unsentInKernel(transport))

    def test_undeclaredMethodNotAsked(self) -> None:
        """
        A transport with a method of that name that does not declare
        L{IUnsentInKernel} is not asked: extensions are declared, never
        looked up by name.
        """

        class Named:
            def unsentInKernel(self) -> int:
                raise AssertionError("asked")

        self.assertIsNone(unsentInKernel(Named()))

    def test_throughProxiedTransport(self) -> None:
        """
        Behind a PROXY header, the connection's own transport is asked.
        """
        transport = StreamTransport()
        transport.kernelUnsent = 77
        address = IPv4Address("TCP", "192.0.2.1", 1)
        self.assertEqual(unsentInKernel(ProxiedTransport(transport, address, address)), 77)


class ReceivedAgoTests(SynchronousTestCase):
    """
    Seconds since a TCP socket last received data, from the kernel's
    C{TCP_INFO}, or None where that cannot be read.
    """

    def test_justReceived(self) -> None:
        """
        A socket that has just received data says so: well under a second
        (the neighbouring fields of C{TCP_INFO} hold the path MTU and
        thresholds, which read as milliseconds are a minute and more; the
        bound leaves a loaded machine room).
        """
        sender, receiver = loopbackPair(self)
        receiver.sendall(b"x")
        self.assertEqual(sender.recv(1), b"x")
        ago = receivedAgo(Handle(sender))
        assert ago is not None
        self.assertGreaterEqual(ago, 0.0)
        self.assertLess(ago, 1.0)

    def test_unknown(self) -> None:
        """
        A transport without a TCP socket (in memory, UNIX) has no figure.
        """
        self.assertIsNone(receivedAgo(StreamTransport()))
        unix = socket.socket(socket.AF_UNIX)
        self.addCleanup(unix.close)
        self.assertIsNone(receivedAgo(Handle(unix)))

    def test_otherSystems(self) -> None:
        """
        Where the platform has no C{TCP_INFO}, there is no figure.
        """
        sender, _ = loopbackPair(self)
        self.patch(tcpinfo, "TCP_INFO", None)
        self.assertIsNone(receivedAgo(Handle(sender)))
