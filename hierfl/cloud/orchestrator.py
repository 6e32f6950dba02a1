"""The cloud's round loop: dispatch, collect, close the round, checkpoint, stop or go on.

Transport-agnostic: a ``Federation`` (Flower Grid, or the in-process twin) carries requests to
the edges and brings their results back. Concurrency is the point: the next round's requests
go out before the cloud trains on the chunks already received (and before it evaluates an
experience), and the cloud trains between polls (``hierfl.cloud.collect``) instead of idling
while edges compute.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path

from hierfl.boundary import EdgeState, RoundRequest
from hierfl.cloud.aggregate import next_edge_state
from hierfl.cloud.checkpoint import checkpoint_due, resume_run, save_run
from hierfl.cloud.collect import Collected, ReplyCollector
from hierfl.cloud.exchange import WeightExchange, evaluated_edges
from hierfl.cloud.federation import Federation, connect
from hierfl.cloud.health import RunHealth
from hierfl.cloud.sampling import coverage_warning
from hierfl.cloud.trainer import CloudStats, CloudTrainer
from hierfl.cloud.uploads import RawUploads
from hierfl.cloud.validation import expected_replies
from hierfl.config import HierConfig
from hierfl.data.containers import Benchmark
from hierfl.models import SplitModel, model_for
from hierfl.models.depths import FleetModel, by_depth, fleet_model
from hierfl.modes import MODES
from hierfl.results.accuracy import AccuracyMatrix
from hierfl.results.progress import log_round, round_record
from hierfl.results.run_result import RunResult
from hierfl.train.devices import resolve_device
from hierfl.train.evaluate import evaluate_experience
from hierfl.train.schedule import run_schedule

log = logging.getLogger("hierfl")


class Orchestrator:
    """Runs ``config.experiences`` x ``config.rounds`` rounds over a federation."""

    def __init__(
        self,
        config: HierConfig,
        federation: Federation,
        test: Benchmark,
        *,
        poll_interval: float = 0.05,
        clock: Callable[[], float] = time.perf_counter,
        checkpoint_dir: Path | None = None,
        state_key: str = "",
    ) -> None:
        """``checkpoint_dir``: where ``checkpoint.pt`` goes (None: no checkpoints);
        ``state_key``: the name of the edges' node-local state folders, kept for a resume."""
        self.config, self.federation, self.test, self.clock = config, federation, test, clock
        self.checkpoint_dir, self.state_key = checkpoint_dir, state_key
        self.mode = MODES[config.mode]
        self.schedule = run_schedule(config)
        self.model: SplitModel = (
            fleet_model(config, test.num_classes, test.input_shape)
            if config.fleet_cuts
            else model_for(config, test.num_classes, test.input_shape)
        )
        self.device = resolve_device("cloud-device", config.cloud_device)
        self.model.to(self.device)
        module = self.mode.cloud_module(self.model)
        self.cloud = CloudTrainer.for_run(config, module, test.num_classes, self.device)
        self.uploads = RawUploads()  # cloud mode's raw inputs of the current experience
        self.exchange = WeightExchange.for_run(config, self.model)
        if self.exchange is not None:
            federation.bind_exchange(self.exchange)
        self.health = RunHealth(config.max_failed_rounds)
        self.replies = ReplyCollector(
            config,
            federation,
            self.cloud,
            self.uploads,
            self.health,
            payload_shape=self.mode.payload_shape(self.model),
            activation_shape=self.model.activation_shape(),  # once: it runs a forward pass
            num_classes=test.num_classes,
            clock=clock,
            poll_interval=poll_interval,
            depth_shapes=self._depth_shapes(),
        )
        self._dispatched_at = 0.0
        self._prior_wall, self._prior_traffic = 0.0, (0, 0)  # the run before a resume

    def _depth_shapes(self) -> dict[str, tuple[int, ...]]:
        """Edges at several depths: the shipped per-sample shape at each cut."""
        if not isinstance(self.model, FleetModel):
            return {}
        shapes = {c: self.mode.payload_shape(self.model.depth(c)) for c in self.model.cuts}
        return {c: s for c, s in shapes.items() if s is not None}

    # ---- the story -------------------------------------------------------------------------
    def run(self) -> RunResult:
        start = self.clock()
        connect(self.federation, self.config.clients, self.config.node_wait_timeout)
        if warning := coverage_warning(self.config):
            log.warning(warning)
        result, first, edge_state = self._begin()
        for i in range(first, len(self.schedule)):
            request = self.schedule[i]
            round_start, cloud_before = self.clock(), dataclasses.replace(self.cloud.stats)
            depths_before = self.cloud.depth_snapshot()
            replies = self.replies.collect(request, self._dispatched_at, result)
            edge_state = self._close_round(i, replies, edge_state, result)
            self._record(request, round_start, (cloud_before, depths_before), replies, result)
            if self._stop(replies, cloud_before, result):
                break
            if self.checkpoint_dir is not None and checkpoint_due(self.config, i + 1):
                self._checkpoint(i + 1, edge_state, result, start)
        self._totals(result, start)
        summary = self.federation.communication()
        result.communication = summary
        result.emulated_link_s = float(summary.get("emulated_link_s", 0.0))
        return result

    def _begin(self) -> tuple[RunResult, int, EdgeState]:
        """A fresh result (or the resumed run's), the first round to run, and its weights; the
        first round's requests go out."""
        result = RunResult(AccuracyMatrix(), [list(e.classes) for e in self.test.test])
        if self.mode.name == "split":
            self.federation.bind_split(self.replies.split_step)
        if self.mode.payload == "raw":
            log.warning("cloud mode: edges upload their raw inputs to the cloud")
        first, edge_state = 0, self.model.edge_state(copy=True) if self.mode.aggregate_edges else {}
        if self.config.resume:
            first, edge_state = self._resume(result)
        if first < len(self.schedule):
            self._dispatch(self.schedule[first], edge_state)
        return result, first, edge_state

    def _close_round(
        self, i: int, replies: Collected, edge_state: EdgeState, result: RunResult
    ) -> EdgeState:
        """Aggregate the edges, send the next round's requests, then (at an experience's end)
        finish training on it and evaluate."""
        request = self.schedule[i]
        if self.mode.payload == "raw":
            self.uploads.train(self.cloud, self.config.local_epochs, request)
        if self.mode.aggregate_edges:
            bound = self.config.weight_bound
            edge_state = next_edge_state(
                self.federation, edge_state, request, result, weight_bound=bound
            )
        if i + 1 < len(self.schedule):  # next requests out before the cloud trains on this round
            self._dispatch(self.schedule[i + 1], edge_state)
        if request.round == self.config.rounds - 1:
            self.cloud.drain()
            self.cloud.continual.end_experience(request.experience)
            self._evaluate(request.experience, edge_state, result, replies.client_states)
        return edge_state

    def _record(
        self,
        request: RoundRequest,
        round_start: float,
        before: tuple[CloudStats, dict[str, CloudStats]],
        replies: Collected,
        result: RunResult,
    ) -> None:
        cloud_before, depths_before = before
        stats = round_record(
            request,
            wall_s=self.clock() - round_start,
            edge_compute_s=replies.edge_s,
            cloud_compute_s=self.cloud.stats.compute_s - cloud_before.compute_s,
            reply_latency_s=replies.latency_s,
            examples=replies.examples,
            cloud_by_depth=self.cloud.depth_figures(depths_before, self.config.fleet_cuts),
        )
        result.rounds.append(stats)
        ended = request.round == self.config.rounds - 1
        log_round(self.config, request, stats, result if ended else None)

    def _stop(self, replies: Collected, cloud_before: CloudStats, result: RunResult) -> bool:
        """A systematic failure stops the run here; the last checkpoint (if any) is kept."""
        reason = self.health.end_round(
            usable_replies=replies.usable,
            expected_replies=replies.expected,
            cloud_ok=self.cloud.stats.stepped_since(cloud_before),
        )
        if reason:
            result.status, result.reason = "failed", reason
            log.error("run stopped: %s", reason)
        return bool(reason)

    # ---- the steps ---------------------------------------------------------------------------
    def _dispatch(self, request: RoundRequest, edge_state: EdgeState) -> None:
        self._dispatched_at = self.clock()
        if request.round == 0:  # cloud mode keeps one experience's uploads at a time
            self.uploads.clear()
        sizes = self.test.sizes
        self.federation.expect(expected_replies(self.config, self.model, self.mode, sizes, request))
        self.federation.dispatch(request, edge_state)

    def _evaluate(
        self,
        experience: int,
        edge_state: EdgeState,
        result: RunResult,
        client_states: dict[int, EdgeState],
    ) -> None:
        """Fill row ``experience`` of the accuracy matrices: each edge's own, then overall."""
        edge_states = evaluated_edges(self.mode, self.exchange, edge_state, client_states)
        if isinstance(self.model, FleetModel):  # each depth's weights, the accuracy averaged
            edge_states = [d for s in edge_states for d in by_depth(s, self.model.cuts)]
        evaluate_experience(
            self.model,
            self.test.test,
            experience,
            exits=self.mode.exits,
            masked=self.config.class_mask == "seen",
            thresholds=self.config.thresholds,
            client_states=client_states,
            edge_states=edge_states,
            result=result,
        )

    def _totals(self, result: RunResult, start: float) -> None:
        """Run-wide totals so far, including the time and traffic before a resume."""
        result.cloud_compute_s = self.cloud.stats.compute_s
        result.cloud_by_depth = self.cloud.depth_figures(cuts=self.config.fleet_cuts)
        result.wall_s = self._prior_wall + self.clock() - start
        up, down = self.federation.traffic()
        result.uplink_bytes = self._prior_traffic[0] + up
        result.downlink_bytes = self._prior_traffic[1] + down

    # ---- checkpoints -------------------------------------------------------------------------
    def _checkpoint(
        self, next_round: int, edge_state: EdgeState, result: RunResult, start: float
    ) -> None:
        """Save the cursor, weights, optimizer, buffers and metrics (after a full drain)."""
        assert self.checkpoint_dir is not None
        self.cloud.drain()
        self._totals(result, start)
        path = save_run(
            self.checkpoint_dir,
            self.config,
            next_round=next_round,
            state_key=self.state_key,
            edge_state=edge_state,
            cloud=self.cloud,
            uploads=self.uploads.items,
            result=result,
            federation=self.federation,
        )
        log.info("checkpoint %s: next round %d of the schedule", path, next_round + 1)

    def _resume(self, result: RunResult) -> tuple[int, EdgeState]:
        """Continue from ``config.resume``'s checkpoint: its cloud, strategy and metrics."""
        checkpoint, self.uploads.items = resume_run(
            self.config, self.cloud, self.federation, result
        )
        self._prior_wall = result.wall_s
        self._prior_traffic = (result.uplink_bytes, result.downlink_bytes)
        self.state_key = checkpoint.state_key or self.state_key
        log.info(
            "resumed from %s: %d of %d rounds done, %d experiences evaluated",
            self.config.resume,
            checkpoint.next_round,
            len(self.schedule),
            result.matrix.num_experiences(),
        )
        return checkpoint.next_round, dict(checkpoint.edge_state)
