"""
C{--control ENDPOINT}: a small JSON API over HTTP/1.1 that lists, adds,
removes and clears the server's faults while it runs.

  - C{GET /faults}: C{{"seed": N, "faults": [{"id": 1, "kind": ..., "spec": ...}, ...]}}
  - C{GET /faults/ID}: that fault, or 404.
  - C{POST /faults} with the JSON object C{{"spec": "latency,delay=20ms"}} as
    its body (whatever its C{Content-Type}): 201, the new fault, and a
    C{Location}; 400 with C{{"error": "..."}} for a body that is not such an
    object or a spec that does not parse (or is over
    L{MAX_SPEC_LENGTH<uppercase.server._faults.MAX_SPEC_LENGTH>} characters);
    409 when L{MAX_FAULTS<uppercase.server._faults.MAX_FAULTS>} faults are in
    place already.
  - C{DELETE /faults/ID}: 204, or 404.
  - C{DELETE /faults}: C{{"removed": N}}.
  - Any other method: 405 with C{Allow}; any other path: 404.

Every error is C{{"error": "one line"}}; every change is logged with the
peer that made it (its address on this connection: no header is believed).

The endpoint is bounded as C{--metrics} is (L{uppercase.server._metrics}):
at most L{CONTROL_MAX_CONNECTIONS} connections at once (fewer from one
address, the longest waiting without a complete request making room),
L{CONTROL_REQUEST_TIMEOUT} seconds per connection from accept to close, one
request per connection, twisted.web's caps on the request line and headers;
and a body of at most L{CONTROL_MAX_BODY} bytes, announced by a
C{Content-Length} (larger: 413, chunked: 411, before any of it is read).
"""

from __future__ import annotations

import json
from io import BytesIO
from typing import Any, Callable, Iterable, Mapping

from twisted.internet.interfaces import IProtocolFactory, IReactorTime
from twisted.logger import Logger
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import Request

from uppercase.net.peer import describePeer, formatPeer
from uppercase.server._faults import (
    FaultError,
    FaultSet,
    FaultSpec,
    TooManyFaults,
    parseFault,
)
from uppercase.server._logbudget import ChangeLog
from uppercase.server._metrics import (
    METRICS_MAX_CONNECTIONS,
    METRICS_MAX_PER_ADDRESS,
    METRICS_REQUEST_TIMEOUT,
    MetricsFactory,
    MetricsSite,
)
from uppercase.server._refusals import RefusalLog

__all__ = [
    "CONTROL_ALPN",
    "CONTROL_MAX_BODY",
    "CONTROL_MAX_CONNECTIONS",
    "CONTROL_MAX_DESCRIPTORS",
    "CONTROL_MAX_PER_ADDRESS",
    "CONTROL_REQUEST_TIMEOUT",
    "FaultControl",
    "FaultsPage",
    "controlFactory",
]

log = Logger(namespace="uppercase.control")

CONTROL_MAX_CONNECTIONS = METRICS_MAX_CONNECTIONS
"""Most connections open to the control endpoint at once (as for metrics:
a person with curl and a script or two need far fewer)."""

CONTROL_MAX_PER_ADDRESS = METRICS_MAX_PER_ADDRESS
"""Most connections open at once from one address."""

CONTROL_MAX_DESCRIPTORS = 2 * CONTROL_MAX_CONNECTIONS
"""Most descriptors the endpoint holds: its connections, and as many again
aborted to make room and not closed yet."""

CONTROL_REQUEST_TIMEOUT = METRICS_REQUEST_TIMEOUT
"""Seconds a control connection may live, from accept to close."""

CONTROL_MAX_BODY = 4096
"""Most bytes in a request's body: a fault's spec is a few dozen."""

CONTROL_ALPN = (b"http/1.1",)
"""The application protocol a TLS control endpoint names in ALPN."""

JSON_TYPE = b"application/json"


