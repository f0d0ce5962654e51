"""
The control line, both ends talking to each other in memory: what each end
sends, what the other end makes of it, and how each reports to its owner.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import UNIXAddress
from twisted.internet.interfaces import ISystemHandle
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from uppercase.server._faults import MAX_FAULTS, MAX_SPEC_LENGTH, parseFault
from uppercase.testing import MemoryConnection, StreamTransport, connectInMemory
from uppercase.workers.control import (
    COUNTS,
    DEFAULT_WHY,
    FAULTS_LINE_MAX,
    SupervisorEnd,
    WorkerEnd,
    encode,
    supervisorEndFactory,
    workerEndFactory,
)


class Worker:
    """
    The supervisor's view of one worker: records what its end reports.
    """

    def __init__(self) -> None:
        self.line: SupervisorEnd | None = None
        self.lost: list[SupervisorEnd] = []
        self.ready = 0
        self.counts: list[dict[str, int]] = []

    def controlConnected(self, line: SupervisorEnd) -> None:
        self.line = line

    def controlLost(self, line: SupervisorEnd) -> None:
        self.lost.append(line)

    def readyReported(self) -> None:
        self.ready += 1

    def countsReported(self, counts: dict[str, int]) -> None:
        self.counts.append(counts)


class Service:
    """
    The worker's control service: records what its end reports.
    """

    def __init__(self) -> None:
        self.line: WorkerEnd | None = None
        self.commands: list[tuple[str, ...]] = []
        self.gone = 0

    def connected(self, line: WorkerEnd) -> None:
        self.line = line

    def retire(self) -> None:
        self.commands.append(("retire",))

    def abort(self, why: str) -> None:
        self.commands.append(("abort", why))

    def supervisorGone(self) -> None:
        self.gone += 1

    def setFaults(self, specs: list[str]) -> None:
        self.commands.append(("faults", *specs))


class Wire:
    """
    A supervisor's end and a worker's end joined in memory.
    """

    def __init__(self) -> None:
        self.worker = Worker()
        self.service = Service()
        workerEnd = workerEndFactory(self.service).buildProtocol(UNIXAddress(None))
        assert isinstance(workerEnd, WorkerEnd)
        self.connection: MemoryConnection = connectInMemory(
            supervisorEndFactory(self.worker), workerEnd
        )
        assert self.worker.line is not None and self.service.line is not None
        self.supervisorEnd: SupervisorEnd = self.worker.line
        self.workerEnd: WorkerEnd = self.service.line


def sample(**values: int) -> dict[str, int]:
    """
    Counts: every one of L{COUNTS}, zero unless given.
    """
    return {**dict.fromkeys(COUNTS, 0), **values}


class EndToEndTests(SynchronousTestCase):
    """
    What one end sends, the other end's owner hears.
    """

    def test_connected(self) -> None:
        """
        Each owner hears of its end once the connection is up, and nothing
        is said before either end speaks.
        """
        wire = Wire()
        self.assertIs(wire.supervisorEnd.worker, wire.worker)
        self.assertIs(wire.workerEnd.service, wire.service)
        self.assertEqual(
            (wire.worker.ready, wire.worker.counts, wire.service.commands), (0, [], [])
        )

    def test_ready(self) -> None:
        """
        The worker's C{ready} reaches the supervisor's side, as often as it
        is sent (the side decides what a second one means).
        """
        wire = Wire()
        wire.workerEnd.ready(1234)
        wire.connection.flush()
        self.assertEqual(wire.worker.ready, 1)
        wire.workerEnd.ready(1234)
        wire.connection.flush()
        self.assertEqual(wire.worker.ready, 2)

    def test_counts(self) -> None:
        """
        The worker's counts reach the supervisor's side whole.
        """
        wire = Wire()
        counts = sample(accepted=3, active=1, rejected=2, idleClosed=4, received=30, sent=29)
        wire.workerEnd.counts(counts)
        wire.connection.flush()
        self.assertEqual(wire.worker.counts, [counts])

    def test_retire(self) -> None:
        """
        The supervisor's C{retire} reaches the worker's service.
        """
        wire = Wire()
        wire.supervisorEnd.retire()
        wire.connection.flush()
        self.assertEqual(wire.service.commands, [("retire",)])

    def test_abort(self) -> None:
        """
        The supervisor's C{abort} reaches the worker's service with why.
        """
        wire = Wire()
        wire.supervisorEnd.abort("on a second SIGINT to the supervisor")
        wire.connection.flush()
        self.assertEqual(wire.service.commands, [("abort", "on a second SIGINT to the supervisor")])

    def test_faults(self) -> None:
        """
        The supervisor's C{faults} reaches the worker's service with every
        spec, in order; an empty list too (no fault left).
        """
        wire = Wire()
        wire.supervisorEnd.faults(["latency,delay=20ms", "reset,after=64KB"])
        wire.supervisorEnd.faults([])
        wire.connection.flush()
        self.assertEqual(
            wire.service.commands,
            [("faults", "latency,delay=20ms", "reset,after=64KB"), ("faults",)],
        )

    def test_largestFaults(self) -> None:
        """
        The most faults a server holds, each as long as a spec may be and
        each character written as JSON's longest escape, reach the worker
        whole, and the line stays up.
        """
        head = "latency,delay=1ms,on=/"
        longest = head + "\N{GRINNING FACE}" * (MAX_SPEC_LENGTH - len(head))
        parseFault(longest)
        specs = [longest] * MAX_FAULTS
        self.assertGreater(len(encode({"command": "faults", "specs": specs})), 16384)
        self.assertLessEqual(len(encode({"command": "faults", "specs": specs})), FAULTS_LINE_MAX)
        wire = Wire()
        wire.supervisorEnd.faults(specs)
        wire.connection.flush()
        self.assertEqual(wire.service.commands, [("faults", *specs)])
        self.assertEqual(wire.service.gone, 0)

    def test_countsNowInMemory(self) -> None:
        """
        The final report, on a transport with no socket of its own, goes
        through the transport and arrives as any report does.
        """
        wire = Wire()
        wire.workerEnd.countsNow(sample(accepted=1))
        wire.connection.flush()
        self.assertEqual(wire.worker.counts, [sample(accepted=1)])

    def test_workerGone(self) -> None:
        """
        When the worker's end closes, the supervisor's side hears that its
        line is lost; the worker's service hears that the supervisor is gone.
        """
        wire = Wire()
        wire.connection.clientTransport.loseConnection()
        wire.connection.flush()
        self.assertEqual(wire.worker.lost, [wire.supervisorEnd])
        self.assertEqual(wire.service.gone, 1)

    def test_supervisorGone(self) -> None:
        """
        When the supervisor's end is reset, the worker's service hears that
        the supervisor is gone.
        """
        wire = Wire()
        wire.connection.serverTransport.abortConnection()
        wire.connection.flush()
        self.assertEqual(wire.service.gone, 1)


class SupervisorEndTests(SynchronousTestCase):
    """
    How the supervisor's end reads the worker's lines.
    """

    def setUp(self) -> None:
        self.worker = Worker()
        self.transport = StreamTransport()
        self.transport.connect(SupervisorEnd(self.worker))

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(st.integers(0, 2**40), min_size=len(COUNTS), max_size=len(COUNTS)),
        st.lists(st.integers(1, 64), max_size=20),
    )
    def test_anyFragments(self, values: list[int], cuts: list[int]) -> None:
        """
        A ready line and a counts line, cut anywhere into fragments, are
        read as the two messages they are.
        """
        worker = Worker()
        transport = StreamTransport()
        transport.connect(SupervisorEnd(worker))
        counts = dict(zip(COUNTS, values))
        stream = encode({"type": "ready", "pid": 7}) + encode({"type": "counts", **counts})
        for size in cuts:
            chunk, stream = stream[:size], stream[size:]
            transport.receive(chunk)
        transport.receive(stream)
        self.assertEqual((worker.ready, worker.counts), (1, [counts]))

    def test_missingCountsAreZero(self) -> None:
        """
        A count the worker left out is zero; a field that is not a count is
        dropped.
        """
        self.transport.receive(b'{"type": "counts", "accepted": 2, "extra": 9}\n')
        self.assertEqual(self.worker.counts, [sample(accepted=2)])

    def test_unreadableLinesIgnored(self) -> None:
        """
        A line that is not a JSON object, or of an unknown type, is
        ignored; the lines after it are read.
        """
        self.transport.receive(b'not json\n[1, 2]\n"ready"\n{"type": "other"}\n{"type": "ready"}\n')
        self.assertEqual((self.worker.ready, self.worker.counts), (1, []))
        self.assertFalse(self.transport.disconnecting)

    def test_commandLines(self) -> None:
        """
        The commands, as lines on the wire: one JSON object each.
        """
        assert self.worker.line is not None
        self.worker.line.retire()
        self.worker.line.abort("why")
        self.assertEqual(
            [json.loads(line) for line in self.transport.value().splitlines()],
            [{"command": "retire"}, {"command": "abort", "why": "why"}],
        )


class WorkerEndTests(SynchronousTestCase):
    """
    How the worker's end reads the supervisor's lines, and writes its own.
    """

    def setUp(self) -> None:
        self.service = Service()
        self.transport = StreamTransport()
        self.transport.connect(WorkerEnd(self.service))

    def test_abortWithoutWhy(self) -> None:
        """
        An C{abort} that does not say why is on the supervisor's request.
        """
        self.transport.receive(b'{"command": "abort"}\n')
        self.assertEqual(self.service.commands, [("abort", DEFAULT_WHY)])

    def test_unreadableLine(self) -> None:
        """
        A line with no command is logged, with its start, and ignored.
        """
        with capturedLogs() as events:
            self.transport.receive(b'{"nothing": 1}\nnot json\n')
        self.assertEqual(
            [formatEvent(e) for e in events],
            [
                "Unreadable line from the supervisor: b'{\"nothing\": 1}'",
                "Unreadable line from the supervisor: b'not json'",
            ],
        )
        self.assertEqual(self.service.commands, [])

    def test_unknownCommand(self) -> None:
        """
        An unknown command is logged and ignored.
        """
        with capturedLogs() as events:
            self.transport.receive(b'{"command": "dance"}\n')
        self.assertEqual(
            [formatEvent(e) for e in events], ["Unknown command from the supervisor: 'dance'"]
        )
        self.assertEqual(self.service.commands, [])

    def test_reportLines(self) -> None:
        """
        The reports, as lines on the wire: one JSON object each.
        """
        assert self.service.line is not None
        self.service.line.ready(42)
        self.service.line.counts(sample(sent=5))
        self.assertEqual(
            [json.loads(line) for line in self.transport.value().splitlines()],
            [{"type": "ready", "pid": 42}, {"type": "counts", **sample(sent=5)}],
        )


@implementer(ISystemHandle)
class SocketTransport(StringTransport):
    """
    A transport with a socket of its own, as the reactor's UNIX ones have.
    """

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self.sock = sock

    def getHandle(self) -> Any:
        return self.sock


class CountsNowTests(SynchronousTestCase):
    """
    The final report goes straight to the socket, past the transport's
    buffer, which a reactor about to stop would drop.
    """

    def test_straightToTheSocket(self) -> None:
        """
        The line is sent on the transport's socket, not written to the
        transport.
        """
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(ours.close)
        self.addCleanup(theirs.close)
        transport = SocketTransport(ours)
        end = WorkerEnd(Service())
        end.makeConnection(transport)
        end.countsNow(sample(accepted=2))
        self.assertEqual(transport.value(), b"")
        self.assertEqual(theirs.recv(4096), encode({"type": "counts", **sample(accepted=2)}))

    def test_socketClosed(self) -> None:
        """
        A socket that cannot send any more loses the report quietly: no
        error, and nothing left in the transport's buffer for later.
        """
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        theirs.close()
        ours.close()
        end = WorkerEnd(Service())
        transport = SocketTransport(ours)
        end.makeConnection(transport)
        end.countsNow(sample())
        self.assertEqual(transport.value(), b"")

    def test_notConnected(self) -> None:
        """
        Before connecting, reporting the counts does nothing: it does not
        raise for want of a transport.
        """
        WorkerEnd(Service()).countsNow(sample())
