"""Admission: the connection limits a server enforces, and its refusals."""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

from uppercase.server._refusals import RefusalLog


class Admission:
    """
    Who may connect: at most C{maxConnections} open at once (0: no limit);
    at most C{maxPending} connections still waiting for their PROXY header
    at once (0: no limit), apart, so that silent connections to a PROXY
    listener cannot starve the others; at most C{maxPerIP} from one host (0:
    no limit); and nobody once the server is stopping.

    A connection waiting for its PROXY header is counted by the address it
    comes from (the proxy's, or whoever reached the listener).  Once half
    of C{maxPending} is taken (always, if C{maxPending} is 0), one address
    may hold at most C{maxPerIP} of these slots, so that one address cannot
    fill them all and lock out the real proxy; below that, the proxy's
    bursts of new connections are not cut short.  Refusals are logged
    once per burst (L{RefusalLog}).

    @ivar held: open connections.
    @ivar pending: connections waiting for their PROXY header.
    @ivar rejected: connections refused so far.
    @ivar stopping: whether every new connection is refused.
    """

    def __init__(
        self,
        clock: IReactorTime,
        maxConnections: int = 0,
        maxPerIP: int = 0,
        maxPending: int = 0,
    ) -> None:
        self.maxConnections = maxConnections
        self.maxPerIP = maxPerIP
        self.maxPending = maxPending
        self.held = 0
        self.pending = 0
        self.rejected = 0
        self.stopping = False
        self._perHost: dict[str, int] = {}
        self._pendingPerHost: dict[str, int] = {}
        self._refusals = RefusalLog(clock)

    def _overLimit(self) -> str | None:
        if self.stopping:
            return "shutting down"
        if self.maxConnections and self.held >= self.maxConnections:
            return f"{self.maxConnections} connections already open"
        return None

    def _refuse(self, peer: str, reason: str) -> bool:
        self.rejected += 1
        self._refusals.refused(peer, reason)
        return False

    def reserve(self, host: str, peer: str) -> bool:
        """
        Take a slot for a connection from C{host} (shown as C{peer}) whose
        client is not known yet (a PROXY header is still to come), unless a
        limit forbids it.

        @return: whether the slot was taken; give it back with L{release}.
        """
        if self.stopping:
            return self._refuse(peer, "shutting down")
        if self.maxPending and self.pending >= self.maxPending:
            return self._refuse(
                peer, f"{self.maxPending} connections already waiting for their PROXY header"
            )
        waiting = self._pendingPerHost.get(host, 0)
        if self.maxPerIP and waiting >= self.maxPerIP and self.pending >= self.maxPending // 2:
            return self._refuse(
                peer, f"{waiting} connections from {host} already waiting for their PROXY header"
            )
        self.pending += 1
        self._pendingPerHost[host] = waiting + 1
        return True

    def release(self, host: str) -> None:
        """
        Give back a slot taken by L{reserve} for C{host}.
        """
        self.pending -= 1
        left = self._pendingPerHost.get(host, 1) - 1
        if left:
            self._pendingPerHost[host] = left
        else:
            self._pendingPerHost.pop(host, None)

    def admit(self, host: str, peer: str) -> bool:
        """
        Take a slot for a connection from C{host} (shown as C{peer}), unless
        a limit forbids it.

        @return: whether it was admitted; call L{leave} when it closes.
        """
        reason = self._overLimit()
        if reason is None and self.maxPerIP and self._perHost.get(host, 0) >= self.maxPerIP:
            reason = f"{self.maxPerIP} connections already open from {host}"
        if reason is not None:
            return self._refuse(peer, reason)
        self.held += 1
        self._perHost[host] = self._perHost.get(host, 0) + 1
        return True

    def leave(self, host: str) -> None:
        """
        Give back the slot of an admitted connection from C{host}.
        """
        self.held -= 1
        left = self._perHost.get(host, 1) - 1
        if left:
            self._perHost[host] = left
        else:
            self._perHost.pop(host, None)

    def stop(self) -> None:
        """
        Refuse every connection from now on, and log the refusals counted so
        far.
        """
        self.stopping = True
        self._refusals.flush()
