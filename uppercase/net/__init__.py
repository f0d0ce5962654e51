"""
Network helpers: the transport extensions declared as interfaces (interfaces), the transport fast path behind them (transport: the one place that reads Twisted's private fields), TCP_INFO, peer naming, endpoint strings, adopted sockets.
"""

from __future__ import annotations
