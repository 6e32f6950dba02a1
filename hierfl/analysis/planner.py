"""Choose a cut: predicted epoch time of every mode at every cut, and the edge memory each needs.

The planner turns per-cut figures (FLOPs, bytes, parameters) into stage costs of the
performance model (``hierfl.analysis.performance``) and recommends the cut that trains
hierarchically fastest among those whose edge memory estimate fits the device. ``plan_cuts``
is the arithmetic on given figures; ``plan`` measures the figures on a registered model first
(``measure_cuts``, which builds it once per cut).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from hierfl.analysis.performance import (
    FP32_BYTES,
    LABEL_BYTES,
    MODES,
    Link,
    StageCosts,
    costs_from_flops,
    predict,
)
from hierfl.analysis.weights import break_even, round_bytes
from hierfl.errors import ConfigError

DEFAULT_EDGE_FLOPS = 1e10
"""10 GFLOP/s sustained: a Raspberry-Pi-5-class board training in fp32 on its CPU."""
DEFAULT_CLOUD_FLOPS = 1e13
"""10 TFLOP/s sustained: one data-centre GPU training in fp32."""
DEFAULT_BATCH_SIZE = 16  # `hierfl run`'s default batch size
DEFAULT_SAMPLES = 10_000  # training samples per edge per epoch: CIFAR-10 over five edges
ADAM_SLOTS = 2  # optimizer state per parameter: Adam's two moments (hierfl's default optimizer)


@dataclass(frozen=True)
class CutNumbers:
    """Per-sample figures of one cut (with or without a bottleneck).

    ``edge_flops`` is the edge segment's forward alone (a bottleneck's encoder included):
    ``hierfl.analysis.profile`` counts the exit into its ``edge_flops``, and split learning runs
    no exit. ``activation_bytes`` is what one sample's activations cost on the link: fp32, or
    the bottleneck's codes; ``input_bytes`` one raw input as cloud mode uploads it (uint8
    pixels unless the settings say otherwise). ``*_saved_bytes`` are the tensors the segment
    and the exit keep for their backward pass, per sample.
    """

    cut: str
    edge_flops: float
    exit_flops: float
    cloud_flops: float
    activation_bytes: float
    input_bytes: float
    edge_params: int
    exit_params: int
    edge_saved_bytes: float
    exit_saved_bytes: float = 0.0
    bottleneck: int = 0  # channels of the bottleneck at the cut (0: none)
    code_bits: int = 8
    input_values: int = 0  # values of one input (held as fp32 in memory); 0: input_bytes / 4

    @property
    def input_memory_bytes(self) -> float:
        return FP32_BYTES * self.input_values if self.input_values else self.input_bytes

    @property
    def label(self) -> str:
        """``layer3``, or ``layer3+8x4b`` for an 8-channel, 4-bit bottleneck there."""
        return f"{self.cut}+{self.bottleneck}x{self.code_bits}b" if self.bottleneck else self.cut


@dataclass(frozen=True)
class PlanSettings:
    """The devices, the link and the workload of one epoch.

    ``samples`` is per edge; every batch is costed as full (the last one may be smaller).
    ``edge_memory_bytes`` ``None`` means every cut fits. ``optimizer_slots`` is the optimizer's
    state per parameter, in parameters: 2 for Adam, 1 for SGD with momentum.
    """

    bitrate_bps: float
    downlink_bps: float | None = None  # None: the uplink's bitrate
    latency_s: float = 0.0
    edge_flops: float = DEFAULT_EDGE_FLOPS
    cloud_flops: float = DEFAULT_CLOUD_FLOPS
    edge_memory_bytes: float | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    samples: int = DEFAULT_SAMPLES
    clients: int = 1
    optimizer_slots: int = ADAM_SLOTS
    raw_bytes_per_sample: float | None = None  # cloud mode's upload; None: uint8 pixels
    # the weight exchange (``hierfl.analysis.weights``): codec, its settings, rounds an epoch
    weight_codec: str = "topk"
    weight_density: float = 0.0  # 0: ``auto_density`` of the exchanged parameters
    weight_values: str = "q8"
    sync_every: int = 1
    rounds: int = 1

    def __post_init__(self) -> None:
        for key in ("edge_flops", "cloud_flops"):
            value = getattr(self, key)
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(key, f"must be a finite FLOP/s > 0, got {value!r}")
        for key in ("batch_size", "samples", "clients", "sync_every", "rounds"):
            if getattr(self, key) < 1:
                raise ConfigError(key, f"must be >= 1, got {getattr(self, key)}")
        if self.edge_memory_bytes is not None and not self.edge_memory_bytes > 0:
            raise ConfigError("edge_memory_bytes", f"must be > 0, got {self.edge_memory_bytes}")
        if self.optimizer_slots < 0:
            raise ConfigError("optimizer_slots", f"must be >= 0, got {self.optimizer_slots}")
        self.link()  # validates the bitrates and the latency

    @property
    def batches(self) -> int:
        return math.ceil(self.samples / self.batch_size)

    def link(self) -> Link:
        down = self.bitrate_bps if self.downlink_bps is None else self.downlink_bps
        return Link(self.bitrate_bps, down, self.latency_s)


@dataclass(frozen=True)
class PlanRow:
    """One mode at one cut (``CutNumbers.label``): predicted seconds per epoch, the edge's
    memory estimate, and the bytes one sample costs on the uplink (labels included)."""

    cut: str
    mode: str
    epoch_s: float
    edge_memory_bytes: float
    fits: bool
    bottleneck: str = ""  # the pipeline stage that limits hierarchical training
    uplink_bytes_per_sample: float = 0.0
    weight_bytes_per_round: float = 0.0  # per edge, both ways
    break_even_samples: float = math.inf  # per edge per round, against uploading the inputs


@dataclass(frozen=True)
class Plan:
    """Rows for every cut and mode (cuts in the given order), and the recommended cut."""

    rows: tuple[PlanRow, ...]
    recommended: str | None
    settings: PlanSettings


def edge_memory(cut: CutNumbers, mode: str, batch_size: int, optimizer_slots: int) -> float:
    """Bytes an edge needs to train in ``mode`` at ``cut``: an estimate, not a measurement.

    Weights, their gradients and ``optimizer_slots`` optimizer values per weight, all fp32, plus
    one batch of inputs and of every tensor kept for the backward pass. Split learning trains
    no exit; ``cloud`` mode only holds the batch it uploads; allocator slack, framework runtime
    and the data set itself are not counted.
    """
    if mode == "cloud":
        return float(batch_size * cut.input_memory_bytes)
    params = cut.edge_params
    saved = cut.edge_saved_bytes
    if mode != "split":
        params += cut.exit_params
        saved += cut.exit_saved_bytes
    weights = FP32_BYTES * params * (2 + optimizer_slots)
    return float(weights + batch_size * (cut.input_memory_bytes + saved))


def plan_cuts(cuts: Sequence[CutNumbers], settings: PlanSettings) -> Plan:
    """Predict every mode at every cut and recommend a cut.

    Edge-trained modes pay the weight exchange each round on top of the pipeline
    (``settings.rounds`` a epoch; split mode relays the full weights). The recommended cut
    minimises the hierarchical epoch time among the cuts whose hierarchical edge memory
    estimate fits and whose codes are smaller than the input (so that hierarchical training
    can break even on bytes; any fitting cut when none is); ties go to the shallower (earlier)
    cut; ``None`` when no cut fits.
    """
    if not cuts:
        raise ConfigError("cuts", "need at least one cut to plan")
    rows: list[PlanRow] = []
    for cut in cuts:
        if settings.raw_bytes_per_sample is not None:
            cut = replace(cut, input_bytes=settings.raw_bytes_per_sample)
        costs = costs_from_flops(
            cut, settings.batch_size, settings.edge_flops, settings.cloud_flops
        )
        for mode in MODES:
            rows.append(_row(cut, mode, costs, settings))
    fitting = [r for r in rows if r.mode == "hierarchical" and r.fits]
    candidates = [r for r in fitting if math.isfinite(r.break_even_samples)] or fitting
    best = min(candidates, key=lambda r: r.epoch_s, default=None)  # min keeps the first tie
    return Plan(tuple(rows), best.cut if best else None, settings)


def _row(cut: CutNumbers, mode: str, costs: StageCosts, settings: PlanSettings) -> PlanRow:
    """One mode at one cut: the pipeline's epoch plus the rounds' weight exchanges."""
    link = settings.link()
    prediction = predict(mode, costs, link, settings.batches, settings.clients)
    memory = edge_memory(cut, mode, settings.batch_size, settings.optimizer_slots)
    limit = settings.edge_memory_bytes
    sent = {"cloud": cut.input_bytes, "edge": 0.0}.get(mode, cut.activation_bytes)
    weights = 0.0
    if mode != "cloud":
        s = settings
        codec = "fp32" if mode == "split" else s.weight_codec
        params = cut.edge_params + (cut.exit_params if mode != "split" else 0)
        weights = round_bytes(
            params, codec, s.weight_density, s.weight_values, sync_every=s.sync_every
        )
    # the exchange rides on the round's request and reply: serialisation only
    exchange_s = settings.rounds * 4.0 * weights * (1 / link.uplink_bps + 1 / link.downlink_bps)
    per_sample = sent + (LABEL_BYTES if mode != "edge" else 0.0)
    return PlanRow(
        cut.label,
        mode,
        prediction.total_s + exchange_s,
        memory,
        limit is None or memory <= limit,
        prediction.bottleneck,
        per_sample,
        weights,
        break_even(weights, per_sample, cut.input_bytes + LABEL_BYTES)
        if mode == "hierarchical"
        else math.inf,
    )


DEFAULT_BOTTLENECKS = (0, 4, 16, 64)
"""Bottleneck widths ``hierfl plan`` compares by default (0: none)."""


def measure_cuts(
    model_name: str,
    input_shape: tuple[int, int, int],
    num_classes: int = 10,
    *,
    exit_head: str | None = None,
    bottlenecks: Sequence[int] = (0,),
    code_bits: int = 8,
) -> list[CutNumbers]:
    """Figures for every cut of a registered model, each with every bottleneck width in
    ``bottlenecks`` (0: none); builds the model once per pair (a few seconds in all)."""
    from hierfl.analysis.profile import profile_model

    numbers = []
    for width in bottlenecks:
        profiles = profile_model(
            model_name,
            input_shape,
            num_classes,
            exit_head=exit_head,
            bottleneck=width,
            code_bits=code_bits,
        )
        for profile in profiles:
            exit_flops = float(profile.exit_flops)
            numbers.append(
                CutNumbers(
                    cut=profile.cut,
                    edge_flops=profile.edge_flops - exit_flops,
                    exit_flops=exit_flops,
                    cloud_flops=profile.cloud_flops,
                    activation_bytes=profile.wire_bytes_per_sample,
                    input_bytes=profile.raw_uint8_bytes_per_sample,
                    edge_params=profile.edge_params,
                    exit_params=profile.exit_params,
                    edge_saved_bytes=profile.edge_saved_bytes,
                    exit_saved_bytes=profile.exit_saved_bytes,
                    bottleneck=width,
                    code_bits=code_bits,
                    input_values=math.prod(input_shape),
                )
            )
    return numbers


def plan(
    model_name: str,
    input_shape: tuple[int, int, int],
    bitrate_bps: float,
    *,
    downlink_bps: float | None = None,
    edge_flops: float = DEFAULT_EDGE_FLOPS,
    cloud_flops: float = DEFAULT_CLOUD_FLOPS,
    edge_memory_bytes: float | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    samples: int = DEFAULT_SAMPLES,
    latency_s: float = 0.0,
    clients: int = 1,
    num_classes: int = 10,
    exit_head: str | None = None,
) -> Plan:
    """Measure model ``model_name`` at every cut and plan an epoch on the given devices."""
    settings = PlanSettings(
        bitrate_bps=bitrate_bps,
        downlink_bps=downlink_bps,
        latency_s=latency_s,
        edge_flops=edge_flops,
        cloud_flops=cloud_flops,
        edge_memory_bytes=edge_memory_bytes,
        batch_size=batch_size,
        samples=samples,
        clients=clients,
    )
    cuts = measure_cuts(model_name, input_shape, num_classes, exit_head=exit_head)
    return plan_cuts(cuts, settings)
