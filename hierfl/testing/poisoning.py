"""Poisoning edges of the literature, for tests and ``benchmarks/poisoning.py``.

*Update attacks* rewrite the attacker's weight update as the cloud reads it (the coded update of
``weight-codec=topk``, the default, or the full fp32 weights), knowing the round's honest
updates, the strongest (omniscient) form of each:

- ``boosted-update``: its own update times 20 (model replacement, Bagdasaryan et al. 2020);
- ``sign-flip``: its own update negated;
- ``alie``: per coordinate, the honest mean minus 1.5 honest standard deviations ("A Little Is
  Enough", Baruch et al. 2019);
- ``ipm``: minus 100 times the honest mean (inner product manipulation against averaging,
  Xie et al. 2020).

*Data attacks* poison what the attacker ships or trains on: ``label-flip`` (every shipped label
moved to the next class, rows shipped twice: ``hierfl.testing.attacks.label_flip``) and
``backdoor`` (``backdoor_stream``: a trigger patch on half of its samples of the other classes,
relabelled to a target class; it trains on them, so its activations and its weights both carry
the backdoor).

``PoisoningGrid`` is the in-process grid in which partition ``attacker`` does it; it answers
the attacker's request after the honest ones, so the attacker knows their updates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import torch
from flwr.app import ArrayRecord, Message, RecordDict

from hierfl.app.inprocess import InProcessGrid
from hierfl.app.protocol import ARRAYS, EVAL, attach_update, read_update
from hierfl.cloud.exchange import WeightExchange
from hierfl.codecs.updates import decode_update, encode_update
from hierfl.config import HierConfig
from hierfl.data.containers import Benchmark, ClientStream, ExperienceData
from hierfl.results.accuracy import AccuracyMatrix
from hierfl.testing.attacks import CRASH, TAKEOVER, Attack, MaliciousGrid, label_flip

Change = dict[str, torch.Tensor]
UpdateAttack = Callable[[Change, Sequence[Change]], Change]
"""(the attacker's honest update, the other edges' updates) -> the update it sends."""


def _scaled(factor: float) -> UpdateAttack:
    return lambda own, honest: {k: v * factor for k, v in own.items()}


def _alie(z: float) -> UpdateAttack:
    def attack(own: Change, honest: Sequence[Change]) -> Change:
        if len(honest) < 2:
            return own
        out = {}
        for k in own:
            stacked = torch.stack([h[k] for h in honest])
            out[k] = stacked.mean(0) - z * stacked.std(0)
        return out

    return attack


def _ipm(epsilon: float) -> UpdateAttack:
    def attack(own: Change, honest: Sequence[Change]) -> Change:
        if not honest:
            return own
        return {k: -epsilon * torch.stack([h[k] for h in honest]).mean(0) for k in own}

    return attack


UPDATE_ATTACKS: dict[str, UpdateAttack] = {
    "boosted-update": _scaled(20.0),
    "sign-flip": _scaled(-1.0),
    "alie": _alie(1.5),
    "ipm": _ipm(100.0),
}


class UpdateView:
    """A reply's weight update as the cloud reads it, read and written back.

    With a compressed exchange (``exchange``) it is the coded update; otherwise the reply's
    floating-point weights minus those its request carried.
    """

    def __init__(self, exchange: WeightExchange | None) -> None:
        self.exchange = exchange

    def read(self, reply: RecordDict, request: RecordDict) -> Change | None:
        e = self.exchange
        if e is None:
            state, sent = _state(reply), _state(request)
            return {k: t - sent[k] for k, t in state.items() if t.is_floating_point()}
        _, _, encoded = read_update(reply, e.shapes, e.codec)
        return None if encoded is None else decode_update(encoded, e.shapes, e.codec)

    def write(self, reply: RecordDict, request: RecordDict, change: Change) -> None:
        e = self.exchange
        if e is None:
            state, sent = _state(reply), _state(request)
            reply[ARRAYS] = ArrayRecord(
                {k: sent[k] + change[k] if k in change else t for k, t in state.items()}
            )
            return
        version, digest, _ = read_update(reply, e.shapes, e.codec)
        encoded = encode_update(change, e.codec)
        attach_update(reply, encoded, e.names, version=version, digest=digest, eval_state=None)


def _state(content: RecordDict) -> dict[str, torch.Tensor]:
    return content.array_records[ARRAYS].to_torch_state_dict()


class PoisoningGrid(MaliciousGrid):
    """Partition ``attacker`` rewrites its replies with ``update_attack`` (knowing the round's
    honest updates, read through ``view``) or with the reply ``attacks`` of ``MaliciousGrid``;
    honest replies' eval copies are kept (``eval_copies``) to measure their models after the
    run."""

    update_attack: UpdateAttack | None = None
    view: UpdateView = UpdateView(None)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.honest: list[Change] = []
        self.eval_copies: dict[int, dict[str, torch.Tensor]] = {}

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        messages = list(messages)
        if messages:
            self.honest = []  # a new round
        return super().push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        """The attacker's request is answered last of those asked for."""
        wanted = set(message_ids)
        self._queue.sort(key=lambda p: self._is_attacker(p.message) and p.message_id in wanted)
        return super().pull_messages(wanted)

    def _is_attacker(self, message: Message) -> bool:
        return self.nodes[message.metadata.dst_node_id].stream.partition_id == self.attacker

    def answer(self, message: Message) -> Message | None:
        attacker = self._is_attacker(message)
        if attacker and self.attacks and self.update_attack is None:
            return super().answer(message)  # a reply attack of ``MaliciousGrid``
        reply = InProcessGrid.answer(self, message)
        if reply is None or reply.has_error():
            return reply
        if not attacker:
            self._observe(message, reply)
        elif self.update_attack is not None:
            own = self.view.read(reply.content, message.content)
            if own is not None:
                change = self.update_attack(own, self.honest)
                self.view.write(reply.content, message.content, change)
        return reply

    def _observe(self, request: Message, reply: Message) -> None:
        change = self.view.read(reply.content, request.content)
        if change is not None:
            self.honest.append(change)
        if EVAL in reply.content.array_records:
            pid = self.nodes[request.metadata.dst_node_id].stream.partition_id
            self.eval_copies[pid] = reply.content.array_records[EVAL].to_torch_state_dict()


