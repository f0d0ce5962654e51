"""
Tests for C{uppercase-client merge} (L{uppercase.cli.merge}): files or
standard input in, the report of a single run out, with its exit status;
anything that cannot be merged is one line and status 1.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.unit.cli.test_command import BytesStdout
from tests.unit.load.test_merge import shardLine
from uppercase.cli import command
from uppercase.cli.merge import merge
from uppercase.client._ending import EarlyEnd
from uppercase.client._settings import ClientSettings
from uppercase.client._verifier import Mismatch
from uppercase.net.tcpinfo import TCPInfo


class MergeCommandTests(SynchronousTestCase):
    """
    The command reads, checks, merges and reports.
    """

    def setUp(self) -> None:
        self.folder = tempfile.mkdtemp()
        self.files = []
        for index in range(3):
            path = os.path.join(self.folder, f"shard-{index}.json")
            with open(path, "w") as f:
                f.write('{"type": "start"}\n[   1s] progress\n')
                f.write(shardLine(index, 3, [1000 + index] * 100) + "\n")
            self.files.append(path)

    def tearDown(self) -> None:
        for path in self.files:
            os.remove(path)
        os.rmdir(self.folder)

    def run_(self, *argv: str, stdin: bytes = b"") -> tuple[int, str, str]:
        out = io.BytesIO()
        err = io.StringIO()
        status = merge(list(argv), io.BytesIO(stdin), out, err)
        return status, out.getvalue().decode(), err.getvalue()

    def test_files(self) -> None:
        """
        The shards' files give the report of a single run, status 0 when
        every threshold holds.
        """
        status, out, err = self.run_("--max-p99", "5", *self.files)
        self.assertEqual((status, err), (0, ""))
        lines = out.splitlines()
        self.assertEqual(
            lines[0],
            "open loop at 300 messages/s: 6 connections, no pipeline limit, "
            "64-byte random messages, for 2 s",
        )
        self.assertTrue(
            lines[1].startswith("300 sent, 300 verified, 0 failed, 0 lost; measured 300 in 2.00 s")
        )
        self.assertIn("threshold: p99 latency 1.002 ms is at most --max-p99 5 (ok)", lines)

    def test_standardInput(self) -> None:
        """
        C{-} reads one stream, such as C{kubectl logs} output, in which the
        summaries are found among other lines; C{--json} gives one summary
        object naming the whole run.
        """
        stream = b""
        for path in self.files:
            with open(path, "rb") as f:
                stream += b"log line\n" + f.read()
        status, out, err = self.run_("--json", "--expect-shards", "3", "-", stdin=stream)
        self.assertEqual((status, err), (0, ""))
        [record] = [json.loads(line) for line in out.splitlines()]
        self.assertEqual(
            (record["type"], record["verified"], record["shard"]), ("summary", 300, None)
        )
        self.assertEqual(record["shards"], 3)

    def test_thresholdFails(self) -> None:
        """
        A threshold the whole run misses: the report, then one line, status
        1; by default the run's own thresholds (here --max-p99 50) apply.
        """
        status, out, err = self.run_("--max-p99", "0.5", *self.files)
        self.assertEqual(status, 1)
        self.assertEqual(err, "uppercase-client: p99 latency 1.002 ms is over --max-p99 0.5\n")
        self.assertEqual(self.run_(*self.files)[0], 0)

    def test_thresholdGivenKeepsTheOthers(self) -> None:
        """
        A threshold given replaces only the run's own of that name: with
        C{--min-rate 1} given, the run's C{--max-p99 50} still fails a run
        whose p99 is 90 ms; C{--max-p99 off} turns it off.
        """
        stream = "".join(shardLine(i, 3, [90000] * 100) + "\n" for i in range(3)).encode()
        status, out, err = self.run_("--min-rate", "1", "-", stdin=stream)
        self.assertEqual(status, 1)
        self.assertEqual(err, "uppercase-client: p99 latency 90.047 ms is over --max-p99 50\n")
        self.assertIn("threshold: verified rate", out)
        self.assertEqual(self.run_("--max-p99", "off", "-", stdin=stream)[:3:2], (0, ""))

    def test_noLossGiven(self) -> None:
        """
        C{--max-loss 0} given is a limit (no loss): it replaces the run's
        C{--max-loss 5}, under which 4% lost would pass.
        """
        counts = dict(
            sent=100, received=96, verified=96, corrupted=0, lost=4,
            late=0, duplicated=0, reordered=0, foreign=0,
        )  # fmt: skip
        stream = "".join(
            shardLine(i, 2, [1000] * 96, whole=UDP, sent=100, lost=4, datagrams=counts) + "\n"
            for i in range(2)
        ).encode()
        self.assertEqual(self.run_("-", stdin=stream)[0], 0)
        status, out, err = self.run_("--max-loss", "0", "-", stdin=stream)
        self.assertEqual(status, 1)
        self.assertIn("--max-loss 0", err)

    def test_cannotMerge(self) -> None:
        """
        A missing or doubled shard, an unreadable file, or no summary: one
        line, status 1, nothing on standard output.
        """
        missing = os.path.join(self.folder, "nope.json")
        for argv, stdin, line in (
            (self.files[:2], b"", "shard 2 of 3 is missing"),
            (self.files + self.files[2:], b"", "shard 2 of 3 is there twice"),
            ([missing], b"", f"cannot read {missing}: No such file or directory"),
            (["-"], b"garbage\n\n", "no shard summary in standard input"),
        ):
            status, out, err = self.run_(*argv, stdin=stdin)
            self.assertEqual((status, out), (1, ""), line)
            self.assertEqual(len(err.splitlines()), 1, err)
            self.assertTrue(err.startswith("uppercase-client: " + line), err)

    def test_usage(self) -> None:
        """
        No file, or a bad value: one usage line, status 2.
        """
        for argv, line in (
            ([], "give the summaries' files, or - for standard input"),
            (["--expect-shards", "0", "-"], "--expect-shards must be at least 1, not '0'"),
            (["--max-p99", "x", "-"], "--max-p99 must be a number of milliseconds, not 'x'"),
        ):
            status, out, err = self.run_(*argv)
            self.assertEqual(status, 2)
            self.assertEqual(
                err.splitlines(),
                [
                    f"uppercase-client merge: {line}",
                    "Try 'uppercase-client merge --help' for help.",
                ],
            )

    def test_subcommand(self) -> None:
        """
        C{uppercase-client merge ...} is this command; C{merge --help}
        describes it.
        """
        stdout = BytesStdout()
        self.patch(sys, "stdout", stdout)
        with self.assertRaises(SystemExit) as caught:
            command.execute(None, ["merge", "--help"])
        self.assertEqual(caught.exception.code, 0)
        self.assertTrue(
            stdout.getvalue().startswith("Usage: uppercase-client merge [options] FILE")
        )
        self.assertIn("--expect-shards=", stdout.getvalue())


UDP = ClientSettings(
    connect="udp:127.0.0.1:9", connections=4, rate=200.0, count=0, duration=2.0, maxLoss=5.0
)


def fullSummaries() -> list[dict[str, Any]]:
    """
    The summaries of a run of two shards with every field filled: errors,
    mismatches, early ends, TCP figures, datagram counts, thresholds.
    """
    counts = dict(
        sent=10, received=9, verified=9, corrupted=0, lost=1,
        late=0, duplicated=0, reordered=0, foreign=0,
    )  # fmt: skip
    return [
        json.loads(
            shardLine(
                index, 2, [1000] * 9, whole=UDP, sent=10, lost=1, failed=1, status=1,
                errors={"mismatch": 1}, mismatches=[Mismatch(1, 2, 3, 4, b"ab", b"aB", 3)],
                mismatchCount=1, datagrams=counts, ends=[EarlyEnd(1, "reset", 64, 4)],
                endBytes={"reset": (64, 64)}, tcpPerConnection={1: TCPInfo(0, 1, 0.5, 0.1)},
            )
        )
        for index in range(2)
    ]  # fmt: skip


def paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """
    The path of every value inside C{value} (keys and list indexes), and
    of a key new to each object.
    """
    found = [path] if path else []
    if isinstance(value, dict):
        found.append(path + ("unknown",))
        for key, item in value.items():
            found += paths(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, path + (index,))
    return found


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


class MalformedSummaryTests(SynchronousTestCase):
    """
    A summary with a field that cannot be read is one line naming where,
    and status 1: never a traceback.
    """

    def merge_(self, records: list[dict[str, Any]]) -> tuple[int, str, str]:
        stdin = "".join(json.dumps(r) + "\n" for r in records).encode()
        out = io.BytesIO()
        err = io.StringIO()
        status = merge(["-"], io.BytesIO(stdin), out, err)
        return status, out.getvalue().decode(), err.getvalue()

    def substituted(self, shard: int, path: tuple[Any, ...], value: Any) -> list[dict[str, Any]]:
        records = fullSummaries()
        target = records[shard]
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return records

    def test_reviewedCases(self) -> None:
        """
        Each field the review found gives a traceback (a count that is not
        one, a share that is not a number, a threshold that is not one, a
        datagram count this version does not know) is one line naming the
        shard's line and the field, and status 1; nothing is reported.
        """
        for path, value, field in (
            (("errors", "x"), "abc", "errors.x"),
            (("share", "connections"), "abc", "share.connections"),
            (("share", "rate"), "x", "share.rate"),
            (("run_thresholds", "max-loss"), "abc", "run_thresholds.max-loss"),
            (("datagrams", "eaten"), 1, "datagrams has a count this version does not know"),
            (("datagrams", "lost"), -1, "datagrams.lost"),
            (("status",), 300, "status"),
            (("mismatches", 0, "excerpt_start"), 7, "excerpt_start"),
            (("error",), 5, "error"),
        ):
            status, out, err = self.merge_(self.substituted(0, path, value))
            self.assertEqual((status, out), (1, ""), err)
            self.assertEqual(len(err.splitlines()), 1, err)
            self.assertIn(field, err)
            self.assertIn("standard input line 1: cannot read its summary", err)

    def test_errorStaysOneLine(self) -> None:
        """
        A shard's error with a line break in it is said on one line, the
        break escaped.
        """
        records = [json.loads(shardLine(i, 2, [1000] * 10)) for i in range(2)]
        records[1].update(status=1, error="cannot\nconnect")
        status, out, err = self.merge_(records)
        self.assertEqual(status, 1)
        self.assertEqual(err, "uppercase-client: shard 1: cannot\\nconnect\n")

    def test_valid(self) -> None:
        """
        The summaries the test below changes merge (status 1: each shard has
        a wrong reply), so that what it finds is the change's doing.
        """
        status, out, err = self.merge_(fullSummaries())
        self.assertEqual(status, 1)
        self.assertIn("20 sent, 18 verified, 2 failed", out)
        self.assertEqual(len(err.splitlines()), 1)

    @settings(max_examples=300, deadline=None)
    @given(st.integers(0, 1), st.sampled_from(paths(fullSummaries()[0])), JSON)
    def test_anyValueInAnyField(self, shard: int, path: tuple[Any, ...], value: Any) -> None:
        """
        Any JSON value in place of any field of a shard's summary (or as a
        key new to any object in it) gives a merge or one line saying why
        not, with status 0 or 1: never another exception.
        """
        status, out, err = self.merge_(self.substituted(shard, path, value))
        self.assertIn(status, (0, 1))
        self.assertLessEqual(len(err.splitlines()), 1, err)
        self.assertNotIn("Traceback", err)
