"""
C{uppercase-client merge [FILE...|-]}: the report of a sharded run, from its
shards' C{--json} summaries (files, or C{-}: one stream such as C{kubectl
logs} output, where every other line is passed over).  It prints the same
report (or, with C{--json}, summary object) as a single run, checks the
thresholds against the whole, and exits as a single run does: 0 only when
every message was verified and every threshold held; 1 otherwise, or when a
shard is missing, doubled or of another run, a file cannot be read, or no
summary is found, with the reason in one line on standard error; 2 for a
usage error.
"""

from __future__ import annotations

import json
import sys
from dataclasses import fields
from typing import IO, Any, BinaryIO, NoReturn, Sequence

from twisted.python import usage

from uppercase._settings import SettingError, checkWholeNumber
from uppercase.cli.options import outputFailure, printAndExit
from uppercase.client._report import BinaryOutput
from uppercase.client._settings import ClientSettings
from uppercase.load.merge import (
    MergeError,
    ShardSummary,
    checkShards,
    findSummaries,
    mergeShards,
    wholeRun,
)
from uppercase.load.report import summaryLines, summaryRecord
from uppercase.load.result import RunResult
from uppercase.load.shard import THRESHOLDS

__all__ = ["MergeOptions", "merge", "readSummaries", "report"]

COMMAND = "uppercase-client merge"

EXIT_FAILURE = 1
EXIT_USAGE = 2

STDIN = "-"


class MergeOptions(usage.Options):
    """
    The options of C{uppercase-client merge}: the files, C{--json},
    C{--expect-shards} and the thresholds (those of a run; by default, the
    ones the run was asked for).
    """

    synopsis = f"Usage: {COMMAND} [options] FILE... (or - for standard input)"
    longdesc = (
        "Merge the --json summaries of the shards of one run (uppercase-client "
        "--shard I/N): check that each shard is there once and all are of one "
        "run, add up their counts and HDR histograms exactly, and report the "
        "whole run as a single run is reported.  Lines that are not summaries "
        "are passed over.  A threshold given replaces the one the run was "
        "asked for (off: none); the others stay as the run was asked."
    )
    optFlags = [["json", None, "Print the merged summary as one JSON object."]]
    optParameters = [
        [
            "expect-shards",
            None,
            None,
            "How many shards the run must have (default: as its summaries say).",
        ],
        *[
            [name, short, None, help + " (default: as the run was asked)"]
            for name, short, _, help in ClientSettings.optParameters()
            if name in THRESHOLDS
        ],
    ]

    def parseArgs(self, *files: str) -> None:
        if not files:
            raise usage.UsageError("give the summaries' files, or - for standard input")
        if list(files).count(STDIN) > 1:
            raise usage.UsageError("- (standard input) can be given once")
        self.files = list(files)

    def postOptions(self) -> None:
        self.expect: int | None = None
        if self["expect-shards"] is not None:
            try:
                checkWholeNumber(self, "expect-shards", minimum=1)
            except SettingError as e:
                raise usage.UsageError(str(e)) from None
            self.expect = self["expect-shards"]
        self.thresholds: dict[str, float] | None = None
        given = [name for name in THRESHOLDS if self[name] is not None]
        if given:
            specs = {
                f.metadata["option"].name: f.metadata["option"]
                for f in fields(ClientSettings)
                if "option" in f.metadata
            }
            for name in given:
                try:
                    specs[name].check(self, name)
                except SettingError as e:
                    raise usage.UsageError(str(e)) from None
            # Each replaces the run's own (0 included: off, or no loss).
            self.thresholds = {name: self[name] for name in given}

    def opt_help(self) -> NoReturn:
        """
        Display this help and exit.
        """
        printAndExit(str(self), COMMAND)


def readSummaries(files: Sequence[str], stdin: BinaryIO) -> list[ShardSummary]:
    """
    The shard summaries in C{files} (C{-}: C{stdin}), in order.

    @raise MergeError: for a file that cannot be read.
    """
    summaries: list[ShardSummary] = []
    for name in files:
        if name == STDIN:
            summaries += findSummaries(stdin, "standard input")
            continue
        try:
            with open(name, "rb") as f:
                summaries += findSummaries(f, name)
        except OSError as e:
            raise MergeError(f"cannot read {name}: {e.strerror or e}") from None
    return summaries


def report(result: RunResult, run: dict[str, Any] | None, out: BinaryOutput, json_: bool) -> None:
    """
    Print C{result} as a single run's summary: its text lines, or (with
    C{json_}) its C{summary} object, naming the whole C{run}.
    """
    if json_:
        out.write(json.dumps(summaryRecord(result, run)).encode() + b"\n")
    else:
        out.write(("\n".join(summaryLines(result)) + "\n").encode())
    out.flush()


def _say(err: IO[str], line: str) -> None:
    try:
        err.write(f"uppercase-client: {line}\n")
        err.flush()
    except OSError:
        pass


def merge(
    argv: Sequence[str],
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """
    Run C{uppercase-client merge ARGV}.

    @return: the exit status.
    """
    stdin = sys.stdin.buffer if stdin is None else stdin
    stdout = sys.stdout.buffer if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    options = MergeOptions()
    try:
        options.parseOptions(list(argv))
    except usage.UsageError as e:
        stderr.write(f"{COMMAND}: {e}\nTry '{COMMAND} --help' for help.\n")
        stderr.flush()
        return EXIT_USAGE
    try:
        found = readSummaries(options.files, stdin)
        sources = ", ".join("standard input" if f == STDIN else f for f in options.files)
        shards = checkShards(found, options.expect, sources)
        result = mergeShards(shards, options.thresholds)
    except MergeError as e:
        _say(stderr, str(e))
        return EXIT_FAILURE
    try:
        report(result, wholeRun(shards, options.thresholds), stdout, options["json"])
    except OSError as e:
        status, line = outputFailure(e)
        if line is not None:
            _say(stderr, line)
        return status
    if result.reason is not None:
        _say(stderr, result.reason)
    return result.status
