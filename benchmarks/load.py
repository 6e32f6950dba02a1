"""Load: 2, 10 and 20 edges through real Flower on loopback; server peak memory and throughput.

For each client count, one short hierarchical run (``hierfl.deploy.launch.run_local``: a
``flower-superlink``, one ``hierfl-client`` SuperNode per edge and ``flwr run``). A background
thread reads ``/proc/<pid>/status`` every ``--interval`` seconds for every process below this
one and sorts them by role through the process tree:

- ``serverapp``: the ``flwr-serverapp`` process (cloud trainer and orchestrator);
- ``superlink``: the ``flower-superlink`` process (it buffers the messages);
- ``edges``: each SuperNode with everything below it (its SuperExec and ``flwr-clientapp``s).

A role's peak is the larger of its sampled RSS sum and the kernel's high-water mark (``VmHWM``) of
any one of its processes, so a single-process role's peak is exact even between samples. RSS counts
the shared library pages (torch: about 350 MiB) once per process, so the edges' sum overstates what
they occupy together; ``edges_peak_anon_mib`` sums their private memory (``RssAnon``) instead.
Throughput is the activation traffic up (``communication.uplink_bytes`` of ``metrics.json``, MB =
10^6 bytes; the replies' edge weights are in it too) over the ServerApp's wall time and over the
cloud's compute time. Writes ``load.json`` and ``load.png`` and prints a Markdown table. Linux
only (``/proc``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, NamedTuple

from benchmarks.harness import (
    add_overrides,
    config_from,
    figure,
    markdown_table,
    parser,
    results_dir,
    write_json,
)
from hierfl.config import HierConfig
from hierfl.deploy.launch import run_local

OVERRIDES_HELP = "any config key, e.g. scenario=synthetic samples-per-class=400 input-shape=3x32x32"
ROLES = ("serverapp", "superlink", "superexec", "edges", "other")
Proc = tuple[int, list[str]]  # (parent pid, argv)
COLUMNS = (
    ("clients", "clients", "{:d}"),
    ("wall_s", "wall s", "{:.1f}"),
    ("round_median_s", "round s (median)", "{:.1f}"),
    ("server_peak_rss_mib", "serverapp peak MiB", "{:.0f}"),
    ("superlink_peak_rss_mib", "superlink peak MiB", "{:.0f}"),
    ("edges_peak_rss_mib", "edges peak MiB", "{:.0f}"),
    ("edges_peak_anon_mib", "edges anon MiB", "{:.0f}"),
    ("uplink_mb", "uplink MB", "{:.2f}"),
    ("mb_per_s_wall", "MB/s (wall)", "{:.3f}"),
    ("mb_per_s_cloud", "MB/s (cloud)", "{:.2f}"),
    ("samples_per_s", "samples/s", "{:.1f}"),
    ("accuracy", "cloud acc", "{:.3f}"),
)


class Memory(NamedTuple):
    """One process's memory from ``/proc/<pid>/status``, in KiB."""

    rss: int  # VmRSS: resident now, shared library pages included
    hwm: int  # VmHWM: the kernel's peak of VmRSS over the process's life
    anon: int  # RssAnon: resident private memory (heap, tensors), no shared file pages


def parse_status(text: str) -> Memory:
    """The memory fields of a ``/proc/<pid>/status`` text; 0 where absent (zombies).

    >>> parse_status("VmHWM:\\t  2048 kB\\nVmRSS:\\t  1024 kB\\nRssAnon:\\t 512 kB\\n")
    Memory(rss=1024, hwm=2048, anon=512)
    """
    values = {"VmRSS:": 0, "VmHWM:": 0, "RssAnon:": 0}
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] in values:
            values[parts[0]] = int(parts[1])
    return Memory(values["VmRSS:"], values["VmHWM:"], values["RssAnon:"])


