"""One cloud for edges at several depths: the part of the cloud a chunk cut deeper enters.

Edges of a fleet may cut the network at different points (a weak device early, a strong one
late). The cloud is built at the shallowest cut, so it holds every layer any edge leaves to it;
a chunk cut deeper runs only the cloud's layers after its own cut. This relies on the
split-model contract of every registered model (``hierfl.models.base.SplitModel``): the cloud
is an ``nn.Sequential`` and each later cut point moves its first module to the edge segment,
so the modules after cut ``c`` are the cloud's modules from position ``index(c) -
index(model.cut)`` on. ``tests/contract/test_depths.py`` checks it for every model and cut.
"""

from __future__ import annotations

from torch import nn

from hierfl.errors import ConfigError
from hierfl.models.base import SplitModel


def cloud_from(model: SplitModel, cut: str) -> nn.Sequential:
    """The cloud's layers after ``cut`` (``model``'s own cut or a deeper one), sharing their
    parameters with ``model.cloud``: training it trains the cloud.

    Raises:
        ConfigError: ``cut`` is not one of the model's cut points, is shallower than the
            model's own cut, or the model has a bottleneck at its cut (its cloud starts with
            the decoder of that cut's codes) or a cloud that is not an ``nn.Sequential``.
    """
    cuts = type(model).cut_points
    if cut not in cuts:
        raise ConfigError("cut", f"unknown cut {cut!r}; allowed: {', '.join(cuts)}")
    skip = cuts.index(cut) - cuts.index(model.cut)
    if skip < 0:
        raise ConfigError(
            "cut",
            f"{cut} is shallower than the cloud's {model.cut}: the cloud is built at the "
            "fleet's shallowest cut",
        )
    if model.bottleneck is not None:
        raise ConfigError(
            "bottleneck", "edges at several depths need the cloud without a bottleneck"
        )
    if not isinstance(model.cloud, nn.Sequential):
        raise ConfigError(
            "model",
            f"{type(model).__name__}'s cloud is not an nn.Sequential: edges at several depths "
            "need one whose modules follow the cut points",
        )
    return model.cloud[skip:]
