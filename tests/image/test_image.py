"""
The container image (Containerfile), as C{.ci/image} builds it: its
configuration, and its server started from it and driven from outside by the
host's installed C{uppercase-client}.

Run only when C{UPPERCASE_IMAGE} names the image in buildah's local storage
(C{.ci/image} sets it, after building it); skipped otherwise.  Once it is
set, a missing C{buildah} or C{unshare} fails the tests.  They need root
(buildah, and C{unshare --pid}).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from typing import Any, Sequence

from twisted.trial.unittest import SynchronousTestCase

from tests.process._process import (
    DEADLINE,
    Twistd,
    closedPort,
    receiveAll,
    script,
    sendInThread,
)
from tests.process.test_healthcheck import HEALTH_CHECK
from tests.process.test_shutdown import CLOSE_LINE

IMAGE = os.environ.get("UPPERCASE_IMAGE", "")
SKIP = None if IMAGE else "UPPERCASE_IMAGE names no image (.ci/image builds one and sets it)"
USER = 10001
LISTEN = "tcp:0:interface=127.0.0.1"


def buildah(*args: str) -> str:
    """
    Run C{buildah ARGS} and return its standard output.
    """
    done = subprocess.run(
        ["buildah", *args], capture_output=True, text=True, timeout=DEADLINE, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"buildah {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def imageConfig() -> dict[str, Any]:
    """
    The image's configuration in the docker format (which keeps the
    C{HEALTHCHECK}).
    """
    config: dict[str, Any] = json.loads(buildah("inspect", "--type", "image", IMAGE))["Docker"][
        "config"
    ]
    return config


def listeningPid(port: int) -> int:
    """
    The process that holds the socket listening on TCP C{port}, from
    C{/proc}.
    """
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    inodes = {row[9] for row in rows if int(row[1].split(":")[1], 16) == port and row[3] == "0A"}
    assert inodes, f"nothing listens on {port}"
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in wanted for fd in fds):
                return int(pid)
        except OSError:
            continue
    raise AssertionError(f"no process holds the socket listening on {port}")


def uids(pid: int) -> list[int]:
    """
    The real, effective, saved and file-system user ids of C{pid}.
    """
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("Uid:"):
                return [int(field) for field in line.split()[1:]]
    raise AssertionError(f"no Uid line for {pid}")


def gone(pid: int, timeout: float = DEADLINE) -> bool:
    """
    Whether process C{pid} ends within C{timeout} seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}"):
            return True
        time.sleep(0.05)
    return False


class ImageServer(Twistd):
    """
    The image's own command (its C{Cmd}), run from the image on the host's
    network with C{UPPERCASE_LISTEN} on a free loopback port.

    @ivar port: the port it listens on.
    """

    def __init__(self, container: str, pid1: bool = False) -> None:
        self._container = container
        self._pid1 = pid1
        super().__init__()
        self.port = int(self.waitFor(r"UppercaseFactory.*starting on (\d+)").group(1))

    def command(self, args: Sequence[str]) -> list[str]:
        config = imageConfig()
        if not self._pid1:
            # buildah applies the image's user, environment and folder.
            return [
                "buildah", "run", "--isolation", "chroot",
                "--env", f"UPPERCASE_LISTEN={LISTEN}",
                self._container, "--", *config["Cmd"],
            ]  # fmt: skip
        # As Kubernetes runs it: PID 1 of its own PID namespace, which the
        # kernel spares the signals it has no handler for (twistd kills
        # itself with the signal that stopped it, which ends it anywhere
        # else), on a read-only root (readOnlyRootFilesystem).
        root = buildah("mount", self._container).strip()
        readOnly = (
            'root=$1 user=$2; shift 2; mount --bind "$root" "$root" '
            '&& mount -o remount,bind,ro "$root" && exec chroot --userspec="$user" "$root" "$@"'
        )
        return [
            "unshare", "--pid", "--fork", "--kill-child", "--mount-proc",
            "sh", "-c", readOnly, "sh", root, config["User"],
            "/usr/bin/env", "-i", *config["Env"], f"UPPERCASE_LISTEN={LISTEN}",
            "sh", "-c", 'cd "$0" && exec "$@"', config["WorkingDir"], *config["Cmd"],
        ]  # fmt: skip

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE)


