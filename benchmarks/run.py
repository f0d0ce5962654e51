"""
The uppercase benchmark: our server against baselines, in one run, on one
machine, with the server and the load pinned to different cores.

    python benchmarks/run.py [--runs 3] [--seconds 3] [--pypy PATH] [--out FILE]

Servers (each started afresh for every run):
  c-echo       the same echo in C on epoll (benchmarks/baselines/c_echo.c): the
               ceiling any server can reach here, kernel costs included
  asyncio      a plain asyncio Protocol echo (benchmarks/baselines/asyncio_echo.py)
  uvloop       the same on uvloop (when uvloop is installed)
  twisted5     the five-line Twisted echo (benchmarks/baselines/twisted_echo.py)
  uppercase    twistd -n uppercase --quiet, every robustness feature at its default
  uppercase-log  the same without --quiet (every chunk logged, to /dev/null)
  uppercase-w2 the same with --workers 2; it and the load generator share
               both cores (every other server gets core 0, the load core 1)
  uppercase-proxy  uppercase --quiet on a haproxy: listener (the load
               generator sends a PROXY v1 header first)
  and, with --pypy PYTHON (a PyPy with uppercase installed): twisted5-pypy,
  uppercase-pypy; with --before PYTHON (an interpreter
  with an earlier uppercase installed, for the regression check):
  uppercase-before, uppercase-log-before, uppercase-proxy-before.
UDP servers (workloads u and v only; the TCP ones never run them):
  c-udp-echo   a UDP echo in C, recvmmsg/sendmmsg (benchmarks/baselines/c_udp_echo.c):
               the ceiling
  asyncio-udp  a plain asyncio DatagramProtocol echo (uvloop-udp: on uvloop)
  twisted5-udp the five-line Twisted DatagramProtocol echo
  uppercase-udp  twistd -n uppercase --quiet --listen udp:PORT, its rate
               limits lifted (UDP_UNLIMITED below)
  and, with --pypy: twisted5-udp-pypy, uppercase-udp-pypy; with --before:
  uppercase-udp-before.

Workloads (benchmarks/loadgen.c, compiled here with cc -O3; every reply byte
is verified; it busy-polls its own core and reports how much of the time it
waited for the server):
  a  1 connection ping-pong, 64 B          round trips/s
  b  100 connections ping-pong, 1 KiB      round trips/s
  c  100 connections, 8 x 1 KiB in flight  round trips/s
  d  1 connection streaming full duplex    MB/s
  e  10 connections streaming              MB/s
  f  5,000 idle connections                server memory per connection (bytes)
  u  1 UDP socket ping-pong, 64 B          datagrams/s
  v  10 UDP sockets, 8 x 512 B in flight   datagrams/s
  (u, v: a datagram with no reply within 1 s is counted lost, not waited for)

Prints the medians, their spread (min-max) and the ratios our server's
medians have to the baselines', as Markdown, and writes all figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER_CPU, LOAD_CPU = "0", "1"
ALL_CPUS = "0,1"
SPREAD = {"uppercase-w2"}
"""Servers of several processes: they, and the load generator with them,
run on every core instead of one each."""

WORKLOADS = {
    "a": ("pingpong", 1, 64, 1),
    "b": ("pingpong", 100, 1024, 1),
    "c": ("pingpong", 100, 1024, 8),
    "d": ("stream", 1, 65536, 1),
    "e": ("stream", 10, 65536, 1),
    "u": ("udp", 1, 64, 1),
    "v": ("udp", 10, 512, 8),
}
UDP_WORKLOADS = "uv"
UDP_UNLIMITED = ("--udp-rate-per-source", "0", "--udp-bytes-per-source", "0", "--udp-rate", "0")
"""The options that lift uppercase's UDP rate limits (per source and in all),
so that what is measured is the echo, not the limiter."""


def isUDP(name: str) -> bool:
    """Whether the server called C{name} is a UDP echo (measured in u, v only)."""
    return "-udp" in name


IDLE_CONNECTIONS = 5000


def absoluteCommand(command: str | None) -> str | None:
    """
    C{command} as a path that works from any folder: a path with a folder in
    it made absolute, a bare name left for C{PATH} to find.
    """
    if command is None or os.sep not in command:
        return command
    return os.path.abspath(command)


def freePort(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def echoesDatagrams(port: int) -> bool:
    """Whether a UDP echo on C{port} answers one datagram within 0.2 s."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        try:
            s.sendto(b"ready?", ("127.0.0.1", port))
            s.recv(64)
            return True
        except OSError:
            return False


