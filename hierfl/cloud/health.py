"""Telling a transient failure from a systematic one, and what to tell the user about it.

A round in which some edges fail goes on without them (their events are recorded). A round in
which no edge delivered a usable reply (every one failed, was rejected or timed out), or in
which the cloud could not take a single finite step, is a *bad round*; ``max-failed-rounds``
bad rounds in a row stop the run, because a run that keeps going then trains nothing while
looking as if it did.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

log = logging.getLogger("hierfl")

# What a known edge error usually means, and the setting to change.
_HINTS = (
    ("NaN or Inf", "the edge models diverged: lower edge-lr"),
    ("learning rate", "check edge-lr"),
    ("UplinkDown", "the edges' uplinks are down (link-down)"),
    (
        "reply-timeout",
        "no edge answered in time: check that the hierfl-client processes run, "
        "or raise reply-timeout",
    ),
)
_PREFIX = re.compile(r"^((error \d+|partition \d+( \(node \d+\))?|node \d+): )+")
_NUMBER = re.compile(r"\d+(\.\d+)?")


def distinct_reason(reason: str) -> str:
    """An edge error without the edge's name or Flower's error code.

    >>> distinct_reason("error 2: partition 1: ValueError: Invalid learning rate: nan")
    'ValueError: Invalid learning rate: nan'
    """
    return _PREFIX.sub("", reason.strip())


def _cause(reason: str) -> str:
    """What makes two errors the same cause: the reason with its numbers masked."""
    return _NUMBER.sub("#", reason)


@dataclass
class RunHealth:
    """Counts bad rounds in a row; remembers each distinct edge error once."""

    max_bad_rounds: int  # 0: never stop
    bad_rounds: int = 0
    reasons: list[str] = field(default_factory=list)  # distinct, in order of first sight
    _causes: set[str] = field(default_factory=set)

    def edge_error(self, node: str, reason: str, *, rejected: bool = False) -> None:
        """Log an edge's error (or refused reply) the first time its cause is seen; later
        occurrences are only recorded as events."""
        cause = ("reply rejected: " if rejected else "") + distinct_reason(reason)
        if _cause(cause) in self._causes:
            log.debug("%s: %s", node, cause)
            return
        self._causes.add(_cause(cause))
        self.reasons.append(cause)
        log.warning(
            "%s: %s (each cause is logged once; metrics.json events has every occurrence)",
            node,
            cause,
        )

    def end_round(self, *, usable_replies: int, expected_replies: int, cloud_ok: bool) -> str:
        """Record a round's outcome; return the reason to stop the run, or ""."""
        edges_bad = expected_replies > 0 and usable_replies == 0
        self.bad_rounds = self.bad_rounds + 1 if edges_bad or not cloud_ok else 0
        if not self.max_bad_rounds or self.bad_rounds < self.max_bad_rounds:
            return ""
        what = (
            "no edge delivered a usable reply"
            if edges_bad
            else "the cloud's loss was not finite in any step"
        )
        return (
            f"{what} in {self.bad_rounds} rounds in a row (max-failed-rounds="
            f"{self.max_bad_rounds}); {self.advice(cloud_ok)}"
        )

    def advice(self, cloud_ok: bool = True) -> str:
        """What to change, from the errors seen (or the cloud's loss)."""
        if not cloud_ok:
            return "the cloud model diverged: lower cloud-lr"
        hints = [hint for pattern, hint in _HINTS if any(pattern in r for r in self.reasons)]
        errors = "; ".join(self.reasons) or "none reported"
        return f"{', '.join(hints) or 'see the edge errors'} (edge errors: {errors})"
