"""
A real OpenSSL client (socat) that sends its TLS C{close_notify} right after
its data gets every reply, then the server's C{close_notify}.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from ._process import DEADLINE, Server, requireTLS
from .test_endpoints import makeCertificate

SOCAT = shutil.which("socat")


class SocatCloseNotifyTests(SynchronousTestCase):
    """
    C{socat - OPENSSL:...} sends its input, then its C{close_notify} (at
    the end of its input, often in the same TCP segment as the last data),
    and prints what comes back until the server's C{close_notify}.
    """

    def setUp(self) -> None:
        requireTLS()
        if not SOCAT:
            if os.environ.get("CI"):
                raise AssertionError("socat is not installed (.ci/run installs it)")
            raise SkipTest("socat is not installed (apt-get install socat)")
        self.folder = tempfile.mkdtemp()
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", self.folder]))
        key, self.cert, _ = makeCertificate(self.folder)
        self.server = Server(
            "--quiet", listen=f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={self.cert}"
        )
        self.addCleanup(self.server.stop)

    def socat(self, data: bytes) -> subprocess.CompletedProcess[bytes]:
        assert SOCAT is not None
        return subprocess.run(
            [
                SOCAT,
                "-t",
                str(DEADLINE),
                "-",
                f"OPENSSL:127.0.0.1:{self.server.port},cafile={self.cert}",
            ],
            input=data,
            capture_output=True,
            timeout=DEADLINE * 2,
        )

    def test_everyReplyAcrossSizes(self) -> None:
        """
        From one line to 10 MB, socat gets back every byte, uppercased, and
        exits 0 (it ends at the server's C{close_notify}, not at its
        timeout).
        """
        line = bytes(range(32, 127)) + b"\n"
        for size in (16, 100, 1000, 16384, 1_000_000, 10_000_000):
            data = (line * (size // len(line) + 1))[:size]
            result = self.socat(data)
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertEqual(len(result.stdout), size, f"{size} bytes sent")
            self.assertEqual(result.stdout, data.upper(), f"{size} bytes sent")
