"""
C{twistd --reactor=uppercase-epoll}: Twisted's epoll reactor with a cheaper
logging context per event.

For every descriptor event, Twisted's epoll reactor calls
C{log.callWithLogger(selectable, ...)}: it runs the handler inside a logging
context that names the connection (its C{logPrefix}), so that anything the
connection logs through the legacy API (errors among them) says which
connection it was.  It builds that context by copying the current one twice
and going through three layers of calls: 1.6 microseconds an event on
CPython, a large share of an echo server's work.  This reactor pushes the
same context onto Twisted's context stack directly (0.2 microseconds), so
log calls made during the event see exactly what they would see under
Twisted's reactor.

That reads Twisted's context stack (C{theContextTracker}'s current tracker
and its C{contexts} list), the one thing here that is not public API: if it
is not there (a future Twisted), the reactor says so once and dispatches as
Twisted's does.  Everything else is Twisted's C{EPollReactor}, and the
reactor passes Twisted's own reactor test suite
(C{tests/process/test_reactor.py} runs it).  Whether it is worth using is
measured in C{docs/performance.md}.
"""

from __future__ import annotations

import errno
from typing import Any

from twisted.internet.epollreactor import EPollReactor
from twisted.logger import Logger
from twisted.python import context, log
from twisted.python.log import ILogContext

__all__ = ["UppercaseEPollReactor", "install"]

_log = Logger()


def _contextStack() -> list[dict[Any, Any]] | None:
    """
    This thread's stack of contexts, if Twisted keeps it where this module
    looks; L{None} otherwise.
    """
    tracker = getattr(context, "theContextTracker", None)
    current = getattr(tracker, "currentContext", None)
    contexts = getattr(current() if callable(current) else None, "contexts", None)
    if isinstance(contexts, list) and contexts and isinstance(contexts[-1], dict):
        return contexts
    return None


class UppercaseEPollReactor(EPollReactor):
    """
    L{EPollReactor}, dispatching each event in a logging context pushed
    directly onto Twisted's context stack.
    """

    _stack: list[dict[Any, Any]] | None = None
    _checked = False

    def _contexts(self) -> list[dict[Any, Any]] | None:
        if not self._checked:
            self._checked = True
            self._stack = _contextStack()
            if self._stack is None:
                _log.warn(
                    "Twisted's context stack is not where uppercase-epoll looks: "
                    "events are dispatched as Twisted's epoll reactor does"
                )
        return self._stack

    def doPoll(self, timeout: float | None) -> None:
        contexts = self._contexts()
        if contexts is None:
            EPollReactor.doPoll(self, timeout)
            return
        if timeout is None:
            timeout = -1  # Wait indefinitely.
        try:
            events = self._poller.poll(timeout, len(self._selectables))
        except OSError as err:
            if err.errno == errno.EINTR:
                return
            raise
        selectables = self._selectables
        handle = self._doReadOrWrite
        # What callWithLogger would build: the current context, with a
        # logging context naming the connection.
        base = contexts[-1]
        baseLog = base.get(ILogContext) or {}
        for fd, event in events:
            selectable = selectables.get(fd)
            if selectable is None:
                continue
            try:
                prefix = selectable.logPrefix()
            except KeyboardInterrupt:
                raise
            except BaseException:
                prefix = "(buggy logPrefix method)"
                log.err(system=prefix)
            contexts.append({**base, ILogContext: {**baseLog, "system": prefix}})
            try:
                handle(selectable, fd, event)
            except KeyboardInterrupt:
                raise
            except BaseException:
                log.err(system=prefix)
            finally:
                contexts.pop()

    doIteration = doPoll


def install() -> None:
    """
    Install L{UppercaseEPollReactor} as the reactor.
    """
    from twisted.internet.main import installReactor

    installReactor(UppercaseEPollReactor())
