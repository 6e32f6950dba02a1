"""What crosses the edge-cloud network: byte accounting per client and round, link emulation.

Both federations (in-process and Flower) count every message they carry in a ``TrafficLog``
and, when the run config asks for it, delay it by the time an emulated link would take
(``LinkSpec``: ``bitrate``, ``downlink-bitrate``, ``latency``). ``slow_down`` emulates a weaker
edge device (``edge-slowdown``). Pure Python: no torch, no flwr.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
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


@dataclass
class _Tally:
    uplink_bytes: int = 0
    downlink_bytes: int = 0
    uplink_messages: int = 0
    downlink_messages: int = 0
    emulated_link_s: float = 0.0

    def add(self, direction: Direction, nbytes: int, link_s: float) -> None:
        if direction == "up":
            self.uplink_bytes += nbytes
            self.uplink_messages += 1
        else:
            self.downlink_bytes += nbytes
            self.downlink_messages += 1
        self.emulated_link_s += link_s

    def as_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


@dataclass
class TrafficLog:
    """Payload bytes and messages per direction, per client and per (experience, round).

    A federation calls ``begin_round`` when it dispatches a round and ``record`` for every
    message it carries; messages are attributed to the round dispatched last. Clients are any
    hashable key (a partition id, or a Flower node id renamed in ``summary``).
    """

    period: tuple[int, int] = (0, 0)
    _rounds: dict[tuple[int, int], _Tally] = field(default_factory=dict)
    _clients: dict[Hashable, _Tally] = field(default_factory=dict)
    _total: _Tally = field(default_factory=_Tally)

    def begin_round(self, experience: int, round: int) -> None:
        self.period = (experience, round)
        self._rounds.setdefault(self.period, _Tally())

    def record(
        self, client: Hashable, direction: Direction, nbytes: int, *, link_s: float = 0.0
    ) -> None:
        """Count one message of ``nbytes`` payload; ``link_s`` is its emulated transfer time."""
        for tally in (
            self._rounds.setdefault(self.period, _Tally()),
            self._clients.setdefault(client, _Tally()),
            self._total,
        ):
            tally.add(direction, int(nbytes), float(link_s))

    def totals(self) -> tuple[int, int]:
        """(uplink bytes, downlink bytes) over the whole run."""
        return self._total.uplink_bytes, self._total.downlink_bytes

    @property
    def emulated_link_s(self) -> float:
        """Summed over all messages of all edges (edges' links run side by side)."""
        return self._total.emulated_link_s

    def summary(self, names: Mapping[Hashable, object] | None = None) -> dict[str, Any]:
        """The ``communication`` block of metrics.json: totals, ``per_round``, ``per_client``.

        ``names`` renames client keys (Flower: node id -> partition id); keys are written as
        strings, and clients that map to the same name are merged.
        """
        names = names or {}
        per_client: dict[str, dict[str, float | int]] = {}
        for client, tally in self._clients.items():
            key = str(names.get(client, client))
            merged = per_client.setdefault(key, _Tally().as_dict())
            for k, v in tally.as_dict().items():
                merged[k] += v
        per_round = [
            {"experience": e, "round": r, **tally.as_dict()}
            for (e, r), tally in sorted(self._rounds.items())
        ]
        return {
            **self._total.as_dict(),
            "per_round": per_round,
            "per_client": dict(sorted(per_client.items())),
        }
