"""VGG-16 (with BatchNorm) for 32x32 and 64x64 images, cut after any of its five conv blocks."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from hierfl.models.base import EdgeModule, SplitModel
from hierfl.models.heads import make_exit_head

WIDTH = 512
"""Channels after the last conv block, which the small-image classifier reads."""


def _init_like_torchvision(module: nn.Module) -> None:
    """Apply torchvision's VGG initialisation, so a cut model starts as ``vgg16_bn`` would."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.constant_(m.bias, 0)


def _blocks(features: nn.Sequential) -> list[nn.Sequential]:
    """Split VGG's flat ``features`` into its conv blocks, each ending at its MaxPool."""
    blocks: list[nn.Sequential] = []
    current: list[nn.Module] = []
    for layer in features:
        current.append(layer)
        if isinstance(layer, nn.MaxPool2d):
            blocks.append(nn.Sequential(*current))
            current = []
    return blocks


def _out_channels(block: nn.Sequential) -> int:
    """Channels a block emits: those of its last convolution."""
    convs = [m for m in block if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels


class VGG16(SplitModel):
    """torchvision's ``vgg16_bn`` feature extractor with a small-image classifier.

    The five conv blocks are torchvision's configuration ``"D"`` with BatchNorm, built with
    ``torchvision.models.vgg.make_layers`` (exactly what ``vgg16_bn`` uses) so that the
    ImageNet classifier's 120M parameters are never allocated. Five poolings bring 32x32 inputs
    to 1x1 and 64x64 inputs to 2x2, so the 4096-wide classifier is replaced by global average
    pooling and ``Linear(512, num_classes)``, as is usual for CIFAR and Tiny ImageNet.

    Cut ``blockN`` sends the pooled output of block N: at 32x32 that is 64x16x16, 128x8x8,
    256x4x4, 512x2x2 and 512x1x1.
    """

    cut_points = ("block1", "block2", "block3", "block4", "block5")
    default_cut = "block3"

    def __init__(
        self,
        *,
        cut: str,
        num_classes: int,
        input_shape: tuple[int, int, int],
        exit_head: str = "conv",
    ) -> None:
        # Imported here: torchvision costs seconds and ``import hierfl.models`` must stay light.
        from torchvision.models.vgg import cfgs, make_layers

        features = make_layers(cfgs["D"], batch_norm=True)
        first = features[0]
        assert isinstance(first, nn.Conv2d)
        if input_shape[0] != first.in_channels:  # grayscale inputs
            features[0] = nn.Conv2d(input_shape[0], first.out_channels, 3, padding=1)
        classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(WIDTH, num_classes)
        )
        _init_like_torchvision(features)
        _init_like_torchvision(classifier)
        blocks = _blocks(features)
        k = self.cut_points.index(cut) + 1
        items = list(zip(self.cut_points, blocks, strict=True))
        channels = _out_channels(blocks[k - 1])
        # The head is built last: a seed then gives the same segments whatever the cut.
        edge = EdgeModule(
            nn.Sequential(OrderedDict(items[:k])),
            make_exit_head(exit_head, channels, num_classes),
        )
        cloud = nn.Sequential(OrderedDict([*items[k:], ("classifier", classifier)]))
        super().__init__(edge, cloud, cut=cut, num_classes=num_classes, input_shape=input_shape)
