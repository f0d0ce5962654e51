"""
uppercase: a known-good TCP peer.

An echo server that sends back every byte it receives with ASCII C{a}-C{z}
turned into C{A}-C{Z} (L{uppercase.server}), and a client that sends a
message repeatedly and checks every reply (L{uppercase.client}).  Both run
under C{twistd}: C{twistd -n uppercase} and C{twistd -n uppercase-client}.
"""

from __future__ import annotations

__version__ = "0.1.0"