class ImageTestCase(SynchronousTestCase):
    """
    A working container of the image for each test, removed after it.
    """

    skip = SKIP

    def setUp(self) -> None:
        self.container = buildah("from", "--pull-never", IMAGE).strip()
        self.addCleanup(buildah, "rm", self.container)

    def server(self, pid1: bool = False) -> ImageServer:
        """
        Start the image's server (see L{ImageServer}); stopped after the test.
        """
        server = ImageServer(self.container, pid1)
        self.addCleanup(server.stop)
        return server

    def inImage(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """
        Run C{argv} in the image, on the host's network.
        """
        return subprocess.run(
            ["buildah", "run", "--isolation", "chroot", self.container, "--", *argv],
            capture_output=True,
            text=True,
            timeout=DEADLINE,
            check=False,
        )


class ConfigTests(ImageTestCase):
    """
    What the image declares.
    """

    def test_config(self) -> None:
        """
        The server as its command, a numeric user that is not root, port
        9527, SIGTERM to stop, and a health check by the client itself.
        """
        config = imageConfig()
        self.assertEqual(config["Cmd"], ["twistd", "-n", "--pidfile=", "uppercase"])
        self.assertEqual(config["User"], f"{USER}:{USER}")
        self.assertEqual(list(config["ExposedPorts"]), ["9527/tcp"])
        self.assertEqual(config["StopSignal"], "SIGTERM")
        self.assertEqual(config["Healthcheck"]["Test"], ["CMD", *HEALTH_CHECK])

    def test_packageAndNothingElse(self) -> None:
        """
        The image has the client and the server, and no pip, checkout,
        wheels, compiler or curl.
        """
        commands = self.inImage(
            "sh",
            "-c",
            "for c in twistd uppercase-client pip pip3 gcc cc curl wget; do command -v $c; done; exit 0",
        )
        self.assertEqual(
            commands.stdout.split(),
            ["/opt/uppercase/bin/twistd", "/opt/uppercase/bin/uppercase-client"],
        )
        self.assertEqual(self.inImage("ls", "/opt").stdout.split(), ["uppercase"])
        self.assertEqual(self.inImage("ls", "-d", "/src", "/wheels").returncode, 2)


class ServerTests(ImageTestCase):
    """
    The image's server, driven from outside.
    """

    def test_echo(self) -> None:
        """
        The host's client gets three verified replies from the server in
        the image, which logs without a warning about its plugin cache.
        """
        server = self.server()
        done = subprocess.run(
            [
                *script("uppercase-client"),
                "--connect", f"tcp:127.0.0.1:{server.port}",
                "--count", "3", "--interval", "0",
            ],
            capture_output=True, text=True, timeout=DEADLINE, check=False,
        )  # fmt: skip
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.splitlines()[:3], ["HELLO"] * 3)
        self.assertIn("3 sent, 3 received, 3 verified", done.stdout)
        self.assertNotIn("plugin cache", server.output)

    def test_healthCheck(self) -> None:
        """
        The image's health check command, run in the image, passes against
        the server (told its port: the check's own is 9527) and fails with
        nothing listening.
        """
        check = imageConfig()["Healthcheck"]["Test"][1:]
        server = self.server()
        healthy = self.inImage(*check, "--connect", f"tcp:127.0.0.1:{server.port}")
        self.assertEqual(healthy.returncode, 0, healthy.stderr)
        self.assertIn("1 sent, 1 received, 1 verified", healthy.stdout)
        unhealthy = self.inImage(*check, "--connect", f"tcp:127.0.0.1:{closedPort()}")
        self.assertEqual(unhealthy.returncode, 1)
        self.assertIn("Connection refused", unhealthy.stderr)
        # With UPPERCASE_PLAIN set, it expects replies unchanged: this
        # server's uppercase ones fail it.
        plain = self.inImage(
            "env", "UPPERCASE_PLAIN=1", *check, "--connect", f"tcp:127.0.0.1:{server.port}"
        )
        self.assertEqual(plain.returncode, 1, plain.stderr)

    def test_notRoot(self) -> None:
        """
        The process listening on the server's port runs as user 10001 (all
        four user ids), and so does a command run in the image.
        """
        server = self.server()
        self.assertEqual(uids(listeningPid(server.port)), [USER] * 4)
        self.assertEqual(self.inImage("id", "-u").stdout.strip(), str(USER))

    def drain(self, pid1: bool) -> tuple[ImageServer, int]:
        """
        Send 1 MiB on one connection, then half-close; once replies flow,
        SIGTERM the server's process: every byte the server read before the
        signal comes back uppercased and in order, then a clean end of stream
        (no reset); its close line counts what came back; the process ends in
        bounded time.

        @return: the server, and its process id.
        """
        server = self.server(pid1)
        pid = listeningPid(server.port)
        data = bytes(range(256)) * 4096
        s = server.connect()
        self.addCleanup(s.close)
        clientPort = s.getsockname()[1]
        sender = sendInThread(s, data)
        first = s.recv(65536)
        self.assertTrue(first)
        os.kill(pid, signal.SIGTERM)
        received = first + receiveAll(s)
        sender.join(DEADLINE)
        self.assertTrue(received == data[: len(received)].upper(), "wrong replies")
        self.assertTrue(gone(pid), "the server did not end")
        close = re.search(CLOSE_LINE.format(port=clientPort), server.output)
        assert close is not None, server.output
        total, sentBack, discarded = (int(g) if g else None for g in close.groups())
        self.assertEqual(total, len(data))
        self.assertEqual(sentBack if sentBack is not None else total, len(received))
        self.assertEqual(len(received) + (discarded or 0), len(data))
        return server, pid

    def test_drainOnSIGTERM(self) -> None:
        """
        Started with buildah run, the server drains its connection on
        SIGTERM (L{drain}), then shuts down (it ends by the signal it
        re-raises, which buildah reports as status 1).
        """
        server, _ = self.drain(pid1=False)
        server.wait()
        self.assertIn("Server Shut Down.", server.output)

    def test_drainOnSIGTERMAsPID1(self) -> None:
        """
        Started as Kubernetes runs it (PID 1 of its own PID namespace, on a
        read-only root), the server drains its connection on SIGTERM
        (L{drain}) and exits with status 0, having written nothing.
        """
        server, _ = self.drain(pid1=True)
        self.assertEqual(server.wait(), 0)
        self.assertIn("Server Shut Down.", server.output)
        self.assertNotIn("Read-only file system", server.output)
