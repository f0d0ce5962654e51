"""Self-signed certificates for the TLS tests, made in memory (needs cryptography)."""

from __future__ import annotations

import datetime
import ipaddress


def selfSigned(subjectAltName: bool = True) -> tuple[bytes, bytes]:
    """
    A key and a self-signed CA certificate for C{CN=localhost}, both PEM.

    @param subjectAltName: whether the certificate names C{localhost} and
        C{127.0.0.1} in a subjectAltName extension too; without it, the name
        is only in the subject's common name, which TLS clients no longer
        accept for a hostname (RFC 6125).
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
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    if subjectAltName:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    certificate = builder.sign(key, hashes.SHA256())
    keyPEM = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return keyPEM, certificate.public_bytes(serialization.Encoding.PEM)
