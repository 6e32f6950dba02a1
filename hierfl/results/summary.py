"""Turn a finished run into ``metrics.json`` and the run folder (docs/reference.md)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, cast

from hierfl.analysis.overhead import RoundOverhead, round_overhead
from hierfl.config import HierConfig
from hierfl.modes import MODES
from hierfl.results.accuracy import summarize
from hierfl.results.run_folder import build_metrics, write_run_folder
from hierfl.results.run_result import RunResult

log = logging.getLogger("hierfl")
_TOTALS = ("uplink_bytes", "downlink_bytes")  # written from RunResult's own totals
ENGINES = ("flower", "inprocess", "simulation")
# Set by ``hierfl run --engine simulation`` for the processes it starts: the ServerApp's grid
# does not say whether its nodes are SuperNodes or Ray actors.
ENGINE_ENV = "HIERFL_ENGINE"


def _overhead(config: HierConfig, result: RunResult, engine: str) -> RoundOverhead | None:
    """Flower's fixed cost per round; none in process, where edges run one after another."""
    if engine == "inprocess":
        return None
    per_round = cast(list[dict[str, Any]], result.communication.get("per_round", []))
    link_of = {(t["experience"], t["round"]): t.get("emulated_link_s", 0.0) for t in per_round}
    links = [link_of.get((r["experience"], r["round"]), 0.0) for r in result.rounds]
    return round_overhead(result.rounds, links, edges_at_once(config, engine))


