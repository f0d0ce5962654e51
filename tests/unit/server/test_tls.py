"""TLS listeners (L{uppercase.server._tls}): how they answer ALPN, refuse, and
take a client's C{close_notify}."""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IOpenSSLContextFactory
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from tests.certificates import selfSigned
from tests.process._process import requireTLS
from uppercase.echo import UppercaseProtocol
from uppercase.server._tls import ALPNChooser, RefusingTLSFactory, TLSListening, answerALPN
from uppercase.testing import StreamTransport


def serverOptions() -> Any:
    """
    Twisted's C{CertificateOptions}, the kind an C{ssl:} endpoint string
    makes, for a self-signed certificate.
    """
    from twisted.internet.ssl import PrivateCertificate

    keyPEM, certPEM = selfSigned()
    return PrivateCertificate.loadPEM(keyPEM + certPEM).options()


def handshake(contextFactory: Any, offered: list[bytes]) -> bytes:
    """
    A TLS handshake, in memory, between Twisted's TLS server on
    C{contextFactory} and a pyOpenSSL client offering C{offered} by ALPN.

    @return: the protocol the server selected (C{b""} for none).
    @raise OpenSSL.SSL.Error: if the handshake fails at the client.
    """
    from OpenSSL import SSL
    from twisted.protocols.tls import TLSMemoryBIOFactory

    factory = TLSMemoryBIOFactory(
        contextFactory, False, Factory.forProtocol(Protocol), clock=Clock()
    )
    server = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
    transport = StringTransport()
    server.makeConnection(transport)
    client = SSL.Connection(SSL.Context(SSL.TLS_CLIENT_METHOD), None)
    client.set_alpn_protos(offered)
    client.set_connect_state()
    for _ in range(10):
        try:
            client.do_handshake()
        except SSL.WantReadError:
            pass
        else:
            selected: bytes = client.get_alpn_proto_negotiated()
            return selected
        server.dataReceived(client.bio_read(65536))
        client.bio_write(transport.value())
        transport.clear()
    raise AssertionError("the handshake did not end")


@implementer(IOpenSSLContextFactory)
class ContextFactory:
    """
    A context factory whose context records its ALPN callback, or refuses
    it like a pyOpenSSL context that already made a connection.
    """

    def __init__(self, used: bool = False) -> None:
        self.used = used
        self.callback: Any = None

    def getContext(self) -> Any:
        return self

    def set_alpn_select_callback(self, callback: Any) -> None:
        if self.used:
            raise ValueError("Context has already been used to create a Connection")
        self.callback = callback


class ChooserTests(SynchronousTestCase):
    """
    L{ALPNChooser} selects as RFC 7301 says a server should.
    """

    def setUp(self) -> None:
        requireTLS()

    def test_serverPreference(self) -> None:
        """
        Of the protocols the client offers, the one the server prefers is
        selected.
        """
        choose = ALPNChooser([b"http/1.1", b"http/1.0"])
        self.assertEqual(choose(None, [b"h2", b"http/1.0", b"http/1.1"]), b"http/1.1")

    def test_nothingSpokenIgnoresTheOffer(self) -> None:
        """
        A server that speaks no protocol by name ignores the offer: pyOpenSSL's
        C{NO_OVERLAPPING_PROTOCOLS}, the handshake going on without ALPN.
        """
        from OpenSSL.SSL import NO_OVERLAPPING_PROTOCOLS

        self.assertIs(ALPNChooser(())(None, [b"h2", b"http/1.1"]), NO_OVERLAPPING_PROTOCOLS)

    def test_noneInCommonFails(self) -> None:
        """
        A server that speaks protocols, none of them offered, fails the
        handshake (the C{no_application_protocol} alert) with an error shaped
        as OpenSSL's error queue, which Twisted's TLS can report.
        """
        from OpenSSL.SSL import Error

        error = self.assertRaises(Error, ALPNChooser([b"http/1.1"]), None, [b"h2"])
        self.assertEqual(error.args[0], [("SSL routines", "", "no application protocol")])


