"""Every registered model and cut honours the split-model contract."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hierfl.edge.trainer import EdgeTrainer
from hierfl.errors import UnknownNameError
from hierfl.models import create_model, list_models
from hierfl.models.heads import EXIT_HEADS
from hierfl.registry import MODELS

# An input each model is meant for; a third-party model gets CIFAR-sized images.
INPUT_SHAPES = {"small-cnn": (1, 8, 8), "vgg16": (3, 32, 32), "resnet18": (3, 32, 32)}
CASES = [(name, cut) for name in list_models() for cut in MODELS.get(name).cut_points]
BATCH = 2


def _shape(name: str) -> tuple[int, int, int]:
    return INPUT_SHAPES.get(name, (3, 32, 32))


def _build(name, cut, shape, seed, **kwargs):
    return create_model(name, cut=cut, num_classes=10, input_shape=shape, seed=seed, **kwargs)


def _randomize_batchnorm(model: nn.Module, seed: int) -> None:
    """Give BatchNorm non-trivial statistics, so that eval mode is not close to identity."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)


def _assert_split_equals_first_cut(name, cut, shape):
    x = torch.rand(BATCH, *shape)
    model = _build(name, cut, shape, seed=3).eval()
    out = model.forward_edge(x)
    assert out.exit_logits.shape == (BATCH, 10)
    assert tuple(out.activations.shape[1:]) == model.activation_shape()
    # The same seed builds the same network whatever the cut: every cut's split must agree
    # with the monolithic network built for the first cut.
    reference = _build(name, MODELS.get(name).cut_points[0], shape, seed=3).eval()
    torch.testing.assert_close(model.forward_cloud(out.activations), reference(x))


def test_small_cnn_has_at_least_three_cuts():
    assert len(MODELS.get("small-cnn").cut_points) >= 3


@pytest.mark.parametrize(("name", "cut"), CASES)
def test_split_forward_equals_monolithic(name, cut):
    _assert_split_equals_first_cut(name, cut, _shape(name))


@pytest.mark.parametrize(("name", "cut"), [("vgg16", "block4"), ("resnet18", "layer3")])
def test_split_forward_equals_monolithic_at_64x64(name, cut):
    _assert_split_equals_first_cut(name, cut, (3, 64, 64))


@pytest.mark.parametrize(("name", "cut"), CASES)
def test_one_training_step_is_deterministic(name, cut):
    shape = _shape(name)
    x, y = torch.rand(BATCH, *shape), torch.randint(0, 10, (BATCH,))
    states = []
    for _ in range(2):
        model = _build(name, cut, shape, seed=1)
        EdgeTrainer(model.edge, lr=0.01).train_chunk([(x, y)], max_bytes=2**30)
        states.append(model.edge.state_dict())
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k])


@pytest.mark.parametrize("name", list_models())
def test_activation_shape_leaves_the_model_unchanged(name):
    model = _build(name, MODELS.get(name).cut_points[-1], _shape(name), seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.activation_shape()
    assert model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("name", ["vgg16", "resnet18"])
def test_grayscale_inputs(name):
    cut = MODELS.get(name).cut_points[1]
    model = _build(name, cut, (1, 32, 32), seed=0).eval()
    assert model(torch.rand(BATCH, 1, 32, 32)).shape == (BATCH, 10)


@pytest.mark.parametrize(("cut", "shape"), [("layer2", (3, 32, 32)), ("layer3", (3, 64, 64))])
def test_resnet18_matches_torchvision(cut, shape):
    from torchvision.models import resnet18

    model = _build("resnet18", cut, shape, seed=5).eval()
    _randomize_batchnorm(model, seed=6)
    reference = resnet18(weights=None, num_classes=10)
    reference.conv1 = nn.Conv2d(shape[0], 64, 3, stride=1, padding=1, bias=False)
    reference.maxpool = nn.Identity()
    # The split model keeps torchvision's module names under its edge segment and cloud.
    state = {
        k.removeprefix("edge.segment.").removeprefix("cloud."): v
        for k, v in model.state_dict().items()
        if not k.startswith("edge.exit.")
    }
    reference.load_state_dict(state, strict=True)
    x = torch.rand(BATCH, *shape)
    torch.testing.assert_close(model(x), reference.eval()(x))


@pytest.mark.parametrize(("cut", "shape"), [("block3", (3, 32, 32)), ("block4", (3, 64, 64))])
def test_vgg16_matches_torchvision(cut, shape):
    from torchvision.models import vgg16_bn

    model = _build("vgg16", cut, shape, seed=5).eval()
    _randomize_batchnorm(model, seed=6)
    # Built on the meta device: the 120M-parameter ImageNet classifier is never allocated.
    with torch.device("meta"):
        reference = vgg16_bn(weights=None)
        reference.avgpool = nn.AdaptiveAvgPool2d(1)
        reference.classifier = nn.Linear(512, 10)
    # torchvision's features are one flat Sequential; ours are grouped into named blocks, in
    # the same order, so the weights map by position.
    ours = [(k, v) for k, v in model.state_dict().items() if not k.startswith("edge.exit.")]
    theirs = list(reference.state_dict().items())
    assert len(ours) == len(theirs)
    for (k1, v1), (k2, v2) in zip(ours, theirs, strict=True):
        assert v1.shape == v2.shape, (k1, k2)
    state = {k2: v1 for (_, v1), (k2, _) in zip(ours, theirs, strict=True)}
    reference.load_state_dict(state, strict=True, assign=True)
    x = torch.rand(BATCH, *shape)
    torch.testing.assert_close(model(x), reference.eval()(x))


@pytest.mark.parametrize("head", EXIT_HEADS)
def test_exit_head_choice_leaves_the_network_unchanged(head):
    # Heads are built last, so the segments and the cloud do not depend on the head.
    x = torch.rand(BATCH, 1, 8, 8)
    default = _build("small-cnn", "block2", (1, 8, 8), seed=2).eval()
    other = _build("small-cnn", "block2", (1, 8, 8), seed=2, exit_head=head).eval()
    torch.testing.assert_close(other(x), default(x))
    assert other.forward_edge(x).exit_logits.shape == (BATCH, 10)


def test_unknown_exit_head_names_the_allowed_ones():
    with pytest.raises(UnknownNameError, match="conv, mlp"):
        _build("small-cnn", "block2", (1, 8, 8), seed=0, exit_head="transformer")
