"""
The reply verifier: one connection's reply stream checked against the
replies due, byte for byte, as the bytes arrive, with every wrong byte
located exactly.

It is sans-IO, as h11 is: it is told what is due (L{ReplyVerifier.expect})
and fed what arrives (L{ReplyVerifier.feed}), and answers what those bytes
completed and what was wrong in them.  It knows no transport, clock or
count: the ping client, the load mode's connections, C{--stream} and the
soak test put it to their own use.

The stream is cut into messages of C{unit} bytes: message I{n} (from 1) is
the stream's bytes C{(n - 1) * unit} to C{n * unit - 1}.  A message with a
wrong byte is reported once, at its first wrong byte; bytes that arrive
when nothing is due are reported once for each read that brings them, and
are not part of the stream.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Deque, Tuple

__all__ = [
    "EXCERPT_BEFORE",
    "EXCERPT_BYTES",
    "Mismatch",
    "Progress",
    "ReplyVerifier",
    "echoHint",
    "hexExcerpt",
]

EXCERPT_BEFORE = 4
"""Bytes shown before a wrong byte."""

EXCERPT_BYTES = 16
"""Bytes shown of each side of a mismatch, at most."""


def hexExcerpt(data: bytes) -> str:
    """
    C{data} as spaced hex pairs and, after them, as text with a dot for
    each byte that is not printable ASCII (C{61 62 0a "ab."}), as
    C{hexdump -C} shows bytes; or C{(nothing)}.
    """
    if not data:
        return "(nothing)"
    text = "".join(chr(b) if 32 <= b < 127 else "." for b in data)
    return f'{data.hex(" ")} "{text}"'


def _byteAt(data: bytes, index: int) -> str:
    """
    The byte at C{index} in hex, or C{no more bytes} past the end (a
    datagram shorter than the other side's).
    """
    return f"{data[index]:02x}" if index < len(data) else "no more bytes"


@dataclass(frozen=True)
class Mismatch:
    """
    A reply byte that differs from what was due, or bytes when none was.

    @ivar connection: the connection's number (from 1).
    @ivar message: the message's number on that connection (from 1).
    @ivar offset: where the wrong byte is in the connection's reply stream
        (from 0).
    @ivar messageOffset: where it is in the message (from 0).
    @ivar expected: the expected bytes around it (L{EXCERPT_BYTES} at
        most), empty when no reply was due at all.
    @ivar received: the bytes received at the same places.
    @ivar excerptStart: the offset in the message where both excerpts
        start.
    """

    connection: int
    message: int
    offset: int
    messageOffset: int
    expected: bytes
    received: bytes
    excerptStart: int

    @classmethod
    def around(
        cls,
        *,
        connection: int,
        message: int,
        offset: int,
        messageOffset: int,
        expected: bytes,
        received: bytes,
        index: int,
    ) -> Mismatch:
        """
        The mismatch at C{expected[index] != received[index]}, the two
        being the same stretch of one message; the excerpts start a few
        bytes before it.
        """
        start = max(index - EXCERPT_BEFORE, 0)
        return cls(
            connection,
            message,
            offset,
            messageOffset,
            expected[start : start + EXCERPT_BYTES],
            received[start : start + EXCERPT_BYTES],
            messageOffset - (index - start),
        )

    @property
    def unexpected(self) -> bool:
        """
        Whether these are bytes that arrived while no reply was due.
        """
        return not self.expected

    def __str__(self) -> str:
        """
        The one line for a mismatch, in every mode: C{connection 3, message
        17, byte 5 (stream offset 1029): expected 46, received 66; bytes
        1-9: expected ..., received ...}.
        """
        if not self.expected:
            return f"connection {self.connection}: {self.detail()}"
        where = f"byte {self.messageOffset} (stream offset {self.offset})"
        return f"connection {self.connection}, message {self.message}, {where}{self._bytes()}"

    def detail(self) -> str:
        """
        Where the wrong byte is in its message, and both sides' bytes
        around it (C{byte 4: expected 4f, received 78; bytes 0-5: expected
        ..., received ...}); or what arrived when no reply was due.
        """
        if not self.expected:
            return (
                f"unexpected bytes at stream offset {self.offset} while no reply was due: "
                f"{hexExcerpt(self.received)}"
            )
        return f"byte {self.messageOffset}{self._bytes()}"

    def _bytes(self) -> str:
        index = self.messageOffset - self.excerptStart
        end = self.excerptStart + max(len(self.expected), len(self.received)) - 1
        return (
            f": expected {_byteAt(self.expected, index)}, received {_byteAt(self.received, index)}; "
            f"bytes {self.excerptStart}-{end}: expected {hexExcerpt(self.expected)}, "
            f"received {hexExcerpt(self.received)}"
        )

    def asJSON(self) -> dict[str, Any]:
        return {
            "connection": self.connection,
            "message": self.message,
            "offset": self.offset,
            "message_offset": self.messageOffset,
            "excerpt_start": self.excerptStart,
            "expected_hex": self.expected.hex(),
            "received_hex": self.received.hex(),
        }


def echoHint(mismatch: Mismatch, plain: bool) -> str:
    """
    What to add to C{mismatch}'s line when the reply looks like the other
    echo's: bytes unchanged where uppercase ones were due (a plain RFC 862
    echo, without C{--plain}), or uppercased where unchanged ones were due
    (the uppercase echo, with C{--plain}); otherwise nothing.  The
    excerpts tell: the wrong byte and those around it differ only so.
    """
    expected, received = mismatch.expected, mismatch.received
    if not expected or len(received) != len(expected):
        return ""
    if plain and received == expected.upper():
        return " (uppercased: is it the uppercase echo? it expects no --plain)"
    if not plain and received.upper() == expected:
        return " (unchanged: is it a plain RFC 862 echo? try --plain)"
    return ""


Progress = Tuple[int, Tuple[int, ...], Tuple[Mismatch, ...]]
"""
What one read did, as L{ReplyVerifier.feed} returns it: how many messages
it completed (the last of them is L{ReplyVerifier.completed}); the numbers
of those it completed that had a wrong byte (in order); the mismatches it
found (in stream order).
"""

_NONE: Tuple[Any, ...] = ()
_NOTHING: Progress = (0, (), ())


class ReplyVerifier:
    """
    Check one connection's reply stream as it arrives.

    @ivar connection: the connection's number, for the mismatches.
    @ivar unit: bytes per message.
    @ivar received: bytes of the stream received so far: the offset of what
        arrives next.
    @ivar due: bytes expected and not received yet.
    @ivar completed: messages received in full, right or wrong, or given
        up on (L{forget}): the number of the last message accounted for.
    """

    def __init__(self, unit: int, connection: int = 1) -> None:
        if unit < 1:
            raise ValueError("a message has at least one byte")
        self.unit = unit
        self.connection = connection
        self.received = 0
        self.due = 0
        self.completed = 0
        self._expected: Deque[bytes] = deque()
        self._at = 0
        self._spoiled: set[int] = set()

    def expect(self, replies: bytes) -> None:
        """
        The next C{replies} of the stream are due (any number of bytes: the
        messages' boundaries are fixed by L{unit}, not by these calls).
        """
        if replies:
            self._expected.append(replies)
            self.due += len(replies)

    def feed(self, data: bytes) -> Progress:
        """
        Check the bytes that arrived next.

        A read that is right costs one comparison per expected piece it
        spans; only a wrong one is searched byte by byte.
        """
        size = len(data)
        if size <= self.due and size:
            # The common case, first: the read lies within one expected
            # piece and is right (one comparison, no slice).
            chunks = self._expected
            head = chunks[0]
            at = self._at
            end = at + size
            if end <= len(head) and head.startswith(data, at):
                if end == len(head):
                    chunks.popleft()
                    end = 0
                self._at = end
                received = self.received
                self.received = received + size
                self.due -= size
                unit = self.unit
                done = (received + size) // unit - received // unit
                if not done:
                    return _NOTHING
                self.completed += done
                if self._spoiled:
                    return done, self._failed(received // unit + done), _NONE
                return done, _NONE, _NONE
        extra: Mismatch | None = None
        if size > self.due:
            extra = self._unexpected(data[self.due :], self.received + self.due)
            size = self.due
        mismatches: list[Mismatch] | None = None
        chunks = self._expected
        pos = 0
        at = self._at
        while pos < size:
            head = chunks[0]
            take = len(head) - at
            if take > size - pos:
                take = size - pos
            if not head.startswith(data[pos : pos + take] if pos or take < len(data) else data, at):
                located = self._locate(data[pos : pos + take], head[at : at + take], pos)
                if mismatches is None:
                    mismatches = located
                else:
                    mismatches += located
            pos += take
            at += take
            if at == len(head):
                chunks.popleft()
                at = 0
        self._at = at
        if extra is not None:
            mismatches = (mismatches or []) + [extra]
        found = tuple(mismatches) if mismatches else _NONE
        if not size:
            return 0, _NONE, found
        unit = self.unit
        before = self.received // unit
        self.received += size
        self.due -= size
        done = self.received // unit - before
        self.completed += done
        failed: Tuple[int, ...] = _NONE
        if done and self._spoiled:
            failed = self._failed(before + done)
        return done, failed, found

    def _failed(self, last: int) -> Tuple[int, ...]:
        """
        The messages up to C{last} (now complete) that had a wrong byte, in
        order; they are reported once.
        """
        spoiled = self._spoiled
        failed = tuple(sorted(n for n in spoiled if n <= last))
        spoiled.difference_update(failed)
        return failed

    def _locate(self, got: bytes, want: bytes, pos: int) -> list[Mismatch]:
        """
        C{got} (from C{pos} in the read) differs from C{want}: the first
        wrong byte of each message it touches that has none reported yet.
        """
        unit = self.unit
        base = self.received + pos
        found = []
        i = 0
        while i < len(got):
            if got[i] == want[i]:
                i += 1
                continue
            offset = base + i
            number = offset // unit + 1
            messageOffset = offset % unit
            if number not in self._spoiled:
                self._spoiled.add(number)
                start = max(i - messageOffset, 0)
                found.append(
                    Mismatch.around(
                        connection=self.connection,
                        message=number,
                        offset=offset,
                        messageOffset=messageOffset,
                        expected=want[start : i + unit],
                        received=got[start : i + unit],
                        index=i - start,
                    )
                )
            # On to the next message: one report per message is enough.
            i += unit - messageOffset
        return found

    def _unexpected(self, extra: bytes, offset: int) -> Mismatch:
        return Mismatch(
            self.connection,
            offset // self.unit + 1,
            offset,
            offset % self.unit,
            b"",
            extra[:EXCERPT_BYTES],
            offset % self.unit,
        )

    def forget(self) -> int:
        """
        Give up on what is due: the stream goes on at the next message's
        start, as if the rest of the messages due had arrived.

        @return: how many messages were due, in part or in whole.
        """
        unit = self.unit
        end = -(-(self.received + self.due) // unit)
        dropped = end - self.received // unit
        self.received = end * unit
        self.completed = end
        self.due = 0
        self._expected.clear()
        self._at = 0
        self._spoiled.clear()
        return dropped