class AnswerTests(SynchronousTestCase):
    """
    L{answerALPN} makes the context of Twisted's own C{CertificateOptions}
    answer ALPN with L{ALPNChooser}, and says when it cannot.
    """

    def setUp(self) -> None:
        requireTLS()

    def test_echoIgnoresALPN(self) -> None:
        """
        With no protocols, a client offering some completes a real
        handshake with Twisted's TLS, and none is selected.
        """
        options = serverOptions()
        self.assertTrue(answerALPN(options, ()))
        self.assertEqual(handshake(options, [b"h2", b"http/1.1"]), b"")

    def test_protocolSelected(self) -> None:
        """
        With protocols, the one the client also offers is selected.
        """
        options = serverOptions()
        self.assertTrue(answerALPN(options, (b"http/1.1",)))
        self.assertEqual(handshake(options, [b"h2", b"http/1.1"]), b"http/1.1")

    def test_noProtocolInCommon(self) -> None:
        """
        With protocols, a client offering none of them gets the
        C{no_application_protocol} alert.
        """
        from OpenSSL.SSL import Error

        options = serverOptions()
        self.assertTrue(answerALPN(options, (b"http/1.1",)))
        error = self.assertRaises(Error, handshake, options, [b"h2"])
        self.assertIn("no application protocol", str(error))

    def test_contextAlreadyUsed(self) -> None:
        """
        A context that made a connection already cannot be changed: the
        answer is L{False}.
        """
        self.assertFalse(answerALPN(ContextFactory(used=True), ()))

    def test_notAContextFactory(self) -> None:
        """
        A connection creator without C{getContext} is left alone.
        """
        self.assertFalse(answerALPN(object(), ()))


class TLSListeningTests(SynchronousTestCase):
    """
    L{TLSListening} answers ALPN, then listens on its reactor as Twisted's
    C{listenSSL} does, but with L{RefusingTLSFactory}.
    """

    def setUp(self) -> None:
        requireTLS()

    def test_listenSSL(self) -> None:
        """
        C{listenSSL} gives the context an L{ALPNChooser} for the listener's
        protocols, then listens by TCP with the same port, backlog and
        interface, through Twisted's TLS around the factory.
        """
        from twisted.protocols.tls import TLSMemoryBIOFactory

        reactor = MemoryReactor()
        contextFactory = ContextFactory()
        factory = Factory.forProtocol(Protocol)
        TLSListening(reactor, [b"http/1.1"]).listenSSL(443, factory, contextFactory, 7, "::1")
        [(port, tlsFactory, backlog, interface)] = reactor.tcpServers
        assert isinstance(tlsFactory, TLSMemoryBIOFactory)
        self.assertEqual((port, backlog, interface), (443, 7, "::1"))
        self.assertIs(tlsFactory.wrappedFactory, factory)
        self.assertIsInstance(contextFactory.callback, ALPNChooser)
        self.assertEqual(contextFactory.callback.protocols, (b"http/1.1",))

    def test_cannotAnswer(self) -> None:
        """
        When the context cannot be changed, one warning says so, and the
        port listens anyway.
        """
        reactor = MemoryReactor()
        with capturedLogs() as events:
            TLSListening(reactor).listenSSL(443, Factory(), ContextFactory(used=True))
        self.assertEqual(len(reactor.tcpServers), 1)
        [event] = [e for e in events if e["log_level"].name == "warn"]
        self.assertEqual(event["port"], 443)

    def test_otherwiseTheReactor(self) -> None:
        """
        Anything but C{listenSSL} is the reactor's.
        """
        reactor = MemoryReactor()
        self.assertEqual(TLSListening(reactor).listenTCP, reactor.listenTCP)


