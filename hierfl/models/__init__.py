"""Split early-exit models: the ``SplitModel`` contract and the model registry."""

from hierfl.models.base import EdgeOutput, SplitModel, create_model, list_models, model_for

__all__ = ["EdgeOutput", "SplitModel", "create_model", "list_models", "model_for"]
