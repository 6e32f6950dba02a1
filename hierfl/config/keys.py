"""Every core key of a run: its default, its help and its allowed range or choices, as the
field's metadata (``hierfl.options.option``), with the presets and the fixed choices they draw on.
Validation, the bad-value tests and the options table in ``docs/reference.md`` are all generated
from these fields.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field, fields
from typing import Any

from hierfl.codecs import (
    ACTIVATION_CODECS,
    AUTO_MIN_ENTRIES,
    AVERAGED,
    CODE_BITS,
    COMPRESSIONS,
    RAW_CODECS,
    WEIGHT_VALUES,
)
from hierfl.modes import MODE_NAMES, MODES
from hierfl.options import (
    dashed,
    option,
)

# Named starting points of ``hierfl run --preset``: ``tiny`` runs anything end to end in about a
# minute on a laptop CPU (``hierfl.testing``'s tiny run too).
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "tiny": {"clients": 2, "experiences": 2, "rounds": 2, "local-epochs": 1},
}
DEVICES = ("cpu", "cuda", "auto")
OPTIMIZERS = ("adam", "sgd")
CLASS_MASKS = ("seen", "none")
AUTO_BOTTLENECK = 4
"""``bottleneck=-1`` (the default): channels of hierarchical mode's bottleneck (the small CNN's
best measured rate at its default cut, docs/results.md)."""
PER_EDGE_KEYS = ("cut", "edge-slowdown", "bitrate", "downlink-bitrate", "latency")
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def is_plain_name(name: str) -> bool:
    """A folder name that is not a path: letters, digits, ``. _ -``, not starting with a dot."""
    return bool(_PLAIN_NAME.match(name))


@dataclass(frozen=True)
class ConfigKeys:
    """Every core key of a run with its default, help, bounds and choices; ``HierConfig``
    adds what is derived from them and the checks across keys."""

    mode: str = option(
        "hierarchical",
        "the method, or a baseline on the same model: split, cloud (uploads raw inputs), edge",
        choices=MODE_NAMES,
    )
    clients: int = option(3, "edge devices", ge=1)
    clients_per_round: int = option(
        0, "edges sampled per round, each edge once in every ceil(clients/k) rounds (0: all)", ge=0
    )
    scenario: str = option("digits", "the stream of experiences", registry="scenario")
    experiences: int = option(5, "experiences in the stream; 1 = all classes at once", ge=1)
    partition: str = option("iid", "how training data is split across edges", registry="partition")
    seed: int = option(0, "class order, data split, partitions and initial weights", ge=0)
    model: str = option("small-cnn", "the network", registry="model")
    cut: str = option("", "separation point (empty: the model's default)", bad=("nope",))
    exit_head: str = option(
        "", "exit head: conv or mlp (empty: the model's own)", choices=("", "conv", "mlp")
    )
    strategy: str = option("fedavg", "edge aggregation (a Flower strategy)", registry="strategy")
    rounds: int = option(
        5,
        "rounds per experience (one chunk per edge per round); left at 5 with clients-per-round, "
        "5 times the sampling cycle of ceil(clients / clients-per-round) rounds (online: one cycle "
        "at least)",
        ge=1,
    )
    local_epochs: int = option(5, "passes over the edge's current experience per round", ge=1)
    batch_size: int = option(16, "mini-batch size on edge and cloud", ge=2)
    optimizer: str = option("adam", "optimizer of edge and cloud", choices=OPTIMIZERS)
    edge_lr: float = option(0.003, "edge learning rate", gt=0)
    cloud_lr: float = option(0.003, "cloud learning rate", gt=0)
    momentum: float = option(0.9, "momentum (sgd only)", ge=0, lt=1)
    cloud_epochs: int = option(
        0,
        "passes the cloud makes over each chunk (0: as many passes as the chunk stands for, "
        "the edges' own: local-epochs with ship=last-epoch, online-passes online, else 1)",
        ge=0,
    )
    test_fraction: float = option(0.25, "held-out share of the data", gt=0, lt=1)
    input_shape: str = option(
        "", "CxHxW input shape (empty: the scenario's own)", bad=("3x0x8", "three")
    )
    num_classes: int = option(0, "synthetic classes (0: the scenario's own)", ge=0)
    samples_per_class: int = option(0, "synthetic samples per class (0: its own)", ge=0)
    max_chunk_mb: float = option(64.0, "bound on one chunk's payload, MiB", gt=0)
    bitrate: float = option(0.0, "emulated uplink bits/s per edge (0: off)", ge=0)
    downlink_bitrate: float = option(0.0, "emulated downlink bits/s (0: as bitrate)", ge=0)
    latency: float = option(0.0, "emulated one-way latency per message, s", ge=0)
    edge_slowdown: float = option(1.0, "emulate edges this many times slower", ge=1)
    per_edge: str = option(
        "",
        "values of their own for some edges: KEY=V0,V1,... joined by ';', partition p taking "
        f"value p mod their count, for {', '.join(PER_EDGE_KEYS)} (cut=layer4,layer1,stem: "
        "edges at three depths, one cloud)",
        bad=("cut=nope", "clients=2", "edge-slowdown=0.5"),
    )
    codec: str = option(
        ACTIVATION_CODECS[0],
        "uplink activation codec (without a bottleneck)",
        choices=ACTIVATION_CODECS,
    )
    bottleneck: int = option(
        -1,
        "channels of a learned, quantized bottleneck at the cut (0: none; -1: "
        f"{AUTO_BOTTLENECK} where hierarchical mode ships activations with codec=fp32, else none)",
        ge=-1,
    )
    code_bits: int = option(
        8, "bits per bottleneck code; 4-bit codes go two to a byte", choices=CODE_BITS
    )
    bottleneck_recon: float = option(
        0.0, "weight of the edge's reconstruction of the cut's features from the codes", ge=0
    )
    compress: str = option(
        "none",
        "lossless compression of the uplink payload",
        choices=COMPRESSIONS,
    )
    ship: str = option(
        "every-epoch",
        "every-epoch: an edge ships the activations of every local epoch; last-epoch: only of "
        "its last (the cloud takes cloud-epochs passes over them)",
        choices=("every-epoch", "last-epoch"),
    )
    raw_codec: str = option(
        "uint8",
        "how cloud mode uploads raw inputs: as stored (uint8), as PNG or JPEG files, or fp32",
        choices=RAW_CODECS,
    )
    jpeg_quality: int = option(90, "JPEG quality for raw-codec=jpeg", ge=1, le=100)
    edge_threads: int = option(1, "torch threads per edge process (0: torch's default)", ge=0)
    cloud_threads: int = option(1, "torch threads of the cloud (0: torch's default)", ge=0)
    sim_cpus_per_edge: int = option(
        1,
        "simulation engine: CPUs Ray reserves per virtual edge (edges at once: CPUs / this)",
        ge=1,
    )
    sim_gpus_per_edge: float = option(
        -1.0,
        "simulation engine: share of a GPU per virtual edge (-1: a share of one GPU among the "
        "edges that run at once where edge-device is CUDA, else 0)",
        ge=-1,
    )
    edge_device: str = option("cpu", "where edges train", choices=DEVICES)
    cloud_device: str = option("cpu", "where the cloud trains", choices=DEVICES)
    exit_thresholds: str = option(
        "0.5,0.7,0.9,0.99", "confidence levels of the early-exit sweep", bad=("0.5,x", "2")
    )
    act_clip: float = option(0.0, "clip each shipped activation to this L2 norm (0: off)", ge=0)
    act_noise: float = option(0.0, "Gaussian noise added to shipped activations (0: off)", ge=0)
    cl: str = option(
        "",
        "continual-learning methods joined by '+' (empty: the mode's own: "
        + ", ".join(f"{mode.default_cl} in {name}" for name, mode in MODES.items())
        + ")",
        bad=("nope", "naive+"),
    )
    class_mask: str = option(
        "seen", "seen: train and predict among classes met so far; none: all", choices=CLASS_MASKS
    )
    freeze_edge_after: int = option(
        -1, "freeze the edge segment after this experience (-1: never)", ge=-1
    )
    online: bool = option(False, "online mode: each sample arrives once, in one round")
    online_passes: int = option(
        8, "online: passes an edge trains over a round's new samples; it ships them once", ge=1
    )
    late_clients: str = option("", "PARTITION:DELAY pairs, e.g. 1:1,2:never", bad=("9:1", "1:x"))
    link_down: str = option(
        "", "emulated uplink outages PARTITION:FIRST-LAST (run-wide rounds)", bad=("x", "1:3-2")
    )
    backlog_mb: float = option(16.0, "bound of an edge's uplink backlog, MiB", gt=0)
    reply_timeout: float = option(600.0, "seconds the cloud waits for a round's replies", gt=0)
    min_replies: int = option(
        0,
        "close a round quorum-grace seconds after this many edges replied (0: wait for all)",
        ge=0,
    )
    quorum_grace: float = option(
        5.0, "seconds a round stays open for the other edges once min-replies answered", ge=0
    )
    node_wait_timeout: float = option(120.0, "seconds to wait for the edges at start-up", gt=0)
    data_dir: str = option(
        "", "folder of a dataset in torchvision's layout", bad=("/nonexistent/hierfl-data",)
    )
    out: str = option("runs/flwr", "run folder", bad=("/proc/hierfl-forbidden",))
    checkpoint_every: int = option(
        0, "checkpoint at each experience's end (0), also every N rounds, or never (-1)", ge=-1
    )
    max_failed_rounds: int = option(
        3, "stop after this many rounds in a row without usable work (0: never)", ge=0
    )
    weight_bound: float = option(
        1e4, "refuse edge weights, and roll back an aggregate, with |value| above (0: off)", ge=0
    )
    max_update_norm: float = option(
        0.0, "clip each edge's update to this L2 norm before aggregation (0: off)", ge=0
    )
    centered_clip: float = option(
        2.0,
        "replace an edge's update farther than this many times the round's median distance "
        "from the coordinate-wise median update by that median update (0: off)",
        ge=0,
    )
    label_screen: float = option(
        0.4,
        "leave out an edge's round (its chunk and its weights) when its labels agree with the "
        "other edges' class centroids less than this share of what the others' labels do (0: off)",
        ge=0,
        le=1,
    )
    weight_codec: str = option(
        "topk",
        "how edge weights travel: fp32 (full weights both ways every round) or topk (changes "
        "since the last exchange, compressed, with error feedback)",
        registry="weight-codec",
    )
    weight_density: float = option(
        0.0,
        "topk: share of each tensor's entries a weight update sends (0: at least 0.1 % and "
        f"{AUTO_MIN_ENTRIES:,} entries a message; an edge asked once in K rounds sends K times "
        "that)",
        ge=0,
        le=1,
    )
    weight_values: str = option(
        "q8",
        "topk: how the sent entries travel: fp32, q8 (8 bits and a scale a tensor) or sign",
        choices=WEIGHT_VALUES,
    )
    sync_every: int = option(
        1, "exchange edge weights every K rounds (codes still flow every round; topk)", ge=1
    )
    averaged: str = option(
        "all",
        "edge parameters averaged: all, segment (without the exit head), exit (only the exit "
        "head) or none (each edge keeps its own; topk)",
        choices=AVERAGED,
    )
    act_max: float = option(1e4, "refuse a chunk with an |activation| above (0: off)", ge=0)
    act_range: float = option(
        100.0, "refuse a chunk peaking this many times above recent chunks' median (0: off)", ge=0
    )
    resume: str = option("", "resume from this run folder's checkpoint", bad=("/nonexistent/run",))
    state_key: str = option(
        "", "the edges' state folder name (a plain name)", bad=("../escape", "/tmp/x")
    )
    set_keys: str = option(
        "",
        "core keys the user set, comma-separated (hierfl run and hierfl.run fill it in); "
        "a continual method's defaults never replace them",
        bad=("nope", "rounds,nope"),
    )
    plugin_settings: dict[str, dict[str, Any]] = field(
        default_factory=dict, metadata={"help": "NAME.SETTING keys of plug-ins", "internal": True}
    )

    @classmethod
    def keys(cls) -> list[str]:
        """The outside (dashed) names of every core key."""
        return [dashed(f.name) for f in core_fields()]


def core_fields() -> list[dataclasses.Field]:
    """Every field but ``plugin_settings``: the keys a user sets by name."""
    return [f for f in fields(ConfigKeys) if not f.metadata.get("internal")]
