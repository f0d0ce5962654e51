"""
JSON log output for twistd: one JSON object per event, every field kept::

    twistd -n --logger=uppercase.jsonlog.stdout uppercase

Each event carries its fields (C{host}, C{port}, C{peer}, C{size},
C{received}, C{reason}, ...) besides C{log_format} and C{log_time}; read them
back with L{twisted.logger.eventsFromJSONLogFile} or any JSON tool.
"""

from __future__ import annotations

import sys
from typing import Callable

from twisted.logger import ILogObserver, LogEvent, eventAsJSON

from uppercase.textlog import RAW, BufferedFileLogObserver

__all__ = ["stdout", "worker"]


def jsonLines(extra: dict[str, object] | None = None) -> Callable[[LogEvent], str]:
    """
    Format an event as one line of JSON (with C{extra} fields added), as
    L{twisted.logger.jsonFileLogObserver} does; an event carrying
    L{uppercase.textlog.RAW} (lines a worker wrote) as it is.
    """

    def format(event: LogEvent) -> str:
        raw = event.get(RAW)
        if raw is not None:
            return str(raw)
        if extra:
            event = {**event, **extra}
        return eventAsJSON(event) + "\n"

    return format


def stdout() -> ILogObserver:
    """
    An observer writing JSON lines to standard output (a log observer
    factory for C{twistd --logger}).
    """
    return BufferedFileLogObserver(sys.stdout, jsonLines())


def worker() -> ILogObserver:
    """
    For a worker of C{--workers N}: JSON lines to standard output (its
    supervisor relays them), each with a C{worker} field: its label
    (L{uppercase.workers.worker.workerLabel}), as its text lines say.
    """
    # Only a worker reads its label: every other run of twistd loads this
    # module for its observers, and needs nothing of the workers.
    from uppercase.workers.worker import WorkerSpec

    spec = WorkerSpec.fromEnvironment()
    return BufferedFileLogObserver(sys.stdout, jsonLines({"worker": spec.label} if spec else None))