def edges_at_once(config: HierConfig, engine: str) -> int:
    """How many of a round's edges compute side by side: all of them on their own devices; in
    the simulation engine on this machine, as many as Ray has CPUs for (``sim-cpus-per-edge``
    each), so that waiting for a free actor is not counted as overhead."""
    if engine != "simulation":
        return config.round_clients
    return max(1, min(config.round_clients, (os.cpu_count() or 1) // config.sim_cpus_per_edge))


def run_metrics(config: HierConfig, result: RunResult, *, engine: str = "flower") -> dict:
    """The ``metrics.json`` content of a run (finished, or stopped by ``result.status``)."""
    busy = result.cloud_compute_s / result.wall_s if result.wall_s else 0.0
    overhead = _overhead(config, result, engine)
    return build_metrics(
        config=config.to_dict(),
        mode=config.mode,
        matrix=result.matrix,
        classes=result.classes[: result.matrix.num_experiences()],
        communication={
            "uplink_bytes": result.uplink_bytes,
            "downlink_bytes": result.downlink_bytes,
            "raw_input_bytes_uplink": result.raw_input_bytes_uplink,
            # Payload bytes: tensors only (activations after the codec, labels, weights or
            # their coded changes, gradients); config and metric records are ``control_bytes``,
            # eval copies ``eval_bytes`` (measurement, not training); Flower's framing is not
            # counted. ``total_bytes``: up, down and control.
            "total_bytes": result.uplink_bytes
            + result.downlink_bytes
            + int(cast(int, result.communication.get("control_bytes", 0))),
            "cloud_only_uint8_bytes": result.cloud_only_uint8_bytes,
            "cloud_only_png_bytes": result.cloud_only_png_bytes,
            "codec": config.wire_codec,  # code8/code4 with a bottleneck
            "raw_codec": config.raw_codec if MODES[config.mode].payload == "raw" else None,
            **{k: v for k, v in result.communication.items() if k not in _TOTALS},
        },
        time={
            "wall_s": result.wall_s,
            "edge_compute_s": result.edge_compute_s,
            "cloud_compute_s": result.cloud_compute_s,
            "emulated_link_s": result.emulated_link_s,
            "edge_slowdown": config.edge_slowdown,
            "cloud_busy_fraction": busy,
            "fixed_overhead_per_round_s": overhead.overhead_s if overhead else 0.0,
            "fixed_overhead_share": overhead.share if overhead else 0.0,
        },
        rounds=result.rounds,
        clients=result.clients,
        extra={
            "status": result.status,
            **({"reason": result.reason} if result.reason else {}),
            "engine": engine,
            "events": result.failures,
            "rejected_replies": result.rejected,
            "early_exit": result.early_exit,
            "early_exit_by_experience": result.early_exit_by_experience,
            **({"per_depth": per_depth(config, result)} if config.fleet_cuts else {}),
        },
    )


_UNTRAINED = {"examples": 0, "loss": 0.0, "accuracy": 0.0}


def per_depth(config: HierConfig, result: RunResult) -> dict[str, dict[str, Any]]:
    """Edges at several depths, by cut (shallowest first): the partitions there, the mean
    final cloud and edge stream accuracy of those evaluated (each edge's own exit, the cloud
    entered at its cut; ``per_client``: with ``clients-per-round``, the edges of the last
    round), and what the cloud trained on from that cut (``cloud_train``)."""
    out: dict[str, dict[str, Any]] = {}
    for cut in config.fleet_cuts:
        partitions = [p for p, c in enumerate(config.edge_cuts) if c == cut]
        evaluated = [
            p for p in partitions if p in result.clients and result.clients[p].num_experiences()
        ]
        finals = [summarize(result.clients[p]) for p in evaluated]
        row: dict[str, Any] = {"partitions": partitions, "evaluated": evaluated}
        for key in ("cloud_accuracy", "edge_accuracy"):
            values = [f[key] for f in finals if key in f]
            if values:
                row[key] = sum(values) / len(values)
        row["cloud_train"] = dict(result.cloud_by_depth.get(cut, _UNTRAINED))
        out[cut] = row
    return out


def finish_run(config: HierConfig, result: RunResult, out: Path, *, engine: str = "flower") -> dict:
    """Write metrics.json, metrics.csv and the plots; log the summary; return the metrics."""
    metrics = run_metrics(config, result, engine=engine)
    write_run_folder(out, metrics)
    for line in summary_lines(metrics, out):
        log.info(line)
    overhead = _overhead(config, result, engine)
    advice = (
        overhead.advice(config.local_epochs, online=config.online, rounds=config.rounds)
        if overhead
        else None
    )
    if advice:
        log.info(advice)
    return metrics


def summary_lines(metrics: dict, out: Path | None) -> list[str]:
    """The closing lines of a run: each exit's stream accuracy and forgetting, bytes, folder."""
    final = metrics.get("final") or {}
    exits = [k.removesuffix("_accuracy") for k in final if k.endswith("_accuracy")]
    accuracy = ", ".join(
        f"{name} {final[name + '_accuracy']:.3f} "
        f"(forgetting {final.get(name + '_forgetting', 0.0):.3f})"
        for name in exits
    )
    comm, time = metrics["communication"], metrics["time"]
    lines = [
        f"{metrics.get('status', 'completed')} in {time['wall_s']:.1f}s: stream accuracy "
        f"{accuracy or 'n/a (no experience finished)'}",
        f"sent {_size(comm['uplink_bytes'])} up, {_size(comm['downlink_bytes'])} down"
        + (
            f" ({_size(comm['raw_input_bytes_uplink'])} of raw inputs)"
            if comm.get("raw_input_bytes_uplink")
            else ""
        )
        + f"; cloud busy {100 * time.get('cloud_busy_fraction', 0.0):.0f}% of wall time",
        *_bytes_lines(comm),
        *_depth_lines(metrics.get("per_depth", {})),
        *_defence_lines(metrics.get("events", [])),
    ]
    if out is not None:
        lines.append(f"run folder {out}")
    return lines


def _bytes_lines(comm: dict) -> list[str]:
    """The split of the bytes, and what cloud-only would have uploaded for the same samples."""
    if "code_bytes" not in comm:
        return []
    lines = [
        f"bytes: {_size(comm.get('total_bytes', 0))} in all = codes {_size(comm['code_bytes'])}"
        f" + weights {_size(comm['weight_bytes_up'])} up, {_size(comm['weight_bytes_down'])}"
        f" down + control {_size(comm['control_bytes'])}"
        + (
            f" (eval copies to measure the edges' accuracy, not counted: "
            f"{_size(comm['eval_bytes'])})"
            if comm.get("eval_bytes")
            else ""
        )
    ]
    if comm.get("cloud_only_png_bytes"):
        lines.append(
            "cloud-only would have uploaded these samples as "
            f"{_size(comm['cloud_only_uint8_bytes'])} of uint8 pixels, "
            f"{_size(comm['cloud_only_png_bytes'])} as PNG files"
        )
    return lines


def _depth_lines(depths: dict[str, dict[str, Any]]) -> list[str]:
    """Per cut of a fleet: its edges' accuracy, and what the cloud trained on from there."""
    lines = []
    for cut, row in depths.items():
        accuracy = ", ".join(
            f"{name} {row[name + '_accuracy']:.3f}"
            for name in ("cloud", "edge")
            if name + "_accuracy" in row
        )
        train = row["cloud_train"]
        lines.append(
            f"at {cut} (edge{'s' * (len(row['partitions']) > 1)} "
            f"{', '.join(map(str, row['partitions']))}): {accuracy or 'n/a'}; "
            f"the cloud trained on {train['examples']} examples from there, loss "
            f"{train['loss']:.3f}, accuracy {train['accuracy']:.3f}"
        )
    return lines


_DEFENCE_WORDS = {
    "reply-rejected": "replies rejected",
    "update-clipped": "updates bounded",
    "edge-excluded": "rounds left out by label-screen",
}


def _defence_lines(events: list[dict]) -> list[str]:
    """Per edge the defences acted on: rejected replies, bounded updates, rounds left out."""
    counts: dict[object, dict[str, int]] = {}
    for e in events:
        if e.get("event") in _DEFENCE_WORDS:
            per = counts.setdefault(e.get("partition"), {})
            per[e["event"]] = per.get(e["event"], 0) + 1
    return [
        f"defences on edge {p}: "
        + ", ".join(f"{n} {_DEFENCE_WORDS[kind]}" for kind, n in sorted(per.items()))
        + " (metrics.json events)"
        for p, per in sorted(counts.items(), key=lambda kv: str(kv[0]))
    ]


def _size(nbytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(nbytes) < 1000 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return f"{nbytes:.1f} GB"