class RefusingTests(SynchronousTestCase):
    """
    L{RefusingTLSFactory} lets its factory's refusals through to the port.
    """

    def setUp(self) -> None:
        requireTLS()

    def test_refused(self) -> None:
        """
        A connection the factory refuses is refused (L{None}), so that the
        listening port closes it before it accepts another.
        """

        class Refusing(Factory):
            def buildProtocol(self, addr: Any) -> None:
                return None

        tlsFactory = RefusingTLSFactory(serverOptions(), Refusing())
        self.assertIsNone(tlsFactory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1)))

    def test_accepted(self) -> None:
        """
        A connection the factory accepts gets Twisted's TLS protocol around
        the factory's protocol.
        """
        from twisted.protocols.tls import TLSMemoryBIOProtocol

        tlsFactory = RefusingTLSFactory(serverOptions(), Factory.forProtocol(Protocol))
        protocol = tlsFactory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        self.assertIsInstance(protocol, TLSMemoryBIOProtocol)
        self.assertIsInstance(protocol.wrappedProtocol, Protocol)


class TLSPeer:
    """
    A pyOpenSSL client, in memory, talking to a server-side TLS protocol of
    L{RefusingTLSFactory} over a L{StreamTransport} whose peer reads only
    when told to (so that the server's flow control is real).
    """

    def __init__(self, factory: Factory) -> None:
        from OpenSSL import SSL

        self.clock = Clock()
        tlsFactory = RefusingTLSFactory(serverOptions(), factory, clock=self.clock)
        self.server = tlsFactory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        self.transport = StreamTransport(peerReads=False)
        self.transport.connect(self.server)
        self.client = SSL.Connection(SSL.Context(SSL.TLS_CLIENT_METHOD), None)
        self.client.set_connect_state()
        self.received = bytearray()
        self.closeNotify = False
        for _ in range(10):
            try:
                self.client.do_handshake()
            except SSL.WantReadError:
                pass
            else:
                return
            self.send(self.client.bio_read(65536))
            self.client.bio_write(self.transport.read())
        raise AssertionError("the handshake did not end")

    def send(self, data: bytes, chunk: int = 65536) -> None:
        """
        The client's TLS bytes reach the server, C{chunk} bytes at a time
        (kept by the transport while the server does not read).
        """
        for start in range(0, len(data), chunk):
            self.transport.receive(data[start : start + chunk])

    def sent(self) -> bytes:
        """
        Everything the client's TLS has to send.
        """
        from OpenSSL import SSL

        out = bytearray()
        while True:
            try:
                out += self.client.bio_read(65536)
            except SSL.WantReadError:
                return bytes(out)

    def read(self, size: int | None = None) -> None:
        """
        The client reads what the server sent (up to C{size} bytes of TLS)
        and decrypts it into L{received} (and L{closeNotify}).
        """
        from OpenSSL import SSL

        self.clock.advance(0)  # Twisted's TLS sends small writes a turn later
        data = self.transport.read(size)
        if not data:
            return
        self.client.bio_write(data)
        while not self.closeNotify:
            try:
                self.received += self.client.recv(65536)
            except SSL.WantReadError:
                return
            except SSL.ZeroReturnError:
                self.closeNotify = True


