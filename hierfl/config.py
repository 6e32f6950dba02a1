"""The one typed run configuration, parsed and validated once at the boundary.

Sources, later ones winning: the defaults below, a ``--config FILE.toml``, CLI flags and
``key=value`` overrides. Keys use dashes on the outside (TOML, Flower run config, CLI) and
underscores inside.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from hierfl.errors import ConfigError, UnknownNameError

MODES = ("hierarchical", "split", "cloud", "edge")
DEVICES = ("cpu", "cuda", "auto")
OPTIMIZERS = ("adam", "sgd")
CLASS_MASKS = ("seen", "none")

_POSITIVE_INT = (
    "clients",
    "experiences",
    "rounds",
    "local_epochs",
    "batch_size",
    "cloud_epochs",
    "edge_replay_size",
    "cloud_replay_size",
)
_POSITIVE_FLOAT = (
    "dirichlet_alpha",
    "edge_lr",
    "cloud_lr",
    "max_chunk_mb",
    "backlog_mb",
    "reply_timeout",
    "node_wait_timeout",
)


@dataclass(frozen=True)
class HierConfig:
    """Everything a run needs; see the README for what each key does."""

    mode: str = "hierarchical"
    clients: int = 3
    scenario: str = "digits"
    experiences: int = 5
    partition: str = "iid"
    seed: int = 0
    model: str = "small-cnn"
    cut: str = ""
    exit_head: str = ""
    strategy: str = "fedavg"
    rounds: int = 5
    local_epochs: int = 5
    batch_size: int = 16
    optimizer: str = "adam"
    edge_lr: float = 0.003
    cloud_lr: float = 0.003
    momentum: float = 0.9
    cloud_epochs: int = 1
    test_fraction: float = 0.25
    input_shape: str = ""
    num_classes: int = 0
    samples_per_class: int = 0
    max_chunk_mb: float = 64.0
    bitrate: float = 0.0  # emulated uplink bits/s per edge; 0 = no emulation
    downlink_bitrate: float = 0.0  # emulated downlink bits/s; 0 = as bitrate
    latency: float = 0.0  # emulated one-way latency per message, seconds
    edge_slowdown: float = 1.0  # emulate an edge this many times slower
    codec: str = "fp32"  # uplink activation codec: fp32, fp16, int8
    edge_threads: int = 1
    cloud_threads: int = 1
    edge_device: str = "cpu"
    cloud_device: str = "cpu"
    exit_thresholds: str = "0.5,0.7,0.9,0.99"
    act_clip: float = 0.0
    act_noise: float = 0.0
    cl: str = "naive"
    class_mask: str = "seen"
    ewc_lambda: float = 1000.0
    edge_replay_size: int = 200
    cloud_replay_size: int = 2000
    freeze_edge_after: int = -1
    online: bool = False
    dirichlet_alpha: float = 0.5
    late_clients: str = ""
    link_down: str = ""
    backlog_mb: float = 16.0
    reply_timeout: float = 600.0
    node_wait_timeout: float = 120.0
    data_dir: str = ""
    out: str = "runs/flwr"
    checkpoint_every: int = 0
    max_failed_rounds: int = 3  # stop after this many rounds in a row without usable work
    resume: str = ""
    state_key: str = ""

    # ---- conversions -------------------------------------------------------------------------
    @classmethod
    def keys(cls) -> list[str]:
        """The outside (dashed) names of every key."""
        return [f.name.replace("_", "-") for f in fields(cls)]

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], base: HierConfig | None = None) -> HierConfig:
        """Build from dashed or underscored keys, coercing types; unknown keys are errors."""
        base = base or cls()
        types = {f.name: f.type for f in fields(cls)}
        changes: dict[str, Any] = {}
        for raw_key, value in values.items():
            name = raw_key.replace("-", "_")
            if name not in types:
                raise ConfigError(raw_key, f"unknown key; allowed: {', '.join(cls.keys())}")
            changes[name] = _coerce(raw_key, value, getattr(base, name))
        return dataclasses.replace(base, **changes)

    def to_flwr(self) -> dict[str, Any]:
        """The dashed ``[tool.flwr.app.config]`` form (bool, int, float and str values only)."""
        return {k.replace("_", "-"): v for k, v in dataclasses.asdict(self).items()}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # ---- derived values ------------------------------------------------------------------------
    @property
    def max_chunk_bytes(self) -> int:
        return int(self.max_chunk_mb * 1024 * 1024)

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
        delays: dict[int, int | None] = {}
        for item in filter(None, (p.strip() for p in self.late_clients.split(","))):
            pid, sep, delay = item.partition(":")
            try:
                partition = int(pid)
                value = None if delay.strip() == "never" else int(delay)
            except ValueError:
                partition, value, sep = -1, 0, ""
            if not sep or not 0 <= partition < self.clients or (value is not None and value < 1):
                raise ConfigError(
                    "late-clients",
                    f"expected PARTITION:DELAY pairs such as '1:1,2:never' with partitions in "
                    f"0..{self.clients - 1} and DELAY >= 1 or 'never', got {self.late_clients!r}",
                )
            delays[partition] = value
        return delays

    @property
    def link_outages(self) -> dict[int, set[int]]:
        """``link-down`` parsed: partition -> run-wide round numbers (1-based) without uplink."""
        outages: dict[int, set[int]] = {}
        total = self.experiences * self.rounds
        for item in filter(None, (p.strip() for p in self.link_down.split(","))):
            pid, sep, span = item.partition(":")
            first, _, last = span.partition("-")
            try:
                partition, a, b = int(pid), int(first), int(last or first)
            except ValueError:
                partition, a, b, sep = -1, 0, 0, ""
            if not sep or not 0 <= partition < self.clients or not 1 <= a <= b <= total:
                raise ConfigError(
                    "link-down",
                    f"expected PARTITION:FIRST-LAST round spans such as '1:3-4,2:6' with "
                    f"partitions in 0..{self.clients - 1} and rounds in 1..{total} (run-wide, "
                    f"experiences x rounds), got {self.link_down!r}",
                )
            outages.setdefault(partition, set()).update(range(a, b + 1))
        return outages

    @property
    def backlog_bytes(self) -> int:
        return int(self.backlog_mb * 1024 * 1024)

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        """``input-shape`` parsed from ``CxHxW``; None when empty (the scenario decides)."""
        return parse_shape("input-shape", self.input_shape) if self.input_shape else None

    # ---- validation --------------------------------------------------------------------------
    def validate(self) -> HierConfig:
        """Check every value; raise ``ConfigError`` naming the key and what is allowed."""
        from hierfl.models.heads import EXIT_HEADS
        from hierfl.plugins import AGGREGATORS, CONTINUAL, MODELS, PARTITIONERS, SCENARIOS

        if self.mode not in MODES:
            raise ConfigError("mode", f"unknown value {self.mode!r}; allowed: {', '.join(MODES)}")
        for key in _POSITIVE_INT + _POSITIVE_FLOAT:
            if getattr(self, key) <= 0:
                raise ConfigError(key.replace("_", "-"), f"must be > 0, got {getattr(self, key)}")
        if self.optimizer not in OPTIMIZERS:
            raise UnknownNameError("optimizer", self.optimizer, list(OPTIMIZERS))
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError("momentum", f"must be in [0, 1), got {self.momentum}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError("test-fraction", f"must be in (0, 1), got {self.test_fraction}")
        _ = self.image_shape, self.thresholds, self.arrival_delays, self.link_outages
        for key in ("edge_device", "cloud_device"):
            if getattr(self, key) not in DEVICES:
                raise UnknownNameError(key.replace("_", "-"), getattr(self, key), list(DEVICES))
        for key in ("edge_threads", "cloud_threads", "num_classes", "samples_per_class"):
            if getattr(self, key) < 0:
                raise ConfigError(key.replace("_", "-"), "must be >= 0 (0 = the default)")
        if self.seed < 0:
            raise ConfigError("seed", f"must be >= 0, got {self.seed}")
        MODELS.check(self.model)
        SCENARIOS.check(self.scenario)
        PARTITIONERS.check(self.partition)
        AGGREGATORS.check(self.strategy)
        names = [n.strip() for n in self.cl.split("+")]
        if not all(names):
            raise ConfigError("cl", f"expected names joined by '+', got {self.cl!r}")
        for name in names:
            CONTINUAL.check(name)
        self._check_strategy_fits_mode(names)
        if self.class_mask not in CLASS_MASKS:
            raise UnknownNameError("class-mask", self.class_mask, list(CLASS_MASKS))
        if self.ewc_lambda < 0:
            raise ConfigError("ewc-lambda", f"must be >= 0, got {self.ewc_lambda}")
        for key in ("act_clip", "act_noise"):
            if getattr(self, key) < 0:
                raise ConfigError(key.replace("_", "-"), "must be >= 0 (0 = off)")
        if self.mode == "cloud" and (self.act_clip or self.act_noise):
            raise ConfigError(
                "act-clip", "cloud mode uploads raw inputs; act-clip/act-noise protect activations"
            )
        if self.max_failed_rounds < 0:
            raise ConfigError("max-failed-rounds", "must be >= 0 (0 = never stop)")
        if self.checkpoint_every < -1:
            raise ConfigError(
                "checkpoint-every",
                f"must be -1 (never), 0 (at each experience's end) or a number of rounds, "
                f"got {self.checkpoint_every}",
            )
        if self.freeze_edge_after < -1:
            raise ConfigError("freeze-edge-after", "must be -1 (never) or an experience index")
        cuts = MODELS.get(self.model).cut_points
        if self.cut and self.cut not in cuts:
            raise ConfigError(
                "cut", f"unknown cut {self.cut!r} for {self.model}; allowed: {', '.join(cuts)}"
            )
        self._check_link()
        if self.exit_head and self.exit_head not in EXIT_HEADS:
            raise UnknownNameError("exit-head", self.exit_head, list(EXIT_HEADS))
        return self

    def _check_link(self) -> None:
        """The emulated link, the edge slowdown and the uplink codec."""
        import math

        from hierfl.codecs import CODECS

        for key in ("bitrate", "downlink_bitrate", "latency"):
            value = getattr(self, key)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(
                    key.replace("_", "-"), f"must be a finite number >= 0 (0 = off), got {value}"
                )
        if not math.isfinite(self.edge_slowdown) or self.edge_slowdown < 1.0:
            raise ConfigError("edge-slowdown", f"must be a number >= 1, got {self.edge_slowdown}")
        if self.codec not in CODECS:
            raise UnknownNameError("codec", self.codec, list(CODECS))

    def _check_strategy_fits_mode(self, names: list[str]) -> None:
        """Edge-side strategies need an edge that trains on its own loss (hierarchical, edge);
        cloud-side ones need a cloud that trains (every mode but edge)."""
        from hierfl.plugins import CONTINUAL

        for name in names:
            parts = CONTINUAL.get(name)(self)
            if parts.edge is not None and self.mode in ("split", "cloud"):
                raise ConfigError(
                    "cl",
                    f"{name!r} acts on the edge's own training, which {self.mode} mode does not "
                    "have; use it with mode hierarchical or edge, or pick a cloud-side strategy "
                    "(cloud-replay) or naive",
                )
            if parts.cloud is not None and self.mode == "edge":
                raise ConfigError(
                    "cl",
                    f"{name!r} acts on the cloud, which edge mode does not train; "
                    "use an edge-side strategy (edge-replay, lwf, ewc) or naive",
                )


def parse_shape(key: str, text: str) -> tuple[int, int, int]:
    """Parse ``CxHxW`` (e.g. ``3x32x32``) into three positive ints."""
    parts = text.lower().split("x")
    try:
        c, h, w = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(key, f"expected CxHxW such as 3x32x32, got {text!r}") from None
    if min(c, h, w) <= 0:
        raise ConfigError(key, f"every dimension must be > 0, got {text!r}")
    return c, h, w


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Convert ``value`` (maybe a string from the command line) to the type of ``default``."""
    kind = type(default)
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if kind is float:
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(key, f"expected {kind.__name__}, got {value!r}") from None


def parse_overrides(items: list[str]) -> dict[str, str]:
    """Parse ``key=value`` strings."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(item, "overrides must look like key=value")
        out[key.strip()] = value.strip().strip('"')
    return out


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a config file: either flat keys or a ``[tool.flwr.app.config]`` table."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError("config", f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"{path} is not valid TOML: {exc}") from None
    table = data.get("tool", {}).get("flwr", {}).get("app", {}).get("config")
    return dict(table if table is not None else data)
