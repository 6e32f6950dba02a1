"""The compressed weight exchange: error feedback, edges in step with the cloud bit for bit, late
and drifted edges resynced, byte counts, hostile updates refused, and runs with FedAvg and
FedMedian on coded updates."""

from __future__ import annotations

import json
import math
import tracemalloc

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

from hierfl.app.protocol import (
    ARRAYS,
    CHUNK,
    CONFIG,
    UPDATE,
    attach_update,
    decode_weights_down,
    encode_weights_down,
    payload_bytes,
    read_update,
    traffic_parts,
)
from hierfl.app.reply_checks import check_reply
from hierfl.cloud.exchange import WeightExchange
from hierfl.codecs.update_wire import HEADER_BYTES, pack, unpack, values_nbytes
from hierfl.codecs.updates import UpdateCodec, decode_update, encode_update
from hierfl.config import HierConfig
from hierfl.edge.exchange import Held, apply_down, take_update
from hierfl.errors import ChunkRejected, ConfigError
from hierfl.models import create_model
from hierfl.testing import run_tiny, tiny_config
from hierfl.train.exchange import averaged_names, checksum

NPY_HEADER = 128  # numpy's .npy header of every array hierfl sends
CODEC = UpdateCodec(0.01, "q8")


def _edge(name: str = "resnet18", shape=(3, 32, 32)) -> torch.nn.Module:
    return create_model(name, cut="", num_classes=10, input_shape=shape, seed=0).edge


def _names_shapes(edge, averaged="all"):
    names = averaged_names(edge, averaged)
    shapes = {n: tuple(p.shape) for n, p in edge.named_parameters()}
    return names, shapes


def _nudge(state, names, seed, scale=0.01):
    g = torch.Generator().manual_seed(seed)
    out = {k: v.clone() for k, v in state.items()}
    for n in names:
        out[n] = out[n] + torch.randn(out[n].shape, generator=g) * scale
    return out


def _over_the_wire(down, names, shapes, codec):
    """A request's weights as the edge decodes them from the Flower record."""
    content = RecordDict({ARRAYS: ArrayRecord(), CONFIG: ConfigRecord({"round": 0})})
    encode_weights_down(content, down, names, eval_copy=False)
    decoded, _ = decode_weights_down(content, {n: shapes[n] for n in names}, codec)
    return decoded, content


def test_averaged_names_split_the_segment_from_the_exit_head():
    edge = _edge("small-cnn", (1, 8, 8))
    every = averaged_names(edge, "all")
    segment, head = averaged_names(edge, "segment"), averaged_names(edge, "exit")
    assert set(segment) | set(head) == set(every) and not set(segment) & set(head)
    assert head and all(n.startswith("exit.") for n in head)
    assert averaged_names(edge, "none") == ()
    buffers = {n for n, _ in edge.named_buffers()}
    assert not buffers & set(every)  # BatchNorm statistics never travel in compressed form


def test_error_feedback_sent_plus_residual_is_the_sum_of_true_updates():
    edge = _edge("small-cnn", (1, 8, 8))
    names, _ = _names_shapes(edge)
    state = edge.state_dict()
    held = Held(
        0,
        {n: state[n].clone() for n in names},
        dict(state),
        {n: torch.zeros_like(state[n]) for n in names},
    )
    sent_total = {n: torch.zeros_like(state[n]) for n in names}
    true_total = {n: torch.zeros_like(state[n]) for n in names}
    for t in range(6):
        start = held.state()
        trained = _nudge(start, names, seed=t)
        for n in names:
            true_total[n] += trained[n] - start[n]
        encoded, held = take_update(held, trained, names, CODEC, send=True)
        shapes = {n: tuple(state[n].shape) for n in names}
        sent = decode_update(encoded, shapes, CODEC)
        for n in names:
            sent_total[n] += sent[n]
    for n in names:
        torch.testing.assert_close(
            sent_total[n] + held.residual[n], true_total[n], atol=1e-5, rtol=0
        )
    kept = sum(CODEC.kept(state[n].numel()) for n in names)
    assert kept < sum(state[n].numel() for n in names) / 10  # it did compress


def _exchange(name="resnet18", shape=(3, 32, 32), codec=CODEC):
    edge = _edge(name, shape)
    names, shapes = _names_shapes(edge)
    return edge, names, shapes, WeightExchange(codec, names, shapes)


