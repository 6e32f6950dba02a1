"""Activation clipping and noise: what leaves the edge is bounded and noisy; the edge is not."""

from __future__ import annotations

import pytest
import torch

from hierfl.config import HierConfig
from hierfl.edge.trainer import EdgeTrainer
from hierfl.errors import ConfigError
from hierfl.models import create_model
from hierfl.train.privacy import ActivationPrivacy


def _train(privacy: ActivationPrivacy):
    model = create_model("small-cnn", cut="", num_classes=4, input_shape=(1, 8, 8), seed=0)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 1, 8, 8, generator=g), torch.arange(32) % 4
    trainer = EdgeTrainer(
        model.edge,
        lr=0.01,
        optimizer="adam",
        privacy=privacy,
        generator=torch.Generator().manual_seed(1),
    )
    chunk = trainer.train_chunk([(x[:16], y[:16]), (x[16:], y[16:])], max_bytes=2**30)
    return model.edge.state_dict(), chunk.activations


def test_clipping_bounds_every_shipped_sample_and_noise_has_the_asked_spread():
    _, clean = _train(ActivationPrivacy())
    _, clipped = _train(ActivationPrivacy(clip=0.5))
    norms = clipped.flatten(1).norm(dim=1)
    assert float(norms.max()) <= 0.5 + 1e-5
    big = clean.flatten(1).norm(dim=1) > 0.5  # clipped samples keep their direction
    cos = torch.nn.functional.cosine_similarity(clean.flatten(1)[big], clipped.flatten(1)[big])
    assert torch.allclose(cos, torch.ones_like(cos), atol=1e-5)
    _, noisy = _train(ActivationPrivacy(noise=0.3))
    assert float((noisy - clean).std()) == pytest.approx(0.3, rel=0.05)


def test_the_edge_trains_on_clean_activations():
    weights, _ = _train(ActivationPrivacy())
    protected, _ = _train(ActivationPrivacy(clip=0.1, noise=1.0))
    for name, value in weights.items():
        assert torch.equal(value, protected[name]), name


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"act-clip": -1}, "act-clip"),
        ({"act-noise": -0.1}, "act-noise"),
        ({"mode": "cloud", "act-noise": 0.1}, "act-clip"),
    ],
)
def test_bad_privacy_settings_are_config_errors(values, key):
    with pytest.raises(ConfigError) as err:
        HierConfig.from_mapping(values).validate()
    assert err.value.key == key