def available_mib() -> float:
    """``MemAvailable`` of the machine, in MiB."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("inf")


def _program(argv: list[str]) -> str:
    """The program's name: the script a Python interpreter runs (``-m`` module included)."""
    names = [os.path.basename(a) for a in argv[:3]]
    if names and names[0].startswith("python"):
        if len(argv) > 2 and argv[1] == "-m":
            return argv[2]
        return names[1] if len(names) > 1 else names[0]
    return names[0] if names else ""


def classify(pid: int, procs: dict[int, Proc], root: int) -> str | None:
    """The role of ``pid`` below ``root`` (see ``ROLES``), or None if it is not below ``root``.

    >>> procs = {10: (1, ["flower-superlink"]), 11: (10, ["flower-superexec"]),
    ...          12: (11, ["python", "/v/bin/flwr-serverapp"]),
    ...          20: (1, ["python", "-m", "hierfl.deploy.supernode"]), 21: (20, ["flwr-clientapp"])}
    >>> [classify(p, procs, 1) for p in (10, 11, 12, 21, 1)]
    ['superlink', 'superexec', 'serverapp', 'edges', None]
    """
    top, seen = pid, set()
    while top in procs and procs[top][0] != root:
        if top in seen:  # a pid reused mid-scan can fake a cycle
            return None
        seen.add(top)
        top = procs[top][0]
    if top not in procs:
        return None
    if _program(procs[pid][1]) in ("flwr-serverapp", "flwr-simulation"):
        return "serverapp"  # the simulation engine runs the ServerApp in flwr-simulation
    head = _program(procs[top][1])
    if head == "flower-superlink":
        return "superlink" if top == pid else "superexec"
    if head in ("hierfl.deploy.supernode", "hierfl-client", "flower-supernode"):
        return "edges"
    return "other"


def scan_processes() -> dict[int, Proc]:
    """Every live process: pid -> (parent pid, argv)."""
    procs: dict[int, Proc] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        procs[int(entry.name)] = (int(stat.rsplit(")", 1)[1].split()[1]), [a for a in argv if a])
    return procs


class RssSampler:
    """Samples the memory of every process below ``root``, by role, from a daemon thread.

    If the machine's available memory falls under ``min_available_mib`` it interrupts the main
    thread (SIGINT), so that the launcher stops every process before the kernel's OOM killer
    picks one, possibly someone else's; ``low_memory`` then says why.
    """

    def __init__(
        self,
        root: int,
        interval: float = 0.2,
        report: Callable[[dict[str, float], int], None] | None = None,
        *,
        report_every: float = 20.0,
        min_available_mib: float = 0.0,
    ) -> None:
        self.root = root
        self.interval = interval
        self.report = report
        self.report_every = report_every
        self.min_available_mib = min_available_mib
        self.peak_kib = dict.fromkeys(ROLES, 0)  # max over samples of the role's RSS sum
        self.anon_kib = dict.fromkeys(ROLES, 0)  # max over samples of the role's RssAnon sum
        self.hwm_kib = dict.fromkeys(ROLES, 0)  # max VmHWM of any one process of the role
        self.samples = 0
        self.low_memory: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def peak_mib(self, role: str) -> float:
        """The role's peak RSS: sampled sum, or one process's exact high-water mark if larger."""
        return max(self.peak_kib[role], self.hwm_kib[role]) / 1024

    def sample(self) -> tuple[dict[str, int], int]:
        """One pass over the processes: RSS per role (KiB) and the process count."""
        procs = scan_processes()
        rss, anon, count = dict.fromkeys(ROLES, 0), dict.fromkeys(ROLES, 0), 0
        for pid in procs:
            role = classify(pid, procs, self.root)
            if role is None:
                continue
            try:
                memory = parse_status(Path(f"/proc/{pid}/status").read_text())
            except OSError:
                continue
            rss[role] += memory.rss
            anon[role] += memory.anon
            self.hwm_kib[role] = max(self.hwm_kib[role], memory.hwm)
            count += 1
        for role in ROLES:
            self.peak_kib[role] = max(self.peak_kib[role], rss[role])
            self.anon_kib[role] = max(self.anon_kib[role], anon[role])
        self.samples += 1
        return rss, count

    def _loop(self) -> None:
        last_report = time.monotonic()
        while not self._stop.is_set():
            totals, count = self.sample()
            if self.report and time.monotonic() - last_report >= self.report_every:
                self.report({r: kib / 1024 for r, kib in totals.items()}, count)
                last_report = time.monotonic()
            free = available_mib()
            if free < self.min_available_mib and self.low_memory is None:
                self.low_memory = (
                    f"available memory fell to {free:.0f} MiB (< --min-available-mib "
                    f"{self.min_available_mib:.0f})"
                )
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
            self._stop.wait(self.interval)


