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
from uppercase.client._connect import (
    checkDescription,
    clientEndpoint,
    describeConnectFailure,
    errorKind,
)
from uppercase.client._tls import (
    EXPIRED,
    NAME_MISMATCH,
    NOT_YET_VALID,
    UNTRUSTED,
    CertificateRejected,
    HostnameChecking,
    checkHostname,
    describeTLSFailure,
    tlsEndpoint,
)


def certificate(subjectAltName: bool = True, validFrom: float = -1, validUntil: float = 1) -> Any:
    """
    A pyOpenSSL C{X509} for C{CN=localhost}, naming C{localhost} and
    C{127.0.0.1} in a subjectAltName if C{subjectAltName} (valid from and
    until C{validFrom} and C{validUntil} days from now, if given).
    """
    from cryptography import x509
    from OpenSSL.crypto import X509

    pem = selfSigned(subjectAltName, validFrom=validFrom, validUntil=validUntil)[1]
    return X509.from_cryptography(x509.load_pem_x509_certificate(pem))


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

    def rejected(self, *verifyArgs: Any) -> CertificateRejected:
        """
        The reason the handshake failed with, the verify callback having
        been called with C{verifyArgs} and refused.
        """
        self.assertFalse(self.verify(None, *verifyArgs))
        [failure] = self.protocol.failures
        self.assertIsInstance(failure.value, CertificateRejected)
        return failure.value  # type: ignore[return-value]

    def test_noSubjectAltName(self) -> None:
        """
        The server's certificate without a subjectAltName fails the
        handshake, saying that the certificate names no host.
        """
        rejected = self.rejected(certificate(False), 0, 0, 1)
        self.assertEqual(rejected.kind, NAME_MISMATCH)
        self.assertEqual(
            str(rejected),
            "certificate name mismatch: expected localhost, the certificate names no host "
            "(no subjectAltName; a common name alone is not accepted)",
        )

    def test_otherNames(self) -> None:
        """
        The server's certificate naming other hosts fails the handshake,
        with the name expected and the names it has.
        """
        self.connection = HostnameChecking(FakeCreator(), "127.0.0.2").clientConnectionForTLS(
            self.protocol
        )
        self.verify = self.connection.callback
        self.assertEqual(
            str(self.rejected(certificate(), 0, 0, 1)),
            "certificate name mismatch: expected 127.0.0.2, "
            "the certificate names localhost, 127.0.0.1",
        )

    def test_untrusted(self) -> None:
        """
        OpenSSL's refusal of a self-signed certificate not among the trust
        roots (X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, 18) fails the
        handshake as an untrusted certificate, saying how to trust it.
        """
        rejected = self.rejected(certificate(), 18, 0, 0)
        self.assertEqual(rejected.kind, UNTRUSTED)
        self.assertEqual(
            rejected.detail,
            "it is self-signed and not among the trust roots "
            "(trust its CA with trustRoots=FOLDER in the endpoint)",
        )

    def test_expired(self) -> None:
        """
        An expired certificate (X509_V_ERR_CERT_HAS_EXPIRED, 10) fails the
        handshake saying when it expired.
        """
        rejected = self.rejected(certificate(validFrom=-3, validUntil=-1), 10, 0, 0)
        self.assertEqual(rejected.kind, EXPIRED)
        self.assertRegex(
            rejected.detail,
            r"^the server's certificate expired on \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$",
        )

    def test_notYetValid(self) -> None:
        """
        A certificate not valid yet (X509_V_ERR_CERT_NOT_YET_VALID, 9)
        fails the handshake saying from when it is valid.
        """
        rejected = self.rejected(certificate(validFrom=1, validUntil=3), 9, 0, 0)
        self.assertEqual(rejected.kind, NOT_YET_VALID)
        self.assertIn("the server's certificate is valid from ", rejected.detail)

    def test_anyErrorFailsTheHandshake(self) -> None:
        """
        Any other error of the check (an C{ImportError} from an old
        service_identity, say) fails the handshake with it as the reason:
        never a certificate accepted unchecked, never a traceback.
        """
        from uppercase.client import _tls as clientTLS

        def broken(certificate: object, hostname: str) -> None:
            raise ImportError("cannot import name 'extract_patterns'")

        self.patch(clientTLS, "checkHostname", broken)
        self.assertFalse(self.verify(None, certificate(), 0, 0, 1))
        [failure] = self.protocol.failures
        self.assertTrue(failure.check(ImportError))

    def test_chainIsOpenSSLs(self) -> None:
        """
        Issuers' certificates (depth over 0) are judged by OpenSSL alone:
        one it accepted passes without a hostname check; one it refused
        fails the handshake with its reason in words.
        """
        self.assertTrue(self.verify(None, certificate(False), 0, 1, 1))
        self.assertEqual(self.protocol.failures, [])
        rejected = self.rejected(certificate(), 19, 1, 0)
        self.assertEqual(rejected.kind, UNTRUSTED)


