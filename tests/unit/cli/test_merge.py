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

from twisted.trial.unittest import SynchronousTestCase

from tests.unit.cli.test_command import BytesStdout
from tests.unit.load.test_merge import shardLine
from uppercase.cli import command
from uppercase.cli.merge import merge


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