def test_an_in_step_edge_holds_the_clouds_base_bit_for_bit_after_n_rounds():
    edge, names, shapes, cloud = _exchange()
    initial = edge.state_dict()
    aggregate = dict(initial)
    held = None
    for t in range(5):
        cloud.begin_round(aggregate, send_change=t > 0)
        down, _ = _over_the_wire(cloud.down_for("node"), names, shapes, CODEC)
        assert down.kind == ("none" if t == 0 else "delta")  # version 0 comes from the seed
        held = apply_down(down, held, names, shapes, CODEC, initial=lambda: initial)
        assert held.version == cloud.version == t
        for n in names:
            assert torch.equal(held.base[n], cloud.base[n]), n
        assert checksum(held.base, names) == cloud.digest
        trained = _nudge(held.state(), names, seed=t)
        encoded, held = take_update(held, trained, names, CODEC, send=True)
        rebuilt = cloud.receive("node", held.version, checksum(held.base, names), encoded)
        aggregate = rebuilt  # one edge: FedAvg's aggregate is its rebuilt weights
    # the base trails the aggregate by what the cloud has not sent yet, never by more
    lead = sum(float((aggregate[n] - cloud.base[n]).norm()) for n in names)
    moved = sum(float((aggregate[n] - initial[n]).norm()) for n in names)
    assert 0 < lead < moved


def test_a_late_edge_gets_a_full_copy_and_then_changes():
    edge, names, shapes, cloud = _exchange("small-cnn", (1, 8, 8))
    initial = edge.state_dict()
    state = dict(initial)
    for t in range(3):  # three rounds without this edge
        cloud.begin_round(state, send_change=t > 0)
        state = _nudge(state, names, seed=10 + t)
    cloud.begin_round(state, send_change=True)
    first = cloud.down_for("late")
    assert first.kind == "full" and cloud.version == 3
    held = apply_down(first, None, names, shapes, CODEC, initial=lambda: initial)
    assert checksum(held.base, names) == cloud.digest
    with pytest.raises(ChunkRejected, match="no weight update"):  # a sync round needs one
        cloud.receive("late", held.version, checksum(held.base, names), None)
    with pytest.raises(ChunkRejected, match="round without exchange"):
        cloud.receive("late", held.version, checksum(held.base, names), {}, expected=False)
    cloud.receive("late", held.version, checksum(held.base, names), None, expected=False)
    cloud.begin_round(_nudge(state, names, seed=20), send_change=True)
    assert cloud.down_for("late").kind == "delta"


def test_a_drifted_edge_is_refused_and_resynced_with_a_full_copy():
    edge, names, shapes, cloud = _exchange("small-cnn", (1, 8, 8))
    initial = edge.state_dict()
    cloud.begin_round(dict(initial), send_change=False)
    held = apply_down(cloud.down_for(7), None, names, shapes, CODEC, initial=lambda: initial)
    drifted = {n: v.clone() for n, v in held.base.items()}
    drifted[names[0]].view(-1)[0] += 1e-3  # one weight off
    with pytest.raises(ChunkRejected, match="out of step"):
        cloud.receive(7, held.version, checksum(drifted, names), None, expected=False)
    assert cloud.down_for(7).kind == "full"


def _advanced(cloud, initial, names, changes):
    """The cloud after its first round and ``changes`` rounds that each send a change; the
    aggregate it last saw."""
    state = dict(initial)
    cloud.begin_round(state, send_change=False)
    for t in range(changes):
        state = _nudge(state, names, seed=t)
        cloud.begin_round(state, send_change=True)
    return state


def test_a_change_for_a_base_the_edge_does_not_hold_is_refused():
    edge, names, shapes, cloud = _exchange("small-cnn", (1, 8, 8))
    initial = edge.state_dict()
    _advanced(cloud, initial, names, 2)
    cloud.held[0] = 1
    delta = cloud.down_for(0)
    assert delta.kind == "delta" and len(delta.deltas) == 1
    with pytest.raises(ChunkRejected, match="holds version 0, the request needs version 1"):
        apply_down(delta, None, names, shapes, CODEC, initial=lambda: initial)


