"""The client's C{tls:} endpoints (L{uppercase.client._tls}): the hostname check."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from tests.certificates import selfSigned
from tests.process._process import requireTLS
from uppercase.client._connect import clientEndpoint
from uppercase.client._tls import HostnameChecking, checkHostname, tlsEndpoint


def certificate(subjectAltName: bool = True) -> Any:
    """
    A pyOpenSSL C{X509} for C{CN=localhost}, naming C{localhost} and
    C{127.0.0.1} in a subjectAltName if C{subjectAltName}.
    """
    from cryptography import x509
    from OpenSSL.crypto import X509

    return X509.from_cryptography(x509.load_pem_x509_certificate(selfSigned(subjectAltName)[1]))


class CheckHostnameTests(SynchronousTestCase):
    """
    L{checkHostname} accepts only a subjectAltName that names the host.
    """

    def setUp(self) -> None:
        requireTLS()

    def test_named(self) -> None:
        """
        A DNS name or an IP address the subjectAltName names passes.
        """
        checkHostname(certificate(), "localhost")
        checkHostname(certificate(), "127.0.0.1")

    def test_otherHost(self) -> None:
        """
        A host the subjectAltName does not name raises C{VerificationError}.
        """
        from service_identity import VerificationError

        self.assertRaises(VerificationError, checkHostname, certificate(), "example.org")
        self.assertRaises(VerificationError, checkHostname, certificate(), "127.0.0.2")

    def test_noSubjectAltName(self) -> None:
        """
        Without a subjectAltName, the common name is not enough:
        C{CertificateError}.
        """
        from service_identity import CertificateError

        self.assertRaises(CertificateError, checkHostname, certificate(False), "localhost")


class FakeTLSProtocol:
    """
    Records L{failVerification}, as Twisted's TLS protocol offers it.
    """

    def __init__(self) -> None:
        self.failures: list[Failure] = []

    def failVerification(self, reason: Failure) -> None:
        self.failures.append(reason)


class FakeConnection:
    """
    A pyOpenSSL connection's C{set_verify}, recorded.
    """

    def __init__(self) -> None:
        self.mode = 0
        self.callback: Any = None

    def set_verify(self, mode: int, callback: Any) -> None:
        self.mode = mode
        self.callback = callback


class FakeCreator:
    """
    A connection creator that makes L{FakeConnection}s.
    """

    def clientConnectionForTLS(self, tlsProtocol: object) -> FakeConnection:
        return FakeConnection()


class HostnameCheckingTests(SynchronousTestCase):
    """
    L{HostnameChecking} gives each connection a verify callback that fails
    the handshake unless the server's own certificate names the host.
    """

    def setUp(self) -> None:
        requireTLS()
        self.protocol = FakeTLSProtocol()
        from OpenSSL.SSL import VERIFY_FAIL_IF_NO_PEER_CERT, VERIFY_PEER

        self.connection = HostnameChecking(FakeCreator(), "localhost").clientConnectionForTLS(
            self.protocol
        )
        self.assertEqual(self.connection.mode, VERIFY_PEER | VERIFY_FAIL_IF_NO_PEER_CERT)
        self.verify = self.connection.callback

    def test_interface(self) -> None:
        """
        It is a client connection creator.
        """
        from twisted.internet.interfaces import IOpenSSLClientConnectionCreator

        self.assertTrue(
            verifyObject(IOpenSSLClientConnectionCreator, HostnameChecking(FakeCreator(), "x"))
        )

    def test_named(self) -> None:
        """
        The server's certificate naming the host passes.
        """
        self.assertTrue(self.verify(None, certificate(), 0, 0, 1))
        self.assertEqual(self.protocol.failures, [])

    def test_noSubjectAltName(self) -> None:
        """
        The server's certificate without a subjectAltName fails the
        handshake, with C{CertificateError} as the reason.
        """
        from service_identity import CertificateError

        self.assertFalse(self.verify(None, certificate(False), 0, 0, 1))
        [failure] = self.protocol.failures
        self.assertTrue(failure.check(CertificateError))

    def test_anyErrorFailsTheHandshake(self) -> None:
        """
        Any other error of the check (an C{ImportError} from an old
        service_identity, say) fails the handshake with it as the reason:
        never a certificate accepted unchecked, never a traceback.
        """
        from uppercase.client import _tls as _clienttls

        def broken(certificate: object, hostname: str) -> None:
            raise ImportError("cannot import name 'extract_patterns'")

        self.patch(_clienttls, "checkHostname", broken)
        self.assertFalse(self.verify(None, certificate(), 0, 0, 1))
        [failure] = self.protocol.failures
        self.assertTrue(failure.check(ImportError))

    def test_chainIsOpenSSLs(self) -> None:
        """
        Issuers' certificates (depth over 0), and a certificate OpenSSL
        already refused, are judged by OpenSSL alone.
        """
        self.assertTrue(self.verify(None, certificate(False), 0, 1, 1))
        self.assertFalse(self.verify(None, certificate(), 18, 0, 0))
        self.assertEqual(self.protocol.failures, [])


class TLSEndpointTests(SynchronousTestCase):
    """
    L{tlsEndpoint} takes the arguments Twisted's C{tls:} does, and
    L{clientEndpoint} uses it for C{tls:}.
    """

    def setUp(self) -> None:
        requireTLS()
        self.reactor = MemoryReactorClock()

    def test_trustRoots(self) -> None:
        """
        C{trustRoots=} takes a folder where, beside a certificate, are a
        C{.pem} file that is no certificate and a file of another kind: as
        with Twisted's, building the endpoint is not an error.
        """
        temporary = tempfile.TemporaryDirectory()
        self.addCleanup(temporary.cleanup)
        folder = temporary.name
        for name, content in [
            ("ca.pem", selfSigned()[1]),
            ("broken.pem", b"not a certificate"),
            ("notes.txt", b"x"),
        ]:
            with open(os.path.join(folder, name), "wb") as f:
                f.write(content)
        endpoint = tlsEndpoint(self.reactor, ["localhost", "9443"], {"trustRoots": folder})
        self.assertIsNotNone(endpoint)

    def test_unknownArgument(self) -> None:
        """
        An argument Twisted's C{tls:} does not take is a C{TypeError}.
        """
        self.assertRaises(TypeError, tlsEndpoint, self.reactor, ["localhost", "9443"], {"x": "1"})

    def test_innerEndpoint(self) -> None:
        """
        L{clientEndpoint} with C{tls:HOST:PORT:endpoint=...} connects
        through the inner endpoint (here C{tcp:}, to its own host and port).
        """
        from twisted.internet.protocol import Factory, Protocol

        endpoint = clientEndpoint(
            self.reactor, r"tls:example.org:9443:endpoint=tcp\:127.0.0.1\:9444\:timeout=7"
        )
        endpoint.connect(Factory.forProtocol(Protocol))
        [(host, port, _, timeout, _)] = self.reactor.tcpClients
        self.assertEqual((host, port, timeout), ("127.0.0.1", 9444, 7))
