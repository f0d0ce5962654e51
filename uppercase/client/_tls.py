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

A failed handshake is said in words a person can act on
(L{describeTLSFailure}): which check refused the certificate and why (not
trusted, expired, not yet valid, another name), or what the server's alert
meant (no protocol version in common, a client certificate wanted, ...);
its first part is the kind of error a load run counts.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from twisted.internet.endpoints import HostnameEndpoint, clientFromString, wrapClientTLS
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IStreamClientEndpoint
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = [
    "CertificateRejected",
    "HostnameChecking",
    "checkHostname",
    "checkTrustRoots",
    "describeTLSFailure",
    "tlsEndpoint",
]

UNTRUSTED = "untrusted certificate"
EXPIRED = "expired certificate"
NOT_YET_VALID = "certificate not yet valid"
NAME_MISMATCH = "certificate name mismatch"

_UNTRUSTED_ERRORS = {
    2: "its issuer's certificate is not among the trust roots",
    18: "it is self-signed and not among the trust roots",
    19: "a certificate of its chain is self-signed and not among the trust roots",
    20: "its issuer is not among the trust roots",
    21: "its issuer is not among the trust roots",
}
"""OpenSSL's X509_V_ERR_ codes that mean the chain ends at no trusted root."""

_EXPIRED_ERROR = 10
_NOT_YET_VALID_ERROR = 9


class CertificateRejected(Exception):
    """
    The server's certificate failed a check: C{kind} (L{UNTRUSTED},
    L{EXPIRED}, L{NOT_YET_VALID}, L{NAME_MISMATCH}, ...) and C{detail}, the
    words that say what to do about it.
    """

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(kind, detail)
        self.kind = kind
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


def _when(stamp: bytes | None) -> str:
    """
    C{2026-12-05 15:37:49 UTC}, from an ASN.1 time as pyOpenSSL gives it
    (C{20261205153749Z}).
    """
    text = (stamp or b"").decode("ascii", "replace")
    if len(text) == 15 and text.endswith("Z"):
        return f"{text[:4]}-{text[4:6]}-{text[6:8]} {text[8:10]}:{text[10:12]}:{text[12:14]} UTC"
    return text


def rejectedChain(errno: int, certificate: Any, depth: int) -> CertificateRejected:
    """
    Why OpenSSL refused C{certificate} (at C{depth} in the chain, 0 being
    the server's own) with X509_V_ERR_ code C{errno}, in words.
    """
    whose = "the server's certificate" if depth == 0 else f"the certificate at depth {depth}"
    if errno in _UNTRUSTED_ERRORS:
        return CertificateRejected(
            UNTRUSTED,
            f"{_UNTRUSTED_ERRORS[errno]} (trust its CA with trustRoots=FOLDER in the endpoint)",
        )
    if errno == _EXPIRED_ERROR:
        return CertificateRejected(
            EXPIRED, f"{whose} expired on {_when(certificate.get_notAfter())}"
        )
    if errno == _NOT_YET_VALID_ERROR:
        return CertificateRejected(
            NOT_YET_VALID,
            f"{whose} is valid from {_when(certificate.get_notBefore())} "
            "(is this machine's clock right?)",
        )
    return CertificateRejected("certificate rejected", f"OpenSSL verify error {errno}")


def _names(certificate: Any) -> list[str]:
    """
    The host names and IP addresses C{certificate}'s subjectAltName names.
    """
    from service_identity.pyopenssl import extract_patterns

    names = []
    for pattern in extract_patterns(certificate):
        value = getattr(pattern, "pattern", None)
        if isinstance(value, bytes):
            names.append(value.decode("ascii", "replace"))
        elif value is not None:
            names.append(str(value))
    return names


