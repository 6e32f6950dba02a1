"""Runtime model of hierarchical training and its baselines: seconds per epoch from stage costs.

The model follows Sepehri et al. (2024), hierarchical training with early exits: because no
gradient flows back from the cloud, an edge can start its next batch as soon as it has shipped
the current batch's activations, so edge compute, the uplink and cloud compute form a pipeline.
Split learning has to wait for the gradient at the cut, so its stages add up instead.

Everything here is plain arithmetic on per-batch seconds and bytes; nothing imports torch.
Assumptions shared by every mode:

- Each edge has a link of its own with the same ``Link`` figures; edges never contend for it.
- The cloud is one device that processes one batch at a time, whoever it comes from.
- Weight exchanges at round boundaries (edge aggregation, model download) are left out: they
  happen once per round, not once per batch, and do not differ between the cuts being compared.
- Handing a batch from one stage to the next costs ``StageCosts.handoff_s`` (0 unless measured:
  ``benchmarks/runtime.py`` does) on top of the stages' own work.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Literal, Protocol

from hierfl.errors import ConfigError, UnknownNameError
from hierfl.modes import MODE_NAMES

MODES = MODE_NAMES
"""Training modes the performance model predicts: every mode of ``hierfl.modes``."""

BACKWARD_PER_FORWARD = 2.0
"""Backward FLOPs per forward FLOP: one product for the input gradient, one for the weights."""

FP32_BYTES = 4
LABEL_BYTES = 1
"""Bytes per label on the wire: labels travel as uint8 when there are at most 256 classes."""

Direction = Literal["up", "down"]


def _check_non_negative(owner: str, values: Mapping[str, float]) -> None:
    for key, value in values.items():
        if not math.isfinite(value) or value < 0:
            raise ConfigError(key, f"{owner} needs a finite value >= 0, got {value!r}")


@dataclass(frozen=True)
class StageCosts:
    """Seconds and bytes per batch of one edge, for one cut.

    Seconds:
        edge_fwd_s / edge_bwd_s: the edge segment ``f_e`` forward / backward on the edge device.
            Split learning runs them apart (the backward waits for the cloud's gradient).
        exit_s: the exit head ``h_e``, forward plus backward, on the edge device.
        cloud_fwd_s / cloud_bwd_s: the cloud segment ``f_c`` on the cloud device.
        cloud_edge_s: the edge segment, forward plus backward, run on the *cloud* device: what
            ``cloud`` mode costs for the part of the network that the other modes leave to edges.
        handoff_s: handing one batch from a stage to the next, beyond either stage's work: the
            sender passing it on and the receiver waking up to take it (queue put and get,
            thread wake-up, the GIL; between machines, message dispatch). It is a fixed cost per
            message, so it weighs most on small batches. Default 0: FLOP-based costs (the
            planner) leave it out.

    Bytes:
        activation_bytes: activations at the cut (uplink in ``hierarchical`` and ``split``).
        gradient_bytes: gradient at the cut (downlink in ``split``); the activations' size.
        raw_bytes: the raw input batch (uplink in ``cloud``).
        label_bytes: the batch's labels, sent with whatever goes up.
    """

    edge_fwd_s: float
    edge_bwd_s: float
    exit_s: float
    cloud_fwd_s: float
    cloud_bwd_s: float
    cloud_edge_s: float
    activation_bytes: float
    gradient_bytes: float
    raw_bytes: float
    label_bytes: float = 0.0
    handoff_s: float = 0.0

    def __post_init__(self) -> None:
        _check_non_negative("stage costs", {f.name: getattr(self, f.name) for f in fields(self)})

    @property
    def edge_train_s(self) -> float:
        """What a hierarchical edge computes per batch: segment and exit, forward and backward."""
        return self.edge_fwd_s + self.edge_bwd_s + self.exit_s

    @property
    def cloud_train_s(self) -> float:
        """The cloud segment's forward and backward for one batch."""
        return self.cloud_fwd_s + self.cloud_bwd_s


@dataclass(frozen=True)
class Link:
    """One edge's network link: bitrates in bits per second, one-way latency in seconds."""

    uplink_bps: float
    downlink_bps: float
    latency_s: float = 0.0

    def __post_init__(self) -> None:
        for key in ("uplink_bps", "downlink_bps"):
            value = getattr(self, key)
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(key, f"must be a finite bitrate > 0 bits/s, got {value!r}")
        _check_non_negative("a link", {"latency_s": self.latency_s})

    def transfer_s(self, nbytes: float, direction: Direction) -> float:
        """Seconds to send one message of ``nbytes``: latency plus serialisation.

        Every message pays the latency once, even an empty one (a request still travels).
        """
        if direction == "up":
            bps = self.uplink_bps
        elif direction == "down":
            bps = self.downlink_bps
        else:
            raise ConfigError("direction", f"must be 'up' or 'down', got {direction!r}")
        if nbytes < 0:
            raise ConfigError("nbytes", f"must be >= 0, got {nbytes!r}")
        return self.latency_s + 8.0 * nbytes / bps


@dataclass(frozen=True)
class Prediction:
    """Predicted wall-clock seconds for ``batches`` batches on each of ``clients`` edges.

    ``edge_s``, ``link_s`` and ``cloud_s`` are busy times of one edge, of one edge's link and of
    the cloud, without hand-offs; ``handoff_s`` is the time the total spends handing batches
    from stage to stage. In the sequential modes the total is the sum of all four. In
    ``hierarchical`` the stages overlap: the total is ``batches`` times the slowest stage's work
    (``bottleneck``), plus ``fill_s``, the work the other stages do once to fill and drain the
    pipeline, plus ``handoff_s``.
    """

    mode: str
    total_s: float
    edge_s: float
    link_s: float
    cloud_s: float
    fill_s: float = 0.0
    bottleneck: str = ""
    handoff_s: float = 0.0


def _check_counts(batches: int, clients: int) -> None:
    if batches < 1:
        raise ConfigError("batches", f"must be >= 1, got {batches}")
    if clients < 1:
        raise ConfigError("clients", f"must be >= 1, got {clients}")


def _pipeline_stages(costs: StageCosts, link: Link, clients: int) -> dict[str, float]:
    """Seconds of work per pipeline step of hierarchical training, by stage, without hand-offs.

    One step is one batch on every edge: edges and their links run side by side, while the
    cloud trains the ``clients`` batches one after another.
    """
    return {
        "edge": costs.edge_train_s,
        "link": link.transfer_s(costs.activation_bytes + costs.label_bytes, "up"),
        "cloud": clients * costs.cloud_train_s,
    }


def _hierarchical(costs: StageCosts, link: Link, batches: int, clients: int) -> Prediction:
    work = _pipeline_stages(costs, link, clients)
    # Every stage hands over each batch it handles: the cloud the ``clients`` batches of a step.
    handoff = {"edge": costs.handoff_s, "link": costs.handoff_s, "cloud": clients * costs.handoff_s}
    step = {name: work[name] + handoff[name] for name in work}
    bottleneck = max(step, key=lambda name: step[name])
    others = [name for name in step if name != bottleneck]
    fill = sum(work[name] for name in others)
    handoffs = batches * handoff[bottleneck] + sum(handoff[name] for name in others)
    return Prediction(
        mode="hierarchical",
        total_s=batches * work[bottleneck] + fill + handoffs,
        edge_s=batches * work["edge"],
        link_s=batches * work["link"],
        cloud_s=batches * work["cloud"],
        fill_s=fill,
        bottleneck=bottleneck,
        handoff_s=handoffs,
    )


def _split(costs: StageCosts, link: Link, batches: int, clients: int) -> Prediction:
    # Vanilla split learning relays the model from edge to edge, so edges take turns and no two
    # batches, of the same edge or of different edges, are ever in flight at once.
    steps = batches * clients
    link_per_batch = link.transfer_s(costs.activation_bytes + costs.label_bytes, "up")
    link_per_batch += link.transfer_s(costs.gradient_bytes, "down")
    edge_s = steps * (costs.edge_fwd_s + costs.edge_bwd_s)
    link_s = steps * link_per_batch
    cloud_s = steps * costs.cloud_train_s
    handoffs = steps * 2 * costs.handoff_s  # activations to the cloud, gradient back
    total = edge_s + link_s + cloud_s + handoffs
    return Prediction("split", total, edge_s, link_s, cloud_s, handoff_s=handoffs)


def _cloud(costs: StageCosts, link: Link, batches: int, clients: int) -> Prediction:
    # Every edge uploads all its raw batches (in parallel with the other edges, one message per
    # batch), then the cloud trains the whole network on every batch of every edge. Streaming
    # the training behind the upload would be faster; this is the mode as `hierfl run` runs it.
    link_s = batches * link.transfer_s(costs.raw_bytes + costs.label_bytes, "up")
    cloud_s = batches * clients * (costs.cloud_edge_s + costs.cloud_train_s)
    handoffs = batches * costs.handoff_s  # each raw batch handed over once, edges side by side
    total = link_s + cloud_s + handoffs
    return Prediction("cloud", total, 0.0, link_s, cloud_s, handoff_s=handoffs)


def _edge(costs: StageCosts, batches: int) -> Prediction:
    edge_s = batches * costs.edge_train_s
    return Prediction("edge", edge_s, edge_s, 0.0, 0.0)


def predict(mode: str, costs: StageCosts, link: Link, batches: int, clients: int = 1) -> Prediction:
    """Predict the seconds to train ``batches`` batches on each of ``clients`` edges.

    - ``hierarchical``: pipelined edge (segment + exit), uplink, cloud; see ``Prediction``.
      Each stage hands over every batch it handles, so each stage's time per step grows by
      ``handoff_s`` (the cloud's by ``clients * handoff_s``): the slowest stage pays it once per
      batch, the other stages once more in the fill: with one edge the hand-offs add
      ``(batches + 2) * handoff_s``.
    - ``split``: per batch, edge forward, uplink, cloud forward and backward, gradient downlink,
      edge backward; edges take turns, so everything adds up over ``batches * clients``,
      with two hand-offs per batch (activations up, gradient down).
    - ``cloud``: upload every raw batch (one hand-off each), then the cloud trains edge and
      cloud segments on all batches of all edges (``cloud_edge_s`` + cloud segment per batch).
    - ``edge``: edges train segment + exit on their own; no link, no cloud, no hand-off.

    Raises:
        UnknownNameError: ``mode`` is not one of ``MODES``.
        ConfigError: ``batches`` or ``clients`` is below 1.
    """
    _check_counts(batches, clients)
    if mode == "hierarchical":
        return _hierarchical(costs, link, batches, clients)
    if mode == "split":
        return _split(costs, link, batches, clients)
    if mode == "cloud":
        return _cloud(costs, link, batches, clients)
    if mode == "edge":
        return _edge(costs, batches)
    raise UnknownNameError("mode", mode, list(MODES))


def ideal_bound(costs: StageCosts, link: Link, batches: int, clients: int = 1) -> float:
    """Lower bound on hierarchical time: every batch pays only the slowest stage, no fill.

    The stages are the work of edge compute, link and cloud compute, without hand-offs: the
    bound is what a perfect pipeline would take. ``predict("hierarchical", ...)`` exceeds it by
    the pipeline fill plus the hand-offs (by exactly the fill when ``handoff_s`` is 0).
    """
    _check_counts(batches, clients)
    return batches * max(_pipeline_stages(costs, link, clients).values())


class CutNumbersLike(Protocol):
    """Per-sample figures of one cut, as ``hierfl.analysis.planner.CutNumbers`` carries them."""

    @property
    def edge_flops(self) -> float: ...  # edge segment forward, without the exit
    @property
    def exit_flops(self) -> float: ...  # exit head forward
    @property
    def cloud_flops(self) -> float: ...  # cloud segment forward
    @property
    def activation_bytes(self) -> float: ...  # activations at the cut, fp32
    @property
    def input_bytes(self) -> float: ...  # one raw input, fp32


def costs_from_flops(
    cut: CutNumbersLike,
    batch_size: int,
    edge_flops_per_s: float,
    cloud_flops_per_s: float,
    *,
    activation_scale: float = 1.0,
) -> StageCosts:
    """Stage costs from per-sample forward FLOPs and the devices' sustained FLOP/s.

    Assumptions:
        - Compute time is FLOPs divided by the device's sustained rate: no memory-bound layers,
          no kernel launch overhead, linear in the batch size.
        - Backward costs ``BACKWARD_PER_FORWARD`` (2) times the forward.
        - Activations travel as ``cut.activation_bytes`` (fp32, or a bottleneck's codes) times
          ``activation_scale`` (0.5 for fp16, about 0.25 for int8); raw inputs as
          ``cut.input_bytes`` (the planner passes their stored size); labels as uint8.
        - The gradient at the cut has the activations' size.

    >>> from types import SimpleNamespace as N
    >>> c = costs_from_flops(N(edge_flops=1e6, exit_flops=1e5, cloud_flops=2e6,
    ...     activation_bytes=1000, input_bytes=300), 10, 1e9, 1e10)
    >>> c.edge_fwd_s, c.edge_bwd_s, c.cloud_fwd_s, c.activation_bytes, c.label_bytes
    (0.01, 0.02, 0.002, 10000.0, 10.0)
    """
    if batch_size < 1:
        raise ConfigError("batch_size", f"must be >= 1, got {batch_size}")
    for key, rate in (("edge_flops", edge_flops_per_s), ("cloud_flops", cloud_flops_per_s)):
        if not math.isfinite(rate) or rate <= 0:
            raise ConfigError(key, f"must be a finite FLOP/s > 0, got {rate!r}")
    train = 1.0 + BACKWARD_PER_FORWARD
    edge_fwd = batch_size * cut.edge_flops / edge_flops_per_s
    cloud_fwd = batch_size * cut.cloud_flops / cloud_flops_per_s
    activations = batch_size * cut.activation_bytes * activation_scale
    return StageCosts(
        edge_fwd_s=edge_fwd,
        edge_bwd_s=BACKWARD_PER_FORWARD * edge_fwd,
        exit_s=train * batch_size * cut.exit_flops / edge_flops_per_s,
        cloud_fwd_s=cloud_fwd,
        cloud_bwd_s=BACKWARD_PER_FORWARD * cloud_fwd,
        cloud_edge_s=train * batch_size * cut.edge_flops / cloud_flops_per_s,
        activation_bytes=float(activations),
        gradient_bytes=float(activations),
        raw_bytes=float(batch_size * cut.input_bytes),
        label_bytes=float(batch_size * LABEL_BYTES),
    )


_MEASURED = ("edge_fwd_s", "edge_bwd_s", "exit_s", "cloud_fwd_s", "cloud_bwd_s", "cloud_edge_s")


def costs_from_measurements(
    seconds: Mapping[str, float],
    *,
    activation_bytes: float,
    raw_bytes: float,
    gradient_bytes: float | None = None,
    label_bytes: float = 0.0,
) -> StageCosts:
    """Stage costs from measured seconds per batch, keyed by ``StageCosts``' time fields.

    Every one of ``edge_fwd_s, edge_bwd_s, exit_s, cloud_fwd_s, cloud_bwd_s, cloud_edge_s``
    must be given (0 is allowed: e.g. ``exit_s`` when only split learning is compared), so that
    a forgotten measurement fails loudly instead of making a mode look free. Bytes are per
    batch; ``gradient_bytes`` defaults to ``activation_bytes``.

    Raises:
        ConfigError: a key is missing or unknown, or a value is negative.
    """
    unknown = sorted(set(seconds) - set(_MEASURED))
    if unknown:
        raise ConfigError("seconds", f"unknown keys {unknown}; allowed: {', '.join(_MEASURED)}")
    missing = [key for key in _MEASURED if key not in seconds]
    if missing:
        raise ConfigError("seconds", f"missing measurements: {', '.join(missing)}")
    return StageCosts(
        **{key: float(seconds[key]) for key in _MEASURED},
        activation_bytes=activation_bytes,
        gradient_bytes=activation_bytes if gradient_bytes is None else gradient_bytes,
        raw_bytes=raw_bytes,
        label_bytes=label_bytes,
    )
