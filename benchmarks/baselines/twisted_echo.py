"""Baseline: the five-line Twisted echo that uppercases.

python twisted_echo.py PORT
"""

import sys

from twisted.internet import protocol, reactor


class Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data.upper())


reactor.listenTCP(int(sys.argv[1]), protocol.Factory.forProtocol(Echo), 511, "127.0.0.1")
reactor.callWhenRunning(print, "ready", flush=True)
reactor.run()