def test_an_edge_that_missed_changes_gets_them_all_until_the_cloud_no_longer_keeps_them():
    edge, names, shapes, _ = _exchange("small-cnn", (1, 8, 8))
    cloud = WeightExchange(CODEC, names, dict(shapes), keep=3)
    initial = edge.state_dict()
    state = _advanced(cloud, initial, names, 3)
    down = cloud.down_for("back")  # never seen: holds version 0, the cloud is at 3
    assert down.kind == "delta" and down.since == 0 and len(down.deltas) == 3
    sent, _ = _over_the_wire(down, names, shapes, CODEC)
    held = apply_down(sent, None, names, shapes, CODEC, initial=lambda: initial)
    assert held.version == 3 and checksum(held.base, names) == cloud.digest  # bit for bit
    state = _nudge(state, names, seed=9)
    cloud.begin_round(state, send_change=True)  # version 4: the change 0 -> 1 is gone
    assert cloud.down_for("back").kind == "full"
    cloud.held["late"] = 2
    assert len(cloud.down_for("late").deltas) == 2


def test_bytes_counted_are_the_serialized_payloads():
    edge, names, shapes, cloud = _exchange()
    initial = edge.state_dict()
    cloud.begin_round(dict(initial), send_change=False)
    cloud.begin_round(_nudge(initial, names, seed=0), send_change=True)
    cloud.held["n"] = 0
    _, content = _over_the_wire(cloud.down_for("n"), names, shapes, CODEC)
    change = cloud._changes[-1]
    blob = pack(change, names)
    assert blob.size == HEADER_BYTES * len(names) + sum(
        values_nbytes(CODEC, CODEC.kept(math.prod(shapes[n])))
        + (0 if change[n].positions is None else change[n].positions.size)
        for n in names
    )
    update = content[ARRAYS][UPDATE]
    assert payload_bytes(content) == len(update.data) == blob.size + NPY_HEADER
    assert traffic_parts(content)["weights"] == len(update.data)
    full = sum(v.numel() * 4 for v in initial.values() if v.is_floating_point())
    assert len(update.data) < full / 40  # about 1 % of the entries, 8-bit values and positions


def _reply(blob: np.ndarray | Array | None, **chunk_extra) -> RecordDict:
    arrays = ArrayRecord()
    if blob is not None:
        arrays = ArrayRecord({UPDATE: blob if isinstance(blob, Array) else Array(blob)})
    chunk = {"weights-version": 0, "weights-checksum": "ab", **chunk_extra}
    return RecordDict({ARRAYS: arrays, CHUNK: ConfigRecord(chunk)})


def _honest_blob(names, shapes, codec=CODEC):
    update = {n: torch.randn(shapes[n]) for n in names}
    return pack(encode_update(update, codec), names)


@pytest.mark.parametrize(
    "attack",
    ["index-out-of-range", "truncated", "huge-positions", "wrong-dtype", "trailing", "short"],
)
def test_malicious_coded_updates_are_refused_without_allocating_the_model(attack):
    edge, names, shapes, _ = _exchange()
    names = names[:6]
    shapes = {n: shapes[n] for n in names}
    blob = _honest_blob(names, shapes).copy()
    head = HEADER_BYTES * len(names)
    if attack == "index-out-of-range":  # positions that run past the tensor's end
        first = CODEC.kept(math.prod(shapes[names[0]]))
        blob[head + first : head + first + 64] = 0xFF
    elif attack == "truncated":
        blob = blob[:-5]
    elif attack == "huge-positions":  # a header claiming 4 GiB of positions
        blob[0:4] = 0xFF
    elif attack == "wrong-dtype":
        blob = blob.view(np.int8)
    elif attack == "trailing":
        blob = np.concatenate([blob, np.zeros(3, np.uint8)])
    elif attack == "short":
        blob = blob[: head - 1]
    tracemalloc.start()
    with pytest.raises(ChunkRejected):
        decode_update(unpack(blob, shapes, CODEC), shapes, CODEC)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    model_bytes = sum(4 * math.prod(s) for s in shapes.values())
    assert peak <= model_bytes


def test_a_reply_declaring_a_terabyte_update_is_refused_from_its_header():
    e = _expected()
    huge = Array(dtype="uint8", shape=(10**12,), stype="numpy.ndarray", data=b"\x93NUMPY")
    content = _valid_reply(e)
    content[ARRAYS] = ArrayRecord({UPDATE: huge})
    with pytest.raises(ChunkRejected, match="exceed the bound"):
        check_reply(content, e)


