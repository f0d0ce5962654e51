"""The fault control API (--control) of a real server, driven with curl."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from uppercase.server._control import CONTROL_MAX_BODY
from uppercase.server._faults import MAX_FAULTS, MAX_SPEC_LENGTH
from uppercase.workers.worker import describeFaults

from ._process import DEADLINE, Server, Twistd, closedPort, receiveAll
from .test_robustness import poll

CONTROL_PORT = r"ControlSite (?:\(TLS\) )?starting on (\d+)"
"""The log line that gives the control endpoint's port."""

CURL = shutil.which("curl")


def requireCurl() -> str:
    """
    The path of curl: skipped without it, except in CI, where it fails.
    """
    if CURL is None:
        if os.environ.get("CI"):
            raise AssertionError("curl is needed in CI (apt-get install curl)")
        raise SkipTest("curl is not installed")
    return CURL


def curl(port: int, *args: str, path: str = "/faults") -> tuple[int, str]:
    """
    Run curl against C{path} on the control port with C{args}: the status,
    and the body.
    """
    done = subprocess.run(
        [
            requireCurl(),
            "-sS",
            "--max-time",
            str(DEADLINE),
            "-w",
            "\n%{http_code}",
            *args,
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        timeout=DEADLINE + 5,
        check=True,
    )
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


class ControlTests(SynchronousTestCase):
    """
    A running server's faults listed, added, removed and cleared over HTTP.
    """

    def setUp(self) -> None:
        requireCurl()
        self.server = Server("--quiet", "--control", "tcp:0:interface=127.0.0.1")
        self.addCleanup(self.server.stop)
        self.port = int(self.server.waitFor(CONTROL_PORT).group(1))

    def test_listAddRemoveClear(self) -> None:
        """
        An empty list with the seed; two faults added (201, each with its
        id) and listed; one removed (204, then 404); the rest cleared; each
        change logged with the peer's address.
        """
        status, body = curl(self.port)
        listing = json.loads(body)
        self.assertEqual((status, listing["faults"]), (200, []))
        self.assertIsInstance(listing["seed"], int)
        status, body = curl(self.port, "-d", '{"spec": "latency,delay=20ms"}')
        self.assertEqual((status, json.loads(body)["id"]), (201, 1))
        status, body = curl(self.port, "-d", '{"spec": "close,after=10KB"}')
        self.assertEqual((status, json.loads(body)["id"]), (201, 2))
        status, body = curl(self.port)
        self.assertEqual([f["kind"] for f in json.loads(body)["faults"]], ["latency", "close"])
        self.assertEqual(curl(self.port, "-X", "DELETE", path="/faults/1"), (204, ""))
        self.assertEqual(curl(self.port, "-X", "DELETE", path="/faults/1")[0], 404)
        status, body = curl(self.port, "-X", "DELETE")
        self.assertEqual((status, json.loads(body)), (200, {"removed": 1}))
        self.assertEqual(json.loads(curl(self.port)[1])["faults"], [])
        self.server.waitFor(r"Faults cleared by 127\.0\.0\.1:\d+: 1 fault removed")
        self.assertRegex(self.server.output, r"Fault 1 added by 127\.0\.0\.1:\d+: latency")
        self.assertRegex(self.server.output, r"Fault 1 removed by 127\.0\.0\.1:\d+: latency")

    def test_badSpec(self) -> None:
        """
        A spec that does not parse, or a body that is no JSON object: 400
        with one line of error, and nothing added.
        """
        for body in ['{"spec": ""}', "latency,delay=20ms"]:
            status, answer = curl(self.port, "-d", body)
            self.assertEqual(status, 400, body)
            self.assertNotIn("\n", json.loads(answer)["error"])
        self.assertEqual(json.loads(curl(self.port)[1])["faults"], [])

    def test_hugeBody(self) -> None:
        """
        A body over the limit: 413, answered before it is read.
        """
        body = json.dumps({"spec": "latency,delay=20ms", "pad": "x" * 1_000_000})
        done = subprocess.run(
            [
                requireCurl(),
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                str(DEADLINE),
                "--data-binary",
                "@-",
                f"http://127.0.0.1:{self.port}/faults",
            ],
            input=body,
            capture_output=True,
            text=True,
            timeout=DEADLINE + 5,
        )
        self.assertEqual(done.stdout, "413", done.stderr)
        self.assertGreater(len(body), CONTROL_MAX_BODY)
        self.assertEqual(json.loads(curl(self.port)[1])["faults"], [])

    def test_wrongMethod(self) -> None:
        """
        A method the path does not take: 405, with C{Allow}.
        """
        done = subprocess.run(
            [requireCurl(), "-sS", "-i", "-X", "PUT", f"http://127.0.0.1:{self.port}/faults"],
            capture_output=True,
            text=True,
            timeout=DEADLINE,
        )
        self.assertTrue(done.stdout.startswith("HTTP/1.1 405 "), done.stdout)
        self.assertIn("Allow: GET, HEAD, POST, DELETE", done.stdout)


class PortInUseTests(SynchronousTestCase):
    """
    A control port in use ends the server with one line.
    """

    def test_portInUse(self) -> None:
        """
        One line naming the endpoint and the reason, exit status 1.
        """
        first = Server("--quiet", "--control", "tcp:0:interface=127.0.0.1")
        self.addCleanup(first.stop)
        port = int(first.waitFor(CONTROL_PORT).group(1))
        description = f"tcp:{port}:interface=127.0.0.1"
        second = Twistd(
            "uppercase", "--listen", "tcp:0:interface=127.0.0.1", "--control", description
        )
        self.assertEqual(second.wait(), 1)
        second.stop()
        self.assertIn(
            f"twistd uppercase: cannot listen for control on {description}: Address already in use\n",
            second.output,
        )
        self.assertNotIn("Traceback", second.output)


class WorkerTests(SynchronousTestCase):
    """
    With C{--workers}, a change reaches every worker.
    """

    def test_everyWorker(self) -> None:
        """
        A fault added and then cleared through the supervisor's endpoint is
        every worker's, then none's.
        """
        requireCurl()
        server = Twistd(
            "uppercase",
            "--quiet",
            "--workers",
            "2",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--control",
            "tcp:0:interface=127.0.0.1",
        )
        self.addCleanup(server.stop)
        port = int(server.waitFor(CONTROL_PORT).group(1))
        server.waitFor(r"Worker 1 \(pid \d+\) is serving")
        server.waitFor(r"Worker 2 \(pid \d+\) is serving")
        self.assertEqual(curl(port, "-d", '{"spec": "reset,after=64KB"}')[0], 201)
        server.waitFor(r"\[worker 1\] .*Faults now: reset,after=64KB")
        server.waitFor(r"\[worker 2\] .*Faults now: reset,after=64KB")
        self.assertEqual(curl(port, "-X", "DELETE")[0], 200)
        server.waitFor(r"\[worker 1\] .*Faults now: none")
        server.waitFor(r"\[worker 2\] .*Faults now: none")

    def test_mostFaultsLongestSpecs(self) -> None:
        """
        The most faults allowed, each as long as a spec may be (a path of
        four-byte characters, the longest as JSON), added through the
        supervisor's endpoint, reach every worker (each says it has 64); one
        more is refused
        (409); no worker is lost or started again, and they still echo.
        """
        requireCurl()
        port = closedPort()
        server = Twistd(
            "uppercase",
            "--quiet",
            "--workers",
            "2",
            "--listen",
            f"tcp:{port}:interface=127.0.0.1",
            "--control",
            "tcp:0:interface=127.0.0.1",
        )
        self.addCleanup(server.stop)
        control = int(server.waitFor(CONTROL_PORT).group(1))
        server.waitFor(r"Worker 1 \(pid \d+\) is serving")
        server.waitFor(r"Worker 2 \(pid \d+\) is serving")
        head = "latency,delay=1ms,on=/"
        longest = head + "\N{GRINNING FACE}" * (MAX_SPEC_LENGTH - len(head))
        body = json.dumps({"spec": longest}, ensure_ascii=False)
        for _ in range(MAX_FAULTS):
            self.assertEqual(curl(control, "--data-binary", body)[0], 201)
        status, answer = curl(control, "--data-binary", '{"spec": "refuse"}')
        self.assertEqual(
            (status, json.loads(answer)["error"]),
            (409, "refuse: at most 64 faults at once (remove one first)"),
        )
        # The last change each worker hears counts all of them (its line
        # shows the first, cut, and how many more).  Polled to a deadline: a worker
        # dropping its line and started again keeps the log moving, and would
        # keep a wait for a line going for ever.
        last = describeFaults([longest] * MAX_FAULTS)
        self.assertTrue(last.endswith("; and 63 more (64 in all)"), last)
        # 64 changes at once: past the tenth a second, a worker logs the last
        # of the second when it ends, with how many it did not log.
        folded = r"( \(the last of [\d,]+ changes? in the last second .*\))?"
        heard = [rf"\[worker {n}\] .*Faults now: {re.escape(last)}{folded}$" for n in (1, 2)]
        poll(lambda: all(re.search(h, server.output, re.MULTILINE) for h in heard))
        gone = "The supervisor is gone" in server.output
        self.assertFalse(gone, "a worker lost its control line")
        self.assertEqual(len(re.findall("Started worker", server.output)), 2)
        for h in heard:
            self.assertRegex(server.output, re.compile(h, re.MULTILINE))
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as s:
            s.sendall(b"still here")
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(receiveAll(s), b"STILL HERE")
        self.assertEqual(len(re.findall("Started worker", server.output)), 2)
