"""The attacker of ``benchmarks.inversion``: an honest-but-curious cloud that learns to
reconstruct an edge's inputs from the activations it receives.

The cloud holds auxiliary images of the same distribution that no edge ever sent (on digits: the
held-out test split) and the edge's weights (it averages them every round). It computes its own
images' activations exactly as an edge ships them (``shipped``: the segment in training mode,
then ``act-clip`` / ``act-noise`` through ``hierfl.train.privacy.ActivationPrivacy``, then the
wire's codec), trains a decoder from those activations back to the images (a learning-based
inversion, as in He et al., *Model inversion attacks against collaborative inference*, ACSAC
2019), and applies it to what the edges shipped. It does not optimise inputs through the known
segment (the white-box attack of the same paper), which can do better.

Quality is the PSNR and SSIM of the reconstructions against the originals (torchmetrics), and
their *recognisability*: the accuracy of a classifier trained on clean auxiliary images when it
classifies the reconstructions. Nothing here is part of hierfl's training path.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

from hierfl.app.wire import Wire, decode_tensors, encode_tensors
from hierfl.models import SplitModel
from hierfl.train.privacy import ActivationPrivacy


@dataclass(frozen=True)
class Budget:
    """How hard the attacker trains: the decoder's and the recognition classifier's budgets."""

    epochs: int = 120  # decoder epochs over the auxiliary set
    batch_size: int = 64
    lr: float = 2e-3
    width: int = 64  # decoder channels at 8x8 and below; halved per doubling of resolution
    classifier_epochs: int = 60
    seed: int = 0


def edge_activations(model: SplitModel, x: torch.Tensor, *, batch_size: int) -> torch.Tensor:
    """The activations of ``x`` as an edge computes them while it trains: the edge in training
    mode, BatchNorm on the statistics of batches of ``batch_size`` (on a copy of the edge, so
    that the model's running statistics stay)."""
    edge = copy.deepcopy(model.edge).train()
    parts = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            if len(x) - start == 1 and start > 0:  # BatchNorm needs two samples per batch
                parts.append(edge(x[start - 1 :]).activations[1:])
            else:
                parts.append(edge(x[start : start + batch_size]).activations)
    return torch.cat(parts).cpu()


def over_the_wire(activations: torch.Tensor, wire: Wire) -> torch.Tensor:
    """``activations`` encoded with the wire's codec and decoded as the cloud decodes them (a
    bottleneck's codes travel as integers: noised codes are rounded and clamped to the grid)."""
    labels = torch.zeros(len(activations), dtype=torch.long)
    record, name = encode_tensors(activations, labels, wire, raw=False)
    return decode_tensors(record, name, wire.compress)[0]


def shipped(
    model: SplitModel,
    x: torch.Tensor,
    *,
    batch_size: int,
    privacy: ActivationPrivacy,
    wire: Wire,
    seed: int,
) -> torch.Tensor:
    """What the cloud decodes of ``x``: ``edge_activations``, then the edge's ``privacy`` (clip
    and noise, with a generator seeded by ``seed``), then ``over_the_wire``."""
    activations = edge_activations(model, x, batch_size=batch_size)
    return over_the_wire(privacy.apply(activations, torch.Generator().manual_seed(seed)), wire)


@dataclass(frozen=True)
class AuxiliarySet:
    """The attacker's training pairs: its images and their activations up to the noise;
    ``draw`` adds fresh noise (the edge's ``act-noise``) and passes the wire, every time it is
    called, so that the decoder learns to see through the noise instead of memorising it."""

    activations: torch.Tensor
    images: torch.Tensor
    draw: Callable[[torch.Tensor], torch.Tensor]


def auxiliary_set(
    model: SplitModel,
    images: torch.Tensor,
    *,
    batch_size: int,
    privacy: ActivationPrivacy,
    wire: Wire,
    seed: int,
) -> AuxiliarySet:
    """The attacker's own images shipped as an edge ships them, a fresh noise draw per use."""
    activations = edge_activations(model, images, batch_size=batch_size)
    clipped = ActivationPrivacy(clip=privacy.clip).apply(activations)
    if not privacy.noise:
        received = over_the_wire(clipped, wire)
        return AuxiliarySet(received, images, lambda a: a)
    noise = ActivationPrivacy(noise=privacy.noise)
    generator = torch.Generator().manual_seed(seed)
    return AuxiliarySet(clipped, images, lambda a: over_the_wire(noise.apply(a, generator), wire))


def received_raw(x: torch.Tensor, raw_codec: str = "uint8") -> torch.Tensor:
    """``cloud`` mode: the inputs themselves, as the cloud decodes them (``raw-codec``)."""
    labels = torch.zeros(len(x), dtype=torch.long)
    record, name = encode_tensors(x, labels, Wire(raw_codec=raw_codec), raw=True)
    return decode_tensors(record, name, "none")[0]


class Standardize(nn.Module):
    """Per-channel standardisation with statistics fitted on the attacker's own activations."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    @classmethod
    def fit(cls, a: torch.Tensor) -> Standardize:
        dims = [0, *range(2, a.dim())]
        shape = (1, -1, *([1] * (a.dim() - 2)))
        mean = a.mean(dim=dims).reshape(shape)
        std = a.std(dim=dims).clamp_min(1e-6).reshape(shape)
        return cls(mean, std)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return (a - self.mean) / self.std


def _conv(cin: int, cout: int, kernel: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, padding=kernel // 2), nn.BatchNorm2d(cout), nn.ReLU()]


def make_decoder(
    activation_shape: tuple[int, ...], input_shape: tuple[int, ...], width: int = 64
) -> nn.Sequential:
    """Activations ``[C, h, w]`` -> images ``input_shape`` in [0, 1].

    A 1x1 conv to ``width`` channels, one stride-2 transposed conv per doubling of resolution
    (channels halved each time, at least 16, so that full-resolution layers stay cheap on CPU),
    a resize when the sizes are not a power of two apart, two 3x3 convs and a sigmoid.
    ``train_decoder`` fits the first module (a ``Standardize``).
    """
    if len(activation_shape) != 3 or len(input_shape) != 3:
        raise ValueError(
            f"the decoder maps [C, H, W] to [C, H, W], got {activation_shape} -> {input_shape}"
        )
    channels, size = activation_shape[0], activation_shape[1]
    out_channels, out_h, out_w = input_shape

    def width_at(side: int) -> int:
        return max(16, min(width, width * 8 // max(side, 1)))

    c = width_at(size)
    layers: list[nn.Module] = [Standardize(torch.zeros(1), torch.ones(1)), *_conv(channels, c, 1)]
    while size * 2 <= out_h:
        size *= 2
        nxt = width_at(size)
        layers += [nn.ConvTranspose2d(c, nxt, 4, stride=2, padding=1), nn.BatchNorm2d(nxt)]
        layers.append(nn.ReLU())
        c = nxt
    if (size, activation_shape[2]) != (out_h, out_w):
        layers.append(nn.Upsample(size=(out_h, out_w), mode="bilinear"))
    layers += [*_conv(c, c, 3), nn.Conv2d(c, out_channels, 3, padding=1)]
    layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


def _fit(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    draw: Callable[[torch.Tensor], torch.Tensor] | None = None,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
) -> nn.Module:
    """Adam with a cosine learning-rate decay over shuffled mini-batches, each passed through
    ``draw`` first when given; the model in eval mode at the end."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * max(1, -(-len(inputs) // batch_size))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(inputs), generator=generator)
        for start in range(0, len(inputs), batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            batch = inputs[idx] if draw is None else draw(inputs[idx])
            loss = loss_fn(model(batch), targets[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


def train_decoder(aux: AuxiliarySet, budget: Budget) -> nn.Module:
    """A decoder from the attacker's received activations to its own images (MSE)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(budget.seed)
        decoder = make_decoder(
            tuple(aux.activations.shape[1:]), tuple(aux.images.shape[1:]), budget.width
        )
    decoder[0] = Standardize.fit(aux.draw(aux.activations))
    return _fit(
        decoder,
        aux.activations,
        aux.images,
        F.mse_loss,
        draw=aux.draw,
        epochs=budget.epochs,
        batch_size=budget.batch_size,
        lr=budget.lr,
        seed=budget.seed,
    )


def reconstruct(decoder: nn.Module, received: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    decoder.eval()
    with torch.no_grad():
        parts = [decoder(received[i : i + batch_size]) for i in range(0, len(received), batch_size)]
        return torch.cat(parts)


def psnr(preds: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR in dB of the mean squared error over every pixel of every sample (data range 1)."""
    return float(peak_signal_noise_ratio(preds, target, data_range=1.0))


def ssim_window(shape: tuple[int, ...]) -> dict[str, object]:
    """SSIM's window: a uniform 3x3 one below 16 pixels a side (8x8 digits; the default 11x11
    Gaussian would not fit), torchmetrics' default Gaussian (sigma 1.5, 11x11) otherwise."""
    if min(shape[-2:]) < 16:
        return {"gaussian_kernel": False, "kernel_size": 3}
    return {}


def ssim(preds: torch.Tensor, target: torch.Tensor) -> float:
    """Mean SSIM over the samples, data range 1, window from ``ssim_window``."""
    window = ssim_window(tuple(target.shape))
    return float(structural_similarity_index_measure(preds, target, data_range=1.0, **window))


def make_classifier(input_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    """A small CNN judge; it first pools any input to at most 8x8 (digits' own resolution)."""
    return nn.Sequential(
        nn.AdaptiveAvgPool2d(min(8, input_shape[-1])),
        *_conv(input_shape[0], 32, 3),
        *_conv(32, 64, 3),
        nn.MaxPool2d(2),
        *_conv(64, 64, 3),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(256, num_classes),
    )


def train_classifier(
    images: torch.Tensor, labels: torch.Tensor, num_classes: int, budget: Budget
) -> nn.Module:
    """The recognition classifier, trained on clean auxiliary images."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(budget.seed)
        classifier = make_classifier(tuple(images.shape[1:]), num_classes)
    return _fit(
        classifier,
        images,
        labels,
        F.cross_entropy,
        epochs=budget.classifier_epochs,
        batch_size=budget.batch_size,
        lr=budget.lr,
        seed=budget.seed,
    )


def recognised_accuracy(classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of ``images`` that ``classifier`` assigns to their true ``labels``."""
    classifier.eval()
    with torch.no_grad():
        predicted = torch.cat(
            [classifier(images[i : i + 256]).argmax(1) for i in range(0, len(images), 256)]
        )
    return float((predicted == labels).float().mean())


def scores(
    preds: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, classifier: nn.Module
) -> dict[str, float]:
    """PSNR, SSIM and recognised accuracy of ``preds`` as reconstructions of ``images``."""
    return {
        "psnr_db": psnr(preds, images),
        "ssim": ssim(preds, images),
        "recognised_accuracy": recognised_accuracy(classifier, preds, labels),
    }


def baselines(
    aux_images: torch.Tensor,
    aux_labels: torch.Tensor,
    images: torch.Tensor,
    labels: torch.Tensor,
    classifier: nn.Module,
) -> dict[str, dict[str, float]]:
    """What attackers who ignore the activations score: ``mean_image`` answers the auxiliary
    set's mean image for every sample; ``class_mean_image`` the mean auxiliary image of the
    sample's label, which the cloud receives in the clear while training."""
    mean = aux_images.mean(0, keepdim=True).expand_as(images)
    by_class = torch.stack([aux_images[aux_labels == int(c)].mean(0) for c in labels])
    return {
        "mean_image": scores(mean, images, labels, classifier),
        "class_mean_image": scores(by_class, images, labels, classifier),
    }


@dataclass
class Attack:
    """One attack's outcome: its metrics and the reconstructions of the attacked samples."""

    psnr_db: float
    ssim: float
    recognised_accuracy: float
    reconstructions: torch.Tensor


def attack(
    aux: AuxiliarySet,
    received: torch.Tensor,
    images: torch.Tensor,
    labels: torch.Tensor,
    classifier: nn.Module,
    budget: Budget,
) -> Attack:
    """Train a decoder on the auxiliary set, reconstruct the attacked samples from what the
    cloud ``received`` of them, and score the reconstructions against the originals."""
    decoder = train_decoder(aux, budget)
    out = reconstruct(decoder, received)
    return Attack(
        psnr(out, images), ssim(out, images), recognised_accuracy(classifier, out, labels), out
    )
