"""ResNet-18 with the usual small-image stem, cut after its stem or any of its four stages."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from hierfl.models.base import EdgeModule, SplitModel
from hierfl.models.heads import make_exit_head

STAGE_CHANNELS = {"stem": 64, "layer1": 64, "layer2": 128, "layer3": 256, "layer4": 512}


def small_stem(in_channels: int) -> nn.Conv2d:
    """A 3x3 stride-1 ``conv1``, initialised as torchvision initialises every ResNet conv.

    torchvision's 7x7 stride-2 conv and max pooling shrink 32x32 inputs to 8x8 before the first
    stage; the small stem keeps the full resolution, as in the CIFAR ResNets papers report.
    """
    conv = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return conv


class ResNet18(SplitModel):
    """torchvision's ``resnet18`` with a small stem and a ``num_classes`` classifier.

    The stem is ``conv1`` (3x3, stride 1, any number of input channels), ``bn1`` and ``relu``;
    the max pooling is removed. The same stem is kept for 64x64 inputs (Tiny ImageNet), as common
    continual-learning code (e.g. Mammoth's) does: the stages then run at 64, 32, 16 and 8
    pixels, four times the compute of 32x32, instead of shrinking the input to 16x16 before the
    first stage and losing most of the detail a 64x64 image has.
    Global average pooling makes the classifier independent of the input size.

    Modules keep torchvision's names (``conv1``, ``layer2``, ``fc``, ...) inside the edge
    segment and the cloud, so that weights map one to one onto a torchvision ``ResNet``.
    Cut ``stem`` / ``layerN`` sends that stage's output: at 32x32 that is 64x32x32,
    64x32x32, 128x16x16, 256x8x8 and 512x4x4.
    """

    cut_points = ("stem", "layer1", "layer2", "layer3", "layer4")
    default_cut = "layer2"

    def __init__(
        self,
        *,
        cut: str,
        num_classes: int,
        input_shape: tuple[int, int, int],
        exit_head: str = "conv",
    ) -> None:
        # Imported here: torchvision costs seconds and ``import hierfl.models`` must stay light.
        from torchvision.models import resnet18

        net = resnet18(weights=None, num_classes=num_classes)
        net.conv1 = small_stem(input_shape[0])
        stages: list[tuple[str, nn.Module]] = [
            ("conv1", net.conv1),
            ("bn1", net.bn1),
            ("relu", net.relu),
            *((name, getattr(net, name)) for name in self.cut_points[1:]),
        ]
        tail = [("avgpool", net.avgpool), ("flatten", nn.Flatten(1)), ("fc", net.fc)]
        # The stem is three modules; every later cut adds one stage.
        k = 3 + self.cut_points.index(cut)
        # The head is built last: a seed then gives the same segments whatever the cut.
        edge = EdgeModule(
            nn.Sequential(OrderedDict(stages[:k])),
            make_exit_head(exit_head, STAGE_CHANNELS[cut], num_classes),
        )
        cloud = nn.Sequential(OrderedDict([*stages[k:], *tail]))
        super().__init__(edge, cloud, cut=cut, num_classes=num_classes, input_shape=input_shape)
