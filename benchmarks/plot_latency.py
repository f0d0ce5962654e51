"""
Plot latency percentiles: from benchmarks/client.py's JSON (workload l,
the median of each percentile over the runs, per client), and from any
uppercase-client --json summaries given with --summary FILE=LABEL (their
latency_distribution_ms).

    python benchmarks/plot_latency.py client-benchmark.json [--summary run.json=stalled] \\
        --out docs/load-testing-latency.png

Needs matplotlib (pip install matplotlib); it is not a dependency of
uppercase.
"""

from __future__ import annotations

import argparse
import json
import statistics

KEYS = ["p50", "p90", "p99", "p99.9", "max"]
POSITIONS = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99.9": 99.9, "max": 99.99}


def nines(percentile: float) -> float:
    """
    Where a percentile goes on a "number of nines" axis: 50 -> 2, 90 ->
    10, 99 -> 100 (1 / (1 - p)).
    """
    return 1 / (1 - min(percentile, 99.99) / 100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmark", help="the JSON benchmarks/client.py wrote")
    parser.add_argument("--summary", action="append", default=[], help="FILE=LABEL")
    parser.add_argument("--workload", default="l")
    parser.add_argument("--out", default="load-testing-latency.png")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(args.benchmark) as f:
        bench = json.load(f)
    figure, axes = plt.subplots(figsize=(8, 4.5))
    rate = None
    for name, workloads in bench["results"].items():
        runs = workloads.get(args.workload, [])
        if not runs:
            continue
        ys = [statistics.median(run["latency_ms"][key] for run in runs) for key in KEYS]
        xs = [nines(POSITIONS[key]) for key in KEYS]
        axes.plot(xs, ys, marker="o", label=f"{name} (median of {len(runs)} runs)")
        rate = rate or runs[0].get("rate")
    for spec in args.summary:
        path, _, label = spec.partition("=")
        with open(path) as f:
            summary = [json.loads(line) for line in f if line.strip()][-1]
        points = [(p, v) for p, v in summary["latency_distribution_ms"] if p >= 50]
        axes.plot(
            [nines(p) for p, v in points],
            [v for p, v in points],
            marker=".",
            linestyle="--",
            label=label or path,
        )
    axes.set_xscale("log")
    axes.set_yscale("log")
    ticks = [nines(POSITIONS[key]) for key in KEYS]
    axes.set_xticks(ticks)
    axes.set_xticklabels(KEYS)
    axes.minorticks_off()
    axes.set_xlabel("percentile")
    axes.set_ylabel("round-trip latency (ms, log scale)")
    title = "Round-trip latency against the C echo"
    if rate:
        title += f"; solid: workload l, open loop at {rate:,.0f} messages/s"
    axes.set_title(title, fontsize=10)
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
