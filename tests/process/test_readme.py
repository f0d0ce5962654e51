"""
The README's example test, run as written against the installed package,
under pytest and under trial.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from ._process import run

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def readmeExample() -> str:
    """
    The first Python code block of the README's "Testing against uppercase"
    section.
    """
    with open(README) as f:
        text = f.read()
    section = text.split("## Testing against uppercase", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
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
