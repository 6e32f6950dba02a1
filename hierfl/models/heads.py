"""Early-exit heads by name: the classifier an edge device trains on top of its segment."""

from __future__ import annotations

from torch import nn

from hierfl.errors import UnknownNameError

EXIT_HEADS = ("conv", "mlp")
HEAD_WIDTH = 128
"""Hidden width of every head, capped so that a head stays cheap next to a deep segment."""


def conv_head(channels: int, num_classes: int) -> nn.Module:
    """One 3x3 conv (BN, ReLU), global average pooling, then a linear classifier.

    The extra conv lets a shallow cut, whose features are still local, learn some spatial mixing
    before pooling; without it an exit at ``block1`` is close to a linear model on pixels.
    """
    width = min(channels, HEAD_WIDTH)
    return nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(width, num_classes),
    )


def mlp_head(channels: int, num_classes: int) -> nn.Module:
    """Global average pooling then a two-layer MLP: the cheapest head with a hidden layer.

    It costs almost nothing at any cut (no spatial work), which makes it the fair head for
    comparing cuts by the segment's cost alone.
    """
    hidden = min(channels, HEAD_WIDTH)
    return nn.Sequential(
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(channels, hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, num_classes),
    )


def make_exit_head(name: str, channels: int, num_classes: int) -> nn.Module:
    """Build the exit head ``name`` for activations with ``channels`` channels.

    Raises:
        UnknownNameError: ``name`` is not one of ``EXIT_HEADS``.
    """
    if name == "conv":
        return conv_head(channels, num_classes)
    if name == "mlp":
        return mlp_head(channels, num_classes)
    raise UnknownNameError("exit-head", name, list(EXIT_HEADS))
