"""
A load run over UDP, in memory: its sockets (L{DatagramConnection}) behind
fake ports, echoed, dropped, duplicated and reordered by hand; the counts
in the result, the text summary, C{--json} and the metrics; C{--max-loss}.
"""

from __future__ import annotations

import io
from typing import Any, Callable, List, Tuple, cast

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.core import CollectorRegistry
from prometheus_client.exposition import generate_latest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IProtocolFactory
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from uppercase.client._datagram import HEADER_SIZE, parseHeader
from uppercase.client._settings import ClientSettings
from uppercase.client._udp import DatagramPing
from uppercase.load.datagram import DatagramConnection
from uppercase.load.metrics import LoadCollector
from uppercase.load.report import TextLoadReport, summaryLines, summaryRecord
from uppercase.load.result import RunObserver, RunResult
from uppercase.load.run import LoadRun


class Port:
    """
    A connected UDP port in memory.
    """

    def __init__(self, connection: DatagramConnection) -> None:
        self.connection = connection
        self.written: List[bytes] = []
        self.listening = True

    def write(self, datagram: bytes) -> None:
        self.written.append(datagram)

    def stopListening(self) -> None:
        self.listening = False
        self.connection.protocol.doStop()


class Collect(RunObserver):
    def __init__(self, results: List[RunResult]) -> None:
        self._results = results

    def finished(self, result: RunResult) -> None:
        self._results.append(result)


class Run:
    """
    A L{LoadRun} over UDP whose sockets are L{Port}s.
    """

    def __init__(self, **settings: Any) -> None:
        self.clock = Clock()
        self.settings = ClientSettings(connect="udp:127.0.0.1:9527", load=True, **settings)
        self.ports: List[Port] = []
        self.results: List[RunResult] = []
        self.run = LoadRun(self.settings, self.clock, self._connect, Collect(self.results))

    def _connect(self, factory: IProtocolFactory) -> Deferred[Any]:
        connection: Any = factory.buildProtocol(None)  # type: ignore[arg-type]
        port = Port(connection)
        connection.protocol.makeConnection(port)
        self.ports.append(port)
        connection.opened(port)
        return succeed(connection)

    def echo(
        self, port: int, *indices: int, change: Callable[[bytes], bytes] = bytes.upper
    ) -> None:
        p = self.ports[port]
        for i in indices:
            p.connection.protocol.datagramReceived(change(p.written[i]), ("127.0.0.1", 9527))
        self.clock.advance(0)  # the schedule tells it is exhausted on the next turn


