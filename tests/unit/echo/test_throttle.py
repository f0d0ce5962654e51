"""
Specification of L{uppercase.echo._throttle}: the transport's write buffer throttles an echo's reads.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.unit.echo.test_stream import PlainEcho, UppercaseEcho


class FlowControlTests(UppercaseEcho, SynchronousTestCase):
    """
    A peer that sends but does not read cannot make the echo buffer without
    bound: a full write buffer pauses reading until it drains.
    """

    def test_fullBufferPausesReading(self) -> None:
        """
        Past the transport's buffer size of unsent replies, the echo stops
        reading (what the peer sends waits); once the peer reads, it
        resumes and echoes what waited, in order.
        """
        protocol, transport = self.echo(peerReads=False)
        chunk = b"a" * 8192
        sent = 0
        while transport.producerState == "producing":
            transport.receive(chunk)
            sent += len(chunk)
            self.assertLess(sent, 10 * transport.bufferSize, "never paused")
        echoedWhenPaused = protocol.echoed
        transport.receive(b"waiting")
        self.assertEqual(protocol.echoed, echoedWhenPaused)
        received = transport.read()
        self.assertEqual(transport.producerState, "producing")
        received += transport.read()
        self.assertEqual(received, self.reply(b"a" * sent + b"waiting"))

    def test_drainsCounted(self) -> None:
        """
        Each time the write buffer drains after a pause, C{drains} grows
        (the server counts it as activity).
        """
        protocol, transport = self.echo(peerReads=False)
        while transport.producerState == "producing":
            transport.receive(b"a" * 8192)
        transport.read()
        self.assertEqual(protocol.drains, 1)


class PlainFlowControlTests(PlainEcho, FlowControlTests):
    """
    The plain echo's reads are throttled as the uppercase one's are.
    """