def compileC(folder: str, source: str) -> str:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise SystemExit("run.py: a C compiler (cc or gcc) is needed for the load generator")
    binary = os.path.join(folder, os.path.splitext(os.path.basename(source))[0])
    subprocess.run([compiler, "-O3", "-o", binary, os.path.join(HERE, source)], check=True)
    return binary


def serverCommands(
    pypy: str | None, cEcho: str, before: str | None = None, cUDPEcho: str = "c_udp_echo"
) -> dict[str, list[str]]:
    python = sys.executable

    def ours(interpreter: str, *args: str, twistdArgs: tuple[str, ...] = ()) -> list[str]:
        listen = "tcp:{port}:interface=127.0.0.1"
        if "--udp" in args:
            args = tuple(a for a in args if a != "--udp") + UDP_UNLIMITED
            listen = "udp:{port}:interface=127.0.0.1"
        if "--proxy" in args:
            args = tuple(a for a in args if a != "--proxy")
            listen = "haproxy:" + listen
        return [
            interpreter,
            "-c",
            "from twisted.scripts.twistd import run; run()",
            *twistdArgs,
            "-n",
            "--pidfile=",
            "uppercase",
            "--listen",
            listen,
            *args,
        ]

    commands = {
        "c-echo": [cEcho, "{port}"],
        "asyncio": [python, os.path.join(HERE, "baselines", "asyncio_echo.py"), "{port}"],
        "twisted5": [python, os.path.join(HERE, "baselines", "twisted_echo.py"), "{port}"],
        "uppercase": ours(python, "--quiet"),
        "uppercase-proxy": ours(python, "--quiet", "--proxy"),
        "uppercase-log": ours(python),
        "uppercase-w2": ours(python, "--quiet", "--workers", "2"),
        "c-udp-echo": [cUDPEcho, "{port}"],
        "asyncio-udp": [python, os.path.join(HERE, "baselines", "asyncio_udp_echo.py"), "{port}"],
        "twisted5-udp": [python, os.path.join(HERE, "baselines", "twisted_udp_echo.py"), "{port}"],
        "uppercase-udp": ours(python, "--quiet", "--udp"),
    }
    try:
        import uvloop  # noqa: F401

        commands["uvloop"] = [*commands["asyncio"], "--uvloop"]
        commands["uvloop-udp"] = [*commands["asyncio-udp"], "--uvloop"]
    except ImportError:
        print("run.py: uvloop is not installed; no uvloop baseline", file=sys.stderr)
    if pypy:
        commands["twisted5-pypy"] = [
            pypy,
            os.path.join(HERE, "baselines", "twisted_echo.py"),
            "{port}",
        ]
        commands["uppercase-pypy"] = ours(pypy, "--quiet")
        commands["twisted5-udp-pypy"] = [
            pypy,
            os.path.join(HERE, "baselines", "twisted_udp_echo.py"),
            "{port}",
        ]
        commands["uppercase-udp-pypy"] = ours(pypy, "--quiet", "--udp")
    if before:
        commands["uppercase-before"] = ours(before, "--quiet")
        commands["uppercase-log-before"] = ours(before)
        commands["uppercase-proxy-before"] = ours(before, "--quiet", "--proxy")
        commands["uppercase-udp-before"] = ours(before, "--quiet", "--udp")
    return commands


PROXIED = {"uppercase-proxy", "uppercase-proxy-before"}
"""Servers that expect a PROXY header on each connection (the load
generator sends one: LOADGEN_PROXY=v1)."""


