"""Split early-exit models: the ``SplitModel`` contract, the built-in networks, and the factory."""

from hierfl.models.base import EdgeModule, EdgeOutput, SplitModel
from hierfl.models.factory import create_model, list_models, model_for

__all__ = ["EdgeModule", "EdgeOutput", "SplitModel", "create_model", "list_models", "model_for"]
