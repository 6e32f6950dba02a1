"""The four training modes on the same models: what each ships, trains and reports.

- ``hierarchical`` (the method): edges train ``f_e + h_e`` on the exit loss and ship detached
  activations; the cloud trains ``f_c`` on them, concurrently.
- ``split`` (classic split learning): per batch the cloud returns the gradient at the cut and
  the edge waits for it before its backward pass; edges take turns, each starting from the
  previous edge's weights (the relay of vanilla split learning), so it computes exactly what
  ``cloud`` mode computes; no exit.
- ``cloud`` (cloud-only): edges upload raw inputs, the cloud trains ``f_c(f_e(x))``; the only
  mode in which raw inputs leave an edge.
- ``edge`` (edge-only): edges train ``f_e + h_e``; no cloud.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from hierfl.codecs import RAW_CODECS
from hierfl.errors import ConfigError

if TYPE_CHECKING:  # the table itself is plain data: the config reads it without torch
    from torch import nn

    from hierfl.models import SplitModel


class ShippedKeys(Protocol):
    """The config keys about what an edge ships (``HierConfig`` has them)."""

    @property
    def bottleneck(self) -> int: ...
    @property
    def act_clip(self) -> float: ...
    @property
    def act_noise(self) -> float: ...
    @property
    def raw_codec(self) -> str: ...


@dataclass(frozen=True)
class Mode:
    """What a mode does, for the orchestrator and the reply checks."""

    name: str
    exits: tuple[str, ...]  # which exits are trained, evaluated and reported
    payload: str  # what a round's reply carries: "activations", "raw" or "none"
    aggregate_edges: bool  # whether edges train weights that the cloud collects
    sequential: bool = False  # edges take turns, each starting from the last one's weights
    edge_learns_from: str = "exit"  # "exit" (own loss), "cloud" (its gradient), "nothing"
    default_cl: str = "edge-replay"  # the continual method when ``cl`` is left empty
    unread: Mapping[str, str] = field(default_factory=dict)  # core keys it never reads: why

    def cloud_module(self, model: SplitModel) -> nn.Module | None:
        """The part of the network the cloud trains, or None."""
        if self.name == "cloud":
            return model.full_network()
        return model.cloud if "cloud" in self.exits else None

    def check_keys(self, config: ShippedKeys) -> None:
        """Refuse, rather than ignore, keys set for what this mode does not ship."""
        name = f"{self.name} mode"
        if self.payload == "raw" and config.bottleneck > 0:
            raise ConfigError(
                "bottleneck", f"{name} uploads raw inputs; a bottleneck codes activations"
            )
        if self.payload == "raw" and (config.act_clip or config.act_noise):
            raise ConfigError(
                "act-clip", f"{name} uploads raw inputs; act-clip/act-noise protect activations"
            )
        if self.payload != "raw" and config.raw_codec != RAW_CODECS[0]:
            raise ConfigError(
                "raw-codec",
                f"only cloud mode uploads raw inputs; {name} keeps them on the edges, so "
                "leave raw-codec at its default (or set mode=cloud)",
            )

    def payload_shape(self, model: SplitModel) -> tuple[int, ...] | None:
        """Per-sample shape of the shipped tensors, or None when nothing is shipped."""
        if self.payload == "activations":
            return model.activation_shape()
        if self.payload == "raw":
            return tuple(model.input_shape)
        return None


# The weight exchange's keys (``hierfl.train.exchange``): modes without one never read them.
_EXCHANGE = ("weight-codec", "weight-density", "weight-values", "sync-every", "averaged")

MODES: dict[str, Mode] = {
    "hierarchical": Mode("hierarchical", ("edge", "cloud"), "activations", True),
    "split": Mode(
        "split",
        ("cloud",),
        "none",
        True,
        sequential=True,
        edge_learns_from="cloud",
        default_cl="cloud-replay",
        unread={
            "exit-head": "split mode trains no exit",
            "ship": "split mode ships every batch's activations for its gradient",
            **{k: "split mode relays the full weights from edge to edge" for k in _EXCHANGE},
        },
    ),
    "cloud": Mode(
        "cloud",
        ("cloud",),
        "raw",
        False,
        edge_learns_from="nothing",
        default_cl="cloud-replay",
        unread={
            "edge-lr": "edges do not train in cloud mode",
            "exit-head": "cloud mode trains no exit",
            "freeze-edge-after": "edges do not train in cloud mode",
            "ship": "cloud mode uploads each input once",
            "codec": "cloud mode uploads raw inputs (raw-codec)",
            **{k: "edges train no weights in cloud mode" for k in _EXCHANGE},
        },
    ),
    "edge": Mode(
        "edge",
        ("edge",),
        "none",
        True,
        unread={
            "cloud-lr": "edge mode has no cloud",
            "cloud-epochs": "edge mode has no cloud",
            "codec": "edge mode ships nothing",
            "compress": "edge mode ships nothing",
            "ship": "edge mode ships nothing",
        },
    ),
}
MODE_NAMES: tuple[str, ...] = tuple(MODES)
"""The modes by name, in the order the docs list them (``mode``'s choices)."""
