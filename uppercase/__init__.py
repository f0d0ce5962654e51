"""
uppercase: a known-good TCP peer.

An echo server that sends back every byte it receives with ASCII C{a}-C{z}
turned into C{A}-C{Z}, and a client that sends a message repeatedly and
checks every reply.  Both run under C{twistd}: C{twistd -n uppercase} and
C{twistd -n uppercase-client}.

What a program imports, each module typed and documented:
  - L{uppercase.echo._stream}: the echo protocol, for any factory and transport;
  - L{uppercase.server._factory}: the server's factory (limits, idle timeout,
    graceful close, counts) layered on it;
  - L{uppercase.server._service}: the server as a Twisted service (listeners,
    descriptor limits, metrics, graceful stop);
  - L{uppercase.proxy._wrapper}: the PROXY protocol (v1 and v2) for any factory;
  - L{uppercase.client._ping}: the client protocol, factory and settings;
  - L{uppercase.testing}: in-memory transports and helpers for tests;
  - L{uppercase.textlog}, L{uppercase.jsonlog}: log observers for twistd.
Modules whose names start with C{_} are internal.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
