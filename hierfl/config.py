"""The one typed run configuration, parsed and validated once at the boundary.

Sources, later ones winning: the defaults below, a ``--config FILE.toml``, CLI flags and
``key=value`` overrides. Keys use dashes on the outside (TOML, Flower run config, CLI) and
underscores inside. Each field carries its help text and its allowed range or choices as
metadata: validation, the bad-value tests and the options table in ``docs/reference.md`` are
all generated from it.

Plug-ins own their settings (``hierfl.registry.settings``): a dotted key ``NAME.SETTING``
(``lwf.alpha=1``, ``dirichlet.alpha=0.3``) sets one of plug-in NAME's settings; they are kept in
``plugin_settings`` and checked against the plug-in's own settings dataclass.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
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
    code_codec,
)
from hierfl.errors import ConfigError
from hierfl.modes import MODE_NAMES, MODES
from hierfl.options import (
    check_fields,
    coerce,
    dashed,
    option,
    parse_delays,
    parse_outages,
    parse_per_edge,
    parse_shape,
    unknown_key,
)
from hierfl.registry import BY_KEY, CONTINUAL, MODELS
from hierfl.registry.settings import all_settings, checked_settings, settings_of

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
class HierConfig:
    """Everything a run needs; ``docs/reference.md`` lists every key."""

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

    # ---- conversions -------------------------------------------------------------------------
    @classmethod
    def keys(cls) -> list[str]:
        """The outside (dashed) names of every core key."""
        return [dashed(f.name) for f in core_fields()]

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], base: HierConfig | None = None) -> HierConfig:
        """Build from dashed or underscored keys, coercing types; unknown keys are errors.

        A dotted key ``NAME.SETTING`` is a plug-in's setting; its type is checked by
        ``validate`` against the plug-in's settings.
        """
        base = base or cls()
        defaults = {f.name: getattr(base, f.name) for f in core_fields()}
        changes: dict[str, Any] = {}
        plugins = {k: dict(v) for k, v in base.plugin_settings.items()}
        for raw_key, value in values.items():
            if "." in raw_key:
                name, _, setting = raw_key.partition(".")
                plugins.setdefault(name, {})[setting.replace("_", "-")] = value
                continue
            key = raw_key.replace("-", "_")
            if key == "plugin_settings" and isinstance(value, Mapping):
                for name, items in value.items():
                    plugins.setdefault(name, {}).update({dashed(k): v for k, v in items.items()})
                continue
            if key not in defaults:
                raise ConfigError(raw_key, unknown_key(raw_key, _known_keys()))
            changes[key] = coerce(raw_key, value, defaults[key])
        return dataclasses.replace(base, **changes, plugin_settings=plugins)

    def to_flwr(self) -> dict[str, Any]:
        """The flat ``[tool.flwr.app.config]`` form (bool, int, float and str values only)."""
        flat = {dashed(f.name): getattr(self, f.name) for f in core_fields()}
        for name, items in sorted(self.plugin_settings.items()):
            flat.update({f"{name}.{k}": v for k, v in sorted(items.items())})
        return flat

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # ---- derived values ------------------------------------------------------------------------
    @property
    def user_keys(self) -> frozenset[str]:
        """``set-keys`` as a set."""
        return frozenset(k.strip() for k in self.set_keys.split(",") if k.strip())

    @property
    def bottleneck_channels(self) -> int:
        """The bottleneck this run builds: ``bottleneck``, or for -1 (the default)
        ``AUTO_BOTTLENECK`` channels where the mode ships activations and ``codec`` is fp32
        (the baselines, and a run that picks an activation codec, get none)."""
        if self.bottleneck >= 0:
            return self.bottleneck
        ships = MODES[self.mode].payload == "activations" and self.codec == "fp32"
        return AUTO_BOTTLENECK if ships else 0

    @property
    def round_clients(self) -> int:
        """Edges asked each round: ``clients-per-round``, or every edge for 0 (the default)."""
        return self.clients_per_round or self.clients

    @property
    def sampling_cycle(self) -> int:
        """Rounds in which every edge is asked once: ceil(clients / ``round_clients``)."""
        return -(-self.clients // self.round_clients)

    @property
    def cloud_passes(self) -> int:
        """Passes the cloud makes over each chunk: ``cloud-epochs``, or for 0 (the default)
        as many as the chunk stands for in hierarchical mode (``local-epochs`` with
        ``ship=last-epoch``, ``online-passes`` online), else 1."""
        if self.cloud_epochs:
            return self.cloud_epochs
        if MODES[self.mode].payload != "activations":
            return 1
        if self.online:
            return self.online_passes
        return self.local_epochs if self.ship == "last-epoch" else 1

    @property
    def wire_codec(self) -> str:
        """How activations travel: the bottleneck's codes, or ``codec``."""
        return code_codec(self.code_bits) if self.bottleneck_channels else self.codec

    @property
    def max_chunk_bytes(self) -> int:
        return int(self.max_chunk_mb * 1024 * 1024)

    @property
    def backlog_bytes(self) -> int:
        return int(self.backlog_mb * 1024 * 1024)

    @property
    def methods(self) -> tuple[str, ...]:
        """``cl`` split into the continual methods' names (empty: the mode's default)."""
        cl = self.cl or (MODES[self.mode].default_cl if self.mode in MODES else "naive")
        return tuple(n.strip() for n in cl.split("+"))

    @property
    def thresholds(self) -> tuple[float, ...]:
        """``exit-thresholds`` parsed: early-exit confidence levels to report."""
        try:
            values = tuple(float(v) for v in self.exit_thresholds.split(",") if v.strip())
        except ValueError:
            raise ConfigError(
                "exit-thresholds", f"expected comma-separated numbers, got {self.exit_thresholds!r}"
            ) from None
        if any(not 0.0 <= v <= 1.0 for v in values):
            raise ConfigError("exit-thresholds", f"each must be in [0, 1], got {values}")
        return values

    @property
    def arrival_delays(self) -> dict[int, int | None]:
        """``late-clients`` parsed: partition -> experiences of delay (None: never)."""
        return parse_delays("late-clients", self.late_clients, self.clients, self.experiences)

    @property
    def link_outages(self) -> dict[int, set[int]]:
        """``link-down`` parsed: partition -> run-wide round numbers (1-based) without uplink."""
        total = self.experiences * self.rounds
        return parse_outages("link-down", self.link_down, self.clients, total)

    @property
    def per_edge_table(self) -> dict[str, list[str]]:
        """``per-edge`` parsed: key -> the values of partitions 0, 1, ... (cycled)."""
        return parse_per_edge("per-edge", self.per_edge, PER_EDGE_KEYS)

    def for_edge(self, partition: int) -> HierConfig:
        """The config edge ``partition`` runs with: ``per-edge``'s values for it."""
        table = self.per_edge_table
        values = {key: listed[partition % len(listed)] for key, listed in table.items()}
        return HierConfig.from_mapping(values, base=self) if values else self

    @property
    def fleet_cuts(self) -> tuple[str, ...]:
        """The edges' cuts, shallowest first, where ``per-edge`` sets them (edges at several
        depths, ``hierfl.models.depths``); empty where every edge cuts at ``cut``."""
        listed = self.per_edge_table.get("cut", [])
        cls = MODELS.get(self.model)
        return tuple(c for c in cls.cut_points if c in {v or cls.default_cut for v in listed})

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        """``input-shape`` parsed from ``CxHxW``; None when empty (the scenario decides)."""
        return parse_shape("input-shape", self.input_shape) if self.input_shape else None

    def settings(self, name: str) -> Any:
        """Plug-in ``name``'s settings: its dataclass with this run's ``NAME.*`` values."""
        return settings_of(name, self.plugin_settings.get(name, {}))

    # ---- validation --------------------------------------------------------------------------
    def validate(self) -> HierConfig:
        """Check every value; raise ``ConfigError`` naming the key and what is allowed.

        Returns the config with its plug-in settings coerced to their declared types.
        """
        check_fields(self, core_fields())
        if self.clients_per_round > self.clients:
            raise ConfigError(
                "clients-per-round",
                f"{self.clients_per_round} is more than clients={self.clients}",
            )
        if self.min_replies > self.round_clients:
            asked = "clients-per-round" if self.clients_per_round else "clients"
            raise ConfigError(
                "min-replies",
                f"{self.min_replies} is more than {asked}={self.round_clients}, the edges a "
                "round asks",
            )
        unknown = sorted(set(self.user_keys) - set(self.keys()))
        if unknown:
            raise ConfigError("set-keys", f"names no config key: {', '.join(unknown)}")
        _ = self.image_shape, self.thresholds, self.arrival_delays, self.link_outages
        if self.state_key and not is_plain_name(self.state_key):
            raise ConfigError(
                "state-key",
                f"must be a plain folder name (letters, digits, . _ -), got {self.state_key!r}",
            )
        if self.bottleneck > 0 and self.codec != "fp32":
            raise ConfigError(
                "codec",
                f"with bottleneck={self.bottleneck} the codes travel as {self.code_bits}-bit "
                "integers (code-bits); leave codec at fp32",
            )
        MODES[self.mode].check_keys(self)
        self._check_names()
        self._check_weight_exchange()
        self._check_per_edge()
        return dataclasses.replace(self, plugin_settings=self._checked_plugin_settings())

    def _check_names(self) -> None:
        """Registered plug-ins, the model's cuts, and continual methods that fit the mode."""
        for f in core_fields():
            registry = f.metadata.get("registry")
            if registry:
                BY_KEY[registry].check(getattr(self, f.name))
        cuts = MODELS.get(self.model).cut_points
        if self.cut and self.cut not in cuts:
            raise ConfigError(
                "cut", f"unknown cut {self.cut!r} for {self.model}; allowed: {', '.join(cuts)}"
            )
        if not all(self.methods):
            raise ConfigError("cl", f"expected names joined by '+', got {self.cl!r}")
        for name in self.methods:
            method = CONTINUAL.plugin(name)
            if not method.supports(self.mode):
                raise ConfigError(
                    "cl",
                    f"{name!r} works in {', '.join(method.modes)} mode, not {self.mode} "
                    f"({method.summary}); pick another method or mode".replace(" ()", ""),
                )

    def _check_weight_exchange(self) -> None:
        """``sync-every`` and ``averaged`` need edges that keep weights between exchanges."""
        if self.weight_codec != "fp32":
            return
        for key, value, default in (
            ("sync-every", self.sync_every, 1),
            ("averaged", self.averaged, "all"),
        ):
            if value != default:
                raise ConfigError(
                    key,
                    f"{value} needs weight-codec=topk: fp32 sends the full weights every round "
                    "(weight-codec=topk weight-density=1 weight-values=fp32 is an exact dense "
                    "exchange)",
                )

    def _check_per_edge(self) -> None:
        """Each edge's own values are valid; edges at their own cuts need what one cloud for
        several depths supports (``hierfl.models.depths``)."""
        table = self.per_edge_table
        for partition in range(max((len(v) for v in table.values()), default=0)):
            try:
                edge = self.for_edge(partition)
                check_fields(edge, core_fields())
                edge._check_names()
            except ConfigError as exc:
                raise ConfigError("per-edge", f"partition {partition}'s {exc}") from None
        if "cut" not in table:
            return
        needs = {
            "mode=hierarchical": self.mode == "hierarchical",
            "a strategy without server state (fedavg, fedprox, fedmedian, fedtrimmedavg)": (
                not BY_KEY["strategy"].plugin(self.strategy).keeps_state
            ),
            "continual methods on the edge side only (the cloud sees several depths)": all(
                "cloud" not in CONTINUAL.plugin(n).sides for n in self.methods
            ),
        }
        missing = [what for what, ok in needs.items() if not ok]
        if missing:
            raise ConfigError(
                "per-edge", f"edges at their own cuts need {'; '.join(missing)} for now"
            )

    def _checked_plugin_settings(self) -> dict[str, dict[str, Any]]:
        return {
            name: checked_settings(name, values) for name, values in self.plugin_settings.items()
        }


def core_fields() -> list[dataclasses.Field]:
    """Every field but ``plugin_settings``: the keys a user sets by name."""
    return [f for f in fields(HierConfig) if not f.metadata.get("internal")]


def _known_keys() -> list[str]:
    """Every key a user may set: the core keys and each plug-in's ``NAME.SETTING``."""
    plugin_keys = [f"{name}.{k}" for name, items in all_settings().items() for k in items]
    return HierConfig.keys() + plugin_keys
