"""Collecting a round's replies: take each as it arrives, check it, train the cloud between polls.

The cloud trains one mini-batch at a time between polls instead of idling while edges compute.
A reply is checked (``hierfl.cloud.validation``) before any of it touches the cloud model; a
refused reply or a failed edge is an event and the round goes on without it. A round closes when
every edge answered, at ``reply-timeout``, or ``quorum-grace`` seconds after ``min-replies``
usable replies.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from hierfl.boundary import EdgeFailure, EdgeState, RoundRequest, RoundResult
from hierfl.cloud.federation import Federation
from hierfl.cloud.health import RunHealth
from hierfl.cloud.robust import ActivationRange
from hierfl.cloud.screen import LabelScreen, Screened
from hierfl.cloud.trainer import CloudTrainer
from hierfl.cloud.uploads import RawUploads
from hierfl.cloud.validation import check_batch, validate_result
from hierfl.config import HierConfig
from hierfl.errors import ChunkRejected
from hierfl.modes import MODES
from hierfl.results.events import (
    backlog_shipped,
    edge_excluded,
    edge_failed,
    event,
    update_clipped,
)
from hierfl.results.run_result import RunResult
from hierfl.train.schedule import passes_per_chunk

log = logging.getLogger("hierfl")


@dataclass
class Collected:
    """A round's replies as the round loop sees them."""

    expected: int  # replies the round asked for
    usable: int = 0  # replies that passed every check
    edge_s: float = 0.0  # the edges' compute seconds
    examples: int = 0  # samples the edges trained on
    latency_s: float = 0.0  # from the request (or from when collecting began) to the last reply
    client_states: dict[int, EdgeState] = field(default_factory=dict)  # last round of an experience


@dataclass
class _Round:
    request: RoundRequest
    collected: Collected
    deadline: float
    last_round: bool
    last_reply_at: float
    quorum_at: float | None = None  # when min-replies usable replies were in
    held: list[RoundResult] = field(default_factory=list)  # chunks awaiting ``label-screen``
    # chunks to mix in the later passes, by the cut they come from (edges at several depths)
    later: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = field(default_factory=dict)


