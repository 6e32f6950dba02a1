"""Resolve ``cpu`` / ``cuda`` / ``auto`` where the trainer runs (edge and cloud may differ)."""

from __future__ import annotations

import torch

from hierfl.errors import ConfigError


def resolve_device(key: str, name: str) -> str:
    """``auto`` picks CUDA when this machine has it; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            key, "cuda requested but this machine has no CUDA device; use cpu or auto"
        )
    if name not in ("cpu", "cuda"):
        raise ConfigError(key, f"unknown device {name!r}; allowed: auto, cpu, cuda")
    return name
