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
    edge_threads: int = 1
    cloud_threads: int = 1
    edge_device: str = "cpu"
    cloud_device: str = "cpu"
    exit_thresholds: str = "0.5,0.7,0.9,0.99"
    cl: str = "naive"
    edge_replay_size: int = 200
    cloud_replay_size: int = 2000
    freeze_edge_after: int = -1
    online: bool = False
    dirichlet_alpha: float = 0.5
    late_clients: str = ""
    reply_timeout: float = 600.0
    node_wait_timeout: float = 120.0
    data_dir: str = ""
    out: str = "runs/flwr"

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
        _ = self.image_shape, self.thresholds, self.arrival_delays  # raise on malformed values
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
        if self.freeze_edge_after < -1:
            raise ConfigError("freeze-edge-after", "must be -1 (never) or an experience index")
        cuts = MODELS.get(self.model).cut_points
        if self.cut and self.cut not in cuts:
            raise ConfigError(
                "cut", f"unknown cut {self.cut!r} for {self.model}; allowed: {', '.join(cuts)}"
            )
        if self.exit_head and self.exit_head not in EXIT_HEADS:
            raise UnknownNameError("exit-head", self.exit_head, list(EXIT_HEADS))
        return self


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
