"""
The whole server's counts and each worker's, read from a fake supervisor
through the L{WorkerPool} interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twisted.trial.unittest import SynchronousTestCase

from uppercase.workers.control import COUNTS
from uppercase.workers.metrics import Totals, WorkerCollector


@dataclass
class Worker:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    ready: bool = True
    retiring: bool = False


@dataclass
class Slot:
    number: int
    started: int
    worker: Worker | None


@dataclass
class Pool:
    slots: list[Slot]
    retiring: list[Worker] = field(default_factory=list)

    def workers(self) -> list[Worker]:
        return [s.worker for s in self.slots if s.worker is not None] + self.retiring


def counted(**values: int) -> Worker:
    return Worker({**dict.fromkeys(COUNTS, 0), **values})


class TotalsTests(SynchronousTestCase):
    """
    L{Totals} adds up the workers running (a retiring one included) and
    those gone.
    """

    def test_sums(self) -> None:
        """
        Each count is the running workers' plus the gone ones'; open
        connections are the running workers' only.
        """
        old = counted(accepted=5, active=2, received=50, sent=50)
        pool = Pool(
            [Slot(1, 2, counted(accepted=1, active=1, rejected=3)), Slot(2, 1, None)], [old]
        )
        totals = Totals(pool)
        totals.gone.update(accepted=10, idleClosed=2, received=7, sent=6)
        self.assertEqual(
            (totals.accepted, len(totals.connections), totals.rejected, totals.idleClosed),
            (16, 3, 3, 2),
        )
        self.assertEqual(totals.byteCounts(), (57, 56))

    def test_datagramSums(self) -> None:
        """
        The datagram echo's counts, drops by reason, are summed likewise.
        """
        running = counted(**{"udp:received": 4, "udp:dropped:too-large": 1})
        old = counted(**{"udp:received": 6, "udp:sentBytes": 9, "udp:dropped:too-large": 2})
        totals = Totals(Pool([Slot(1, 1, running)], [old]))
        totals.gone["udp:received"] = 10
        counts = totals.datagramCounts()
        self.assertEqual((counts.received, counts.sentBytes), (20, 9))
        self.assertEqual(counts.dropped["too-large"], 3)


class WorkerCollectorTests(SynchronousTestCase):
    """
    L{WorkerCollector} shows each slot, an empty one as zeros.
    """

    def test_slots(self) -> None:
        """
        Per slot: open and accepted connections of the worker in it, and
        workers started in it; workers ready and not retiring.
        """
        pool = Pool(
            [Slot(1, 3, counted(accepted=4, active=2)), Slot(2, 1, None)],
            [Worker(ready=True, retiring=True)],
        )
        samples = {
            (s.name, s.labels.get("worker")): s.value
            for family in WorkerCollector(pool).collect()
            for s in family.samples
        }
        self.assertEqual(samples[("uppercase_worker_connections_active", "1")], 2)
        self.assertEqual(samples[("uppercase_worker_connections_active", "2")], 0)
        self.assertEqual(samples[("uppercase_worker_connections_total", "1")], 4)
        self.assertEqual(samples[("uppercase_worker_starts_total", "1")], 3)
        self.assertEqual(samples[("uppercase_worker_starts_total", "2")], 1)
        self.assertEqual(samples[("uppercase_workers_ready", None)], 1)
