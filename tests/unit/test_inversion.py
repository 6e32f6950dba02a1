"""The inversion benchmark's pieces: metrics, decoder, recognition, what the cloud receives, and
the sanity row (an attack on the raw inputs must reconstruct them)."""

from __future__ import annotations

import importlib
import math
from types import ModuleType

import pytest
import torch
from torch import nn


@pytest.fixture
def one_thread():
    """Small convolutions run fastest on one thread (and the benchmark runs on one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ia() -> ModuleType:
    return importlib.import_module("benchmarks.inversion_attack")


@pytest.fixture(scope="module")
def inversion(ia) -> ModuleType:
    return importlib.import_module("benchmarks.inversion")


def test_psnr_of_a_constant_error_of_a_tenth_is_20_db(ia):
    target = torch.rand(4, 1, 8, 8) * 0.9
    # MSE = 0.01, so PSNR = 10 log10(1 / 0.01) = 20 dB with data range 1
    assert ia.psnr(target + 0.1, target) == pytest.approx(20.0, abs=1e-3)


def test_psnr_averages_the_error_over_every_pixel_of_every_sample(ia):
    target = torch.zeros(2, 1, 4, 4)
    preds = target.clone()
    preds[0] = 0.2  # sample 0 off by 0.2, sample 1 exact: MSE = 0.04 / 2 = 0.02
    assert ia.psnr(preds, target) == pytest.approx(10 * math.log10(50), abs=1e-3)


@pytest.mark.parametrize("shape", [(3, 1, 8, 8), (2, 3, 32, 32)])
def test_ssim_of_an_image_with_itself_is_one(ia, shape):
    x = torch.rand(shape)
    assert ia.ssim(x, x) == pytest.approx(1.0, abs=1e-5)


def test_ssim_of_unrelated_noise_is_near_zero(ia):
    gen = torch.Generator().manual_seed(0)
    a, b = torch.rand(64, 1, 8, 8, generator=gen), torch.rand(64, 1, 8, 8, generator=gen)
    assert abs(ia.ssim(a, b)) < 0.1


def test_ssim_window_fits_8x8_digits(ia):
    assert ia.ssim_window((1, 1, 8, 8)) == {"gaussian_kernel": False, "kernel_size": 3}
    assert ia.ssim_window((1, 3, 32, 32)) == {}


class _AlwaysZero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(len(x), 10)
        logits[:, 0] = 1.0
        return logits


def test_recognised_accuracy_of_a_constant_classifier_is_the_share_of_its_class(ia):
    labels = torch.tensor([0, 0, 0, 1, 2, 3, 4, 5])
    images = torch.rand(len(labels), 1, 8, 8)
    assert ia.recognised_accuracy(_AlwaysZero(), images, labels) == pytest.approx(3 / 8)


@pytest.mark.parametrize(
    ("activation", "image"),
    [
        ((32, 8, 8), (1, 8, 8)),
        ((64, 2, 2), (1, 8, 8)),
        ((512, 4, 4), (3, 32, 32)),
        ((64, 32, 32), (3, 32, 32)),
        ((4, 3, 3), (1, 8, 8)),  # sizes not a power of two apart
    ],
)
def test_decoder_maps_activations_to_images_in_the_unit_range(ia, activation, image):
    decoder = ia.make_decoder(activation, image).eval()
    with torch.no_grad():
        out = decoder(torch.randn(2, *activation) * 10)
    assert out.shape == (2, *image)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_standardize_gives_zero_mean_unit_std_per_channel(ia):
    a = torch.randn(100, 3, 4, 4) * torch.tensor([1.0, 10.0, 100.0]).view(1, 3, 1, 1) + 5
    z = ia.Standardize.fit(a)(a)
    assert torch.allclose(z.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(z.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-3)


def _small_cnn(cut: str = "block1", **kw):
    from hierfl.models import create_model

    return create_model("small-cnn", cut=cut, num_classes=10, input_shape=(1, 8, 8), seed=0, **kw)


def test_shipped_activations_are_clipped_as_the_edge_clips_them(ia):
    from hierfl.app.wire import Wire
    from hierfl.train.privacy import ActivationPrivacy

    x = torch.rand(20, 1, 8, 8)
    out = ia.shipped(
        _small_cnn(), x, batch_size=16, privacy=ActivationPrivacy(clip=1.0), wire=Wire(), seed=0
    )
    assert out.shape == (20, 32, 8, 8)
    assert float(out.flatten(1).norm(dim=1).max()) <= 1.0 + 1e-5


def test_shipped_noise_is_reproducible_and_leaves_the_model_alone(ia):
    from hierfl.app.wire import Wire
    from hierfl.train.privacy import ActivationPrivacy

    model = _small_cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, privacy = torch.rand(17, 1, 8, 8), ActivationPrivacy(clip=4.0, noise=0.1)
    a = ia.shipped(model, x, batch_size=16, privacy=privacy, wire=Wire(), seed=3)
    b = ia.shipped(model, x, batch_size=16, privacy=privacy, wire=Wire(), seed=3)
    c = ia.shipped(model, x, batch_size=16, privacy=privacy, wire=Wire(), seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_a_bottleneck_ships_codes_on_its_grid_even_when_noised(ia):
    from hierfl.app.wire import Wire
    from hierfl.train.privacy import ActivationPrivacy

    model = _small_cnn(bottleneck=4, code_bits=4)
    out = ia.shipped(
        model,
        torch.rand(8, 1, 8, 8),
        batch_size=16,
        privacy=ActivationPrivacy(noise=0.5),
        wire=Wire(codec="code4"),
        seed=0,
    )
    assert out.shape == (8, 4, 8, 8)
    levels = out * 15
    assert torch.allclose(levels, levels.round(), atol=1e-5)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_the_auxiliary_set_draws_fresh_noise_each_time(ia):
    from hierfl.app.wire import Wire
    from hierfl.train.privacy import ActivationPrivacy

    model, x = _small_cnn("block3"), torch.rand(6, 1, 8, 8)
    noisy = ia.auxiliary_set(
        model, x, batch_size=16, privacy=ActivationPrivacy(1.0, 0.5), wire=Wire(), seed=0
    )
    assert float(noisy.activations.flatten(1).norm(dim=1).max()) <= 1.0 + 1e-5
    assert not torch.equal(noisy.draw(noisy.activations), noisy.draw(noisy.activations))
    clean = ia.auxiliary_set(
        model, x, batch_size=16, privacy=ActivationPrivacy(), wire=Wire(), seed=0
    )
    assert torch.equal(clean.draw(clean.activations), clean.activations)


def test_cloud_mode_receives_the_stored_pixels(ia):
    x = torch.randint(0, 256, (5, 1, 8, 8)).float() / 255
    assert torch.allclose(ia.received_raw(x), x)


def test_sanity_row_the_attack_on_raw_inputs_reconstructs_them(inversion, ia, one_thread):
    """A weak attack must not pass for strong privacy: on the inputs themselves the decoder
    reaches at least 30 dB on 8x8 digits, and the reconstructions stay recognisable."""
    from hierfl.config import HierConfig

    config = HierConfig.from_mapping({"experiences": 1}).validate()
    budget = ia.Budget(epochs=40, batch_size=32, classifier_epochs=15)
    data = inversion.data_for(config, budget)
    result = inversion.attack_raw(config, data, budget)
    assert result.psnr_db >= 30.0
    assert result.ssim > 0.85
    assert result.recognised_accuracy >= data.clean_accuracy - 0.02
    # and far above an attacker who learnt nothing (the auxiliary set's mean image)
    assert result.psnr_db > data.baselines["mean_image"]["psnr_db"] + 15
