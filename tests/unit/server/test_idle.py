"""
Specification of L{uppercase.server._idle}: the idle timeout, one timer for all connections.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from tests.unit.server.test_factory import quietFactory
from uppercase.server import _factory as server
from uppercase.testing import connectServer


class IdleTimeoutTests(SynchronousTestCase):
    """
    A connection with no activity for the idle timeout is closed; an active
    one never is.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.factory = quietFactory(self.clock, idleTimeout=100.0, closeTimeout=10.0)
        self.protocol, self.transport = connectServer(self.factory)

    def wait(self, seconds: int) -> None:
        """
        Let C{seconds} pass one at a time, as a real reactor would.
        """
        self.clock.pump([1] * seconds)

    def test_silentConnectionClosed(self) -> None:
        """
        A silent connection is still open just before the timeout, and is
        closed at most a quarter of the timeout after it, and logged with
        how long it was idle.
        """
        self.wait(99)
        self.assertFalse(self.transport.disconnecting)
        with capturedLogs() as events:
            self.wait(26)
        self.assertTrue(self.transport.disconnected)
        self.assertFalse(self.transport.aborted)
        self.assertEqual(self.factory.idleClosed, 1)
        [idle] = [e for e in events if "idle" in e["log_format"]]
        self.assertGreaterEqual(idle["idle"], 100)
        self.assertLessEqual(idle["idle"], 125)

    def test_timeNotTicks(self) -> None:
        """
        The timeout is measured in time: a clock that jumps past it (or a
        reactor that stalls) still closes the connection.
        """
        clock = Clock()
        factory = quietFactory(clock, idleTimeout=10)
        _, transport = connectServer(factory)
        clock.advance(9)
        clock.advance(3.5)
        self.assertTrue(transport.disconnected)

    def test_lateSweepsDoNotDelayTheClose(self) -> None:
        """
        A reactor that runs each sweep a little late (as real ones do) still
        closes within 1.25 timeouts of the last activity.
        """
        clock = Clock()
        factory = quietFactory(clock, idleTimeout=1)
        _, transport = connectServer(factory)
        transport.receive(b"x")
        late = [0.003, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001]
        while not transport.writeDisconnecting:
            [sweep] = clock.getDelayedCalls()
            clock.advance(sweep.getTime() - clock.seconds() + late.pop(0))
        self.assertLessEqual(clock.seconds(), 1.25 + 0.001)

    def test_activeConnectionKept(self) -> None:
        """
        A connection that sends something every 90 seconds is never closed.
        """
        for _ in range(20):
            self.wait(90)
            self.transport.receive(b"ping")
        self.assertFalse(self.transport.disconnecting)

    def test_idleMeasuredFromLastData(self) -> None:
        """
        After the last data, the connection lives at least the full timeout.
        """
        self.wait(60)
        self.transport.receive(b"late")
        self.wait(99)
        self.assertFalse(self.transport.disconnecting)
        self.wait(30)
        self.assertTrue(self.transport.disconnecting)

    def test_idleCloseIsGraceful(self) -> None:
        """
        An idle connection that echoed something is half-closed, so that a
        peer that sends at the last moment loses none of its replies; it is
        aborted only if it has not finished closing within the close
        timeout.
        """
        clock = Clock()
        factory = quietFactory(clock, idleTimeout=10, closeTimeout=5)
        protocol, transport = connectServer(factory, peerReads=False)
        transport.receive(b"owed")
        transport.read()
        clock.pump([1] * 13)
        self.assertTrue(transport.writeDisconnected)
        self.assertFalse(transport.disconnected)
        clock.pump([1] * 4)
        self.assertFalse(transport.disconnected)
        clock.pump([1] * 1)
        self.assertTrue(transport.aborted)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_peerClosingInTimeIsClean(self) -> None:
        """
        A peer that ends its side after the idle half-close ends the
        connection cleanly, and the abort timer is cancelled.
        """
        clock = Clock()
        factory = quietFactory(clock, idleTimeout=10, closeTimeout=5)
        _, transport = connectServer(factory)
        transport.receive(b"x")
        clock.pump([1] * 13)
        self.assertTrue(transport.writeDisconnected)
        transport.receiveEOF()
        self.assertTrue(transport.disconnected)
        self.assertFalse(transport.aborted)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_readerOfKernelBufferKept(self) -> None:
        """
        A peer that reads steadily from what the kernel holds for it (the
        server's own buffer long empty, nothing received) is not idle: it is
        kept for many timeouts, and closed a timeout after it stops.
        """
        self.transport.receive(b"x" * 1000)
        self.transport.kernelUnsent = 1_000_000
        for _ in range(500):
            self.wait(1)
            self.transport.kernelUnsent -= 1000
        self.assertFalse(self.transport.disconnecting)
        self.wait(99)
        self.assertFalse(self.transport.writeDisconnecting)
        self.wait(26)
        self.assertTrue(self.transport.writeDisconnecting)

    def idleLogged(self, kernelSaysAgo: float) -> float:
        """
        The idle time logged for the silent connection, when the kernel
        says its last data came C{kernelSaysAgo} seconds ago.
        """
        self.patch(server, "receivedAgo", lambda transport: kernelSaysAgo)
        with capturedLogs() as events:
            self.wait(125)
        [idle] = [e for e in events if "idle" in e["log_format"]]
        return float(idle["idle"])

    def test_idleTimeFromKernel(self) -> None:
        """
        Where the kernel tells when the last data came, the logged idle time
        is the kernel's (the sweep only knows it to a quarter timeout).
        """
        self.assertEqual(self.idleLogged(113.0), 113.0)

    def test_idleTimeFromKernelBounded(self) -> None:
        """
        The kernel's figure is taken only within what the sweep knows: at
        most one sweep interval more than the sweep saw.
        """
        self.assertEqual(self.idleLogged(500.0), 125.0)

    def test_idleTimeOfStalledSendFromSweep(self) -> None:
        """
        A connection idle because its peer takes nothing of what it is owed
        is logged with the sweep's figure: when data last came says nothing
        about when the peer last read.
        """
        self.transport.kernelUnsent = 500_000
        self.assertEqual(self.idleLogged(113.0), 100.0)

    def test_stuckKernelBufferIsIdle(self) -> None:
        """
        Bytes sitting in the kernel for a peer that does not read them are
        no activity: the connection is closed after the timeout.
        """
        self.transport.receive(b"x")
        self.transport.kernelUnsent = 500_000
        self.wait(125)
        self.assertTrue(self.transport.writeDisconnecting)

    def test_unknownKernelBufferAsBefore(self) -> None:
        """
        Where the kernel's queue cannot be read, activity is what the server
        itself sees, as before.
        """
        self.transport.kernelUnsent = None
        self.transport.receive(b"x")
        self.wait(125)
        self.assertTrue(self.transport.writeDisconnecting)

    def test_lingeringCloseWaitsForSteadyReader(self) -> None:
        """
        A connection closed for being idle is not aborted at the close
        timeout while its peer goes on reading what the kernel holds (it
        stopped for a whole idle timeout, then resumed); it is aborted once
        it makes no progress for a close timeout.
        """
        clock = Clock()
        factory = quietFactory(clock, idleTimeout=10, closeTimeout=5)
        _, transport = connectServer(factory)
        transport.receive(b"owed")
        transport.kernelUnsent = 300_000
        clock.pump([1] * 13)
        self.assertTrue(transport.writeDisconnected)
        for _ in range(60):
            transport.kernelUnsent -= 1000
            clock.advance(1)
        self.assertFalse(transport.disconnected)
        clock.pump([1] * 4)
        self.assertFalse(transport.disconnected)
        with capturedLogs() as events:
            clock.pump([1] * 1)
        self.assertTrue(transport.aborted)
        self.assertEqual(clock.getDelayedCalls(), [])
        [abort] = [e for e in events if "Aborting" in e["log_format"]]
        self.assertEqual(abort["unsent"], "240000")

    def test_lingeringCloseEndsForPeerThatOnlySends(self) -> None:
        """
        A connection closed for being idle whose peer only goes on sending
        (its bytes are discarded) and never closes is aborted once what it
        is owed makes no progress for a close timeout.
        """
        clock = Clock()
        factory = quietFactory(clock, idleTimeout=10, closeTimeout=5)
        _, transport = connectServer(factory)
        transport.receive(b"x")
        clock.pump([1] * 13)
        self.assertTrue(transport.writeDisconnected)
        for _ in range(15):
            if transport.disconnected:
                break
            transport.receive(b"more")
            clock.advance(1)
        self.assertTrue(transport.aborted)

    def test_abortCountsKernelBytes(self) -> None:
        """
        The abort line counts the bytes still in the kernel with those in
        the server's buffer; where the kernel cannot say, it says so.
        """
        for kernel, unsent in [(2_600_000, "2600004"), (None, "4 (and what the kernel holds)")]:
            clock = Clock()
            factory = quietFactory(clock, idleTimeout=10, closeTimeout=5)
            _, transport = connectServer(factory, peerReads=False)
            transport.receive(b"owed")
            transport.kernelUnsent = kernel
            with capturedLogs() as events:
                clock.pump([1] * 19)
            self.assertTrue(transport.aborted)
            [abort] = [e for e in events if "Aborting" in e["log_format"]]
            self.assertEqual(abort["unsent"], unsent)
            self.assertIn(f"({unsent} bytes unsent)", abort["log_format"].format(**abort))

    def test_noTimerLeftAfterClose(self) -> None:
        """
        Closing the connection cancels its idle check.
        """
        self.transport.reset()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_zeroDisables(self) -> None:
        """
        An idle timeout of 0 schedules nothing.
        """
        clock = Clock()
        connectServer(quietFactory(clock, idleTimeout=0))
        self.assertEqual(clock.getDelayedCalls(), [])
