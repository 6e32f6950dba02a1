"""``HierConfig.validate``: every value checked, across keys too, each refusal a ``ConfigError``
naming the key and what is allowed. The per-field checks (types, ranges, choices) come from the
fields' metadata (``hierfl.options.check_fields``); the rest is here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hierfl.config import HierConfig, core_fields, is_plain_name
from hierfl.errors import ConfigError
from hierfl.modes import MODES
from hierfl.options import check_fields
from hierfl.registry import BY_KEY, CONTINUAL, MODELS
from hierfl.registry.settings import checked_settings


def validated(self: HierConfig) -> HierConfig:
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
            f"{self.min_replies} is more than {asked}={self.round_clients}, the edges a round asks",
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
    _check_names(self)
    _check_weight_exchange(self)
    return dataclasses.replace(self, plugin_settings=_checked_plugin_settings(self))


def _check_names(self: HierConfig) -> None:
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


def _check_weight_exchange(self: HierConfig) -> None:
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


def _checked_plugin_settings(self: HierConfig) -> dict[str, dict[str, Any]]:
    return {name: checked_settings(name, values) for name, values in self.plugin_settings.items()}
