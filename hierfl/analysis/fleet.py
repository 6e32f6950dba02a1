"""A cut per device: the planner for a fleet of edges that differ in speed and link.

Each device trains its segment and exit and ships its activations on its own link, so its own
time at a cut is the single-device plan's hierarchical epoch (``hierfl.analysis.planner``) with
its FLOP/s and link. The cloud trains every device's batches at that device's cut, one after
another. A round takes as long as the slower of the two:

    round_s(cuts) = max(max_i own_s[i][cuts[i]], sum_i cloud_s[cuts[i]])

``plan_fleet`` finds the cuts that minimise it, exactly: for every candidate bound on the
devices' own times it gives each device, among its cuts within the bound, the one that costs
the cloud least. The optimum's own bound is one of the candidates, and there this choice is
no slower on either term, so the best candidate is the optimum (tests/unit/test_fleet_planner.py
checks it against trying every combination). The best single cut for all devices is planned
beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from hierfl.analysis.performance import costs_from_flops
from hierfl.analysis.planner import CutNumbers, PlanSettings, plan_cuts
from hierfl.errors import ConfigError


@dataclass(frozen=True)
class Device:
    """One edge device: ``slowdown`` times slower than the plan's ``edge-flops``, on its own
    uplink (bits/s; the downlink the same) and one-way latency."""

    slowdown: float
    bitrate_bps: float
    latency_s: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Device:
        """``SLOWDOWN:BITRATE[:LATENCY]``, e.g. ``4:1e6`` or ``16:0.25e6:0.05``."""
        parts = text.split(":")
        if len(parts) not in (2, 3):
            raise ConfigError("--device", f"expected SLOWDOWN:BITRATE[:LATENCY], got {text!r}")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise ConfigError("--device", f"expected numbers, got {text!r}") from None
        if not all(math.isfinite(v) for v in values) or values[0] <= 0 or values[1] <= 0:
            raise ConfigError("--device", f"slowdown and bitrate must be > 0, got {text!r}")
        if len(values) == 3 and values[2] < 0:
            raise ConfigError("--device", f"latency must be >= 0, got {text!r}")
        return cls(*values)

    def settings(self, base: PlanSettings) -> PlanSettings:
        """``base`` on this device, alone with the cloud."""
        return replace(
            base,
            bitrate_bps=self.bitrate_bps,
            downlink_bps=None,
            latency_s=self.latency_s,
            edge_flops=base.edge_flops / self.slowdown,
            clients=1,
        )


@dataclass(frozen=True)
class FleetPlan:
    """The cut of each device and the round time they predict; the best single cut beside."""

    devices: tuple[Device, ...]
    cuts: tuple[str, ...]  # one per device
    round_s: float
    own_s: tuple[float, ...]  # each device's own time at its cut
    cloud_s: float  # the cloud's busy time over all devices' batches
    single_cut: str | None  # the best cut for every device (None: none fits all)
    single_round_s: float


def fleet_costs(
    cuts: Sequence[CutNumbers], devices: Sequence[Device], settings: PlanSettings
) -> tuple[list[dict[str, float]], dict[str, float]]:
    """Each device's own seconds per cut (only the cuts it can train: its memory estimate fits),
    and the cloud's seconds per cut for one device's batches."""
    own: list[dict[str, float]] = []
    for device in devices:
        plan = plan_cuts(cuts, device.settings(settings))
        own.append({r.cut: r.epoch_s for r in plan.rows if r.mode == "hierarchical" and r.fits})
    cloud = {}
    for cut in cuts:
        costs = costs_from_flops(
            cut, settings.batch_size, settings.edge_flops, settings.cloud_flops
        )
        cloud[cut.label] = settings.batches * costs.cloud_train_s
    return own, cloud


def round_seconds(
    choice: Sequence[str], own: Sequence[dict[str, float]], cloud: dict[str, float]
) -> float:
    """The predicted round time of ``choice`` (a cut per device)."""
    slowest = max(own[i][c] for i, c in enumerate(choice))
    return max(slowest, sum(cloud[c] for c in choice))


def plan_fleet(
    cuts: Sequence[CutNumbers], devices: Sequence[Device], settings: PlanSettings
) -> FleetPlan:
    """The cut per device that minimises the predicted round time (see the module doc).

    Raises:
        ConfigError: no devices, or a device on which no cut fits its memory.
    """
    if not devices:
        raise ConfigError("--device", "a fleet needs at least one device")
    own, cloud = fleet_costs(cuts, devices, settings)
    for i, options in enumerate(own):
        if not options:
            raise ConfigError("--device", f"no cut fits device {i + 1}'s edge memory")
    value, chosen = best_cuts(own, cloud)
    shared = [c.label for c in cuts if all(c.label in options for options in own)]
    singles = {c: round_seconds([c] * len(devices), own, cloud) for c in shared}
    single = min(singles, key=lambda c: singles[c], default=None)
    return FleetPlan(
        tuple(devices),
        chosen,
        value,
        tuple(own[i][c] for i, c in enumerate(chosen)),
        sum(cloud[c] for c in chosen),
        single,
        singles[single] if single is not None else math.inf,
    )


def best_cuts(
    own: Sequence[dict[str, float]], cloud: dict[str, float]
) -> tuple[float, tuple[str, ...]]:
    """The least round time over every choice of a cut per device, and a choice reaching it:
    ``own[i]`` maps device i's cuts to its own seconds, ``cloud`` each cut to the cloud's."""
    best: tuple[float, tuple[str, ...]] | None = None
    for bound in sorted({s for options in own for s in options.values()}):
        choice = []
        for options in own:
            within = {c: s for c, s in options.items() if s <= bound}
            if not within:
                break
            choice.append(_cheapest(within, cloud))
        else:
            value = round_seconds(choice, own, cloud)
            if best is None or value < best[0]:
                best = (value, tuple(choice))
    if best is None:
        raise ConfigError("--device", "every device needs at least one cut")
    return best


def _cheapest(within: dict[str, float], cloud: dict[str, float]) -> str:
    """The cut of ``within`` (cut -> own seconds) that costs the cloud least, then the device."""
    return min(within, key=lambda c: (cloud[c], within[c]))


def format_fleet(plan: FleetPlan) -> str:
    """One line per device, then the round time against the best single cut."""
    lines = [f"{'device':>6} {'slowdown':>8} {'uplink bit/s':>12} {'cut':>14} {'own s':>10}"]
    for i, (device, cut, own) in enumerate(zip(plan.devices, plan.cuts, plan.own_s, strict=True)):
        lines.append(
            f"{i + 1:>6} {device.slowdown:>8g} {device.bitrate_bps:>12g} {cut:>14} {own:>10.4g}"
        )
    lines.append(f"per-device cuts: {plan.round_s:.4g} s a round (cloud busy {plan.cloud_s:.4g} s)")
    if plan.single_cut is None:
        lines.append("no single cut fits every device")
    else:
        gain = 1 - plan.round_s / plan.single_round_s if plan.single_round_s else 0.0
        lines.append(
            f"best single cut {plan.single_cut}: {plan.single_round_s:.4g} s a round "
            f"(per-device cuts {gain:.0%} faster)"
        )
    if all(d.slowdown >= 1 for d in plan.devices):  # hierfl run emulates slower edges only
        lines.append(f'run it: hierfl run clients={len(plan.devices)} per-edge="{per_edge(plan)}"')
    return "\n".join(lines)


def per_edge(plan: FleetPlan) -> str:
    """The plan as ``hierfl run``'s ``per-edge`` value: each device's cut, slowdown and link
    (a bottleneck in the plan's label, ``layer1+4x8b``, is the run's ``bottleneck`` and
    ``code-bits``, one for all edges)."""
    return per_edge_value(
        [label.partition("+")[0] for label in plan.cuts],
        [d.slowdown for d in plan.devices],
        [d.bitrate_bps for d in plan.devices],
        [d.latency_s for d in plan.devices],
    )


def per_edge_value(
    cuts: Sequence[str],
    slowdowns: Sequence[float],
    bitrates: Sequence[float],
    latencies: Sequence[float] = (),
) -> str:
    """``per-edge``'s value for edges with these cuts, slowdowns and uplink bit rates (and
    latencies, left out where all are 0)."""
    text = ";".join(
        [
            "cut=" + ",".join(cuts),
            "edge-slowdown=" + ",".join(f"{k:g}" for k in slowdowns),
            "bitrate=" + ",".join(f"{b:g}" for b in bitrates),
        ]
    )
    if any(latencies):
        text += ";latency=" + ",".join(f"{t:g}" for t in latencies)
    return text