class Server:
    def __init__(self, command: list[str], cpus: str = SERVER_CPU, udp: bool = False) -> None:
        self.port = freePort(socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
        self._folder = tempfile.TemporaryDirectory()
        argv = [part.replace("{port}", str(self.port)) for part in command]
        self.process = subprocess.Popen(
            ["taskset", "-c", cpus, *argv],
            cwd=self._folder.name,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if udp:
                    if echoesDatagrams(self.port):
                        return
                    raise OSError
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    raise SystemExit(f"run.py: server exited: {argv}") from None
                time.sleep(0.05)
        self.stop()
        raise SystemExit(f"run.py: server did not start: {argv}")

    def rss(self) -> int:
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        self._folder.cleanup()


def runLoad(
    loadgen: str,
    port: int,
    workload: str,
    warmup: float,
    seconds: float,
    cpus: str = LOAD_CPU,
    proxy: bool = False,
) -> dict:
    mode, conns, size, depth = WORKLOADS[workload]
    result = subprocess.run(
        [
            "taskset",
            "-c",
            cpus,
            loadgen,
            "127.0.0.1",
            str(port),
            mode,
            str(conns),
            str(size),
            str(depth),
            str(warmup),
            str(seconds),
        ],
        capture_output=True,
        text=True,
        timeout=warmup + seconds + 60,
        env={**os.environ, "LOADGEN_PROXY": "v1"} if proxy else None,
    )
    if result.returncode != 0:
        raise SystemExit(f"run.py: loadgen failed on {workload}: {result.stderr.strip()}")
    figures = json.loads(result.stdout)
    figures["value"] = figures["mb_per_s"] if mode == "stream" else figures["round_trips_per_s"]
    return figures


def idleMemory(server: Server) -> float:
    baselineFDs = server.fds()
    time.sleep(0.5)
    before = server.rss()
    sockets = []
    for _ in range(IDLE_CONNECTIONS):
        sockets.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
    deadline = time.monotonic() + 30
    while server.fds() < baselineFDs + IDLE_CONNECTIONS and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    perConnection = (server.rss() - before) / IDLE_CONNECTIONS
    for s in sockets:
        s.close()
    return perConnection


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--pypy-warmup", type=float, default=4.0)
    parser.add_argument("--pypy", help="a PyPy interpreter with uppercase installed")
    parser.add_argument(
        "--before", help="an interpreter with an earlier uppercase installed (regression check)"
    )
    parser.add_argument("--only", help="comma-separated servers to run")
    parser.add_argument("--workloads", default="abcdefuv")
    parser.add_argument("--out", default="benchmark-results.json")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))

    with tempfile.TemporaryDirectory() as folder:
        loadgen = compileC(folder, "loadgen.c")
        # Servers run in a folder of their own: an interpreter given by a
        # relative path must be made absolute here.
        pypy, before = (absoluteCommand(p) for p in (args.pypy, args.before))
        commands = serverCommands(
            pypy,
            compileC(folder, "baselines/c_echo.c"),
            before,
            compileC(folder, "baselines/c_udp_echo.c"),
        )
        if args.only:
            commands = {k: v for k, v in commands.items() if k in args.only.split(",")}
        # A server none of the chosen workloads can measure is left out.
        commands = {
            k: v
            for k, v in commands.items()
            if any(isUDP(k) == (w in UDP_WORKLOADS) for w in args.workloads)
        }
        results: dict[str, dict[str, list]] = {name: {} for name in commands}
        for run in range(args.runs):
            for name, command in commands.items():
                warmup = args.pypy_warmup if name.endswith("pypy") else args.warmup
                for workload in args.workloads:
                    if isUDP(name) != (workload in UDP_WORKLOADS):
                        continue  # a TCP server in a UDP workload, or the reverse
                    if workload == "f" and (name == "c-echo" or name in SPREAD | PROXIED):
                        # c-echo: a fixed 64 KiB buffer per connection; several
                        # processes: not one process's memory.  No comparison.
                        continue
                    spread = name in SPREAD
                    server = Server(command, ALL_CPUS if spread else SERVER_CPU, isUDP(name))
                    try:
                        if workload == "f":
                            value = idleMemory(server)
                            figures = {"value": value}
                        else:
                            figures = runLoad(
                                loadgen,
                                server.port,
                                workload,
                                warmup,
                                args.seconds,
                                ALL_CPUS if spread else LOAD_CPU,
                                proxy=name in PROXIED,
                            )
                    finally:
                        server.stop()
                    results[name].setdefault(workload, []).append(figures)
                    print(
                        f"run {run + 1} {name:20} {workload}: {figures['value']:,.1f}",
                        file=sys.stderr,
                        flush=True,
                    )

    report(results, args)
    with open(args.out, "w") as f:
        json.dump({"machine": machine(), "args": vars(args), "results": results}, f, indent=1)
    return 0


