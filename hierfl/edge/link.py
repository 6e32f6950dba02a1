"""The emulated link and device: how long a message takes, and a weaker edge's compute.

An edge delays each reply by the time an emulated link would take for it and the request it
answers (``LinkSpec``: ``bitrate``, ``downlink-bitrate``, ``latency``); ``slow_down`` emulates
a weaker edge device (``edge-slowdown``). Pure Python: no torch, no flwr.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from hierfl.errors import ConfigError

Direction = Literal["up", "down"]
Sleep = Callable[[float], None]


@dataclass(frozen=True)
class LinkSpec:
    """One edge's emulated link. 0 bits/s means "not emulated" (infinitely fast).

    ``downlink_bps`` 0 takes the uplink's rate; ``latency_s`` is one way, paid once per message.
    """

    uplink_bps: float = 0.0
    downlink_bps: float = 0.0
    latency_s: float = 0.0

    def __post_init__(self) -> None:
        names = {
            "uplink_bps": "bitrate",
            "downlink_bps": "downlink-bitrate",
            "latency_s": "latency",
        }
        for attr, key in names.items():
            value = getattr(self, attr)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(key, f"must be a finite number >= 0 (0 = off), got {value!r}")

    @classmethod
    def from_config(cls, config: Any) -> LinkSpec:
        """From a ``HierConfig`` (its ``bitrate``, ``downlink_bitrate`` and ``latency``)."""
        return cls(float(config.bitrate), float(config.downlink_bitrate), float(config.latency))

    @property
    def enabled(self) -> bool:
        return bool(self.uplink_bps or self.downlink_bps or self.latency_s)

    def seconds(self, nbytes: float, direction: Direction) -> float:
        """Time for one message of ``nbytes`` payload: latency + 8 * nbytes / bit rate.

        >>> LinkSpec(1e6, 0, 0.01).seconds(125_000, "down")  # downlink defaults to the uplink
        1.01
        """
        if nbytes < 0:
            raise ValueError(f"nbytes must be >= 0, got {nbytes}")
        if direction == "up":
            bps = self.uplink_bps
        elif direction == "down":
            bps = self.downlink_bps or self.uplink_bps
        else:
            raise ValueError(f"direction must be 'up' or 'down', got {direction!r}")
        return self.latency_s + (8.0 * nbytes / bps if bps else 0.0)


class LinkEmulator:
    """Sleeps for each message's transfer time and keeps the total (``emulated_link_s``)."""

    def __init__(self, spec: LinkSpec, *, sleep: Sleep = time.sleep) -> None:
        self.spec = spec
        self.sleep = sleep
        self.total_s = 0.0

    def transfer(self, nbytes: float, direction: Direction) -> float:
        """Delay one message; return the seconds it took (0 when the link is not emulated)."""
        seconds = self.spec.seconds(nbytes, direction) if self.spec.enabled else 0.0
        if seconds > 0:
            self.sleep(seconds)
            self.total_s += seconds
        return seconds


def slow_down(compute_s: float, factor: float, *, sleep: Sleep = time.sleep) -> float:
    """Emulate an edge ``factor`` times slower: sleep ``(factor - 1) * compute_s``.

    Returns the extra seconds slept; the emulated compute time is ``compute_s`` plus that.
    """
    if not math.isfinite(factor) or factor < 1.0:
        raise ConfigError("edge-slowdown", f"must be a finite number >= 1, got {factor!r}")
    extra = (factor - 1.0) * max(compute_s, 0.0)
    if extra > 0:
        sleep(extra)
    return extra