class DatagramRunTests(SynchronousTestCase):
    def test_everyDatagramAnswered(self) -> None:
        """
        A closed loop over two sockets: each sends its next datagram once
        the last is answered, each of C{--size} bytes with the socket's
        number in its header; all verified, nothing lost, status 0.
        """
        r = Run(connections=2, count=6, size=40)
        done = r.run.start()
        for _ in range(3):
            for n in (0, 1):
                r.echo(n, len(r.ports[n].written) - 1)
        result = self.successResultOf(done)
        self.assertEqual([len(p.written) for p in r.ports], [3, 3])
        self.assertEqual({len(d) for p in r.ports for d in p.written}, {40})
        self.assertEqual(parseHeader(r.ports[1].written[2]), (2, 3))
        self.assertEqual((result.sent, result.verified, result.lost, result.status), (6, 6, 0, 0))
        self.assertEqual(result.datagrams, dict(
            sent=6, received=6, verified=6, corrupted=0, lost=0, late=0,
            duplicated=0, reordered=0, foreign=0,
        ))  # fmt: skip
        self.assertFalse(any(p.listening for p in r.ports))

    def test_lossDuplicationReordering(self) -> None:
        """
        An open loop: one datagram dropped, one duplicated, one overtaken by
        a later one: the counts say exactly that; the loss (25%) is over
        C{--max-loss 20}, so the run fails saying so, in the text summary
        and C{--json} alike.
        """
        r = Run(rate=10, count=4, timeout=1.0, pipeline=0, maxLoss=20)
        done = r.run.start()
        r.clock.pump([0.1] * 4)
        self.assertEqual(len(r.ports[0].written), 4)
        r.echo(0, 0, 0, 2, 1)  # 0 twice, 2 before 1, 3 never
        r.clock.pump([0.5] * 4)
        result = self.successResultOf(done)
        assert result.datagrams is not None
        self.assertEqual(result.datagrams, dict(
            sent=4, received=4, verified=3, corrupted=0, lost=1, late=0,
            duplicated=1, reordered=1, foreign=0,
        ))  # fmt: skip
        self.assertEqual((result.lost, result.status), (1, 1))
        self.assertEqual(result.failure, "loss 25.000 % is over --max-loss 20")
        self.assertIn(
            "udp: 4 sent, 4 received, 3 verified, 0 corrupted, 1 lost (25.000%), 0 late, "
            "1 duplicated, 1 reordered, 0 foreign",
            summaryLines(result),
        )
        record = summaryRecord(result)
        self.assertEqual(record["datagrams"], result.datagrams)
        self.assertEqual(record["lost"], 1)
        self.assertEqual(record["errors"], {})

    def test_lossWithinMaxLoss(self) -> None:
        """
        Loss at most C{--max-loss} fails nothing: status 0.
        """
        r = Run(count=4, timeout=1.0, maxLoss=25)
        done = r.run.start()
        for i in range(3):
            r.echo(0, i)
        r.clock.advance(1.0)
        result = self.successResultOf(done)
        self.assertEqual((result.verified, result.lost, result.failure), (3, 1, None))
        self.assertEqual(result.status, 0)

    def test_corruptedAndForeign(self) -> None:
        """
        A wrong payload is a failed message located past the header; a
        datagram with no header of ours is an error; both fail the run.
        """
        r = Run(count=2, payload="text")
        done = r.run.start()
        r.echo(0, 0, change=lambda d: d[:HEADER_SIZE] + d[HEADER_SIZE:].upper()[:-1] + b"!")
        r.ports[0].connection.protocol.datagramReceived(b"junk", None)
        r.echo(0, 1)
        result = self.successResultOf(done)
        self.assertEqual((result.failed, result.verified, result.mismatchCount), (1, 1, 1))
        self.assertEqual(result.errors, {"mismatch": 1, "foreign datagram": 1})
        self.assertEqual(result.mismatches[0].offset, 63)
        self.assertIn("1 wrong reply", str(result.failure))

    def test_plain(self) -> None:
        """
        With C{--plain}, a reply unchanged is verified.
        """
        r = Run(count=1, plain=True)
        done = r.run.start()
        r.echo(0, 0, change=bytes)
        self.assertEqual(self.successResultOf(done).verified, 1)

    def test_socketClosedUnderIt(self) -> None:
        """
        A socket the reactor closes (an ICMP error, under epoll) is the
        run's only one: what was in flight is lost, and the run fails with
        the error.
        """
        r = Run(count=3)
        done = r.run.start()
        r.ports[0].stopListening()
        result = self.successResultOf(done)
        self.assertEqual((result.lost, result.errors), (1, {"refused": 1}))
        self.assertEqual(result.failure, "every connection was lost (1 refused)")

    def test_report(self) -> None:
        """
        The text report speaks of UDP sockets and datagrams, has no TCP
        line, and gives the loss threshold's verdict.
        """
        r = Run(count=1)
        out = io.BytesIO()
        r.run._observer = TextLoadReport(out, io.StringIO(), live=False)
        done = r.run.start()
        r.echo(0, 0)
        self.successResultOf(done)
        text = out.getvalue().decode()
        self.assertNotIn("tcp", text)
        self.assertTrue(
            text.startswith(
                "closed loop: 1 UDP socket, pipeline 1, 64-byte random datagrams, 1 datagram\n"
            )
        )
        self.assertIn("threshold: loss 0.000 % is at most --max-loss 0 (ok)", text)

    def test_metrics(self) -> None:
        """
        The prober's metrics give each datagram count, as the summary does.
        """
        r = Run(count=3, timeout=1.0, maxLoss=50)
        done = r.run.start()
        r.echo(0, 0, 0)
        r.echo(0, 1)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(LoadCollector(r.run))
        exposition = generate_latest(registry).decode()
        self.assertIn("uppercase_client_datagrams_duplicated_total 1.0", exposition)
        self.assertIn("uppercase_client_datagrams_lost_total 0.0", exposition)
        r.clock.advance(1.0)
        self.successResultOf(done)
        exposition = generate_latest(registry).decode()
        self.assertIn("uppercase_client_datagrams_lost_total 1.0", exposition)
        self.assertIn("uppercase_client_datagrams_reordered_total 0.0", exposition)