class ReplyCollector:
    """Takes the replies of each round; owns the checks on what arrives."""

    def __init__(
        self,
        config: HierConfig,
        federation: Federation,
        cloud: CloudTrainer,
        uploads: RawUploads,
        health: RunHealth,
        *,
        payload_shape: tuple[int, ...] | None,
        activation_shape: tuple[int, ...],
        num_classes: int,
        clock: Callable[[], float],
        poll_interval: float,
        depth_shapes: Mapping[str, tuple[int, ...]] | None = None,
    ) -> None:
        """``depth_shapes``: where edges cut at several depths (``per-edge``), the shipped
        per-sample shape at each cut; each chunk is checked against its edge's."""
        self.config = config
        self.depth_shapes = dict(depth_shapes or {})
        self.mode = MODES[config.mode]
        self.federation, self.cloud, self.uploads, self.health = federation, cloud, uploads, health
        self.payload_shape, self.activation_shape = payload_shape, activation_shape
        self.num_classes = num_classes
        self.clock, self.poll_interval = clock, poll_interval
        self.act_ranges: dict[str, ActivationRange] = {}  # per depth: peaks differ by cut
        self.label_screens: dict[str, LabelScreen] = {}  # per depth: it remembers centroids
        self.request = RoundRequest(0, 0)  # the round being collected (split's cloud steps)

    def collect(self, request: RoundRequest, dispatched_at: float, result: RunResult) -> Collected:
        """Take replies until the round closes, training the cloud between polls."""
        started = self.clock()
        self.request = request
        now = _Round(
            request,
            Collected(self.federation.outstanding()),
            deadline=dispatched_at + self.config.reply_timeout,
            last_round=request.round == self.config.rounds - 1,
            last_reply_at=dispatched_at,
        )
        while self.federation.outstanding():
            items = self.federation.poll()
            if items:
                now.last_reply_at = self.clock()
            for item in items:
                self._take(item, now, result)
            if self._closed(now, result):
                break
            if not self.cloud.step() and self.federation.outstanding():
                time.sleep(self.poll_interval)
        self._release(now, result)
        result.edge_compute_s += now.collected.edge_s
        # From the request, or from when collecting began if the cloud was still busy with the
        # last experience's evaluation: the reply wait the run saw, not the evaluation.
        now.collected.latency_s = max(now.last_reply_at - max(dispatched_at, started), 0.0)
        return now.collected

    def split_step(self, activations: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Split mode: check one batch from an edge, train on it, return the gradient at the cut."""
        check_batch(
            activations, labels, sample_shape=self.activation_shape, num_classes=self.num_classes
        )
        self._act_range("").check(activations)
        request = self.request
        return self.cloud.train_batch_grad(
            activations, labels, experience=request.experience, round=request.round
        )

    # ---- one reply ---------------------------------------------------------------------------
    def _take(self, item: RoundResult | EdgeFailure, now: _Round, result: RunResult) -> None:
        if isinstance(item, EdgeFailure):
            self._fail(item, now.request, result)
            return
        depth = self._depth(item.partition_id)
        try:
            validate_result(
                item,
                request=now.request,
                activation_shape=self.depth_shapes.get(depth, self.payload_shape),
                num_classes=self.num_classes,
                max_bytes=self.config.max_chunk_bytes,
                passes=passes_per_chunk(self.config),
            )
            self._act_range(depth).check(item.chunk.activations)
        except ChunkRejected as exc:
            self.federation.discard(item)
            name = f"partition {item.partition_id}"
            self._fail(EdgeFailure(name, str(exc), item.partition_id, True), now.request, result)
            return
        self._accept(item, now, result)

    def _accept(self, item: RoundResult, now: _Round, result: RunResult) -> None:
        """A usable reply: its events, its counts, and its chunk for the cloud."""
        collected, chunk = now.collected, item.chunk
        collected.usable += 1
        if item.clipped_from:
            bound = self.config.max_update_norm
            result.failures.append(
                update_clipped(
                    now.request, item.partition_id, item.clipped_from, bound, "max-update-norm"
                )
            )
        if now.last_round and self.mode.aggregate_edges:  # for the per-client matrices
            collected.client_states[item.partition_id] = item.eval_state or item.edge_state
        if chunk.backlog or chunk.backlog_dropped:
            result.failures.append(backlog_shipped(item, now.request))
        if chunk.truncated:
            log.warning(
                "edge %d: chunk truncated at %d batches by max-chunk-mb",
                item.partition_id,
                chunk.batches,
            )
        collected.edge_s += chunk.compute_s
        collected.examples += chunk.trained or chunk.num_examples
        result.cloud_only_uint8_bytes += chunk.cloud_only_uint8
        result.cloud_only_png_bytes += chunk.cloud_only_png
        if chunk.raw:
            result.raw_input_bytes_uplink += chunk.wire_bytes  # as sent
            if chunk.num_examples:
                self.uploads.add(chunk.activations, chunk.labels)
        elif chunk.num_examples and self.config.label_screen:
            now.held.append(item)  # screened with the round's others (``_release``)
        elif chunk.num_examples:
            self._enqueue(item, now)

    def _enqueue(self, item: RoundResult, now: _Round) -> None:
        """The chunk's first pass now, its later passes with the round's others (``_release``)."""
        chunk, request = item.chunk, now.request
        depth = self._depth(item.partition_id)
        self.cloud.enqueue_first(
            chunk.activations,
            chunk.labels,
            experience=request.experience,
            round=request.round,
            depth=depth,
        )
        now.later.setdefault(depth, []).append((chunk.activations, chunk.labels))
        self._bound_queue()

    def _depth(self, partition: int) -> str:
        """The cut ``partition``'s edge ships from where edges cut at several depths, else ""."""
        return self.config.edge_cut(partition) if self.depth_shapes else ""

    def _act_range(self, depth: str) -> ActivationRange:
        if depth not in self.act_ranges:
            self.act_ranges[depth] = ActivationRange(self.config.act_max, self.config.act_range)
        return self.act_ranges[depth]

    def _release(self, now: _Round, result: RunResult) -> None:
        """The round closes. ``label-screen``: the held chunks get their first pass, except an
        edge's whose labels disagree with the other edges' data (``hierfl.cloud.screen``): its
        round is left out, chunk and weights, with an event. Then the cloud's later passes over
        all the round's chunks, mixed (``CloudTrainer.enqueue_later_depths``)."""
        held, now.held = now.held, []
        flagged = self._screen(held)
        for i, item in enumerate(held):
            if i not in flagged:
                self._enqueue(item, now)
                continue
            self.federation.discard(item)
            now.collected.usable -= 1
            now.collected.client_states.pop(item.partition_id, None)
            s = flagged[i]
            result.failures.append(
                edge_excluded(
                    item, now.request, reason=s.reason, agreement=s.agreement, expected=s.expected
                )
            )
        later, now.later = now.later, {}
        self.cloud.enqueue_later_depths(later, experience=now.request.experience)
        self._bound_queue()

    def _screen(self, held: list[RoundResult]) -> dict[int, Screened]:
        """``label-screen`` over the held chunks, by index; edges at several depths are
        screened among the edges at their own cut (activations of one kind)."""
        groups: dict[str, list[int]] = {}
        for i, item in enumerate(held):
            groups.setdefault(self._depth(item.partition_id), []).append(i)
        flagged: dict[int, Screened] = {}
        for depth, members in groups.items():
            chunks = [(held[i].chunk.activations, held[i].chunk.labels) for i in members]
            screen = self.label_screens.setdefault(depth, LabelScreen(self.config.label_screen))
            for s in screen.screen(chunks):
                flagged[members[s.index]] = s
        return flagged

    def _fail(self, failure: EdgeFailure, request: RoundRequest, result: RunResult) -> None:
        """An edge failed or its reply was refused: the round goes on without it."""
        result.rejected += failure.rejected
        self.health.edge_error(failure.node, failure.reason, rejected=failure.rejected)
        result.failures.append(edge_failed(failure, request))

    def _bound_queue(self) -> None:
        """Back-pressure: past one round's worth of chunks the cloud trains before it reads
        more replies, which wait in the SuperLink; server memory stays bounded."""
        cap = self.config.round_clients * self.config.max_chunk_bytes * self.config.cloud_passes
        while self.cloud.queued_bytes > cap and self.cloud.step():
            pass

    # ---- closing the round -------------------------------------------------------------------
    def _closed(self, now: _Round, result: RunResult) -> bool:
        """Close the round at the deadline, or at quorum once its grace has passed."""
        if self.clock() > now.deadline:
            for failure in self.federation.expire():
                self._fail(failure, now.request, result)
            return True
        quorum = self.config.min_replies
        if not quorum or now.collected.usable < quorum or self.mode.sequential:
            return False
        now.quorum_at = now.quorum_at if now.quorum_at is not None else self.clock()
        if self.clock() < now.quorum_at + self.config.quorum_grace:
            return False
        for late in self.federation.expire():  # a late reply is dropped when it arrives
            log.warning("%s: round closed at min-replies before it replied", late.node)
            result.failures.append(
                event("edge-late", now.request, partition=late.partition_id, node=late.node)
            )
        return True