class FaultControl:
    """
    The changes the API makes to a L{FaultSet}, each logged with who made
    it (given a C{clock}, within a L{ChangeLog}'s budget however fast they
    come), and told to C{onChange} (the supervisor of C{--workers} passes
    them on to its workers).

    @ivar faults: the faults changed.
    """

    def __init__(
        self,
        faults: FaultSet,
        onChange: Callable[[list[str]], object] | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        self.faults = faults
        self._onChange = onChange
        self._log = ChangeLog(clock, log) if clock is not None else None
        # The text each fault was added with, to pass on as it was written.
        self._texts: dict[int, str] = {}

    def load(self, texts: Iterable[str]) -> None:
        """
        Add the faults C{texts} describe, as the server started with them:
        logged by no one, and told to no one.

        @raise FaultError: for a spec that does not parse.
        """
        for text in texts:
            self._texts[self.faults.add(parseFault(text))] = text

    def texts(self) -> list[str]:
        """
        Every fault's spec, as it was written, in order.
        """
        return [self._texts.get(id, spec.describe()) for id, spec in self.faults.list()]

    def listing(self) -> dict[str, Any]:
        """
        The seed and every fault, as C{GET /faults} answers.
        """
        return {
            "seed": self.faults.seed,
            "faults": [faultJSON(id, spec) for id, spec in self.faults.list()],
        }

    def get(self, id: int) -> dict[str, Any] | None:
        """
        The fault C{id} as JSON, or L{None}.
        """
        for other, spec in self.faults.list():
            if other == id:
                return faultJSON(id, spec)
        return None

    def add(self, text: str, who: str) -> dict[str, Any]:
        """
        Add the fault C{text} describes, for C{who}.

        @return: the new fault as JSON.
        @raise FaultError: if C{text} does not parse.
        """
        spec = parseFault(text)
        id = self.faults.add(spec)
        self._texts[id] = text
        self._say("Fault {id} added by {peer}: {spec}", id=id, peer=who, spec=spec.describe())
        self._changed()
        return faultJSON(id, spec)

    def remove(self, id: int, who: str) -> bool:
        """
        Remove the fault C{id}, for C{who}; whether there was one.
        """
        spec = dict(self.faults.list()).get(id)
        if spec is None or not self.faults.remove(id):
            return False
        self._texts.pop(id, None)
        self._say("Fault {id} removed by {peer}: {spec}", id=id, peer=who, spec=spec.describe())
        self._changed()
        return True

    def clear(self, who: str) -> int:
        """
        Remove every fault, for C{who}; how many there were.
        """
        removed = self.faults.clear()
        self._texts.clear()
        self._say(
            "Faults cleared by {peer}: {removed} {faults} removed",
            peer=who,
            removed=removed,
            faults="fault" if removed == 1 else "faults",
        )
        self._changed()
        return removed

    def _say(self, format: str, **fields: Any) -> None:
        if self._log is None:
            log.info(format, **fields)
        else:
            self._log.say(format, **fields)

    def _changed(self) -> None:
        if self._onChange is not None:
            self._onChange(self.texts())


def faultJSON(id: int, spec: FaultSpec) -> dict[str, Any]:
    """
    One fault as the API shows it: its id, kind and spec, then its fields.
    """
    head = {"id": id, "kind": spec.kind, "spec": spec.describe()}
    return {**head, **{k: v for k, v in spec.asJSON().items() if k not in head}}


def oneLine(text: str) -> str:
    """
    C{text} on one line.
    """
    return " ".join(str(text).split())


class FaultsPage(Resource):
    """
    C{/faults} and C{/faults/ID} (see the module docstring).
    """

    isLeaf = True

    def __init__(self, control: FaultControl) -> None:
        super().__init__()
        self.control = control

    def render(self, request: Request) -> bytes:
        postpath = request.postpath or []
        path = [segment for segment in postpath if segment]
        method = request.method
        if method == b"HEAD":
            method = b"GET"
        if not path:
            handlers: Mapping[bytes, Callable[[Request, Any], bytes]]
            handlers = {b"GET": self._list, b"POST": self._add, b"DELETE": self._clear}
            return self._dispatch(request, handlers, b"GET, HEAD, POST, DELETE", None)
        if len(path) == 1 and path[0].isdigit() and len(path[0]) < 10:
            handlers = {b"GET": self._one, b"DELETE": self._remove}
            return self._dispatch(request, handlers, b"GET, HEAD, DELETE", int(path[0]))
        name = "/".join(s.decode("utf-8", "replace") for s in postpath)
        return answer(request, 404, {"error": f"no fault {name!r}: /faults/ID takes a number"})

    def _dispatch(
        self,
        request: Request,
        handlers: Mapping[bytes, Callable[[Request, Any], bytes]],
        allow: bytes,
        id: int | None,
    ) -> bytes:
        handler = handlers.get(request.method if request.method != b"HEAD" else b"GET")
        if handler is None:
            request.setHeader(b"Allow", allow)
            method = request.method.decode("ascii", "replace")
            return answer(
                request, 405, {"error": f"{method} is not allowed here: {allow.decode()}"}
            )
        return handler(request, id)

    def _list(self, request: Request, id: None) -> bytes:
        return answer(request, 200, self.control.listing())

    def _one(self, request: Request, id: int) -> bytes:
        fault = self.control.get(id)
        if fault is None:
            return answer(request, 404, {"error": f"no fault {id}"})
        return answer(request, 200, fault)

    def _add(self, request: Request, id: None) -> bytes:
        body = request.content.read() if request.content is not None else b""
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            document = None
        spec = document.get("spec") if isinstance(document, dict) else None
        if not isinstance(spec, str):
            return answer(
                request,
                400,
                {"error": 'the body must be a JSON object {"spec": "KIND[,NAME=VALUE...]"}'},
            )
        try:
            fault = self.control.add(spec, peerOf(request))
        except TooManyFaults as e:
            return answer(request, 409, {"error": oneLine(str(e))})
        except FaultError as e:
            return answer(request, 400, {"error": oneLine(str(e))})
        request.setHeader(b"Location", b"/faults/%d" % (fault["id"],))
        return answer(request, 201, fault)

    def _remove(self, request: Request, id: int) -> bytes:
        if not self.control.remove(id, peerOf(request)):
            return answer(request, 404, {"error": f"no fault {id}"})
        request.setResponseCode(204)
        return b""

    def _clear(self, request: Request, id: None) -> bytes:
        return answer(request, 200, {"removed": self.control.clear(peerOf(request))})


def peerOf(request: Request) -> str:
    """
    Who sent C{request}: the peer's address on its connection.
    """
    return formatPeer(*describePeer(request.getClientAddress()))


def answer(request: Request, code: int, document: Any) -> bytes:
    """
    Answer C{request} with C{code} and C{document} as JSON.
    """
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", JSON_TYPE)
    return json.dumps(document).encode() + b"\n"


def refusal(code: int, reason: bytes, error: str) -> bytes:
    """
    A whole response, C{code} with C{{"error": error}}, that closes the
    connection.
    """
    body = json.dumps({"error": error}).encode() + b"\n"
    return (
        b"HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (code, reason, len(body), body)
    )


TOO_LARGE = refusal(413, b"Content Too Large", f"the body is over {CONTROL_MAX_BODY} bytes")
"""The whole answer to a request announcing a larger body."""

NO_LENGTH = refusal(411, b"Length Required", "a body needs a Content-Length (not chunked)")
"""The whole answer to a request with a chunked body."""


class ControlRequest(Request):
    """
    A request whose body, if any, is at most L{CONTROL_MAX_BODY} bytes,
    announced by its C{Content-Length}: any other is answered (413 or 411)
    and its connection closed once its headers are in, before any of the
    body is read; nothing of it is stored.
    """

    channel: ControlChannel

    def gotLength(self, length: int | None) -> None:
        self.content = BytesIO()
        if length is None or length > CONTROL_MAX_BODY:
            # Answered here: no "100 Continue" may invite the body after it.
            self.requestHeaders.removeHeader(b"Expect")
            self.channel.refuse(self, NO_LENGTH if length is None else TOO_LARGE)

    def handleContentChunk(self, data: bytes) -> None:
        if not self.channel.refused and self.content is not None:
            self.content.write(data)


class ControlChannel(HTTPChannel):
    """
    One request per connection, complete once its body is in: every
    response says C{Connection: close}.
    """

    site: ControlSite
    transport: Any
    refused = False

    def allContentReceived(self) -> None:
        # The request is whole: this connection waits no more.
        self.transport.requestComplete()
        super().allContentReceived()

    def checkPersistence(self, request: Request, version: bytes) -> bool:
        request.responseHeaders.setRawHeaders(b"Connection", [b"close"])
        return False

    def refuse(self, request: Request, response: bytes) -> None:
        """
        Answer C{request} with the whole C{response}, and close.
        """
        self.refused = True
        self.site.refusals.refused(peerOf(request), "control request with too large a body")
        self.transport.write(response)
        self.loseConnection()


class ControlSite(MetricsSite):
    """
    The control resources, served by L{ControlChannel}s and
    L{ControlRequest}s, with the metrics site's bounds: no twisted.web idle
    timeout (the connection's deadline replaces it), a bounded access log.
    """

    protocol = ControlChannel  # type: ignore[assignment]
    requestFactory = ControlRequest  # type: ignore[assignment]
    purpose = "control"


class ControlFactory(MetricsFactory):
    """
    The bounds of L{MetricsFactory}, for the control endpoint.
    """

    purpose = "control"

    def logPrefix(self) -> str:
        return "ControlSite"


class ControlRoot(Resource):
    """
    The control endpoint's root: C{/faults} (put there) and nothing else,
    every other path answered 404 in JSON, as every error of this API is.
    """

    def getChild(self, path: bytes, request: Request) -> Resource:
        return _NOT_FOUND

    def render(self, request: Request) -> bytes:
        return _NOT_FOUND.render(request)


class _NotFound(Resource):
    isLeaf = True

    def render(self, request: Request) -> bytes:
        return answer(request, 404, {"error": "not found: the API is at /faults"})


_NOT_FOUND = _NotFound()


def controlFactory(
    control: FaultControl,
    clock: IReactorTime,
    *,
    maxConnections: int = CONTROL_MAX_CONNECTIONS,
    requestTimeout: float = CONTROL_REQUEST_TIMEOUT,
    maxPerAddress: int = CONTROL_MAX_PER_ADDRESS,
) -> IProtocolFactory:
    """
    The factory to listen with for C{--control}: C{control}'s faults at
    C{/faults}, with the bounds in this module's docstring.
    """
    root = ControlRoot()
    root.putChild(b"faults", FaultsPage(control))
    refusals = RefusalLog(clock)
    site = ControlSite(root, refusals, clock)
    return ControlFactory(site, clock, refusals, maxConnections, requestTimeout, maxPerAddress)
