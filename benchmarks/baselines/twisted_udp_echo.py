"""Baseline: the five-line Twisted DatagramProtocol echo that uppercases.

python twisted_udp_echo.py PORT
"""

import sys

from twisted.internet import protocol, reactor


class Echo(protocol.DatagramProtocol):
    def datagramReceived(self, data, addr):
        self.transport.write(data.upper(), addr)


reactor.listenUDP(int(sys.argv[1]), Echo(), "127.0.0.1")
reactor.callWhenRunning(print, "ready", flush=True)
reactor.run()