def machine() -> dict:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "kernel": platform.release(),
    }


def comparable(ours: str, base: str) -> bool:
    """
    Whether the ratio of our server C{ours} to C{base} is worth printing:
    CPython against the CPython baselines, PyPy against the PyPy one and the
    fastest two (uvloop, C).
    """
    if base.startswith("uppercase") or ours in SPREAD or ours.endswith("-before"):
        return False
    if isUDP(ours) != isUDP(base):
        return False
    if ours.endswith("-pypy"):
        return base.endswith("-pypy") or base in ("uvloop", "c-echo", "uvloop-udp", "c-udp-echo")
    return not base.endswith("-pypy")


TARGETS = [
    ("PROXY listener against a plain one", "uppercase-proxy", "uppercase", "bc", 0.95),
    ("CPython --quiet against the uvloop echo", "uppercase", "uvloop", "bc", 1.0),
    ("PyPy --quiet against the C echo", "uppercase-pypy", "c-echo", "bc", 0.9),
    ("logging every chunk against --quiet", "uppercase-log", "uppercase", "bc", 0.8),
    ("streaming, CPython, against the C echo", "uppercase", "c-echo", "e", 0.6),
    ("UDP, CPython, against the C UDP echo", "uppercase-udp", "c-udp-echo", UDP_WORKLOADS, 0.5),
    ("UDP, PyPy, against the C UDP echo", "uppercase-udp-pypy", "c-udp-echo", UDP_WORKLOADS, 0.8),
]
"""The performance issue's targets: (what, ours, baseline, workloads, at least)."""


def beforeName(name: str) -> str:
    """The server measuring the earlier uppercase in C{name}'s place."""
    return name + "-before" if name.startswith("uppercase") else name


def reportTargets(medians: dict[str, dict[str, float]]) -> None:
    """
    The targets' table; with --before, also each ratio as the earlier
    uppercase measured it in this same run.
    """
    print("\n| target | workload | before | ratio | goal | met |\n|---|---|---|---|---|---|")
    for what, ours, base, workloads, goal in TARGETS:
        for workload in workloads:
            a, b = medians.get(ours, {}).get(workload), medians.get(base, {}).get(workload)
            if not a or not b:
                continue
            ratio = a / b
            earlier = medians.get(beforeName(ours), {}).get(workload)
            earlierBase = medians.get(beforeName(base), {}).get(workload)
            was = f"{earlier / earlierBase:.2f}" if earlier and earlierBase else "-"
            met = "yes" if ratio >= goal else "no"
            print(f"| {what} | {workload} | {was} | {ratio:.2f} | >= {goal:g} | {met} |")


def reportLatency(results: dict, workloads: str) -> None:
    rows = []
    for name, byWorkload in results.items():
        cells = []
        for workload in workloads:
            runs = [
                r.get("latency_us") for r in byWorkload.get(workload, []) if r.get("latency_us")
            ]
            if not runs or WORKLOADS.get(workload, ("stream",))[0] not in ("pingpong", "udp"):
                cells.append("-")
                continue
            p50 = statistics.median(r["p50"] for r in runs)
            p99 = statistics.median(r["p99"] for r in runs)
            cells.append(f"{p50:,.0f} / {p99:,.0f}")
        if any(c != "-" for c in cells):
            rows.append(f"| {name} | " + " | ".join(cells) + " |")
    if rows:
        print("\nRound-trip latency, p50 / p99 in microseconds (medians over runs):\n")
        print("| server | " + " | ".join(workloads) + " |")
        print("|---" * (len(workloads) + 1) + "|")
        print("\n".join(rows))