class _Prefixed:
    """A text stream that prefixes each line (the run's log, tagged with its client count)."""

    def __init__(self, prefix: str, stream: IO[str], lock: threading.Lock) -> None:
        self.prefix, self.stream, self.lock = prefix, stream, lock

    def write(self, text: str) -> int:
        with self.lock:
            for line in text.splitlines():
                self.stream.write(f"{self.prefix}{line}\n")
            self.stream.flush()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def survivors(root: int) -> list[tuple[int, str]]:
    """Live (non-zombie) processes still below ``root``: they should be none after a run."""
    procs = scan_processes()
    found = []
    for pid, (_, argv) in procs.items():
        if pid == os.getpid() or classify(pid, procs, root) is None:
            continue
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            found.append((pid, _program(argv)))
    return found


def run_one(base: HierConfig, clients: int, out: Path, args: argparse.Namespace) -> dict:
    """One run with ``clients`` edges; returns its ``load.json`` row."""
    config = HierConfig.from_mapping(
        {"clients": clients, "out": str(out / f"load_run_{clients}")}, base=base
    ).validate()
    echo = _Prefixed(f"[{clients:>2} clients] ", sys.stdout, threading.Lock())

    def report(mib: dict[str, float], count: int) -> None:
        echo.write(
            f"memory: serverapp {mib['serverapp']:.0f} MiB, superlink {mib['superlink']:.0f} "
            f"MiB, edges {mib['edges']:.0f} MiB over {count} processes"
        )

    echo.write(
        f"starting: {clients} SuperNodes, rounds={config.rounds} epochs="
        f"{config.local_epochs} scenario={config.scenario}"
    )
    start = time.perf_counter()
    sampler = RssSampler(
        os.getpid(), args.interval, report, min_available_mib=args.min_available_mib
    )
    with sampler:
        try:
            run_dir = run_local(config, echo=echo, timeout=args.timeout)
        except KeyboardInterrupt:
            if sampler.low_memory is None:
                raise
            raise SystemExit(
                f"stopped the {clients}-client run: {sampler.low_memory}; every process of the "
                "run was stopped. Free memory or run fewer --clients."
            ) from None
        finally:
            for pid, cmd in survivors(os.getpid()):
                echo.write(f"warning: process {pid} outlived the run; stopping it: {cmd}")
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
    total_s = time.perf_counter() - start
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return row_from(metrics, clients, sampler, total_s)


def row_from(metrics: dict, clients: int, sampler: RssSampler, total_s: float) -> dict:
    t, up = metrics["time"], metrics["communication"]["uplink_bytes"] / 1e6
    rounds = metrics.get("rounds", [])
    samples = sum(int(r.get("examples", 0)) for r in rounds)
    return {
        "clients": clients,
        "wall_s": t["wall_s"],
        "launch_s": total_s,
        "cloud_compute_s": t["cloud_compute_s"],
        "round_median_s": statistics.median(r["wall_s"] for r in rounds) if rounds else 0.0,
        "server_peak_rss_mib": sampler.peak_mib("serverapp"),
        "superlink_peak_rss_mib": sampler.peak_mib("superlink"),
        "superexec_peak_rss_mib": sampler.peak_mib("superexec"),
        "edges_peak_rss_mib": sampler.peak_mib("edges"),
        "edges_peak_anon_mib": sampler.anon_kib["edges"] / 1024,
        "rss_samples": sampler.samples,
        "uplink_mb": up,
        "mb_per_s_wall": up / t["wall_s"] if t["wall_s"] else 0.0,
        "mb_per_s_cloud": up / t["cloud_compute_s"] if t["cloud_compute_s"] else 0.0,
        "samples": samples,
        "samples_per_s": samples / t["wall_s"] if t["wall_s"] else 0.0,
        "accuracy": metrics["final"].get("cloud_accuracy", float("nan")),
    }


