"""The edge decides what leaves it: its owner's rules, which no run config can override.

The cloud sends its run config with every message; an edge checks it against the policy its
owner gave ``hierfl-client`` (carried in the SuperNode's node config, which the cloud cannot
set) before it touches its data. A refused config is an error reply naming the rule.

=====================  =======  ===========================================================
node-config key        default  rule
=====================  =======  ===========================================================
``allow-raw-upload``   false    ``mode=cloud`` (raw inputs leave the device) only when true
``min-act-noise``      0        ``act-noise`` must be at least this
``max-act-clip``       0        when > 0: ``act-clip`` must be on and at most this
``max-latency``        10       emulated ``latency`` at most this many seconds
``max-slowdown``       10       ``edge-slowdown`` at most this
``max-link-s``         600      emulated link seconds one message may sleep
=====================  =======  ===========================================================

``state-key`` must be a plain folder name whatever the policy: it names a folder under the
node's state folder, never a path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from hierfl.config import is_plain_name
from hierfl.errors import HierflError
from hierfl.modes import MODES


class PolicyRefused(HierflError):
    """The run config breaks a rule of this edge's policy; the message names the rule."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"edge policy {rule}: {message}")
        self.rule = rule


def _rule(default: Any, help: str) -> Any:
    """A rule of the policy: its default and one line of help (``hierfl-client``'s flag)."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class EdgePolicy:
    allow_raw_upload: bool = _rule(
        False, "accept mode=cloud, which uploads this device's raw inputs (refused by default)"
    )
    min_act_noise: float = _rule(0.0, "refuse act-noise below")
    max_act_clip: float = _rule(0.0, "require act-clip on and at most (0: off)")
    max_latency: float = _rule(10.0, "refuse latency above, s")
    max_slowdown: float = _rule(10.0, "refuse edge-slowdown above")
    max_link_s: float = _rule(600.0, "refuse to sleep an emulated link longer")

    @classmethod
    def from_node_config(cls, node_config: Mapping[str, Any]) -> EdgePolicy:
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = f.name.replace("_", "-")
            if key not in node_config:
                continue
            raw = node_config[key]
            if f.type == "bool" or isinstance(f.default, bool):
                values[f.name] = _flag(key, raw)
            else:
                values[f.name] = _number(key, raw)
        return cls(**values)

    def node_config(self) -> dict[str, Any]:
        """The policy as node-config entries (what ``hierfl-client`` passes its SuperNode)."""
        return {f.name.replace("_", "-"): getattr(self, f.name) for f in fields(self)}

    def check(self, config: Any) -> None:
        """Refuse ``config`` (a ``HierConfig``) if it breaks a rule."""
        check_state_key(config.state_key)
        mode = MODES.get(config.mode)
        if mode is None:
            raise PolicyRefused("mode", f"unknown mode {config.mode!r}")
        if mode.payload == "raw" and not self.allow_raw_upload:
            raise PolicyRefused(
                "allow-raw-upload",
                "mode=cloud uploads this device's raw inputs; its owner allows that only with "
                "hierfl-client --allow-raw-upload",
            )
        if config.act_noise < self.min_act_noise:
            raise PolicyRefused(
                "min-act-noise", f"act-noise={config.act_noise:g} is below {self.min_act_noise:g}"
            )
        if self.max_act_clip and not 0 < config.act_clip <= self.max_act_clip:
            raise PolicyRefused(
                "max-act-clip",
                f"act-clip={config.act_clip:g} must be on and at most {self.max_act_clip:g}",
            )
        if config.latency > self.max_latency:
            raise PolicyRefused(
                "max-latency", f"latency={config.latency:g}s is above {self.max_latency:g}s"
            )
        if config.edge_slowdown > self.max_slowdown:
            raise PolicyRefused(
                "max-slowdown",
                f"edge-slowdown={config.edge_slowdown:g} is above {self.max_slowdown:g}",
            )

    def check_link(self, seconds: float) -> None:
        """Refuse to sleep an emulated link time above ``max-link-s``."""
        if not seconds <= self.max_link_s:
            raise PolicyRefused(
                "max-link-s",
                f"the emulated link would sleep {seconds:.3g}s for one message, above "
                f"{self.max_link_s:g}s (bitrate too low for this payload?)",
            )


def check_state_key(key: str) -> None:
    """A plain folder name (letters, digits, ``. _ -``), never a path."""
    if key and not is_plain_name(key):
        raise PolicyRefused("state-key", f"must be a plain folder name, not a path: {key!r}")


def _flag(key: str, raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no", ""):
        return False
    raise PolicyRefused(key, f"expected true or false, got {raw!r}")


def _number(key: str, raw: object) -> float:
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise PolicyRefused(key, f"expected a number, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise PolicyRefused(key, f"expected a finite number >= 0, got {raw!r}")
    return value
