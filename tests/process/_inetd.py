"""
inetd's built-in echo service (RFC 862), a server nobody here wrote, for
our clients to be tested against: C{echo stream tcp} and C{echo dgram udp},
C{internal}, run from a configuration file of the test's own.

inetd's internal services bind their well-known port (7), so it runs in a
network namespace of its own (C{ip netns add}), with only its loopback up,
and the client runs there too (L{Inetd.run}: C{ip netns exec}).  That needs
root, which CI has; Debian's C{openbsd-inetd} or C{inetutils-inetd}
provides C{inetd}.

    inetd = Inetd(tcp=True, udp=True)
    try:
        result = inetd.run(["uppercase-client", "--plain", "-c", "tcp:127.0.0.1:7"])
    finally:
        inetd.stop()
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Sequence

from twisted.trial.unittest import SkipTest

from ._process import DEADLINE

__all__ = ["DATAGRAM_HOST", "ECHO_PORT", "INETD", "Inetd", "requireInetd"]

ECHO_PORT = 7
"""The echo service's well-known port, where inetd serves it."""

DATAGRAM_HOST = "10.77.0.1"
"""An address of the namespace's own, off loopback, to reach the datagram
echo at: inetd answers no datagram from 127.0.0.0/8 (its C{dg_badinput}, a
guard against echo loops and spoofed sources), and a client sending to this
address sends from it."""

INETD: str = shutil.which("inetd") or (
    "/usr/sbin/inetd" if os.path.exists("/usr/sbin/inetd") else ""
)
IP: str = shutil.which("ip") or ("/usr/sbin/ip" if os.path.exists("/usr/sbin/ip") else "")

_names = itertools.count(1)

_PROBE = """\
import socket, sys, time
kind = socket.SOCK_STREAM if sys.argv[1] == "tcp" else socket.SOCK_DGRAM
deadline = time.monotonic() + float(sys.argv[2])
while True:
    with socket.socket(socket.AF_INET, kind) as s:
        s.settimeout(0.2)
        try:
            s.connect((sys.argv[3], 7))
            s.send(b"probe\\n")
            if s.recv(16) == b"probe\\n":
                break
        except OSError:
            pass
    if time.monotonic() > deadline:
        sys.exit("inetd's echo did not answer on " + sys.argv[1])
    time.sleep(0.05)
"""
"""Waits, inside the namespace, until the echo answers."""


def requireInetd() -> None:
    """
    Skip the calling test if inetd, C{ip} or root is missing, unless in CI
    (C{CI} set), where it fails instead.
    """
    missing = []
    if not INETD:
        missing.append("inetd (apt-get install openbsd-inetd)")
    if not IP:
        missing.append("ip (apt-get install iproute2)")
    if os.geteuid() != 0:
        missing.append("root (for a network namespace)")
    if not missing:
        return
    why = "inetd's echo needs " + ", ".join(missing)
    if os.environ.get("CI"):
        raise AssertionError(why)
    raise SkipTest(why)


class Inetd:
    """
    inetd serving its internal echo on port 7 (TCP, UDP or both), in the
    foreground (C{-d}), in a network namespace made for it.

    @ivar namespace: the network namespace's name.
    """

    def __init__(self, tcp: bool = True, udp: bool = False) -> None:
        requireInetd()
        self.namespace = f"uppercase-test-{os.getpid()}-{next(_names)}"
        self._folder = tempfile.TemporaryDirectory()
        config = os.path.join(self._folder.name, "inetd.conf")
        with open(config, "w") as f:
            if tcp:
                f.write("echo stream tcp nowait root internal\n")
            if udp:
                # wait.N: at most N datagrams a minute before inetd turns
                # the service off for ten minutes (256 by default).
                f.write("echo dgram udp wait.1000000 root internal\n")
        self._log = open(os.path.join(self._folder.name, "inetd.log"), "w+")
        self.process: subprocess.Popen[bytes] | None = None
        subprocess.run([IP, "netns", "add", self.namespace], check=True, timeout=DEADLINE)
        try:
            self._ip("link", "set", "lo", "up")
            self._ip("addr", "add", f"{DATAGRAM_HOST}/8", "dev", "lo")
            self.process = subprocess.Popen(
                [IP, "netns", "exec", self.namespace, INETD, "-d", config],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
            for kind, wanted, host in (("tcp", tcp, "127.0.0.1"), ("udp", udp, DATAGRAM_HOST)):
                if wanted:
                    probe = self.run([sys.executable, "-c", _PROBE, kind, str(DEADLINE / 2), host])
                    if probe.returncode:
                        raise AssertionError(f"{probe.stderr.strip()}; inetd said:\n{self.log}")
        except BaseException:
            self.stop()
            raise

    def _ip(self, *args: str) -> None:
        subprocess.run(
            [IP, "netns", "exec", self.namespace, IP, *args], check=True, timeout=DEADLINE
        )

    @property
    def log(self) -> str:
        """
        What inetd has printed so far (its debug output).
        """
        self._log.flush()
        self._log.seek(0)
        return self._log.read()

    def run(
        self, argv: Sequence[str], timeout: float = DEADLINE
    ) -> subprocess.CompletedProcess[str]:
        """
        Run C{argv} to completion inside the namespace (where inetd's echo
        is at 127.0.0.1 port 7), capturing its output.
        """
        return subprocess.run(
            [IP, "netns", "exec", self.namespace, *argv],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self._folder.name,
        )

    def stop(self) -> None:
        """
        Stop inetd and remove the namespace (its loopback goes with it).
        """
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        subprocess.run([IP, "netns", "delete", self.namespace], timeout=DEADLINE)
        self._log.close()
        self._folder.cleanup()
