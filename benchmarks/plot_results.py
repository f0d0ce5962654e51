"""
Plot a benchmarks/run.py result file: the performance targets (each ratio
now, as the earlier uppercase measured it in the same run when run.py had
--before, and the goal), and the round-trip latency (p50 and p99) of every
server in the ping-pong workloads.

    python benchmarks/plot_results.py benchmark-results.json --out docs/performance.png

Needs matplotlib (pip install matplotlib); it is not a dependency of
uppercase.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import TARGETS, beforeName  # noqa: E402


def medians(results: dict) -> dict[str, dict[str, float]]:
    return {
        name: {w: statistics.median(r["value"] for r in runs) for w, runs in byWorkload.items()}
        for name, byWorkload in results.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results")
    parser.add_argument("--out", default="performance.png")
    args = parser.parse_args()
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("plot_results.py: needs matplotlib (pip install matplotlib)") from None
    with open(args.results) as f:
        data = json.load(f)
    results = data["results"]
    m = medians(results)

    labels, now, before, goals = [], [], [], []
    for what, ours, base, workloads, goal in TARGETS:
        for workload in workloads:
            a, b = m.get(ours, {}).get(workload), m.get(base, {}).get(workload)
            if not a or not b:
                continue
            labels.append(f"{what.strip()} ({workload})")
            now.append(a / b)
            ea = m.get(beforeName(ours), {}).get(workload)
            eb = m.get(beforeName(base), {}).get(workload)
            before.append(ea / eb if ea and eb else 0.0)
            goals.append(goal)

    figure, (targets, latency) = plt.subplots(2, 1, figsize=(10, 11))
    positions = range(len(labels))
    targets.barh([p + 0.2 for p in positions], before, height=0.4, label="before", color="#bbb")
    targets.barh([p - 0.2 for p in positions], now, height=0.4, label="now", color="#3465a4")
    targets.scatter(goals, list(positions), marker="|", s=400, color="#c00", label="goal", zorder=3)
    targets.set_yticks(list(positions))
    targets.set_yticklabels(labels, fontsize=8)
    targets.invert_yaxis()
    targets.set_xlabel("ratio of medians (higher is better)")
    targets.set_title("Performance targets")
    targets.legend(loc="lower right")

    servers, p50s, p99s = [], [], []
    for name, byWorkload in results.items():
        for workload in ("b", "c"):
            runs = [r["latency_us"] for r in byWorkload.get(workload, []) if r.get("latency_us")]
            if runs:
                servers.append(f"{name} ({workload})")
                p50s.append(statistics.median(r["p50"] for r in runs) / 1000)
                p99s.append(statistics.median(r["p99"] for r in runs) / 1000)
    positions = range(len(servers))
    latency.barh([p - 0.2 for p in positions], p50s, height=0.4, label="p50", color="#73d216")
    latency.barh([p + 0.2 for p in positions], p99s, height=0.4, label="p99", color="#f57900")
    latency.set_yticks(list(positions))
    latency.set_yticklabels(servers, fontsize=8)
    latency.invert_yaxis()
    latency.set_xlabel("round-trip latency (ms), median over runs")
    latency.set_title("Latency under load (b: 100 connections ping-pong; c: 8 in flight each)")
    latency.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