class CloseNotifyTests(SynchronousTestCase):
    """
    A TLS client's C{close_notify} ends its sending side only: every reply
    to what it sent before it is delivered, then the server's
    C{close_notify}, then the close.
    """

    def setUp(self) -> None:
        requireTLS()

    def test_repliesBeforeCloseNotify(self) -> None:
        """
        Data and the C{close_notify} in one read (socat's
        C{printf ... | socat - OPENSSL:...}): the reply comes back, then
        the server's C{close_notify}, and the connection closes cleanly.
        """
        from twisted.internet.error import ConnectionDone

        peer = TLSPeer(Factory.forProtocol(UppercaseProtocol))
        peer.client.sendall(b"hello socat tls\n")
        peer.client.shutdown()
        peer.send(peer.sent())
        peer.read()
        self.assertEqual(bytes(peer.received), b"HELLO SOCAT TLS\n")
        self.assertTrue(peer.closeNotify)
        self.assertTrue(peer.transport.disconnected)
        assert peer.transport.reason is not None
        self.assertTrue(peer.transport.reason.check(ConnectionDone))

    def test_finAfterCloseNotify(self) -> None:
        """
        A TCP FIN right after the C{close_notify}, before the server sent
        its replies, does not end the connection before they are delivered.
        """
        peer = TLSPeer(Factory.forProtocol(UppercaseProtocol))
        peer.client.sendall(b"x" * 200_000)
        peer.client.shutdown()
        peer.send(peer.sent())
        peer.transport.receiveEOF()
        for _ in range(1000):
            if peer.transport.disconnected:
                break
            peer.read(10_000)
        self.assertEqual(bytes(peer.received), b"X" * 200_000)
        self.assertTrue(peer.closeNotify)
        self.assertTrue(peer.transport.disconnected)

    def test_acrossSizes(self) -> None:
        """
        Data and the C{close_notify} sent at once, from 100 bytes to 1 MB:
        every byte comes back, then the server's C{close_notify}.
        """
        for size in (100, 1000, 16384, 1_000_000):
            peer = TLSPeer(Factory.forProtocol(UppercaseProtocol))
            sent = bytes(range(256)) * (size // 256) + b"a" * (size % 256)
            peer.client.sendall(sent)
            peer.client.shutdown()
            peer.send(peer.sent(), chunk=16384)
            for _ in range(10_000):
                if peer.transport.disconnected:
                    break
                peer.read(32768)
            self.assertEqual(bytes(peer.received), sent.upper(), f"{size} bytes")
            self.assertTrue(peer.closeNotify)

    def test_flowControlled(self) -> None:
        """
        The C{close_notify} arrives while the server's write buffer is full
        and its reading paused (a client that sends everything before it
        reads anything): once the client reads, every byte comes back, then
        the server's C{close_notify}.
        """
        peer = TLSPeer(Factory.forProtocol(UppercaseProtocol))
        sent = b"abcdefgh" * 131072
        peer.client.sendall(sent)
        peer.client.shutdown()
        # In the reads of Twisted's TCP transport (64 KiB).
        peer.send(peer.sent(), chunk=65536)
        peer.clock.advance(0)
        self.assertEqual(peer.transport.producerState, "paused")
        for _ in range(10_000):
            if peer.transport.disconnected:
                break
            peer.read(32768)
        self.assertEqual(bytes(peer.received), sent.upper())
        self.assertTrue(peer.closeNotify)

    def test_notHalfCloseable(self) -> None:
        """
        A protocol that cannot be half-closed gets Twisted's behaviour:
        the client's C{close_notify} ends the connection.
        """
        received = []

        class Recording(Protocol):
            def dataReceived(self, data: bytes) -> None:
                received.append(data)

        peer = TLSPeer(Factory.forProtocol(Recording))
        peer.client.sendall(b"hello")
        peer.client.shutdown()
        peer.send(peer.sent())
        peer.read()
        self.assertEqual(received, [b"hello"])
        self.assertTrue(peer.closeNotify)
        self.assertTrue(peer.transport.disconnected)

    def test_afterFinish(self) -> None:
        """
        After the echo closed (its reply and C{close_notify} on their way),
        the client's C{close_notify} completes the close.
        """
        peer = TLSPeer(Factory.forProtocol(UppercaseProtocol))
        peer.client.sendall(b"hello")
        peer.send(peer.sent())
        peer.server.wrappedProtocol.finish()
        peer.clock.advance(0)
        self.assertFalse(peer.transport.disconnecting)
        peer.client.shutdown()
        peer.send(peer.sent())
        self.assertTrue(peer.transport.disconnecting)
        peer.read()
        self.assertEqual(bytes(peer.received), b"HELLO")
        self.assertTrue(peer.closeNotify)
        self.assertTrue(peer.transport.disconnected)
