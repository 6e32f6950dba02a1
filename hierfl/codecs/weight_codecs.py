"""The built-in weight codecs (``weight-codec``): how edge weights travel between edges and cloud.

A weight codec is a plug-in of the ``hierfl.weight_codecs`` registry: ``build(config)`` returns
the ``UpdateCodec`` an edge's update and the cloud's change of the aggregate travel with, or
None for ``fp32``, today's exchange of the full weights both ways every round.
"""

from __future__ import annotations

from typing import Any

from hierfl.codecs.updates import UpdateCodec


def fp32(config: Any) -> None:
    """Full fp32 edge weights both ways, every round (FedAvg as Flower ships it)."""
    return None


def topk(config: Any) -> UpdateCodec:
    """Changes since the last exchange: top weight-density of each tensor, weight-values coded,
    error feedback on both sides."""
    return UpdateCodec(density=config.weight_density, values=config.weight_values)
