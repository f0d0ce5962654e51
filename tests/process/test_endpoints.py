"""
Every kind of endpoint the README shows, on real sockets: UNIX, IPv6,
several at once, TLS with a real handshake, and systemd socket activation.
"""

from __future__ import annotations

import os
import resource
import socket
import ssl
import subprocess
import sys
import tempfile
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from ..certificates import selfSigned
from ._process import DEADLINE, Twistd, receiveAll, requireTLS, run, script
from .test_robustness import poll


def halfCloseExchange(family: int, address: Any, data: bytes = b"hello\n") -> bytes:
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(DEADLINE)
        s.connect(address)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        return receiveAll(s)


def client(connect: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run(script("uppercase-client") + ["-c", connect, "-n", "2", "-i", "0", *extra])


class EndpointTests(SynchronousTestCase):
    """
    The server listens, and the client connects, on every kind of endpoint.
    """

    def setUp(self) -> None:
        self.folder = tempfile.mkdtemp()
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", self.folder]))

    def serve(self, *listen: str) -> Twistd:
        args = ["uppercase", "--quiet"]
        for description in listen:
            args += ["--listen", description]
        server = Twistd(*args)
        self.addCleanup(server.stop)
        server.waitFor("serving on")
        return server

    def test_unixSocket(self) -> None:
        """
        C{unix:PATH}: half-close works over a UNIX socket, and the client's
        C{--connect unix:PATH} verifies its replies.
        """
        path = os.path.join(self.folder, "u.sock")
        self.serve(f"unix:{path}")
        self.assertEqual(halfCloseExchange(socket.AF_UNIX, path), b"HELLO\n")
        result = client(f"unix:{path}")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue(result.stdout.startswith("HELLO\nHELLO\n2 sent, 2 received, 2 verified"))

    def test_unixClientClosingIsClean(self) -> None:
        """
        A UNIX-socket client that reads its reply and closes (no half-close
        first) is logged as a clean close, by the socket's path, with no
        port.
        """
        path = os.path.join(self.folder, "u.sock")
        server = self.serve(f"unix:{path}")
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(DEADLINE)
            s.connect(path)
            s.sendall(b"abc")
            self.assertEqual(s.recv(3), b"ABC")
        server.waitFor(f"Connection from unix:{path} closed \\(3 bytes received\\)")
        self.assertNotIn(" lost:", server.output)
        self.assertNotIn("port None", server.output)

    def test_ipv6(self) -> None:
        """
        C{tcp6:...:interface=::1}: served over IPv6, logged with the IPv6
        client address.
        """
        server = self.serve(r"tcp6:0:interface=\:\:1")
        port = int(server.waitFor(r"starting on (\d+)").group(1))
        self.assertEqual(halfCloseExchange(socket.AF_INET6, ("::1", port)), b"HELLO\n")
        result = client(rf"tcp:host=\:\:1:port={port}")
        self.assertEqual(result.returncode, 0, result.stderr)
        server.waitFor(r"Connection from ::1 port \d+")

    def test_severalAtOnce(self) -> None:
        """
        Several C{--listen} options serve at the same time.
        """
        path = os.path.join(self.folder, "several.sock")
        server = self.serve("tcp:0:interface=127.0.0.1", f"unix:{path}")
        port = int(server.waitFor(r"starting on (\d+)").group(1))
        self.assertEqual(halfCloseExchange(socket.AF_INET, ("127.0.0.1", port)), b"HELLO\n")
        self.assertEqual(halfCloseExchange(socket.AF_UNIX, path), b"HELLO\n")

    def test_tls(self) -> None:
        """
        C{ssl:} with a key and certificate: the client's C{tls:} endpoint
        completes a real, verified handshake and its replies verify; without
        the trust root, verification fails in one line.
        """
        requireTLS()
        key, cert, roots = makeCertificate(self.folder)
        server = self.serve(f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}")
        port = int(server.waitFor(r"starting on (\d+)").group(1))
        result = client(f"tls:localhost:{port}:trustRoots={roots}")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue(result.stdout.startswith("HELLO\nHELLO\n2 sent, 2 received, 2 verified"))
        untrusted = client(f"tls:localhost:{port}")
        self.assertEqual(untrusted.returncode, 1)
        self.assertEqual(
            untrusted.stderr,
            "uppercase-client: TLS handshake failed: untrusted certificate: it is self-signed "
            "and not among the trust roots (trust its CA with trustRoots=FOLDER in the endpoint)\n",
        )
        self.assertEqual(untrusted.stdout, "0 sent, 0 received, 0 verified\n")

    def assertHandshakeFails(self, connect: str, line: str) -> None:
        """
        The client fails with C{connect}: status 1, nothing sent (the bytes
        never left the TLS layer), and C{line} on standard error.
        """
        result = client(connect)
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertEqual(result.stdout, "0 sent, 0 received, 0 verified\n")
        self.assertEqual(result.stderr, f"uppercase-client: TLS handshake failed: {line}\n")

    def test_tlsExpired(self) -> None:
        """
        An expired server certificate, trusted otherwise: the client says it
        expired, and when.
        """
        requireTLS()
        key, cert, roots = makeCertificate(self.folder, validFrom=-3, validUntil=-1)
        server = self.serve(f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}")
        port = int(server.waitFor(r"starting on (\d+)").group(1))
        result = client(f"tls:localhost:{port}:trustRoots={roots}")
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertRegex(
            result.stderr,
            r"^uppercase-client: TLS handshake failed: expired certificate: the server's "
            r"certificate expired on \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\n$",
        )

    def test_tlsNotYetValid(self) -> None:
        """
        A server certificate not valid yet: the client says so, and from
        when.
        """
        requireTLS()
        key, cert, roots = makeCertificate(self.folder, validFrom=1, validUntil=3)
        server = self.serve(f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}")
        port = int(server.waitFor(r"starting on (\d+)").group(1))
        result = client(f"tls:localhost:{port}:trustRoots={roots}")
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertIn(
            "TLS handshake failed: certificate not yet valid: the server's certificate is "
            "valid from ",
            result.stderr,
        )

    def test_tlsTrustRootsNotAFolder(self) -> None:
        """
        C{trustRoots=} naming nothing, or a file: a usage error that says
        which (Twisted's parser says C{UnlistableError}).
        """
        requireTLS()
        key, cert, roots = makeCertificate(self.folder)
        for value, problem in [
            ("/nonexistent", "no such folder"),
            (cert, "not a folder (trustRoots names a folder of .pem CA certificates)"),
        ]:
            result = client(f"tls:localhost:9443:trustRoots={value}")
            self.assertEqual(result.returncode, 2, result.stderr)
            self.assertIn(
                f"is not a valid endpoint: trustRoots={value}: {problem}\n", result.stderr
            )

    def test_tlsLoadCountsByKind(self) -> None:
        """
        A load run against a server whose certificate is not trusted counts
        its errors as C{untrusted certificate}, and says so in its line.
        """
        requireTLS()
        key, cert, roots = makeCertificate(self.folder)
        server = self.serve(f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}")
        port = int(server.waitFor(r"starting on (\d+)").group(1))
        result = run(
            script("uppercase-client")
            + ["-c", f"tls:localhost:{port}", "--connections", "2", "--count", "4"]
        )
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertIn("errors: 2 untrusted certificate\n", result.stdout)
        self.assertEqual(
            result.stderr, "uppercase-client: every connection was lost (2 untrusted certificate)\n"
        )

    def test_tlsNeedsSubjectAltName(self) -> None:
        """
        A server certificate that names its host only in the common name
        (no subjectAltName) fails the client's hostname check: one line
        saying so, exit status 1, no reply; for the host name and for the
        IP address alike.
        """
        requireTLS()
        key, cert, roots = makeCertificate(self.folder, subjectAltName=False)
        server = self.serve(f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}")
        port = int(server.waitFor(r"starting on (\d+)").group(1))
        for host in ("localhost", "127.0.0.1"):
            self.assertHandshakeFails(
                f"tls:{host}:{port}:trustRoots={roots}",
                f"certificate name mismatch: expected {host}, the certificate names no host "
                "(no subjectAltName; a common name alone is not accepted)",
            )

    def test_tlsOtherHost(self) -> None:
        """
        A server certificate whose subjectAltName names other hosts fails
        the client's hostname check in one line (here reached through
        C{tls:}'s C{endpoint=} option, by a name the certificate lacks).
        """
        requireTLS()
        key, cert, roots = makeCertificate(self.folder)
        server = self.serve(f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}")
        port = int(server.waitFor(r"starting on (\d+)").group(1))
        inner = f"tcp\\:127.0.0.1\\:{port}"
        self.assertHandshakeFails(
            f"tls:example.org:{port}:trustRoots={roots}:endpoint={inner}",
            "certificate name mismatch: expected example.org, "
            "the certificate names localhost, 127.0.0.1",
        )

    def test_tlsIgnoresALPN(self) -> None:
        """
        A client that offers application protocols by ALPN (as curl and
        browsers do) completes the handshake with an C{ssl:} echo listener,
        which selects none of them (it speaks no protocol by name), and its
        bytes come back uppercased.
        """
        requireTLS()
        key, cert, roots = makeCertificate(self.folder)
        server = self.serve(f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}")
        port = int(server.waitFor(r"starting on (\d+)").group(1))
        context = ssl.create_default_context(cafile=os.path.join(roots, "ca.pem"))
        context.set_alpn_protocols(["h2", "http/1.1"])
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as s:
                self.assertIsNone(s.selected_alpn_protocol())
                s.sendall(b"hello\n")
                received = b""
                while len(received) < 6:
                    chunk = s.recv(6 - len(received))
                    if not chunk:
                        break
                    received += chunk
        self.assertEqual(received, b"HELLO\n")
        self.assertNotIn("internal error", server.output)

    def test_tlsOverLimit(self) -> None:
        """
        Over C{--max-connections} on an C{ssl:} listener, refused
        connections are closed cleanly: no traceback, and the server's
        descriptors come back to where they were.
        """
        requireTLS()
        key, cert, _ = makeCertificate(self.folder)
        server = Twistd(
            "uppercase",
            "--quiet",
            "--max-connections",
            "1",
            "--listen",
            f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}",
        )
        self.addCleanup(server.stop)
        port = int(server.waitFor(r"starting on (\d+)").group(1))
        server.waitFor("serving on")
        kept = socket.create_connection(("127.0.0.1", port))
        self.addCleanup(kept.close)
        server.waitFor("Connection from 127.0.0.1")
        baseline = openDescriptors(server)
        refused = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
        for s in refused:
            s.settimeout(DEADLINE)
            try:
                self.assertEqual(s.recv(1), b"")
            except ConnectionResetError:
                pass
            s.close()
        server.waitFor("Refused connection from 127.0.0.1")
        self.assertTrue(poll(lambda: openDescriptors(server) <= baseline), openDescriptors(server))
        self.assertNotIn("Traceback", server.output)

    def test_tlsRefusalBurst(self) -> None:
        """
        Refused connections on an C{ssl:} listener are closed as they are
        accepted, as on a plain one: a burst of 200 of them, queued at once,
        never runs a server limited to 64 descriptors out of them (no
        C{EMFILE}), and the connection it keeps is still served.
        """
        requireTLS()
        key, cert, roots = makeCertificate(self.folder)
        server = Twistd(
            "uppercase",
            "--quiet",
            "--max-connections",
            "1",
            "--listen",
            f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}:backlog=511",
            preexec=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64)),
        )
        self.addCleanup(server.stop)
        port = int(server.waitFor(r"starting on (\d+)").group(1))
        server.waitFor("serving on")
        context = ssl.create_default_context(cafile=os.path.join(roots, "ca.pem"))
        kept = context.wrap_socket(
            socket.create_connection(("127.0.0.1", port), timeout=DEADLINE),
            server_hostname="localhost",
        )
        self.addCleanup(kept.close)
        server.waitFor("Connection from 127.0.0.1")
        burst = []
        for _ in range(200):
            s = socket.socket()
            self.addCleanup(s.close)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            burst.append(s)
        for s in burst:
            s.settimeout(DEADLINE)
            try:
                s.recv(1)
            except OSError:
                pass
        server.waitFor("Refused connection from 127.0.0.1")
        kept.sendall(b"still here\n")
        self.assertEqual(kept.recv(100), b"STILL HERE\n")
        self.assertNotIn("EMFILE", server.output)
        self.assertNotIn("Traceback", server.output)

    def test_systemdSocketActivation(self) -> None:
        """
        C{systemd:domain=INET:index=0} serves on the socket systemd passes
        as descriptor 3 (C{LISTEN_FDS}, C{LISTEN_FDNAMES}, C{LISTEN_PID}), as the example
        C{.socket} unit in C{docs/systemd/} does.
        """
        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        port = listener.getsockname()[1]
        launcher = (
            "import os, sys\n"
            "os.dup2(int(sys.argv[1]), 3)\n"
            "os.environ.update(LISTEN_FDS='1', LISTEN_FDNAMES='uppercase.socket',\n"
            "                  LISTEN_PID=str(os.getpid()))\n"
            "os.execv(sys.argv[2], sys.argv[2:])\n"
        )
        twistd = script("twistd")[0]
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                launcher,
                str(listener.fileno()),
                twistd,
                "-n",
                "--pidfile=",
                "uppercase",
                "--listen",
                "systemd:domain=INET:index=0",
            ],
            pass_fds=[listener.fileno()],
            cwd=self.folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            self.assertEqual(halfCloseExchange(socket.AF_INET, ("127.0.0.1", port)), b"HELLO\n")
        finally:
            process.terminate()
            output, _ = process.communicate(timeout=DEADLINE)
        self.assertIn("serving on systemd:domain=INET:index=0", output)
        self.assertNotIn("Traceback", output)


def openDescriptors(process: Twistd) -> int:
    """
    How many descriptors C{process} has open.
    """
    return len(os.listdir(f"/proc/{process.process.pid}/fd"))


def makeCertificate(
    folder: str, subjectAltName: bool = True, validFrom: float = -1, validUntil: float = 1
) -> tuple[str, str, str]:
    """
    A self-signed certificate for C{localhost} and C{127.0.0.1}
    (L{tests.certificates.selfSigned}, with C{validFrom} and C{validUntil}
    if given).

    @return: the key's path, the certificate's path, and a folder holding
        the certificate as a trust root.
    """
    keyPEM, pem = selfSigned(subjectAltName, validFrom=validFrom, validUntil=validUntil)
    keyPath = os.path.join(folder, "key.pem")
    certPath = os.path.join(folder, "cert.pem")
    roots = os.path.join(folder, "roots")
    os.mkdir(roots)
    with open(keyPath, "wb") as f:
        f.write(keyPEM)
    for path in (certPath, os.path.join(roots, "ca.pem")):
        with open(path, "wb") as f:
            f.write(pem)
    return keyPath, certPath, roots
