"""A small CNN for digits-sized inputs, with three cut points and an exit head at each."""

from __future__ import annotations

from torch import nn

from hierfl.models.base import EdgeModule, SplitModel
from hierfl.models.heads import make_exit_head


def _block(cin: int, cout: int, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def pooled_exit_head(channels: int, num_classes: int) -> nn.Module:
    """Pool to 2x2 and classify: cheap enough for a small edge device."""
    return nn.Sequential(
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(channels * 4, num_classes)
    )


class SmallCNN(SplitModel):
    """Three conv blocks and a linear classifier.

    Cut ``block1`` / ``block2`` / ``block3`` sends the activations after that block. Works on
    any input of at least 4x4 pixels (8x8 digits give activations of 32x8x8, 64x4x4, 64x2x2).
    ``exit_head`` ``None`` keeps the pooled linear head; ``"conv"`` or ``"mlp"`` use
    ``hierfl.models.heads``. The blocks and classifier are created before the head, so a seed
    gives the same network whatever the cut and head.
    """

    cut_points = ("block1", "block2", "block3")
    default_cut = "block2"
    widths = (32, 64, 64)

    def __init__(
        self,
        *,
        cut: str,
        num_classes: int,
        input_shape: tuple[int, int, int],
        exit_head: str | None = None,
    ) -> None:
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
        width = self.widths[k - 1]
        if exit_head is None:
            head = pooled_exit_head(width, num_classes)
        else:
            head = make_exit_head(exit_head, width, num_classes)
        edge = EdgeModule(nn.Sequential(*blocks[:k]), head)
        cloud = nn.Sequential(*blocks[k:], classifier)
        super().__init__(edge, cloud, cut=cut, num_classes=num_classes, input_shape=input_shape)
