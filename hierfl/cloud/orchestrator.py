"""The cloud's round loop: dispatch, train on chunks as they arrive, aggregate edges, evaluate.

Transport-agnostic: a ``Federation`` (Flower Grid, or the in-process twin) carries requests to
the edges and brings their results back. Concurrency is the point: the next round's requests
go out before the cloud trains on the chunks already received, and the cloud trains one
mini-batch at a time between polls instead of idling while edges compute.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hierfl.boundary import EdgeFailure, EdgeState, RoundRequest
from hierfl.cloud.checkpoint import (
    Checkpoint,
    check_compatible,
    cloud_snapshot,
    load_checkpoint,
    restore_cloud,
    restore_result,
    result_state,
    save_checkpoint,
)
from hierfl.cloud.federation import Federation
from hierfl.cloud.health import RunHealth
from hierfl.cloud.robust import ActivationRange, aggregate_ok
from hierfl.cloud.trainer import CloudTrainer
from hierfl.cloud.validation import check_batch, expected_replies, validate_result
from hierfl.config import HierConfig
from hierfl.data.containers import Benchmark
from hierfl.errors import ChunkRejected, HierflError
from hierfl.models import SplitModel, model_for
from hierfl.modes import MODES
from hierfl.results.accuracy import AccuracyMatrix
from hierfl.results.events import backlog_shipped, edge_failed, event, update_clipped
from hierfl.results.progress import log_round
from hierfl.results.run_result import RunResult
from hierfl.train.continual import build_continual
from hierfl.train.devices import resolve_device
from hierfl.train.evaluate import evaluate_experience
from hierfl.train.masking import SeenClasses
from hierfl.train.schedule import passes_per_chunk

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
        self.config = config
        self.checkpoint_dir = checkpoint_dir
        self.state_key = state_key
        self._prior_wall = 0.0  # time and traffic of the run before a resume
        self._prior_traffic = (0, 0)
        self.federation = federation
        self.test = test
        self.poll_interval = poll_interval
        self.clock = clock
        self.mode = MODES[config.mode]
        self.model: SplitModel = model_for(config, test.num_classes, test.input_shape)
        self.payload_shape = self.mode.payload_shape(self.model)
        self.activation_shape = self.model.activation_shape()  # once: it runs a forward pass
        self._dispatched_at = self._last_reply_at = self._collect_from = 0.0
        self._uploads: list[tuple[torch.Tensor, torch.Tensor]] = []  # cloud mode's raw data
        self.act_range = ActivationRange(config.act_max, config.act_range)
        self.device = resolve_device("cloud-device", config.cloud_device)
        self.model.to(self.device)
        cloud_module = self.mode.cloud_module(self.model)
        self.cloud = CloudTrainer(
            cloud_module if cloud_module is not None else nn.Identity(),
            device=self.device,
            optimizer=config.optimizer,
            lr=config.cloud_lr,
            momentum=config.momentum,
            batch_size=config.batch_size,
            epochs=config.cloud_epochs,
            seed=config.seed,
            continual=build_continual(config),
            seen=SeenClasses(test.num_classes, enabled=config.class_mask == "seen"),
        )
        self._request = RoundRequest(0, 0)  # the round being collected (split's cloud steps)
        self._client_states: dict[int, EdgeState] = {}  # each edge's last local weights
        self.health = RunHealth(config.max_failed_rounds)

    def initial_edge_state(self) -> EdgeState:
        """The weights every edge starts from (none in cloud mode: the cloud owns them)."""
        if not self.mode.aggregate_edges:
            return {}
        return {k: v.detach().cpu().clone() for k, v in self.model.edge.state_dict().items()}

    def _split_step(self, activations: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Split mode: check one batch from an edge, train on it, return the gradient at the cut."""
        check_batch(
            activations,
            labels,
            sample_shape=self.activation_shape,
            num_classes=self.test.num_classes,
        )
        self.act_range.check(activations)
        return self.cloud.train_batch_grad(
            activations, labels, experience=self._request.experience, round=self._request.round
        )

    def run(self) -> RunResult:
        cfg = self.config
        start = self.clock()
        connected = self.federation.wait_for_edges(cfg.clients, cfg.node_wait_timeout)
        if connected < cfg.clients:
            raise HierflError(
                f"only {connected} of {cfg.clients} edges connected within "
                f"node-wait-timeout={cfg.node_wait_timeout:g}s; start the missing hierfl-client "
                "processes or lower clients"
            )
        log.info("%d of %d edges connected", connected, cfg.clients)
        result = RunResult(
            matrix=AccuracyMatrix(), classes=[list(e.classes) for e in self.test.test]
        )
        schedule = [RoundRequest(k, r) for k in range(cfg.experiences) for r in range(cfg.rounds)]
        if self.mode.name == "split":
            self.federation.bind_split(self._split_step)
        if self.mode.payload == "raw":
            log.warning("cloud mode: edges upload their raw inputs to the cloud")
        edge_state = self.initial_edge_state()
        first = 0
        if cfg.resume:
            first, edge_state = self._resume(result)
        if first < len(schedule):
            self._dispatch(schedule[first], edge_state)
        for i in range(first, len(schedule)):
            request = schedule[i]
            round_start = self.clock()
            cloud_before = dataclasses.replace(self.cloud.stats)
            if request.round == 0:  # cloud mode keeps one experience's uploads at a time
                self._uploads = []
            edge_s, examples, usable, expected = self._collect(request, result)
            if self.mode.payload == "raw":
                self._train_on_uploads(request)
            edge_state = self._aggregate(request, edge_state, result)
            # From the request, or from when collecting began if the cloud was still busy with
            # the last experience's evaluation: the reply wait the run saw, not the evaluation.
            latency = max(self._last_reply_at - max(self._dispatched_at, self._collect_from), 0.0)
            if i + 1 < len(schedule):  # next requests out before the cloud trains on this round
                self._dispatch(schedule[i + 1], edge_state)
            last_round = request.round == cfg.rounds - 1
            if last_round:
                self._drain()
                self.cloud.continual.end_experience(request.experience)
                self._evaluate(request.experience, edge_state, result)
            stats = {
                "experience": request.experience,
                "round": request.round,
                "wall_s": self.clock() - round_start,
                "edge_compute_s": edge_s,
                "cloud_compute_s": self.cloud.stats.compute_s - cloud_before.compute_s,
                "reply_latency_s": latency,
                "examples": examples,
            }
            stats["waiting_s"] = max(stats["wall_s"] - stats["cloud_compute_s"], 0.0)
            result.rounds.append(stats)
            log_round(self.config, request, stats, result if last_round else None)
            steps = self.cloud.stats.batches - cloud_before.batches
            skipped = self.cloud.stats.skipped - cloud_before.skipped
            stop = self.health.end_round(
                usable_replies=usable,
                expected_replies=expected,
                cloud_ok=bool(steps) or not skipped,
            )
            if stop:
                self._stop(stop, result)
                break
            every = cfg.checkpoint_every
            if self.checkpoint_dir is not None and (
                (last_round and every >= 0) or (every > 0 and (i + 1) % every == 0)
            ):
                self._checkpoint(i + 1, edge_state, result, start)
        self._totals(result, start)
        communication = getattr(self.federation, "communication", None)  # optional for fakes
        if communication is not None:
            summary: dict[str, Any] = communication()
            result.communication = summary
            result.emulated_link_s = float(summary.get("emulated_link_s", 0.0))
        return result

    def _aggregate(
        self, request: RoundRequest, edge_state: EdgeState, result: RunResult
    ) -> EdgeState:
        """The round's aggregate, or the previous weights when there is none or it is not
        finite or out of ``weight-bound`` (rolled back, an event)."""
        if not self.mode.aggregate_edges:
            return edge_state
        aggregated = self.federation.aggregate()
        if aggregated is None:
            log.warning(
                "round %d: no usable edge result; edge weights unchanged", request.round + 1
            )
            return edge_state
        why = aggregate_ok(aggregated, self.config.weight_bound)
        if why:
            log.warning("aggregate rolled back to the previous edge weights: %s", why)
            result.failures.append(event("aggregate-rolled-back", request, reason=why))
            return edge_state
        return aggregated

    def _stop(self, reason: str, result: RunResult) -> None:
        """A systematic failure: stop here; the last checkpoint (if any) is kept as it is."""
        result.status, result.reason = "failed", reason
        log.error("run stopped: %s", reason)

    def _totals(self, result: RunResult, start: float) -> None:
        """Run-wide totals so far, including the time and traffic before a resume."""
        result.cloud_compute_s = self.cloud.stats.compute_s
        result.wall_s = self._prior_wall + self.clock() - start
        up, down = self.federation.traffic()
        result.uplink_bytes = self._prior_traffic[0] + up
        result.downlink_bytes = self._prior_traffic[1] + down

    def _checkpoint(
        self, next_round: int, edge_state: EdgeState, result: RunResult, start: float
    ) -> None:
        """Save the cursor, weights, optimizer, buffers and metrics (after a full drain)."""
        assert self.checkpoint_dir is not None
        self._drain()
        self._totals(result, start)
        checkpoint = Checkpoint(
            config=self.config.to_dict(),
            next_round=next_round,
            state_key=self.state_key,
            edge_state={k: v.detach().cpu() for k, v in edge_state.items()},
            cloud=cloud_snapshot(self.cloud, self._uploads),
            result=result_state(result),
            federation=self.federation.state_dict(),
        )
        path = save_checkpoint(self.checkpoint_dir, checkpoint)
        log.info("checkpoint %s: next round %d of the schedule", path, next_round + 1)

    def _resume(self, result: RunResult) -> tuple[int, EdgeState]:
        """Load ``config.resume``'s checkpoint into the cloud and ``result``."""
        checkpoint = load_checkpoint(self.config.resume)
        check_compatible(checkpoint, self.config)
        restore_result(result, checkpoint.result)
        self._uploads = restore_cloud(self.cloud, checkpoint.cloud)
        self.federation.load_state_dict(checkpoint.federation)
        self._prior_wall = result.wall_s
        self._prior_traffic = (result.uplink_bytes, result.downlink_bytes)
        if checkpoint.state_key:
            self.state_key = checkpoint.state_key
        total = self.config.experiences * self.config.rounds
        log.info(
            "resumed from %s: %d of %d rounds done, %d experiences evaluated",
            self.config.resume,
            checkpoint.next_round,
            total,
            result.matrix.num_experiences(),
        )
        return checkpoint.next_round, dict(checkpoint.edge_state)

    def _dispatch(self, request: RoundRequest, edge_state: EdgeState) -> None:
        self._dispatched_at = self._last_reply_at = self.clock()
        sizes = self.test.sizes
        self.federation.expect(expected_replies(self.config, self.model, self.mode, sizes, request))
        self.federation.dispatch(request, edge_state)

    def _collect(self, request: RoundRequest, result: RunResult) -> tuple[float, int, int, int]:
        """Take replies as they arrive, training the cloud between polls.

        Returns the edges' compute seconds, the examples they trained on, and how many of the
        expected replies were usable.
        """
        deadline = self._dispatched_at + self.config.reply_timeout
        self._collect_from = self.clock()
        self._request = request
        last_round = request.round == self.config.rounds - 1
        edge_s, examples, usable, expected = 0.0, 0, 0, self.federation.outstanding()
        quorum_at: float | None = None  # when min-replies usable replies were in
        while self.federation.outstanding():
            items = self.federation.poll()
            if items:
                self._last_reply_at = self.clock()
            for item in items:
                if isinstance(item, EdgeFailure):
                    self._fail(item, request, result)
                    continue
                try:
                    validate_result(
                        item,
                        request=request,
                        activation_shape=self.payload_shape,
                        num_classes=self.test.num_classes,
                        max_bytes=self.config.max_chunk_bytes,
                        passes=passes_per_chunk(self.config),
                    )
                    self.act_range.check(item.chunk.activations)
                except ChunkRejected as exc:
                    self.federation.discard(item)
                    name = f"partition {item.partition_id}"
                    self._fail(
                        EdgeFailure(name, str(exc), item.partition_id, True), request, result
                    )
                    continue
                usable += 1
                if item.clipped_from:
                    norm = self.config.max_update_norm
                    result.failures.append(update_clipped(item, request, norm))
                if last_round and self.mode.aggregate_edges:  # for the per-client matrices
                    self._client_states[item.partition_id] = item.edge_state
                chunk = item.chunk
                if chunk.backlog or chunk.backlog_dropped:
                    result.failures.append(backlog_shipped(item, request))
                if chunk.truncated:
                    log.warning(
                        "edge %d: chunk truncated at %d batches by max-chunk-mb",
                        item.partition_id,
                        chunk.batches,
                    )
                edge_s += chunk.compute_s
                examples += chunk.trained or chunk.num_examples
                if chunk.raw:
                    result.raw_input_bytes_uplink += chunk.wire_bytes  # as sent
                    if chunk.num_examples:
                        self._uploads.append((chunk.activations, chunk.labels))
                    continue
                if chunk.num_examples:
                    self.cloud.enqueue(
                        chunk.activations,
                        chunk.labels,
                        experience=request.experience,
                        round=request.round,
                    )
                    self._bound_queue()
            if self.clock() > deadline:
                for failure in self.federation.expire():
                    self._fail(failure, request, result)
                break
            quorum = self.config.min_replies
            if quorum and usable >= quorum and not self.mode.sequential:
                quorum_at = quorum_at if quorum_at is not None else self.clock()
                if self.clock() >= quorum_at + self.config.quorum_grace:
                    self._close_at_quorum(request, result)
                    break
            if not self.cloud.step() and self.federation.outstanding():
                time.sleep(self.poll_interval)
        result.edge_compute_s += edge_s
        return edge_s, examples, usable, expected

    def _close_at_quorum(self, request: RoundRequest, result: RunResult) -> None:
        """``min-replies`` edges answered and ``quorum-grace`` passed: the round closes without
        the others (an event each; a late reply is dropped when it arrives)."""
        for late in self.federation.expire():
            log.warning("%s: round closed at min-replies before it replied", late.node)
            result.failures.append(
                event("edge-late", request, partition=late.partition_id, node=late.node)
            )

    def _bound_queue(self) -> None:
        """Back-pressure: past one round's worth of chunks the cloud trains before it reads
        more replies, which wait in the SuperLink; server memory stays bounded."""
        cap = self.config.clients * self.config.max_chunk_bytes * self.config.cloud_epochs
        while self.cloud.queued_bytes > cap and self.cloud.step():
            pass

    def _train_on_uploads(self, request: RoundRequest) -> None:
        """Cloud mode: ``local_epochs`` shuffled passes over the experience's uploaded data."""
        if not self._uploads:
            return
        x = torch.cat([a for a, _ in self._uploads])
        y = torch.cat([b for _, b in self._uploads])
        for _ in range(self.config.local_epochs):
            order = torch.randperm(len(y), generator=self.cloud.generator)
            self.cloud.enqueue(
                x[order], y[order], experience=request.experience, round=request.round
            )

    def _drain(self) -> None:
        self.cloud.drain()

    def _fail(self, failure: EdgeFailure, request: RoundRequest, result: RunResult) -> None:
        """An edge failed or its reply was refused: the round goes on without it."""
        result.rejected += failure.rejected
        self.health.edge_error(failure.node, failure.reason, rejected=failure.rejected)
        result.failures.append(edge_failed(failure, request))

    def _evaluate(self, experience: int, edge_state: EdgeState, result: RunResult) -> None:
        """Fill row ``experience`` of the accuracy matrices: each edge's own, then overall."""
        evaluate_experience(
            self.model,
            self.test.test,
            experience,
            exits=self.mode.exits,
            masked=self.config.class_mask == "seen",
            thresholds=self.config.thresholds,
            client_states=self._client_states,
            edge_state=edge_state if self.mode.aggregate_edges else None,
            result=result,
        )
        self._client_states = {}
