"""
deploy/kubernetes: what the manifests must agree on, with each other and with
the server's options.  (C{.ci/image} validates them against the Kubernetes
schemas with kubernetes-validate, which is too big a dependency for every
test run.)
"""

from __future__ import annotations

import re
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from uppercase.cli.environment import variables
from uppercase.cli.server import ServerOptions
from uppercase.server._settings import DEFAULTS

ROOT = Path(__file__).parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"


def values(name: str, key: str) -> list[str]:
    """
    The values of every C{key: value} line of manifest C{name}.
    """
    text = (KUBERNETES / name).read_text()
    return re.findall(rf"^\s*-?\s*{re.escape(key)}: *(\S.*?)\s*$", text, re.M)


class KustomizationTests(SynchronousTestCase):
    """
    kustomization.yaml.
    """

    def test_listsEveryManifest(self) -> None:
        """
        Its resources are exactly the other YAML files of the folder.
        """
        text = (KUBERNETES / "kustomization.yaml").read_text()
        listed = re.search(r"^resources:\n((?:  - .*\n)+)", text, re.M)
        assert listed is not None, text
        resources = sorted(line.strip()[2:] for line in listed.group(1).splitlines())
        present = sorted(
            path.name for path in KUBERNETES.iterdir() if path.suffix in (".yaml", ".yml")
        )
        present.remove("kustomization.yaml")
        self.assertEqual(resources, present)


class ServerTests(SynchronousTestCase):
    """
    server-deployment.yaml.
    """

    def test_variablesExist(self) -> None:
        """
        Every UPPERCASE_ variable it sets is one the server reads (a
        misspelt one would be ignored).
        """
        known = {v.name for v in variables(ServerOptions(environ={}))}
        names = [n for n in values("server-deployment.yaml", "name") if n.startswith("UPPERCASE_")]
        self.assertIn("UPPERCASE_METRICS", names)
        self.assertEqual([n for n in names if n not in known], [])

    def test_gracePeriodAboveShutdownTimeout(self) -> None:
        """
        Kubernetes waits longer than the server's --shutdown-timeout (as
        set, or its default) before it kills it.
        """
        (grace,) = values("server-deployment.yaml", "terminationGracePeriodSeconds")
        text = (KUBERNETES / "server-deployment.yaml").read_text()
        set_ = re.search(r"name: UPPERCASE_SHUTDOWN_TIMEOUT\n\s*value: \"?([0-9.]+)", text)
        timeout = float(set_.group(1)) if set_ else DEFAULTS.shutdownTimeout
        self.assertGreater(int(grace), timeout + 1)

    def test_restricted(self) -> None:
        """
        It runs as a numeric non-root user, with no privilege escalation, no
        capability, a read-only root and the runtime's seccomp profile.
        """
        self.assertEqual(values("server-deployment.yaml", "runAsNonRoot"), ["true"])
        self.assertEqual(values("server-deployment.yaml", "runAsUser"), ["10001"])
        self.assertEqual(values("server-deployment.yaml", "allowPrivilegeEscalation"), ["false"])
        self.assertEqual(values("server-deployment.yaml", "readOnlyRootFilesystem"), ["true"])
        self.assertEqual(values("server-deployment.yaml", "drop"), ["[ALL]"])
        self.assertEqual(values("server-deployment.yaml", "type"), ["RuntimeDefault"])


class LoadJobTests(SynchronousTestCase):
    """
    load-job.yaml.
    """

    def test_shards(self) -> None:
        """
        An Indexed Job whose completions, parallelism, --shard auto/N and
        the --expect-shards N of its merge (in its comment and in
        docs/container.md) are the same N.
        """
        self.assertEqual(values("load-job.yaml", "completionMode"), ["Indexed"])
        (completions,) = values("load-job.yaml", "completions")
        (parallelism,) = values("load-job.yaml", "parallelism")
        text = (KUBERNETES / "load-job.yaml").read_text()
        shards = re.findall(r"--shard=auto/(\d+)", text)
        expected = re.findall(r"--expect-shards (\d+)", text)
        expected += re.findall(
            r"--expect-shards (\d+)", (ROOT / "docs" / "container.md").read_text()
        )
        self.assertEqual(len(shards), 1)
        self.assertGreater(len(expected), 1)
        self.assertEqual({completions, parallelism, *shards, *expected}, {completions})

    def test_verdictNotRetried(self) -> None:
        """
        Pods are never restarted in place, and the client's exit statuses 1
        (wrong replies), 2 (usage) and 4 (came up after --start-at) fail the
        whole Job at once; the rule names the Job's container.
        """
        self.assertEqual(values("load-job.yaml", "restartPolicy"), ["Never"])
        text = (KUBERNETES / "load-job.yaml").read_text()
        rule = re.search(
            r"- action: FailJob\n\s*onExitCodes:\n\s*containerName: (\S+)\n"
            r"\s*operator: In\n\s*values: \[([0-9, ]+)\]",
            text,
        )
        assert rule is not None, text
        self.assertEqual(set(rule.group(2).replace(" ", "").split(",")), {"1", "2", "4"})
        self.assertEqual(values("load-job.yaml", "- name")[0], rule.group(1))
