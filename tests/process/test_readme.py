"""
The README's example test, run as written against the installed package,
under pytest and under trial; and every relative link in the README and
docs/ pages, followed.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from ._process import run

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
README = os.path.join(ROOT, "README.md")


def readmeExample() -> str:
    """
    The first Python code block of the README's "Testing against uppercase"
    section (whatever its heading's level and number).
    """
    with open(README) as f:
        text = f.read()
    parts = re.split(r"^#+ [^\n]*Testing against uppercase[^\n]*$", text, maxsplit=1, flags=re.M)
    assert len(parts) == 2, "no testing section in the README"
    match = re.search(r"```python\n(.*?)```", parts[1], re.S)
    assert match is not None, "no example in the README's testing section"
    return match.group(1)


class ReadmeExampleTests(SynchronousTestCase):
    """
    A user copying the README's test gets three passing tests.
    """

    def setUp(self) -> None:
        self.folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.folder)
        with open(os.path.join(self.folder, "test_shouter.py"), "w") as f:
            f.write(readmeExample())

    def test_pytest(self) -> None:
        """
        C{python -m pytest test_shouter.py} passes its three tests.
        """
        result = run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_shouter.py"],
            cwd=self.folder,
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("3 passed", result.stdout)

    def test_trial(self) -> None:
        """
        C{python -m twisted.trial test_shouter} passes its three tests.
        """
        result = run([sys.executable, "-m", "twisted.trial", "test_shouter"], cwd=self.folder)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("PASSED (successes=3)", result.stdout)


def pages() -> list[str]:
    """
    The README and every Markdown page in docs/.
    """
    docs = os.path.join(ROOT, "docs")
    return [README] + sorted(
        os.path.join(docs, name) for name in os.listdir(docs) if name.endswith(".md")
    )


def withoutCode(text: str) -> str:
    """
    Markdown text without its fenced code blocks and inline code, where
    brackets and parentheses are not links.
    """
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def anchors(path: str) -> set[str]:
    """
    The anchors GitHub makes for a Markdown page's headings: lower case,
    punctuation other than hyphens and underscores dropped, each space a
    hyphen; a repeated heading gets C{-1}, C{-2} ...
    """
    with open(path) as f:
        text = re.sub(r"^```.*?^```", "", f.read(), flags=re.S | re.M)
    seen: dict[str, int] = {}
    result = set()
    for heading in re.findall(r"^#+ +(.*?) *#* *$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def relativeLinks(path: str) -> list[str]:
    """
    The targets of a Markdown page's inline links and images that are not
    absolute URLs (C{http:}, C{https:}, C{mailto:}).
    """
    with open(path) as f:
        text = withoutCode(f.read())
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    return [t for t in targets if not re.match(r"[a-z]+:", t)]


class LinkTests(SynchronousTestCase):
    """
    Every relative link in README.md and docs/*.md leads somewhere: to a file
    that exists and, when it names one, to a heading of that file.
    """

    def test_anchors(self) -> None:
        """
        The anchor rule gives GitHub's anchors for headings with code,
        colons and dashes in them.
        """
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder)
        page = os.path.join(folder, "page.md")
        with open(page, "w") as f:
            f.write(
                "# Title\n## Every core: `--workers N`\n## Client options: `a [b]`\n"
                "```\n# not a heading\n```\n## Title\n"
            )
        self.assertEqual(
            anchors(page),
            {"title", "every-core---workers-n", "client-options-a-b", "title-1"},
        )

    def test_relativeLinksLeadSomewhere(self) -> None:
        """
        Each relative link's file exists, and its anchor, if any, is one of
        that file's headings.
        """
        broken = []
        for page in pages():
            for target in relativeLinks(page):
                name, _, anchor = target.partition("#")
                linked = (
                    os.path.normpath(os.path.join(os.path.dirname(page), name)) if name else page
                )
                where = f"{os.path.relpath(page, ROOT)}: {target}"
                if not os.path.exists(linked):
                    broken.append(f"{where} (no such file)")
                elif anchor and anchor not in anchors(linked):
                    broken.append(f"{where} (no such heading)")
        self.assertEqual(broken, [])

    def test_readmeIsShort(self) -> None:
        """
        The README is one a newcomer reads in five minutes: at most 250 lines.
        """
        with open(README) as f:
            self.assertLessEqual(len(f.read().splitlines()), 250)


def usageExamples() -> list[tuple[str, str, str]]:
    """
    Every console example in the README and docs/ of a command refused at
    once for a bad option (its output ends with C{Try '... --help' for
    help.}): the page, the command line after C{$ }, and the lines shown.
    """
    found = []
    for path in pages():
        with open(path) as f:
            text = f.read()
        for block in re.findall(r"^```console\n(.*?)^```", text, flags=re.S | re.M):
            for command, shown in re.findall(r"^\$ ([^\n]*)\n((?:[^$\n][^\n]*\n)*)", block, re.M):
                lines = shown.rstrip("\n").splitlines()
                if lines and re.fullmatch(r"Try '.*--help' for help\.", lines[-1]):
                    found.append((os.path.relpath(path, ROOT), command, shown.rstrip("\n")))
    return found


class UsageExampleTests(SynchronousTestCase):
    """
    The refusals the pages show are what the commands say.
    """

    def test_asShown(self) -> None:
        """
        Each usage example (at least the README's C{--listen tcp:nope}),
        run with the installed commands, exits 2 and writes the lines the
        page shows, and nothing else.
        """
        examples = usageExamples()
        self.assertIn(
            "twistd -n --pidfile= uppercase --listen tcp:nope", [c for _, c, _ in examples]
        )
        bin = os.path.dirname(sys.executable)
        for page, command, shown in examples:
            argv = shlex.split(command)
            argv[0] = os.path.join(bin, argv[0])
            result = run(argv, cwd=tempfile.gettempdir())
            self.assertEqual(
                (result.returncode, result.stdout + result.stderr),
                (2, shown + "\n"),
                f"{page}: $ {command}",
            )
