"""
The client benchmark: is uppercase-client ever the bottleneck?  It and
benchmarks/loadgen.c (C, epoll, busy-polling) load the same C echo
(benchmarks/baselines/c_echo.c) in the same run, the echo pinned to one core
and the load to the other, and the client's figures are given as ratios to
loadgen's.

    python benchmarks/client.py [--runs 3] [--seconds 3] [--pypy PATH] [--out FILE]

Workloads:
  b  100 connections ping-pong, 1 KiB          messages/s (closed loop)
  c  100 connections, 8 x 1 KiB in flight      messages/s (closed loop)
  l  1 connection, 1,000 messages/s, 64 B      latency p50 (open loop)
  u  1 UDP socket ping-pong, 64 B              datagrams/s verified (closed loop)
  v  10 UDP sockets, 8 x 512 B in flight       datagrams/s verified (closed loop)

In u and v the echo is the C UDP echo (benchmarks/baselines/c_udp_echo.c),
loadgen runs in its udp mode, and uppercase-client connects to udp:HOST:PORT;
datagrams lost (no reply within the timeout) are summed beside the rates.

Clients: loadgen (C), uppercase-client on this Python (CPython), and on
--pypy PYTHON (a PyPy with uppercase installed); with --pypy also
baselines/python_client.py on PyPy ("raw-pypy": plain epoll, nothing
verified), the ceiling of a Python client on this machine.  Each measurement starts a
fresh echo; the client runs with --json and its summary is read.  Prints
Markdown tables of medians (min-max) and ratios, and writes every figure,
and the latency percentiles of workload l for plot_latency.py, as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from run import LOAD_CPU, Server, compileC, machine  # noqa: E402

WORKLOADS: dict[str, dict[str, Any]] = {
    "b": {"conns": 100, "size": 1024, "depth": 1, "rate": 0},
    "c": {"conns": 100, "size": 1024, "depth": 8, "rate": 0},
    "l": {"conns": 1, "size": 64, "depth": 1, "rate": 1000},
    "u": {"conns": 1, "size": 64, "depth": 1, "rate": 0, "udp": True},
    "v": {"conns": 10, "size": 512, "depth": 8, "rate": 0, "udp": True},
}


def runLoadgen(loadgen: str, port: int, w: dict[str, Any], warmup: float, seconds: float) -> dict:
    mode = "udp" if w.get("udp") else "pingpong"
    argv = [loadgen, "127.0.0.1", str(port), mode, str(w["conns"]), str(w["size"])]
    argv += [str(w["depth"]), str(warmup), str(seconds)]
    if w["rate"]:
        argv.append(str(w["rate"]))
    result = subprocess.run(
        ["taskset", "-c", LOAD_CPU, *argv],
        capture_output=True,
        text=True,
        timeout=warmup + seconds + 60,
    )
    if result.returncode != 0:
        raise SystemExit(f"client.py: loadgen failed: {result.stderr.strip()}")
    figures = json.loads(result.stdout)
    latency = figures["latency_us"] or {}
    return {
        "rate": figures["round_trips_per_s"],
        "p50_ms": latency.get("p50", 0) / 1000,
        "p99_ms": latency.get("p99", 0) / 1000,
        "latency_ms": {k: v / 1000 for k, v in latency.items()},
        "idle": figures["idle"],
        "lost": figures.get("lost", 0),
    }


def runClient(python: str, port: int, w: dict[str, Any], warmup: float, seconds: float) -> dict:
    argv = [python, "-c", "from uppercase.cli.command import run; run()"]
    scheme = "udp" if w.get("udp") else "tcp"
    argv += ["-c", f"{scheme}:127.0.0.1:{port}", "--json", "--size", str(w["size"])]
    argv += ["--connections", str(w["conns"]), "--pipeline", str(w["depth"])]
    argv += ["--warmup", str(warmup), "--duration", str(seconds)]
    if w["rate"]:
        argv += ["--rate", str(w["rate"])]
    # From the filesystem root: "python -c" puts the current folder first on
    # the path, and a checkout there would be measured instead of the
    # interpreter's installed uppercase.
    result = subprocess.run(
        ["taskset", "-c", LOAD_CPU, *argv],
        capture_output=True,
        text=True,
        timeout=warmup + seconds + 60,
        cwd="/",
    )
    lines = result.stdout.splitlines()
    if result.returncode != 0 or not lines:
        raise SystemExit(f"client.py: uppercase-client failed: {result.stderr.strip()[-500:]}")
    summary = json.loads(lines[-1])
    latency = summary["latency_ms"] or {}
    return {
        "rate": summary["messages_per_s"],
        "p50_ms": latency.get("p50", 0),
        "p99_ms": latency.get("p99", 0),
        "latency_ms": latency,
        "distribution_ms": summary["latency_distribution_ms"],
        "lost": summary.get("lost", 0),
    }


def runBaseline(python: str, port: int, w: dict[str, Any], warmup: float, seconds: float) -> dict:
    script = os.path.join(HERE, "baselines", "python_client.py")
    argv = [python, script, str(port), str(w["conns"]), str(w["size"]), str(w["depth"])]
    result = subprocess.run(
        ["taskset", "-c", LOAD_CPU, *argv, str(warmup), str(seconds)],
        capture_output=True,
        text=True,
        timeout=warmup + seconds + 60,
    )
    if result.returncode != 0:
        raise SystemExit(f"client.py: python_client.py failed: {result.stderr.strip()[-500:]}")
    rate = json.loads(result.stdout)["round_trips_per_s"]
    return {"rate": rate, "p50_ms": 0.0, "p99_ms": 0.0, "latency_ms": {}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--pypy-warmup", type=float, default=4.0)
    parser.add_argument("--pypy", help="a PyPy interpreter with uppercase installed")
    parser.add_argument("--workloads", default="bcluv")
    parser.add_argument("--out", default="client-benchmark.json")
    args = parser.parse_args()

    clients: dict[str, Any] = {"loadgen": None, "cpython": sys.executable}
    if args.pypy:
        clients["pypy"] = args.pypy
        clients["raw-pypy"] = ("raw", args.pypy)
    results: dict[str, dict[str, list[dict]]] = {name: {} for name in clients}
    with tempfile.TemporaryDirectory() as folder:
        loadgen = compileC(folder, "loadgen.c")
        echo = compileC(folder, "baselines/c_echo.c")
        udpEcho = compileC(folder, "baselines/c_udp_echo.c")
        for run in range(args.runs):
            for workload in args.workloads:
                w = WORKLOADS[workload]
                for name, python in clients.items():
                    if name == "raw-pypy" and (w["rate"] or w.get("udp")):
                        continue  # a ceiling of TCP rates only
                    warmup = args.pypy_warmup if "pypy" in name else args.warmup
                    if w.get("udp"):
                        server = Server([udpEcho, "{port}"], udp=True)
                    else:
                        server = Server([echo, "{port}"])
                    try:
                        if python is None:
                            figures = runLoadgen(loadgen, server.port, w, warmup, args.seconds)
                        elif isinstance(python, tuple):
                            figures = runBaseline(python[1], server.port, w, warmup, args.seconds)
                        else:
                            figures = runClient(python, server.port, w, warmup, args.seconds)
                    finally:
                        server.stop()
                    results[name].setdefault(workload, []).append(figures)
                    print(
                        f"run {run + 1} {workload} {name:8}: {figures['rate']:,.0f} msg/s, "
                        f"p50 {figures['p50_ms']:.3f} ms, p99 {figures['p99_ms']:.3f} ms"
                        + (f", {figures['lost']:,} lost" if w.get("udp") else ""),
                        file=sys.stderr,
                        flush=True,
                    )
    report(results, args)
    with open(args.out, "w") as f:
        json.dump({"machine": machine(), "args": vars(args), "results": results}, f, indent=1)
    return 0


def report(results: dict, args: argparse.Namespace) -> None:
    names = list(results)
    others = names[1:]
    print(f"\nMachine: {machine()}\nMedians of {args.runs} runs, {args.seconds:g} s each.")
    print("Ratios: the median of each run's ratio to loadgen in that run.\n")
    header = " | ".join(names) + " | " + " | ".join(f"{n} / loadgen" for n in others)
    print(f"| workload | {header} |")
    print("|---" * (len(names) + len(others) + 1) + "|")
    for workload in args.workloads:
        key = "p50_ms" if WORKLOADS[workload]["rate"] else "rate"
        unit = (
            "p50 ms" if key == "p50_ms" else "dg/s" if WORKLOADS[workload].get("udp") else "msg/s"
        )
        fmt = "{:,.3f}" if key == "p50_ms" else "{:,.0f}"
        cells, ratios = [], []
        base = [r[key] for r in results["loadgen"].get(workload, [])]
        for name in names:
            values = [r[key] for r in results[name].get(workload, [])]
            if not values:
                cells.append("-")
                if name != "loadgen":
                    ratios.append("-")
                continue
            m = statistics.median(values)
            cells.append(f"{fmt.format(m)} [{fmt.format(min(values))}-{fmt.format(max(values))}]")
            if name != "loadgen":
                per = [v / b for v, b in zip(values, base) if b]
                ratios.append(f"{statistics.median(per):.2f}" if per else "-")
        print(f"| {workload} ({unit}) | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    lost = []
    for name in names:
        for workload in args.workloads:
            runs = results[name].get(workload, [])
            if WORKLOADS[workload].get("udp") and runs:
                lost.append(f"{name} {workload}: {sum(r.get('lost', 0) for r in runs):,}")
    if lost:
        print(
            "\nUDP datagrams lost (no reply within the timeout), summed over runs: "
            + ", ".join(lost)
        )


if __name__ == "__main__":
    sys.exit(main())
