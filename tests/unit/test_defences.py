"""The default defences on synthetic inputs: ``centered_clip`` on edge updates and
``LabelScreen`` on a round's chunks (``hierfl.cloud.robust``, ``hierfl.cloud.screen``)."""

from __future__ import annotations

import torch

from hierfl.cloud.robust import centered_clip, median_rows
from hierfl.cloud.screen import MIN_SCORED, LabelScreen

BASE = {"w": torch.zeros(50), "b": torch.zeros(3), "n": torch.tensor(7)}


def _states(updates):
    return [{"w": u[:50], "b": u[50:], "n": torch.tensor(7)} for u in updates]


def _honest(count, seed=0, scales=None):
    g = torch.Generator().manual_seed(seed)
    common = torch.randn(53, generator=g)
    scales = scales or [1.0] * count
    return [s * (common + 0.3 * torch.randn(53, generator=g)) for s in scales]


def test_median_rows_takes_the_mean_of_the_middle_two():
    t = torch.tensor([[1.0, 10.0], [2.0, 0.0], [4.0, 5.0], [100.0, 6.0]])
    assert median_rows(t).tolist() == [3.0, 5.5]
    assert median_rows(t[:3]).tolist() == [2.0, 5.0]


def test_one_outlier_of_four_is_replaced_by_the_median_update():
    updates = _honest(3) + [_honest(1, seed=1)[0] * -20]  # a boosted, flipped update
    states = _states(updates)
    out, clipped = centered_clip(states, BASE, 2.0)
    assert [c.index for c in clipped] == [3]
    flat = torch.stack(updates)
    center = median_rows(flat)
    distances = (flat - center).norm(dim=1)
    assert clipped[0].distance == distances[3].item()
    assert abs(clipped[0].radius - 2 * float(median_rows(distances))) < 1e-4
    assert torch.allclose(torch.cat([out[3]["w"], out[3]["b"]]), center)
    for i in range(3):  # the honest ones bit for bit
        assert torch.equal(out[i]["w"], states[i]["w"]) and torch.equal(out[i]["b"], states[i]["b"])
    assert out[3]["n"].item() == 7  # integer tensors untouched


def test_honest_updates_of_different_norms_are_not_clipped():
    """Non-IID edges: the same direction at norms a factor of three apart, plus noise."""
    states = _states(_honest(4, scales=[0.6, 1.0, 1.4, 1.8]))
    out, clipped = centered_clip(states, BASE, 2.0)
    assert clipped == []
    assert all(torch.equal(o["w"], s["w"]) for o, s in zip(out, states, strict=True))


def test_no_bound_without_a_majority_or_when_off():
    states = _states([torch.ones(53), -100 * torch.ones(53)])
    assert centered_clip(states, BASE, 2.0)[1] == []
    states = _states(_honest(3) + [_honest(1)[0] * 50])
    assert centered_clip(states, BASE, 0.0)[1] == []


# ---- the label screen ------------------------------------------------------------------------
CLASSES = 5
CENTERS = torch.randn(CLASSES, 16, generator=torch.Generator().manual_seed(3)) * 3


def _chunk(counts, seed, shift=0, classes=range(CLASSES)):
    """Samples around each class's center; ``shift`` moves every label to a later class."""
    g = torch.Generator().manual_seed(seed)
    ys = torch.cat([torch.full((n,), k) for k, n in zip(classes, counts, strict=True)])
    a = CENTERS[ys] + torch.randn(len(ys), 16, generator=g)
    return a.view(len(ys), 4, 2, 2), (ys + shift) % CLASSES


def test_an_edge_with_flipped_labels_is_flagged_and_honest_ones_are_not():
    chunks = [_chunk([20] * CLASSES, seed) for seed in range(3)]
    chunks.append(_chunk([20] * CLASSES, 9, shift=1))
    flagged = LabelScreen(0.4).screen(chunks)
    assert [s.index for s in flagged] == [3]
    assert flagged[0].agreement < 0.1 < 0.9 < flagged[0].expected
    assert "of 100 samples" in flagged[0].reason


