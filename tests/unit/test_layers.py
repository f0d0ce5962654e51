"""
The layers point one way: the package's import graph, read from the code
(every import statement, function-local and TYPE_CHECKING ones included),
has no circle, and the library never imports the command line.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

import uppercase

PACKAGE = os.path.dirname(uppercase.__file__)


def modules() -> dict[str, str]:
    """
    Every module of the package, by dotted name, with its file.
    """
    found = {}
    for root, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                dotted = os.path.relpath(path[:-3], os.path.dirname(PACKAGE)).replace(os.sep, ".")
                found[
                    dotted.removesuffix(".__init__") if sys.version_info >= (3, 9) else dotted
                ] = path
    return found


def imports(name: str, path: str, known: dict[str, str]) -> set[str]:
    """
    The package's modules that module C{name} imports.
    """
    isPackage = path.endswith("__init__.py")
    found: set[str] = set()
    with open(path) as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = name.split(".") if isPackage else name.split(".")[:-1]
            if node.level:
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            targets = [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]
        found.update(t for t in targets if t in known and t != name)
    return found


def isCommandLine(name: str) -> bool:
    return name == "uppercase.cli" or name.startswith("uppercase.cli.")


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def circles(edges: dict[str, set[str]]) -> list[set[str]]:
    """
    The strongly connected components of more than one module (Tarjan's).
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    onStack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        onStack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in onStack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                onStack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


class LayerTests(SynchronousTestCase):
    """
    The import graph of C{uppercase} as the code has it.
    """

    def test_circlesFound(self) -> None:
        """
        The circle finder finds a circle (so that finding none means
        something).
        """
        self.assertEqual(
            circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}), [{"a", "b", "c"}]
        )

    def test_noCircle(self) -> None:
        """
        No module imports, through others, a module that imports it.
        """
        self.assertEqual(circles(graph()), [])

    def test_libraryImportsNoCommandLine(self) -> None:
        """
        Nothing outside C{uppercase.cli} (and C{python -m uppercase}, which
        is a command) imports C{uppercase.cli}.
        """
        offenders = {
            name: sorted(t for t in targets if isCommandLine(t))
            for name, targets in graph().items()
            if not isCommandLine(name) and name != "uppercase.__main__"
        }
        self.assertEqual({k: v for k, v in offenders.items() if v}, {})

    def test_publicModulesLoadNoOptionParser(self) -> None:
        """
        Importing a public module, in a fresh interpreter, loads neither
        C{twisted.python.usage} nor anything of C{uppercase.cli}.
        """
        public = [
            "uppercase.echo",
            "uppercase.server",
            "uppercase.service",
            "uppercase.proxy",
            "uppercase.client",
            "uppercase.testing",
            "uppercase.textlog",
            "uppercase.jsonlog",
        ]
        code = (
            "import importlib, sys\n"
            f"for name in {public!r}:\n"
            "    importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m == 'twisted.python.usage'\n"
            "    or m == 'uppercase.cli' or m.startswith('uppercase.cli.')))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        self.assertEqual(out.strip(), "[]")
