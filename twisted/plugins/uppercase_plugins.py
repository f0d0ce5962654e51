"""
twistd plugins for uppercase: C{twistd uppercase} (the server) and
C{twistd uppercase-client} (the repeating client).

This module imports nothing of uppercase itself when it is loaded, so that
C{twistd --help} stays fast; the options and services live in C{uppercase.cli.server} and
C{uppercase.cli.client}.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import ServiceMaker


class _ServerMaker(ServiceMaker):
    """
    The server's plugin: loading its options (which happens when twistd or
    twist is told to run it, before the server's modules are imported)
    first holds off the signals start-up cannot yet handle.
    """

    @property
    def options(self) -> Any:
        from uppercase.cli.earlysignals import ignoreUntilInstalled

        ignoreUntilInstalled()
        return super().options


uppercaseServer = _ServerMaker(
    "uppercase",
    "uppercase.cli.server",
    "An uppercase echo server: a known-good TCP peer (port 9527).",
    "uppercase",
)

uppercaseClient = ServiceMaker(
    "uppercase-client",
    "uppercase.cli.client",
    "A client that sends a message repeatedly to an uppercase server and checks every reply.",
    "uppercase-client",
)