def _expected():
    from hierfl.cloud.validation import expected_replies
    from hierfl.models import model_for
    from hierfl.modes import MODES

    config = tiny_config(**{"weight-codec": "topk", "bottleneck": 0})  # fp32 activations
    model = model_for(config, 10, (1, 8, 8))
    from hierfl.boundary import RoundRequest

    return expected_replies(config, model, MODES["hierarchical"], (400, 400), RoundRequest(0, 0))


def _valid_reply(e):
    from hierfl.app.protocol import encode_result
    from hierfl.boundary import EdgeChunk, RoundResult

    chunk = EdgeChunk(
        torch.zeros(1, *e.sample_shape), torch.zeros(1, dtype=torch.int64), 1, 0.0, 0, 0.0
    )
    reply = encode_result(RoundResult(0, 0, 0, {}, chunk))
    attach_update(reply, None, (), version=0, digest="ab", eval_state=None)
    return reply


def test_a_valid_coded_reply_passes_the_schema_and_a_weights_record_does_not():
    e = _expected()
    check_reply(_valid_reply(e), e)
    bad = _valid_reply(e)
    bad[ARRAYS] = ArrayRecord({"segment.0.weight": Array(np.zeros(3, np.float32))})
    with pytest.raises(ChunkRejected, match="edge update"):
        check_reply(bad, e)
    unread = _valid_reply(e)
    unread[CHUNK]["weights-checksum"] = "x" * 65
    with pytest.raises(ChunkRejected, match="too long"):
        check_reply(unread, e)


def test_read_update_returns_the_base_it_is_relative_to():
    _, names, shapes, _ = _exchange("small-cnn", (1, 8, 8))
    reply = _reply(_honest_blob(names, shapes), **{"weights-version": 3})
    version, digest, encoded = read_update(reply, {n: shapes[n] for n in names}, CODEC)
    assert (version, digest) == (3, "ab") and set(encoded) == set(names)
    assert read_update(_reply(None), shapes, CODEC)[2] is None


def test_fp32_codec_refuses_keys_that_need_edges_to_keep_weights():
    for key, value in (("sync-every", 2), ("averaged", "exit")):
        with pytest.raises(ConfigError, match="weight-codec=topk"):
            HierConfig.from_mapping({key: value, "weight-codec": "fp32"}).validate()
    HierConfig.from_mapping({"weight-codec": "topk", "sync-every": 2}).validate()


@pytest.mark.parametrize("strategy", ["fedavg", "fedmedian"])
def test_fedavg_and_fedmedian_run_on_coded_updates_in_process(strategy, tmp_path):
    settings = {"weight-codec": "topk", "weight-density": 0.001, "strategy": strategy}
    result = run_tiny(**settings, out=str(tmp_path))
    comm = result.metrics["communication"]
    assert result.metrics["status"] == "completed" and result.metrics["rejected_replies"] == 0
    edge = _edge("small-cnn", (1, 8, 8))
    full = sum(v.numel() * 4 for v in edge.state_dict().values())  # what fp32 sends a message
    assert comm["weight_bytes_up"] * 50 < full * comm["uplink_messages"]
    assert comm["weight_bytes_down"] * 50 < full * comm["downlink_messages"]
    # an eval copy per edge at each experience's end, counted apart from training traffic
    assert comm["eval_bytes"] >= 2 * 2 * full
    assert result.final["edge_accuracy"] > 0.5 and result.final["cloud_accuracy"] > 0.5


def test_sync_every_sends_weights_only_on_its_rounds(tmp_path):
    result = run_tiny(**{"weight-codec": "topk", "sync-every": 2})
    per_round = result.metrics["communication"]["per_round"]
    # rounds 1 and 3 (run-wide) send no update: an empty weights record, 0 bytes
    assert [r["weight_bytes_up"] > 0 for r in per_round] == [False, True, False, True]


def test_averaged_none_sends_no_weights_and_edges_differ(tmp_path):
    result = run_tiny(**{"weight-codec": "topk", "averaged": "none"})
    comm = result.metrics["communication"]
    # a header-only update per round: the record holds one array of the 128-byte npy header
    assert comm["weight_bytes_down"] == 0
    assert comm["weight_bytes_up"] == NPY_HEADER * comm["uplink_messages"]
    assert json.dumps(result.metrics["per_client"])  # each edge has its own matrix
