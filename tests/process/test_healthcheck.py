"""
The container image's health check (the Containerfile's C{HEALTHCHECK}) and
the Kubernetes readiness probe, run on the host against real servers: they
follow C{UPPERCASE_PLAIN} as the server does.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from ._process import DEADLINE, Server, script

ROOT = Path(__file__).resolve().parents[2]


def healthCheck() -> list[str]:
    """
    The command of the Containerfile's C{HEALTHCHECK} (its exec form).
    """
    lines = (ROOT / "Containerfile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("HEALTHCHECK "))
    command = next(line.strip() for line in lines[start:] if line.strip().startswith("CMD "))
    argv: list[str] = json.loads(command[len("CMD ") :])
    return argv


HEALTH_CHECK = healthCheck()
"""The image's health check command (what C{buildah inspect} shows after
C{CMD})."""


class HealthCheckTests(SynchronousTestCase):
    """
    The health check, and the readiness probe that repeats it.
    """

    def check(self, port: int, plain: str | None) -> subprocess.CompletedProcess[str]:
        """
        Run the health check against C{port}, with C{UPPERCASE_PLAIN} set
        to C{plain} (unset if L{None}), the client found on C{PATH} as in
        the image.
        """
        env = {k: v for k, v in os.environ.items() if k != "UPPERCASE_PLAIN"}
        env["PATH"] = str(Path(script("uppercase-client")[-1]).parent) + os.pathsep + env["PATH"]
        if plain is not None:
            env["UPPERCASE_PLAIN"] = plain
        return subprocess.run(
            [*HEALTH_CHECK, "--connect", f"tcp:127.0.0.1:{port}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=DEADLINE,
            check=False,
        )

    def test_followsPlain(self) -> None:
        """
        Against a C{--plain} server it passes when C{UPPERCASE_PLAIN} is a
        true flag (in any case) and fails without it; against the uppercase
        echo, it passes when the variable is unset or false and fails when
        it is true.
        """
        plain = Server("--quiet", "--plain")
        self.addCleanup(plain.stop)
        upper = Server("--quiet")
        self.addCleanup(upper.stop)
        cases = [
            (plain, "1", 0),
            (plain, "TRUE", 0),
            (plain, "yes", 0),
            (plain, None, 1),
            (plain, "0", 1),
            (upper, None, 0),
            (upper, "false", 0),
            (upper, "No", 0),
            (upper, "1", 1),
        ]
        for server, value, status in cases:
            done = self.check(server.port, value)
            self.assertEqual(done.returncode, status, (server.command([]), value, done.stderr))
            if status == 0:
                self.assertIn("1 sent, 1 received, 1 verified", done.stdout)

    def test_readinessProbe(self) -> None:
        """
        The Kubernetes readiness probe runs the same command.
        """
        manifest = (ROOT / "deploy/kubernetes/server-deployment.yaml").read_text()
        shell, dashC, text, name = HEALTH_CHECK
        self.assertEqual((shell, dashC), ("sh", "-c"))
        probe = "\n".join(f"                - {part}" for part in (shell, dashC, f"'{text}'", name))
        self.assertIn(
            "readinessProbe:\n            exec:\n              command:\n" + probe, manifest
        )
