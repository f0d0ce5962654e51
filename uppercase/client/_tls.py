"""
The client's C{tls:} endpoints, with a hostname check that fails closed.

Twisted's C{tls:} endpoint checks the server's certificate against the host
name with C{service_identity}, but only catches its C{VerificationError}: a
certificate without a subjectAltName makes C{service_identity} raise
C{CertificateError} instead, which Twisted 26.x logs as a traceback and then
ignores, accepting the certificate unchecked (and Twisted 24.7 logs as a
traceback from its info callback).  So L{tlsEndpoint} builds the same
endpoint as Twisted's parser does, from the same arguments and with public
APIs only, around a connection creator (L{HostnameChecking}) that does the
check itself and fails the handshake on either error.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from twisted.internet.endpoints import HostnameEndpoint, clientFromString, wrapClientTLS
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IStreamClientEndpoint
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = ["HostnameChecking", "checkHostname", "tlsEndpoint"]


def checkHostname(certificate: Any, hostname: str) -> None:
    """
    Check that C{certificate} (pyOpenSSL's C{X509}) names C{hostname}, a DNS
    name or an IP address, in its subjectAltName (RFC 6125: never the
    subject's common name).

    @raise service_identity.VerificationError: if it names other hosts.
    @raise service_identity.CertificateError: if it names none (no
        subjectAltName).
    """
    from service_identity.hazmat import DNS_ID, IPAddress_ID, verify_service_identity
    from service_identity.pyopenssl import extract_patterns
    from twisted.internet.abstract import isIPAddress, isIPv6Address

    identity: Any = (
        IPAddress_ID(hostname)
        if isIPAddress(hostname) or isIPv6Address(hostname)
        else DNS_ID(hostname)
    )
    verify_service_identity(extract_patterns(certificate), [identity], [])


@implementer(IOpenSSLClientConnectionCreator)
class HostnameChecking:
    """
    C{creator}'s connections, each checking the server's certificate against
    C{hostname} with L{checkHostname} once the chain is verified; either
    error fails the handshake, the error being the connection's reason.
    """

    def __init__(self, creator: Any, hostname: str) -> None:
        self._creator = creator
        self.hostname = hostname

    def clientConnectionForTLS(self, tlsProtocol: Any) -> Any:
        from OpenSSL.SSL import VERIFY_FAIL_IF_NO_PEER_CERT, VERIFY_PEER

        connection = self._creator.clientConnectionForTLS(tlsProtocol)
        connection.set_verify(
            VERIFY_PEER | VERIFY_FAIL_IF_NO_PEER_CERT, self._verifier(tlsProtocol)
        )
        return connection

    def _verifier(self, tlsProtocol: Any) -> Callable[[Any, Any, int, int, int], bool]:
        protocols = [tlsProtocol]  # dropped after the check: no cycle kept

        def verify(connection: Any, certificate: Any, errno: int, depth: int, ok: int) -> bool:
            if depth != 0 or not ok or not protocols:
                # The chain is OpenSSL's to judge; only the server's own
                # certificate names the host.
                return bool(ok)
            protocol = protocols.pop()
            try:
                checkHostname(certificate, self.hostname)
            except Exception:
                # VerificationError, CertificateError, or anything else the
                # check raises (an ImportError from an old service_identity):
                # the handshake fails with it as the reason, never unchecked.
                protocol.failVerification(Failure())
                return False
            return True

        return verify


def tlsEndpoint(reactor: Any, args: list[str], kwargs: dict[str, str]) -> IStreamClientEndpoint:
    """
    The endpoint for C{tls:} with these arguments (after the type, as
    L{uppercase.client._connect._arguments} splits them), as Twisted's parser
    makes it, but with L{HostnameChecking}.

    @raise TypeError: for arguments Twisted's C{tls:} does not take.
    """
    return _tls(reactor, *args, **kwargs)


def _tls(
    reactor: Any,
    host: str,
    port: str,
    timeout: str = "30",
    bindAddress: str | None = None,
    certificate: str | None = None,
    privateKey: str | None = None,
    trustRoots: str | None = None,
    endpoint: str | None = None,
) -> IStreamClientEndpoint:
    from twisted.internet.ssl import optionsForClientTLS

    inner: IStreamClientEndpoint = (
        clientFromString(reactor, endpoint)
        if endpoint is not None
        else HostnameEndpoint(
            reactor,
            host,
            int(port),
            int(timeout),
            None if bindAddress is None else (bindAddress, 0),
        )
    )
    creator = optionsForClientTLS(
        host,
        trustRoot=_trustRoot(trustRoots),
        clientCertificate=_clientCertificate(certificate, privateKey),
    )
    return wrapClientTLS(HostnameChecking(creator, host), inner)


def _trustRoot(folder: str | None) -> Any:
    """
    The C{.pem} certificates in C{folder} as a trust root (as Twisted's
    C{trustRoots=} reads them: unreadable or invalid files skipped), or
    L{None} for the platform's.
    """
    from OpenSSL.crypto import Error as CryptoError
    from OpenSSL.SSL import Error as SSLError
    from twisted.internet.ssl import Certificate, trustRootFromCertificates

    if folder is None:
        return None
    certificates = {}
    for name in sorted(os.listdir(folder)):
        if name.rsplit(".", 1)[-1].lower() != "pem":
            continue
        try:
            with open(os.path.join(folder, name), "rb") as f:
                certificate = Certificate.loadPEM(f.read())
        except (OSError, ValueError, SSLError, CryptoError):
            continue
        certificates[certificate.digest()] = certificate
    return trustRootFromCertificates(list(certificates.values()))


def _clientCertificate(certificate: str | None, privateKey: str | None) -> Any:
    """
    The client's own certificate (with C{privateKey}, or with the key in
    the same file), or L{None}.
    """
    from twisted.internet.ssl import Certificate, KeyPair, PrivateCertificate

    if certificate is None:
        return None
    with open(certificate, "rb") as f:
        pem = f.read()
    if privateKey is None:
        return PrivateCertificate.loadPEM(pem)
    with open(privateKey, "rb") as f:
        key = f.read()
    return PrivateCertificate.fromCertificateAndKeyPair(
        Certificate.loadPEM(pem), KeyPair.load(key, 1)
    )