class QuietTests(SynchronousTestCase):
    def test_noReprLogged(self) -> None:
        """
        Opening and closing a socket, of a load run or of the ping client,
        logs nothing (Twisted's noisy protocols log C{Starting protocol
        <...>}, a repr, for each).
        """
        events: List[Any] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        r = Run(count=1)
        r.run.start()
        r.ports[0].stopListening()
        ping = DatagramPing(b"hello", count=1, interval=1.0, timeout=1.0, clock=Clock())
        ping.makeConnection(object())  # type: ignore[arg-type]
        ping.doStop()
        self.assertEqual([formatEvent(e) for e in events], [])


class LateBeforeExpiryTests(SynchronousTestCase):
    """
    A reply arriving after its deadline but before the expiry timer has run
    is lost in every count alike.
    """

    def test_countsAgree(self) -> None:
        """
        Two replies due at 1.1 s arrive at 2.2 s, read before the timer
        (the clock moved, no call run yet): the run's C{lost}, the C{udp:}
        line, C{--json} and the metrics all say 2 lost, and 2 late.
        """
        r = Run(rate=10, count=2, timeout=1.0, pipeline=0, maxLoss=100)
        done = r.run.start()
        r.clock.pump([0.1] * 2)
        self.assertEqual(len(r.ports[0].written), 2)
        r.clock.rightNow += 2.0  # past both deadlines; no timer has run
        r.echo(0, 0, 1)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(LoadCollector(r.run))
        r.clock.pump([0.5] * 4)
        result = self.successResultOf(done)
        assert result.datagrams is not None
        self.assertEqual((result.datagrams["lost"], result.datagrams["late"]), (2, 2))
        self.assertEqual(result.lost, 2)
        self.assertIn("2 lost (100.000%), 2 late", "\n".join(summaryLines(result)))
        self.assertEqual(summaryRecord(result)["lost"], 2)
        exposition = generate_latest(registry).decode()
        self.assertIn("uppercase_client_messages_lost_total 2.0", exposition)
        self.assertIn("uppercase_client_datagrams_lost_total 2.0", exposition)

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(
            st.one_of(
                st.tuples(st.just("advance"), st.floats(0.0, 1.5)),
                st.tuples(st.just("jump"), st.floats(0.0, 1.5)),
                st.tuples(st.just("echo"), st.integers(0, 3)),
            ),
            max_size=12,
        )
    )
    def test_anyOrder(self, steps: List[Tuple[str, float]]) -> None:
        """
        Whatever the order of timer firings (C{advance}), time passing with
        no timer run yet (C{jump}) and replies (C{echo}, duplicates
        included): the run's C{lost} and the datagram counts' agree at every
        step and at the end, and each datagram sent is verified or lost.
        """
        r = Run(rate=10, count=4, timeout=1.0, pipeline=0, maxLoss=100)
        done = r.run.start()
        r.clock.pump([0.1] * 4)
        stats = r.run.stats
        assert stats.datagrams is not None
        for kind, value in steps:
            if kind == "advance":
                r.clock.advance(value)
            elif kind == "jump":
                r.clock.rightNow += value
            else:
                r.echo(0, int(value))
            self.assertEqual(stats.lost, stats.datagrams.lost, steps)
        r.clock.pump([0.5] * 4)
        result = self.successResultOf(done)
        assert result.datagrams is not None
        self.assertEqual(result.lost, result.datagrams["lost"])
        self.assertEqual(result.verified + result.lost, 4)
