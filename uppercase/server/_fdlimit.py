"""Fitting the connection limit to the process's file-descriptor limit."""

from __future__ import annotations

from typing import Callable, Tuple

FD_HEADROOM = 32
"""Descriptors kept free for everything that is not a client connection:
standard streams, the reactor, listening sockets, log files."""

Limits = Tuple[int, int]
"""A soft and a hard limit."""

LimitAccess = Tuple[Callable[[], Limits], Callable[[Limits], None], int]
"""C{(getrlimit, setrlimit, RLIM_INFINITY)} for C{RLIMIT_NOFILE}."""


def _resource() -> LimitAccess | None:
    try:
        import resource
    except ImportError:  # not a POSIX system
        return None
    return (
        lambda: resource.getrlimit(resource.RLIMIT_NOFILE),
        lambda limits: resource.setrlimit(resource.RLIMIT_NOFILE, limits),
        resource.RLIM_INFINITY,
    )


def softLimit(limits: LimitAccess | None = None) -> int | None:
    """
    The soft descriptor limit now in force (L{None} when unknown or
    unlimited); C{limits} as for L{connectionCapacity}.
    """
    if limits is None:
        limits = _resource()
        if limits is None:
            return None
    getrlimit, _, infinity = limits
    soft = getrlimit()[0]
    return None if soft == infinity else soft


def connectionCapacity(
    wanted: int,
    limits: LimitAccess | None = None,
) -> tuple[int, int | None]:
    """
    How many connections the server can hold open at once.

    Raise the soft C{RLIMIT_NOFILE} towards the hard one when C{wanted}
    connections need more descriptors than the soft limit allows (as Go and
    nginx do), then fit the limit inside what the process may open, so that
    the server refuses a connection cleanly instead of running out of
    descriptors.

    @param wanted: the configured C{--max-connections}; 0 means unlimited.
    @param limits: C{(getrlimit, setrlimit, RLIM_INFINITY)} for
        C{RLIMIT_NOFILE}; the real ones by default.

    @return: C{(capacity, softLimit)}: the connection limit to enforce (0:
        none) and the descriptor limit now in force (L{None} when unknown).
    """
    if limits is None:
        limits = _resource()
        if limits is None:
            return wanted, None
    getrlimit, setrlimit, infinity = limits
    soft, hard = getrlimit()
    if soft == infinity:
        return wanted, None
    # Unlimited wants all the hard limit allows; otherwise what it needs.
    target = hard if not wanted else wanted + FD_HEADROOM
    if hard != infinity:
        target = min(target, hard)
    if target != infinity and target > soft:
        try:
            setrlimit((target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == infinity:
        return wanted, None
    fits = max(soft - FD_HEADROOM, 1)
    if not wanted or wanted > fits:
        return fits, soft
    return wanted, soft
