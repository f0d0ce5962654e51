"""Self-signed certificates for the TLS tests, made in memory (needs cryptography)."""

from __future__ import annotations

import datetime
import ipaddress
from typing import Any


def selfSigned(
    subjectAltName: bool = True,
    names: tuple[str, ...] = ("localhost", "127.0.0.1"),
    validFrom: float = -1,
    validUntil: float = 1,
) -> tuple[bytes, bytes]:
    """
    A key and a self-signed CA certificate for C{CN=localhost}, both PEM.

    @param subjectAltName: whether the certificate names C{names} in a
        subjectAltName extension too; without it, the name is only in the
        subject's common name, which TLS clients no longer accept for a
        hostname (RFC 6125).
    @param names: the host names and IP addresses it names.
    @param validFrom: when it becomes valid, in days from now.
    @param validUntil: when it expires, in days from now.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=validFrom))
        .not_valid_after(now + datetime.timedelta(days=validUntil))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    if subjectAltName:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_generalName(name) for name in names]),
            critical=False,
        )
    certificate = builder.sign(key, hashes.SHA256())
    keyPEM = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return keyPEM, certificate.public_bytes(serialization.Encoding.PEM)


def _generalName(name: str) -> Any:
    """
    C{name} as a subjectAltName entry: an IP address, or a DNS name.
    """
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)