def test_honest_non_iid_edges_are_not_flagged():
    """Skewed class counts (one edge almost all one class), every edge honest."""
    counts = [[60, 2, 2, 10, 30], [2, 50, 40, 8, 0], [20, 20, 0, 40, 20], [9, 9, 60, 1, 30]]
    assert LabelScreen(0.4).screen([_chunk(c, i) for i, c in enumerate(counts)]) == []


def test_new_classes_met_by_every_edge_at_once_are_not_an_attack():
    screen = LabelScreen(0.4)
    old = [_chunk([20, 20, 0, 0, 0], seed) for seed in range(4)]
    assert screen.screen(old) == []
    assert set(screen.references) == {0, 1}  # remembered for later rounds
    new = [_chunk([0, 0, 20, 20, 20], seed + 10) for seed in range(4)]
    assert screen.screen(new) == []


def test_relabelling_into_a_past_class_is_caught_by_its_remembered_centroid():
    """Class-incremental: in the second experience nobody else ships class 0, but the screen
    remembers where class 0 was."""
    screen = LabelScreen(0.4)
    screen.screen([_chunk([20, 20, 0, 0, 0], seed) for seed in range(4)])
    new = [_chunk([0, 0, 20, 20, 20], seed + 10) for seed in range(3)]
    a, y = _chunk([0, 0, 20, 20, 20], 20)
    new.append((a, torch.zeros_like(y)))  # everything labelled class 0
    assert [s.index for s in screen.screen(new)] == [3]


def _drifted(seed, size=6.0):
    """An honest edge whose segment moved its own way: every class's samples around its own
    displaced center (measured: replayed past classes on the online ResNet-18 run)."""
    a, y = _chunk([20] * CLASSES, seed)
    g = torch.Generator().manual_seed(100 + seed)
    moved = size * torch.randn(CLASSES, 16, generator=g)
    return (a.view(len(y), 16) + moved[y]).view(len(y), 4, 2, 2), y


def test_honest_edges_whose_features_moved_apart_are_not_flagged():
    """Four honest edges, each class displaced differently on each: the others' expected
    agreement is measured against centroids without their own data, as the judged edge's is
    (with their own data in them the others agreed with themselves and every edge was flagged,
    as on the online ResNet-18 run)."""
    assert LabelScreen(0.4).screen([_drifted(seed) for seed in range(4)]) == []


def test_no_edge_is_left_out_without_an_honest_majority(caplog):
    """Where half of the round's edges or more fall below the threshold the screen has no
    majority to judge by: it leaves none out, and says so."""
    flipped = [_chunk([20] * CLASSES, seed, shift=1) for seed in range(2)]
    assert LabelScreen(0.4).screen([*flipped, *[_chunk([20] * CLASSES, s) for s in (5, 6)]]) == []
    assert "no honest majority" in caplog.text


def test_too_few_edges_or_samples_are_not_judged():
    two = [_chunk([20] * CLASSES, 0), _chunk([20] * CLASSES, 1, shift=1)]
    assert LabelScreen(0.4).screen(two) == []
    small = [_chunk([20] * CLASSES, seed) for seed in range(3)]
    few = MIN_SCORED // CLASSES - 1
    small.append(_chunk([few] * CLASSES, 5, shift=1))
    assert LabelScreen(0.4).screen(small) == []


def test_the_summary_names_each_edge_the_defences_acted_on():
    from hierfl.results.summary import summary_lines

    events = [
        {"event": "update-clipped", "partition": 0},
        {"event": "update-clipped", "partition": 0},
        {"event": "edge-excluded", "partition": 0},
        {"event": "reply-rejected", "partition": 2},
        {"event": "edge-failed", "partition": 1},
    ]
    metrics = {
        "final": {},
        "communication": {"uplink_bytes": 0, "downlink_bytes": 0},
        "time": {"wall_s": 1.0},
        "events": events,
    }
    lines = [line for line in summary_lines(metrics, None) if line.startswith("defences")]
    assert lines == [
        "defences on edge 0: 1 rounds left out by label-screen, 2 updates bounded "
        "(metrics.json events)",
        "defences on edge 2: 1 replies rejected (metrics.json events)",
    ]
