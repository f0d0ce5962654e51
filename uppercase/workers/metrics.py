"""
The whole server's counts, and each worker's, for the metrics of a server
with workers (L{uppercase.workers.supervisor}).
"""

from __future__ import annotations

from typing import Iterator, Mapping, Protocol, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from uppercase.echo._datagram import COUNT_NAMES, DatagramCounts
from uppercase.server._faultspec import KINDS
from uppercase.workers.control import COUNTS, DATAGRAM_PREFIX, FAULT_PREFIX

__all__ = ["CountedSlot", "CountedWorker", "Totals", "WorkerCollector", "WorkerPool"]


class CountedWorker(Protocol):
    """
    What the metrics read of a worker (L{uppercase.workers.child.WorkerProcess}).
    """

    @property
    def counts(self) -> Mapping[str, int]:
        """Its latest counts, one for each of L{COUNTS}."""

    @property
    def ready(self) -> bool:
        """It reported that it listens."""

    @property
    def retiring(self) -> bool:
        """It was told to retire."""


class CountedSlot(Protocol):
    """
    What the metrics read of a place for one worker
    (L{uppercase.workers.supervisor.Slot}).
    """

    @property
    def number(self) -> int:
        """Its number, from 1."""

    @property
    def started(self) -> int:
        """Worker processes started in it."""

    @property
    def worker(self) -> CountedWorker | None:
        """The worker serving in it, if any."""


class WorkerPool(Protocol):
    """
    What the metrics read of the supervisor
    (L{uppercase.workers.supervisor.Supervisor}).
    """

    @property
    def slots(self) -> Sequence[CountedSlot]:
        """Its slots, in order."""

    def workers(self) -> Sequence[CountedWorker]:
        """Every worker process running: serving, starting, or retiring."""


class Totals:
    """
    The whole server's counts, over its workers, for the metrics collector
    (the attributes L{uppercase.server._state.ServerState} names): those of the
    workers running, plus the last counts of those gone.
    """

    def __init__(self, supervisor: WorkerPool) -> None:
        self._supervisor = supervisor
        self.gone: dict[str, int] = dict.fromkeys(COUNTS, 0)

    def _sum(self, name: str) -> int:
        return self.gone[name] + sum(w.counts[name] for w in self._supervisor.workers())

    @property
    def accepted(self) -> int:
        return self._sum("accepted")

    @property
    def connections(self) -> range:
        return range(sum(w.counts["active"] for w in self._supervisor.workers()))

    @property
    def rejected(self) -> int:
        return self._sum("rejected")

    @property
    def idleClosed(self) -> int:
        return self._sum("idleClosed")

    def byteCounts(self) -> tuple[int, int]:
        return self._sum("received"), self._sum("sent")

    def faultCounts(self) -> dict[str, int]:
        """
        Connections that got each fault, by kind, over the workers.
        """
        return {kind: self._sum(FAULT_PREFIX + kind) for kind in KINDS}

    def datagramCounts(self) -> DatagramCounts:
        """
        The datagram echo's counts over the workers.
        """
        return DatagramCounts.fromDict(
            {name: self._sum(DATAGRAM_PREFIX + name) for name in COUNT_NAMES}
        )


class WorkerCollector:
    """
    Each worker's counts, for the metrics: how connections spread over them.
    """

    def __init__(self, supervisor: WorkerPool) -> None:
        self._supervisor = supervisor

    def collect(self) -> Iterator[Metric]:
        active = GaugeMetricFamily(
            "uppercase_worker_connections_active",
            "Connections open now, per worker.",
            labels=["worker"],
        )
        accepted = CounterMetricFamily(
            "uppercase_worker_connections",
            "Connections accepted by the worker serving now in each slot, since it started.",
            labels=["worker"],
        )
        starts = CounterMetricFamily(
            "uppercase_worker_starts", "Workers started, per slot.", labels=["worker"]
        )
        for slot in self._supervisor.slots:
            label = [str(slot.number)]
            worker = slot.worker
            counts = worker.counts if worker is not None else dict.fromkeys(COUNTS, 0)
            active.add_metric(label, counts["active"])
            accepted.add_metric(label, counts["accepted"])
            starts.add_metric(label, slot.started)
        yield active
        yield accepted
        yield starts
        yield GaugeMetricFamily(
            "uppercase_workers_ready",
            "Workers serving now.",
            value=sum(1 for w in self._supervisor.workers() if w.ready and not w.retiring),
        )