def report(results: dict, args: argparse.Namespace) -> None:
    names = list(results)
    units = {"a": "rt/s", "b": "rt/s", "c": "rt/s", "d": "MB/s", "e": "MB/s", "f": "B/conn"}
    units.update(u="dg/s", v="dg/s")
    print(
        f"\nMachine: {machine()}\nMedians of {args.runs} runs, {args.seconds:g} s each (min-max in brackets).\n"
    )
    print("| workload | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    medians: dict[str, dict[str, float]] = {n: {} for n in names}
    for workload in args.workloads:
        cells = []
        for name in names:
            values = [r["value"] for r in results[name].get(workload, [])]
            if not values:
                cells.append("-")
                continue
            median = statistics.median(values)
            medians[name][workload] = median
            cells.append(f"{median:,.0f} [{min(values):,.0f}-{max(values):,.0f}]")
        print(f"| {workload} ({units[workload]}) | " + " | ".join(cells) + " |")
    print("\nRatios of medians (for f, baseline / ours: above 1 means we use less memory):\n")
    pairs = [
        (ours, base)
        for ours in names
        if ours.startswith("uppercase")
        for base in names
        if comparable(ours, base)
    ]
    for variant in ("uppercase-log", "uppercase-w2", "uppercase-proxy"):
        if {variant, "uppercase"} <= set(names):
            pairs.append((variant, "uppercase"))
    for variant in ("uppercase-log-before", "uppercase-proxy-before"):
        if {variant, "uppercase-before"} <= set(names):
            pairs.append((variant, "uppercase-before"))
    for now in ("uppercase", "uppercase-log", "uppercase-proxy"):
        if {now, now + "-before"} <= set(names):
            pairs.append((now, now + "-before"))
    print("| ratio | " + " | ".join(args.workloads) + " |")
    print("|---" * (len(args.workloads) + 1) + "|")
    for ours, base in pairs:
        cells = []
        for workload in args.workloads:
            a, b = medians[ours].get(workload), medians[base].get(workload)
            if not a or not b:
                cells.append("-")
            elif workload == "f":
                cells.append(f"{b / a:.2f}")
            else:
                cells.append(f"{a / b:.2f}")
        print(f"| {ours} / {base} | " + " | ".join(cells) + " |")
    if "c-echo" in names:
        print(
            "\nThe ceiling: c-echo (C, epoll) as a multiple of the other baselines."
            " Where the load generator's idle share against c-echo is near 0, it"
            " is saturated, and no server can be measured above these ratios here:\n"
        )
        for base in names:
            if base == "c-echo" or base.startswith("uppercase") or isUDP(base):
                continue
            cells = []
            for workload in args.workloads:
                a, b = medians["c-echo"].get(workload), medians[base].get(workload)
                cells.append(f"{workload}={a / b:.2f}" if a and b and workload != "f" else "")
            print(f"- c-echo / {base}: " + ", ".join(c for c in cells if c))
    if "c-udp-echo" in names:
        print("\nThe UDP ceiling: c-udp-echo as a multiple of the other UDP baselines:\n")
        for base in names:
            if base == "c-udp-echo" or base.startswith("uppercase") or not isUDP(base):
                continue
            cells = []
            for workload in UDP_WORKLOADS:
                a, b = medians["c-udp-echo"].get(workload), medians[base].get(workload)
                cells.append(f"{workload}={a / b:.2f}" if a and b else "")
            print(f"- c-udp-echo / {base}: " + ", ".join(c for c in cells if c))
    reportTargets(medians)
    reportLatency(results, args.workloads)
    print(
        "\nLoad generator idle share (time it polled and found nothing to do, i.e."
        " waited for the server), median per workload:\n"
    )
    for name in names:
        cells = []
        for workload in args.workloads:
            idle = [r["idle"] for r in results[name].get(workload, []) if "idle" in r]
            cells.append(f"{workload}={statistics.median(idle):.2f}" if idle else f"{workload}=-")
        print(f"- {name}: " + ", ".join(cells))
    reportLoss(results)


def reportLoss(results: dict) -> None:
    """
    The UDP servers' datagrams lost (no reply within the load generator's
    timeout) and late replies, summed over runs: a server that drops what it
    cannot serve looks faster than it is unless this is read beside its rate.
    """
    lines = []
    for name, byWorkload in results.items():
        cells = []
        for workload in UDP_WORKLOADS:
            runs = byWorkload.get(workload, [])
            if runs:
                lost, late = sum(r["lost"] for r in runs), sum(r["late"] for r in runs)
                cells.append(f"{workload}: {lost:,} lost, {late:,} late")
        if cells:
            lines.append(f"- {name}: " + "; ".join(cells))
    if lines:
        print("\nUDP datagrams lost and late replies, summed over runs:\n")
        print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