# ---- the backdoor -----------------------------------------------------------------------------
def trigger(x: torch.Tensor) -> torch.Tensor:
    """``x`` with the trigger: a bright square in the bottom-right corner, an eighth of the
    image's side (at least 2 pixels)."""
    side = max(2, x.shape[-1] // 8)
    out = x.clone()
    out[..., -side:, -side:] = x.amax() if x.numel() else 1.0
    return out


def backdoor_stream(
    stream: ClientStream, target: int, share: float = 0.5, seed: int = 0
) -> ClientStream:
    """``stream`` with the trigger on ``share`` of its samples of classes other than
    ``target``, relabelled ``target``."""
    generator = torch.Generator().manual_seed(seed)
    experiences = []
    for exp in stream.experiences:
        others = (exp.y != target).nonzero().flatten()
        picked = others[torch.rand(len(others), generator=generator) < share]
        x, y = exp.x.clone(), exp.y.clone()
        x[picked] = trigger(exp.x[picked]) if len(picked) else x[picked]
        y[picked] = target
        experiences.append(dataclasses.replace(exp, x=x, y=y))
    return dataclasses.replace(stream, experiences=tuple(experiences))


def triggered_test(
    test: Sequence[ExperienceData], target: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every test input of another class than ``target``, triggered, with ``target`` as label:
    the share an exit classifies as labelled is its attack success rate."""
    x = torch.cat([e.x[e.y != target] for e in test])
    return trigger(x), torch.full((len(x),), target, dtype=torch.long)


# ---- the grid of a poisoning run -------------------------------------------------------------
ATTACKER = 0  # the malicious partition
REPLY_ATTACKS = ("label-flip", "crash", *TAKEOVER)


def target_class(bench: Benchmark) -> int:
    """The backdoor's target: the first class of the first experience."""
    return int(bench.train[0].classes[0])


def poisoning_grid(
    config: HierConfig, bench: Benchmark, attack: str, folder: Path
) -> PoisoningGrid:
    """The in-process grid of a run in which partition ``ATTACKER`` does ``attack`` (``none``:
    every edge honest): an update attack, ``backdoor``, or a reply attack (``label-flip``,
    ``crash``, or one of ``hierfl.testing.attacks.TAKEOVER``)."""
    from hierfl.api import edge_streams
    from hierfl.models import model_for

    known = ("none", "backdoor", *UPDATE_ATTACKS, *REPLY_ATTACKS)
    if attack not in known:
        raise ValueError(f"unknown attack {attack!r}; known: {', '.join(known)}")
    streams = edge_streams(config, bench)
    if attack == "backdoor":
        streams[ATTACKER] = backdoor_stream(streams[ATTACKER], target_class(bench))
    grid = PoisoningGrid(config, streams, folder)
    grid.attacker = ATTACKER if attack != "none" else -1
    model = model_for(config, bench.num_classes, bench.input_shape)
    grid.view = UpdateView(WeightExchange.for_edge(config, model))
    grid.update_attack = UPDATE_ATTACKS.get(attack)
    if attack == "label-flip":
        grid.attacks = [label_flip(bench.num_classes)]
    elif attack == "crash":
        grid.attacks = list(CRASH.values())
    elif attack in TAKEOVER:
        grid.attacks = [TAKEOVER[attack]]
    return grid


def honest_edge_accuracies(clients: Mapping[int, AccuracyMatrix], last: int) -> list[float]:
    """The honest edges' own exits after experience ``last`` (mean over the experiences seen),
    from a run's per-edge matrices; an edge whose reply did not count in that experience's
    last round has no row there and is left out."""
    out = []
    for p, matrix in sorted(clients.items()):
        try:
            row = matrix.row("edge", last)
        except (KeyError, ValueError):
            continue
        if p != ATTACKER:
            out.append(sum(row) / len(row))
    return out


__all__ = [
    "ATTACKER",
    "REPLY_ATTACKS",
    "UPDATE_ATTACKS",
    "Attack",
    "PoisoningGrid",
    "UpdateView",
    "backdoor_stream",
    "honest_edge_accuracies",
    "poisoning_grid",
    "target_class",
    "trigger",
    "triggered_test",
]
