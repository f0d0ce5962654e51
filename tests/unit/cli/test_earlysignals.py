"""
Specification of L{uppercase.cli.earlysignals}: the signals start-up holds off until the server's
handlers are installed.
"""

from __future__ import annotations

import signal

from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from twisted.trial.unittest import SynchronousTestCase

from tests.unit.cli.test_server import keepSignals
from uppercase.cli import earlysignals
from uppercase.cli import server as twistdServer


class EarlySignalTests(SynchronousTestCase):
    """
    SIGHUP, SIGUSR1 and SIGUSR2, fatal by default, are ignored from the
    moment twistd or twist loads the server's options until the server
    installs its handlers.
    """

    def setUp(self) -> None:
        keepSignals(self)

    def test_loadingServerOptions(self) -> None:
        """
        Loading the server plugin's options (what twistd does on reading
        C{uppercase}) ignores the three.
        """
        [maker] = [m for m in getPlugins(IServiceMaker) if m.tapname == "uppercase"]
        self.assertIs(maker.options, twistdServer.Options)
        for name in earlysignals.EARLY:
            self.assertEqual(signal.getsignal(getattr(signal, name)), signal.SIG_IGN, name)

    def test_handlersKept(self) -> None:
        """
        A signal that already has a handler keeps it.
        """

        def handler(number: int, frame: object) -> None:
            pass

        signal.signal(signal.SIGUSR1, handler)
        earlysignals.ignoreUntilInstalled()
        self.assertIs(signal.getsignal(signal.SIGUSR1), handler)
        self.assertEqual(signal.getsignal(signal.SIGHUP), signal.SIG_IGN)
