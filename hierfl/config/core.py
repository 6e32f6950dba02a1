"""``HierConfig``: the keys of ``hierfl.config.keys`` with their conversions (a mapping in,
Flower's flat run config out), the values derived from them, each edge's own config
(``per-edge``) and ``validate``'s checks across keys."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from hierfl.codecs import code_codec
from hierfl.config.keys import (
    AUTO_BOTTLENECK,
    PER_EDGE_KEYS,
    ConfigKeys,
    core_fields,
    is_plain_name,
)
from hierfl.errors import ConfigError
from hierfl.modes import MODES
from hierfl.options import (
    check_fields,
    coerce,
    dashed,
    parse_delays,
    parse_outages,
    parse_per_edge,
    parse_shape,
    unknown_key,
)
from hierfl.registry import BY_KEY, CONTINUAL, MODELS
from hierfl.registry.settings import all_settings, checked_settings, settings_of


@dataclass(frozen=True)
class HierConfig(ConfigKeys):
    """Everything a run needs; ``docs/reference.md`` lists every key."""

    # ---- conversions -------------------------------------------------------------------------
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

    @cached_property
    def edge_cuts(self) -> tuple[str, ...]:
        """The cut of each partition's edge, 0 to ``clients`` - 1 (``per-edge``'s, else
        ``cut``); worked out once per config."""
        return tuple(self.for_edge(p).cut for p in range(self.clients))

    def edge_cut(self, partition: int) -> str:
        """Partition ``partition``'s cut (``edge_cuts``, cycled as ``per-edge``'s values are)."""
        return self.edge_cuts[partition % len(self.edge_cuts)]

    @cached_property
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


def _known_keys() -> list[str]:
    """Every key a user may set: the core keys and each plug-in's ``NAME.SETTING``."""
    plugin_keys = [f"{name}.{k}" for name, items in all_settings().items() for k in items]
    return HierConfig.keys() + plugin_keys