class DescribeTLSFailureTests(SynchronousTestCase):
    """
    L{describeTLSFailure}, L{errorKind} and L{describeConnectFailure} say
    what failed in a TLS handshake, from OpenSSL's reasons.
    """

    def setUp(self) -> None:
        requireTLS()

    def sslError(self, reason: str) -> Failure:
        from OpenSSL.SSL import Error

        return Failure(Error([("SSL routines", "", reason)]))

    def test_alerts(self) -> None:
        """
        The server's alerts, and OpenSSL's own reasons, become a kind and
        words; the kind is what a load run counts.
        """
        for reason, kind in [
            ("tlsv1 alert protocol version", "no shared protocol version"),
            ("unsupported protocol", "no shared protocol version"),
            ("sslv3 alert handshake failure", "handshake failure"),
            ("tlsv13 alert certificate required", "client certificate rejected"),
            ("wrong version number", "not TLS"),
            ("certificate verify failed", UNTRUSTED),
            ("something new", "TLS error"),
        ]:
            failure = self.sslError(reason)
            described = describeTLSFailure(failure)
            assert described is not None
            self.assertEqual(described[0], kind)
            self.assertIn(f"({reason})" if kind != "TLS error" else reason, described[1])
            self.assertEqual(errorKind(failure), kind)
            self.assertEqual(
                describeConnectFailure(failure), f"TLS handshake failed: {described[1]}"
            )

    def test_rejected(self) -> None:
        """
        A certificate refused by our checks is counted by its kind.
        """
        failure = Failure(CertificateRejected(EXPIRED, "the server's certificate expired"))
        self.assertEqual(errorKind(failure), EXPIRED)
        self.assertEqual(
            describeTLSFailure(failure),
            (EXPIRED, "expired certificate: the server's certificate expired"),
        )

    def test_notTLS(self) -> None:
        """
        Other failures are not TLS failures.
        """
        from twisted.internet.error import ConnectionRefusedError

        self.assertIsNone(describeTLSFailure(Failure(ConnectionRefusedError())))
        self.assertEqual(errorKind(Failure(ConnectionRefusedError())), "refused")

    def test_trustRootsChecked(self) -> None:
        """
        C{trustRoots=} must name a folder: nothing, or a file, is a usage
        error in words (Twisted's parser says C{UnlistableError}).
        """
        temporary = tempfile.TemporaryDirectory()
        self.addCleanup(temporary.cleanup)
        path = os.path.join(temporary.name, "ca.pem")
        with open(path, "wb") as f:
            f.write(selfSigned()[1])
        missing = os.path.join(temporary.name, "missing")
        for value, problem in [
            (missing, "no such folder"),
            (path, "not a folder (trustRoots names a folder of .pem CA certificates)"),
        ]:
            error = self.assertRaises(
                ValueError, checkDescription, f"tls:localhost:9443:trustRoots={value}"
            )
            self.assertEqual(str(error), f"trustRoots={value}: {problem}")
        checkDescription(f"tls:localhost:9443:trustRoots={temporary.name}")


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