def markdown(rows: Iterable[dict]) -> str:
    """The rows as a Markdown table.

    >>> markdown([{"clients": 2, "wall_s": 1.25}]).splitlines()[2].split(" | ")[:3]
    ['| 2', '1.2', '-']
    """
    lines = [
        " | ".join(fmt.format(row[key]) if key in row else "-" for key, _, fmt in COLUMNS)
        for row in rows
    ]
    return markdown_table(" | ".join(title for _, title, _ in COLUMNS), lines, rule="---:")


def plot(rows: list[dict], path: Path) -> None:
    clients = [r["clients"] for r in rows]
    fig = figure(figsize=(10, 4))
    mem, thr = fig.subplots(1, 2)
    for key, label in (
        ("server_peak_rss_mib", "flwr-serverapp"),
        ("superlink_peak_rss_mib", "flower-superlink"),
        ("edges_peak_rss_mib", "edges (RSS sum)"),
        ("edges_peak_anon_mib", "edges (private sum)"),
    ):
        mem.plot(clients, [r[key] for r in rows], "o-", label=label)
    mem.set(xlabel="edge clients", ylabel="peak RSS (MiB)", title="Peak memory", yscale="log")
    mem.legend(loc="center right", fontsize="small")
    thr.plot(clients, [r["mb_per_s_wall"] for r in rows], "o-", label="per ServerApp wall s")
    thr.plot(clients, [r["mb_per_s_cloud"] for r in rows], "s--", label="per cloud compute s")
    thr.set(xlabel="edge clients", ylabel="activation MB/s", title="Throughput", yscale="log")
    thr.legend(fontsize="small")
    for ax in (mem, thr):
        ax.set_xticks(clients)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__, raw=True)
    p.add_argument("--clients", default="2,10,20", help="comma-separated edge counts")
    p.add_argument("--experiences", type=int, default=1)
    p.add_argument("--rounds", type=int, default=1, help="rounds per experience")
    p.add_argument("--epochs", type=int, default=1, help="local epochs per round")
    p.add_argument("--interval", type=float, default=0.2, help="seconds between RSS samples")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds allowed per run")
    p.add_argument(
        "--min-available-mib",
        type=float,
        default=2048.0,
        help="stop the run if the machine's MemAvailable falls below this (0: never)",
    )
    add_overrides(p, OVERRIDES_HELP)
    args = p.parse_args(argv)
    if not Path("/proc/self/status").exists():
        p.error("this benchmark reads /proc: it runs on Linux only")
    counts = [int(c) for c in args.clients.split(",") if c.strip()]
    values = {
        "scenario": "digits",
        "experiences": args.experiences,
        "rounds": args.rounds,
        "local-epochs": args.epochs,
    }
    base = config_from(values, args.overrides)
    out = results_dir(args.out, resolve=True)
    rows: list[dict] = []
    start, interrupted = time.perf_counter(), False
    try:
        for n in counts:
            rows.append(run_one(base, n, out, args))
            print(markdown(rows[-1:]).splitlines()[-1], flush=True)
    except KeyboardInterrupt:  # run_local has stopped its processes; keep the finished rows
        print("interrupted: every process of the run was stopped", flush=True)
        interrupted = True
        if not rows:
            return 130
    total_s = time.perf_counter() - start
    result = {"benchmark": "load", "config": base.to_dict(), "machine": {"cpus": os.cpu_count()}}
    result.update(total_s=total_s, interrupted=interrupted, rows=rows)
    write_json(out / "load.json", result)
    plot(rows, out / "load.png")
    print(markdown(rows))
    print(f"\n{len(rows)} runs in {total_s:.0f}s; wrote {out / 'load.json'} and load.png")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
