"""The fault control API (--control): every answer, its bounds, and the log line of each change."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionAborted, ConnectionDone
from twisted.internet.interfaces import IProtocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from uppercase.server._control import (
    CONTROL_MAX_BODY,
    CONTROL_MAX_CONNECTIONS,
    CONTROL_REQUEST_TIMEOUT,
    FaultControl,
    controlFactory,
)
from uppercase.server._faults import MAX_FAULTS, MAX_SPEC_LENGTH, FaultSet, parseFault
from uppercase.server._logbudget import CHANGES_PER_SECOND, WINDOW


class Response:
    """
    An HTTP response as written to a transport: status, headers, JSON body.
    """

    def __init__(self, data: bytes) -> None:
        head, _, self.body = data.partition(b"\r\n\r\n")
        statusLine, *lines = head.split(b"\r\n")
        self.status = int(statusLine.split()[1])
        self.headers = {}
        for line in lines:
            name, _, value = line.partition(b":")
            self.headers[name.strip().lower()] = value.strip()

    def json(self) -> Any:
        return json.loads(self.body)


class AbortableTransport(StringTransport):
    """
    A L{StringTransport} that tells an abort from a close: C{aborted}.
    """

    aborted = False

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()


def request(method: str, path: str, body: bytes | None = None, headers: str = "") -> bytes:
    """
    One HTTP/1.1 request, with a C{Content-Length} when it has a body.
    """
    length = f"Content-Length: {len(body)}\r\n" if body is not None else ""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:9528\r\n{headers}{length}\r\n"
    return head.encode() + (body or b"")


def post(spec: object) -> bytes:
    return request("POST", "/faults", json.dumps({"spec": spec}).encode())


class Endpoint:
    """
    A control factory on a L{Clock} over a L{FaultSet}, and the
    connections made to it.
    """

    def __init__(self, **kwargs: Any) -> None:
        self.clock = Clock()
        self.changes: list[list[str]] = []
        self.faults = FaultSet(seed=42)
        self.control = FaultControl(self.faults, onChange=self.changes.append, clock=self.clock)
        self.factory = controlFactory(self.control, self.clock, **kwargs)
        self._port = 40000

    def connect(self, host: str = "192.0.2.7") -> tuple[IProtocol | None, AbortableTransport]:
        self._port += 1
        peer = IPv4Address("TCP", host, self._port)
        transport = AbortableTransport(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 9528), peerAddress=peer
        )
        protocol = self.factory.buildProtocol(peer)
        if protocol is not None:
            protocol.makeConnection(transport)
        return protocol, transport

    def send(self, data: bytes, size: int = 7) -> tuple[IProtocol, AbortableTransport]:
        """
        Connect and send C{data} in pieces of C{size} bytes.
        """
        protocol, transport = self.connect()
        assert protocol is not None, "refused"
        for start in range(0, len(data), size):
            protocol.dataReceived(data[start : start + size])
        return protocol, transport

    def ask(self, data: bytes) -> Response:
        """
        Send C{data} and read the answer, then close.
        """
        protocol, transport = self.send(data)
        response = Response(transport.value())
        close(protocol, transport)
        return response


def close(protocol: IProtocol, transport: AbortableTransport) -> None:
    reason = ConnectionAborted() if transport.aborted else ConnectionDone()
    protocol.connectionLost(Failure(reason))


class ListTests(SynchronousTestCase):
    """
    C{GET /faults} and C{GET /faults/ID}.
    """

    def test_empty(self) -> None:
        """
        With no fault: the seed, an empty list, as JSON, and the connection
        closed after the one request.
        """
        endpoint = Endpoint()
        protocol, transport = endpoint.send(request("GET", "/faults"))
        response = Response(transport.value())
        self.assertEqual(response.status, 200)
        self.assertEqual(response.headers[b"content-type"], b"application/json")
        self.assertEqual(response.json(), {"seed": 42, "faults": []})
        self.assertTrue(transport.disconnecting)

    def test_listed(self) -> None:
        """
        The faults the server has, each with its id, kind, spec and fields,
        in order, whether the server started with them or they were added.
        """
        endpoint = Endpoint()
        endpoint.control.load(["latency,delay=20ms"])
        endpoint.ask(post("close,after=10KB"))
        response = endpoint.ask(request("GET", "/faults"))
        self.assertEqual(
            response.json()["faults"],
            [
                {"id": 1, **parseFault("latency,delay=20ms").asJSON()},
                {"id": 2, **parseFault("close,after=10KB").asJSON()},
            ],
        )

    def test_one(self) -> None:
        """
        C{GET /faults/ID}: that fault, or 404 for an id that names none.
        """
        endpoint = Endpoint()
        endpoint.control.load(["reset,after=64KB"])
        self.assertEqual(
            endpoint.ask(request("GET", "/faults/1")).json(),
            {"id": 1, **parseFault("reset,after=64KB").asJSON()},
        )
        missing = endpoint.ask(request("GET", "/faults/2"))
        self.assertEqual((missing.status, missing.json()), (404, {"error": "no fault 2"}))

    def test_notFound(self) -> None:
        """
        Paths other than C{/faults} and C{/faults/NUMBER} are not found,
        answered in JSON with one line of error as every error of the API,
        whatever the method.
        """
        endpoint = Endpoint()
        for method, path in [
            ("GET", "/"),
            ("GET", "/metrics"),
            ("GET", "/FAULTS"),
            ("PUT", "/other"),
            ("GET", "/faults/abc"),
            ("GET", "/faults/1/2"),
        ]:
            response = endpoint.ask(request(method, path))
            self.assertEqual(response.status, 404, path)
            self.assertEqual(set(response.json()), {"error"}, path)


class ChangeTests(SynchronousTestCase):
    """
    C{POST /faults}, C{DELETE /faults/ID}, C{DELETE /faults}.
    """

    def test_add(self) -> None:
        """
        A spec posted as C{{"spec": ...}} is added: 201, the new fault, its
        C{Location}; the fault set has it, and the change is passed on.
        """
        endpoint = Endpoint()
        response = endpoint.ask(post("latency,delay=20ms"))
        self.assertEqual(response.status, 201)
        self.assertEqual(response.headers[b"location"], b"/faults/1")
        self.assertEqual(response.json()["id"], 1)
        self.assertEqual(endpoint.faults.list(), [(1, parseFault("latency,delay=20ms"))])
        self.assertEqual(endpoint.changes, [["latency,delay=20ms"]])

    def test_addInPieces(self) -> None:
        """
        A request arriving a byte at a time is read whole.
        """
        endpoint = Endpoint()
        protocol, transport = endpoint.connect()
        assert protocol is not None
        for byte in post("stall,after=1s"):
            protocol.dataReceived(bytes([byte]))
        self.assertEqual(Response(transport.value()).status, 201)
        self.assertEqual(len(endpoint.faults.list()), 1)

    def test_badSpec(self) -> None:
        """
        A spec the faults refuse: 400, the reason on one line, nothing added.
        """
        endpoint = Endpoint()
        response = endpoint.ask(post("latency,delay"))
        self.assertEqual(response.status, 400)
        error = response.json()["error"]
        self.assertIn("latency", error)
        self.assertNotIn("\n", error)
        self.assertEqual((endpoint.faults.list(), endpoint.changes), ([], []))

    def test_badBody(self) -> None:
        """
        A body that is not a JSON object with a C{spec} string: 400, one
        line that says what the body must be, nothing added.
        """
        endpoint = Endpoint()
        bodies = [b"latency,delay=20ms", b"{", b"[1]", b'{"spec": 3}', b"", b"\xff", b"[" * 4000]
        for body in bodies:
            response = endpoint.ask(request("POST", "/faults", body))
            self.assertEqual(response.status, 400, body[:20])
            self.assertIn('{"spec": ', response.json()["error"])
        self.assertEqual(endpoint.faults.list(), [])

    def test_remove(self) -> None:
        """
        C{DELETE /faults/ID}: 204 with no body once, then 404.
        """
        endpoint = Endpoint()
        endpoint.control.load(["latency,delay=20ms", "reset,after=64KB"])
        first = endpoint.ask(request("DELETE", "/faults/1"))
        self.assertEqual((first.status, first.body), (204, b""))
        self.assertEqual([id for id, _ in endpoint.faults.list()], [2])
        self.assertEqual(endpoint.changes, [["reset,after=64KB"]])
        again = endpoint.ask(request("DELETE", "/faults/1"))
        self.assertEqual((again.status, again.json()), (404, {"error": "no fault 1"}))

    def test_clear(self) -> None:
        """
        C{DELETE /faults}: how many were removed, and none is left.
        """
        endpoint = Endpoint()
        endpoint.control.load(["latency,delay=20ms", "reset,after=64KB"])
        response = endpoint.ask(request("DELETE", "/faults"))
        self.assertEqual((response.status, response.json()), (200, {"removed": 2}))
        self.assertEqual((endpoint.faults.list(), endpoint.changes), ([], [[]]))

    def test_methodNotAllowed(self) -> None:
        """
        Other methods: 405, with the ones allowed in C{Allow}.
        """
        endpoint = Endpoint()
        for method, path, allow in [
            ("PUT", "/faults", b"GET, HEAD, POST, DELETE"),
            ("PATCH", "/faults", b"GET, HEAD, POST, DELETE"),
            ("POST", "/faults/1", b"GET, HEAD, DELETE"),
        ]:
            response = endpoint.ask(request(method, path))
            self.assertEqual(response.status, 405, method)
            self.assertEqual(response.headers[b"allow"], allow)
            self.assertIn("error", response.json())


class LogTests(SynchronousTestCase):
    """
    Each change is logged with the peer that made it and what changed.
    """

    def test_changesLogged(self) -> None:
        """
        An addition, a removal and a clear: one line each, naming the peer
        address (not a header's) and the fault, with named fields.
        """
        endpoint = Endpoint()
        with capturedLogs() as events:
            endpoint.ask(
                request(
                    "POST",
                    "/faults",
                    b'{"spec": "latency,delay=20ms"}',
                    "X-Forwarded-For: 203.0.113.9\r\n",
                )
            )
            endpoint.ask(request("DELETE", "/faults/1"))
            endpoint.ask(request("DELETE", "/faults"))
        changes = [e for e in events if e.get("log_namespace") == "uppercase.control"]
        self.assertEqual(
            [formatEvent(e) for e in changes],
            [
                "Fault 1 added by 192.0.2.7:40001: latency,delay=20ms",
                "Fault 1 removed by 192.0.2.7:40002: latency,delay=20ms",
                "Faults cleared by 192.0.2.7:40003: 0 faults removed",
            ],
        )
        self.assertEqual((changes[0]["id"], changes[0]["peer"]), (1, "192.0.2.7:40001"))

    def test_changesBounded(self) -> None:
        """
        However fast the changes come, L{CHANGES_PER_SECOND} a second are
        logged one by one; the rest of the second's are counted, and the
        last of them is logged with the count when the second ends; every
        change still reaches C{onChange}.
        """
        endpoint = Endpoint()
        with capturedLogs() as events:
            for _ in range(20):
                endpoint.ask(post("refuse"))
                endpoint.ask(request("DELETE", "/faults"))
            early = [e for e in events if e.get("log_namespace") == "uppercase.control"]
            self.assertEqual(len(early), CHANGES_PER_SECOND)
            endpoint.clock.advance(WINDOW)
        changes = [formatEvent(e) for e in events if e.get("log_namespace") == "uppercase.control"]
        self.assertEqual(len(changes), CHANGES_PER_SECOND + 1)
        self.assertEqual(
            changes[-1],
            "Faults cleared by 192.0.2.7:40040: 1 fault removed (the last of 30 changes in the"
            " last second not logged one by one, past 10 a second)",
        )
        self.assertEqual(len(endpoint.changes), 40)

    def test_refusedNotLogged(self) -> None:
        """
        A refused change logs no change.
        """
        endpoint = Endpoint()
        with capturedLogs() as events:
            endpoint.ask(post("latency,delay"))
        self.assertEqual([e for e in events if e.get("log_namespace") == "uppercase.control"], [])


class BodyTests(SynchronousTestCase):
    """
    A body is at most L{CONTROL_MAX_BODY} bytes, and its length announced.
    """

    def test_tooLarge(self) -> None:
        """
        A body announced larger than the limit: 413 as soon as the headers
        are in, the connection closed, nothing of the body kept or added.
        """
        endpoint = Endpoint()
        protocol, transport = endpoint.send(
            request("POST", "/faults", headers=f"Content-Length: {CONTROL_MAX_BODY + 1}\r\n")
        )
        self.assertEqual(Response(transport.value()).status, 413)
        self.assertTrue(transport.disconnecting)
        protocol.dataReceived(b"x" * (CONTROL_MAX_BODY + 1))
        self.assertEqual(endpoint.faults.list(), [])

    def test_atTheLimit(self) -> None:
        """
        A body of exactly the limit is read (and answered on its merits).
        """
        endpoint = Endpoint()
        spec = "latency,delay=20ms"
        body = json.dumps({"spec": spec}).encode()
        body += b" " * (CONTROL_MAX_BODY - len(body))
        response = endpoint.ask(request("POST", "/faults", body))
        self.assertEqual(response.status, 201)

    def test_chunked(self) -> None:
        """
        A chunked body (no length announced): 411, and closed.
        """
        endpoint = Endpoint()
        _, transport = endpoint.send(
            request("POST", "/faults", headers="Transfer-Encoding: chunked\r\n")
            + b"5\r\nhello\r\n0\r\n\r\n"
        )
        self.assertEqual(Response(transport.value()).status, 411)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(endpoint.faults.list(), [])

    def test_noContinue(self) -> None:
        """
        A too large body announced with C{Expect: 100-continue} is not
        invited: the answer is the 413 alone.
        """
        endpoint = Endpoint()
        _, transport = endpoint.send(
            request(
                "POST",
                "/faults",
                headers=f"Expect: 100-continue\r\nContent-Length: {CONTROL_MAX_BODY * 10}\r\n",
            )
        )
        self.assertNotIn(b"100 Continue", transport.value())
        self.assertEqual(Response(transport.value()).status, 413)


class BoundTests(SynchronousTestCase):
    """
    The bounds the metrics endpoint has: time, and connections at once.
    """

    def test_slowClientDropped(self) -> None:
        """
        A client that has not sent its whole request (here, half its body)
        within the time is aborted, and nothing is added.
        """
        endpoint = Endpoint()
        data = post("latency,delay=20ms")
        protocol, transport = endpoint.send(data[:-5])
        endpoint.clock.advance(CONTROL_REQUEST_TIMEOUT - 0.1)
        self.assertFalse(transport.aborted)
        endpoint.clock.advance(0.1)
        self.assertTrue(transport.aborted)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(endpoint.faults.list(), [])

    def test_tooManyRefused(self) -> None:
        """
        Past the limit, with every open connection's request complete, a
        new connection is refused.
        """
        endpoint = Endpoint()
        for index in range(CONTROL_MAX_CONNECTIONS):
            protocol, _ = endpoint.connect(host=f"192.0.2.{index}")
            assert protocol is not None
            protocol.dataReceived(request("GET", "/faults"))
        protocol, _ = endpoint.connect(host="192.0.2.200")
        self.assertIsNone(protocol)

    def test_slowBodyMakesRoom(self) -> None:
        """
        Past the limit, the connection waiting longest for the rest of its
        body is aborted to make room for a new one.
        """
        endpoint = Endpoint()
        slow, slowTransport = endpoint.connect(host="192.0.2.100")
        assert slow is not None
        slow.dataReceived(post("latency,delay=20ms")[:-3])
        for index in range(CONTROL_MAX_CONNECTIONS - 1):
            protocol, _ = endpoint.connect(host=f"192.0.2.{index}")
            assert protocol is not None
            protocol.dataReceived(request("GET", "/faults"))
        protocol, _ = endpoint.connect(host="192.0.2.200")
        self.assertIsNotNone(protocol)
        self.assertTrue(slowTransport.aborted)


class FaultBoundTests(SynchronousTestCase):
    """
    How many faults the API adds, and how long each may be.
    """

    def test_tooMany(self) -> None:
        """
        Past L{MAX_FAULTS}: 409, one line saying the bound, nothing added
        and nothing passed on; once one is removed, one more fits.
        """
        endpoint = Endpoint()
        for _ in range(MAX_FAULTS):
            self.assertEqual(endpoint.ask(post("refuse")).status, 201)
        response = endpoint.ask(post("reset"))
        self.assertEqual(response.status, 409)
        self.assertEqual(
            response.json(), {"error": "reset: at most 64 faults at once (remove one first)"}
        )
        self.assertEqual((len(endpoint.faults), len(endpoint.changes)), (MAX_FAULTS, MAX_FAULTS))
        self.assertEqual(endpoint.ask(request("DELETE", "/faults/1")).status, 204)
        self.assertEqual(endpoint.ask(post("reset")).status, 201)

    def test_tooLong(self) -> None:
        """
        A spec over L{MAX_SPEC_LENGTH} characters: 400 with one line,
        nothing added.
        """
        endpoint = Endpoint()
        response = endpoint.ask(post("latency,delay=1ms,on=/" + "x" * MAX_SPEC_LENGTH))
        self.assertEqual(response.status, 400)
        self.assertIn("a fault is at most 512 characters", response.json()["error"])
        self.assertEqual(endpoint.faults.list(), [])