def nameMismatch(certificate: Any, hostname: str) -> CertificateRejected:
    """
    C{certificate} does not name C{hostname}: the name expected and the
    names it has.
    """
    try:
        names = _names(certificate)
    except Exception:
        names = []
    if names:
        has = f"the certificate names {', '.join(names)}"
    else:
        has = (
            "the certificate names no host (no subjectAltName; a common name alone is not accepted)"
        )
    return CertificateRejected(NAME_MISMATCH, f"expected {hostname}, {has}")


_ALERTS = (
    (
        ("protocol version", "unsupported protocol", "no protocols available", "version too low"),
        "no shared protocol version",
        "the server and this client have no TLS version in common",
    ),
    (
        ("wrong version number", "packet length too long", "record layer failure"),
        "not TLS",
        "the server did not answer in TLS (is it a plain TCP port?)",
    ),
    (
        ("certificate required", "unknown ca", "bad certificate", "certificate unknown"),
        "client certificate rejected",
        "the server wants a client certificate it trusts "
        "(certificate= and privateKey= in the endpoint)",
    ),
    (
        ("handshake failure", "no shared cipher", "no cipher", "insufficient security"),
        "handshake failure",
        "the server and this client have no cipher suite or setting in common",
    ),
    (
        ("certificate verify failed",),
        UNTRUSTED,
        "the server's certificate could not be verified "
        "(trust its CA with trustRoots=FOLDER in the endpoint)",
    ),
)
"""OpenSSL's error reasons, in the server's alert or our own, and what they
mean: words to look for, the kind, the detail."""


def describeTLSFailure(failure: Failure) -> tuple[str, str] | None:
    """
    If C{failure} is a TLS failure, its kind (C{untrusted certificate}) and
    the words that say what failed (C{untrusted certificate: it is
    self-signed and not among the trust roots (...)}); otherwise L{None}.
    """
    value: Any = failure.value
    if isinstance(value, CertificateRejected):
        return value.kind, str(value)
    if not type(value).__module__.startswith("OpenSSL"):
        return None
    reasons = []
    for entry in value.args[0] if value.args and isinstance(value.args[0], list) else []:
        if isinstance(entry, tuple) and entry:
            reasons.append(str(entry[-1]))
    said = "; ".join(reasons) or str(value) or type(value).__name__
    for words, kind, detail in _ALERTS:
        if any(word in said for word in words):
            return kind, f"{kind}: {detail} ({said})"
    return "TLS error", f"TLS error: {said}"


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
            if not protocols:
                return bool(ok)
            if not ok:
                # The chain is OpenSSL's to judge; the handshake fails with
                # its reason in words (OpenSSL's own says only "certificate
                # verify failed").
                protocols.pop().failVerification(Failure(rejectedChain(errno, certificate, depth)))
                return False
            if depth != 0:
                # Only the server's own certificate names the host.
                return True
            protocol = protocols.pop()
            try:
                checkHostname(certificate, self.hostname)
            except ImportError:
                # An old service_identity: the handshake fails with it as
                # the reason, never unchecked.
                protocol.failVerification(Failure())
                return False
            except Exception:
                # VerificationError, CertificateError: another name, or none.
                protocol.failVerification(Failure(nameMismatch(certificate, self.hostname)))
                return False
            return True

        return verify


def tlsEndpoint(reactor: Any, args: list[str], kwargs: dict[str, str]) -> IStreamClientEndpoint:
    """
    The endpoint for C{tls:} with these arguments (after the type, as
    L{uppercase.net.endpoints.arguments} splits them), as Twisted's parser
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


def checkTrustRoots(folder: str) -> None:
    """
    Check that C{trustRoots=folder} names a folder that can be listed.

    @raise ValueError: saying why not, in words.
    """
    if not os.path.exists(folder):
        raise ValueError(f"trustRoots={folder}: no such folder")
    if not os.path.isdir(folder):
        raise ValueError(
            f"trustRoots={folder}: not a folder (trustRoots names a folder of .pem CA certificates)"
        )
    try:
        os.listdir(folder)
    except OSError as e:
        raise ValueError(f"trustRoots={folder}: {e.strerror or e}") from None


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
