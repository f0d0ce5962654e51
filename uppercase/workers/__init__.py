"""
C{--workers}: the supervisor, its workers, the control line between them,
the sockets they share, and their metrics.

  - C{supervisor}: starts, replaces, reloads and stops the worker processes;
  - C{child}: one worker process as the supervisor sees it;
  - C{control}: both ends of the control line (readiness, counts, commands);
  - C{worker}: a worker's own side (its spec from the environment, its
    control service);
  - C{sockets}: the listening sockets the supervisor makes and workers adopt;
  - C{metrics}: the whole server's counts, and each worker's.

Children talk to their parent through narrow interfaces they declare
(L{uppercase.workers.child.Parent}, L{uppercase.workers.metrics.WorkerPool},
L{uppercase.workers.control.SupervisorSide} and C{WorkerSide}), never by
importing it.
"""

from __future__ import annotations

__all__: list[str] = []
