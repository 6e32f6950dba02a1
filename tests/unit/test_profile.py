"""Cut profiles: bytes and parameters checked against hand counts, FLOPs by their order."""

from __future__ import annotations

import pytest

from hierfl.analysis.profile import format_profiles, profile_cut, profile_model

# Activation shapes worked out by hand from each architecture.
KNOWN_CUTS = [
    ("resnet18", "layer2", (3, 32, 32), (128, 16, 16)),
    ("resnet18", "stem", (3, 32, 32), (64, 32, 32)),
    ("vgg16", "block3", (3, 32, 32), (256, 4, 4)),
    ("vgg16", "block5", (3, 64, 64), (512, 2, 2)),
    ("small-cnn", "block2", (1, 8, 8), (64, 4, 4)),
]

# Parameter counts without exit heads, from the published architectures: CIFAR ResNet-18
# (11,173,962) and VGG-16-BN with a single 512->10 classifier (14,728,266); the small CNN is
# 1*32*9+32 + 32*64*9+64 + 64*64*9+64 + 256*10+10.
TOTAL_PARAMS = {
    ("resnet18", (3, 32, 32)): 11_173_962,
    ("vgg16", (3, 32, 32)): 14_728_266,
    ("small-cnn", (1, 8, 8)): 58_314,
}


@pytest.mark.parametrize(("name", "cut", "shape", "activations"), KNOWN_CUTS)
def test_bytes_per_sample(name, cut, shape, activations):
    c, h, w = activations
    p = profile_cut(name, cut, shape)
    assert p.activation_shape == activations
    assert p.activation_bytes_per_sample == c * h * w * 4
    assert p.input_bytes_per_sample == shape[0] * shape[1] * shape[2] * 4


@pytest.mark.parametrize(("name", "shape"), list(TOTAL_PARAMS))
def test_params_and_flops_over_all_cuts(name, shape):
    profiles = profile_model(name, shape)
    for p in profiles:
        assert p.edge_params + p.cloud_params == TOTAL_PARAMS[(name, shape)]
        assert p.exit_params > 0
        assert p.edge_flops > 0 and p.cloud_flops > 0
    edge = [p.edge_flops for p in profiles]
    assert edge == sorted(edge) and len(set(edge)) == len(edge)
    cloud = [p.cloud_flops for p in profiles]
    assert cloud == sorted(cloud, reverse=True)


def test_exit_params_follow_the_head():
    # conv head on 64 channels: 3x3 conv without bias, BN, Linear(64, 10).
    p = profile_cut("small-cnn", "block2", (1, 8, 8), exit_head="conv")
    assert p.exit_params == 64 * 64 * 9 + 2 * 64 + 64 * 10 + 10
    # default small-cnn head: pool to 2x2, Linear(64 * 4, 10).
    assert profile_cut("small-cnn", "block2", (1, 8, 8)).exit_params == 256 * 10 + 10


def test_format_profiles_has_a_row_per_cut():
    table = format_profiles(profile_model("small-cnn", (1, 8, 8)))
    lines = table.splitlines()
    assert lines[0].startswith("small-cnn on 1x8x8")
    assert [line.split()[0] for line in lines[3:]] == ["block1", "block2", "block3"]
    assert "64x4x4" in lines[4]


def test_a_bottleneck_wider_than_the_cut_is_refused_and_profiles_skip_such_cuts():
    from hierfl.errors import ConfigError
    from hierfl.models import create_model

    # small-cnn on 8x8 digits: block1 has 32 channels, block2 and block3 have 64.
    with pytest.raises(ConfigError, match=r"bottleneck: 33 channels .* block1 has 32 .* 1\.\.32"):
        create_model(
            "small-cnn", cut="block1", num_classes=10, input_shape=(1, 8, 8), bottleneck=33
        )
    assert create_model(
        "small-cnn", cut="block1", num_classes=10, input_shape=(1, 8, 8), bottleneck=32
    )
    assert [p.cut for p in profile_model("small-cnn", (1, 8, 8), bottleneck=64)] == [
        "block2",
        "block3",
    ]
    with pytest.raises(ConfigError, match="bottleneck: 65 channels"):
        profile_model("small-cnn", (1, 8, 8), bottleneck=65)
