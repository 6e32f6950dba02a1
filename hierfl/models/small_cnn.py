"""A small CNN for digits-sized inputs, with three cut points and an exit head at each."""

from __future__ import annotations

from torch import nn

from hierfl.models.base import EdgeModule, SplitModel


def _block(cin: int, cout: int, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def exit_head(channels: int, num_classes: int) -> nn.Module:
    """Pool to 2x2 and classify: cheap enough for a small edge device."""
    return nn.Sequential(
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(channels * 4, num_classes)
    )


class SmallCNN(SplitModel):
    """Three conv blocks and a linear classifier.

    Cut ``block1`` / ``block2`` / ``block3`` sends the activations after that block. Works on
    any input of at least 4x4 pixels (8x8 digits give activations of 32x8x8, 64x4x4, 64x2x2).
    """

    cut_points = ("block1", "block2", "block3")
    widths = (32, 64, 64)

    def __init__(self, *, cut: str, num_classes: int, input_shape: tuple[int, int, int]) -> None:
        channels = input_shape[0]
        blocks = [
            _block(channels, self.widths[0], pool=False),
            _block(self.widths[0], self.widths[1], pool=True),
            _block(self.widths[1], self.widths[2], pool=True),
        ]
        classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(self.widths[2] * 4, num_classes)
        )
        k = self.cut_points.index(cut) + 1
        edge = EdgeModule(nn.Sequential(*blocks[:k]), exit_head(self.widths[k - 1], num_classes))
        cloud = nn.Sequential(*blocks[k:], classifier)
        super().__init__(edge, cloud, cut=cut, num_classes=num_classes, input_shape=input_shape)
