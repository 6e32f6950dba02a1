"""Images as they are stored: uint8 pixels, or PNG and JPEG files (Pillow's encoders).

What cloud mode uploads (``hierfl.app.wire``), and what an edge reports cloud-only would have
uploaded for the samples it met this round: the honest baseline for the bytes a run ships.
"""

from __future__ import annotations

import io

import numpy as np
import torch


def image_file(pixels: np.ndarray, fmt: str, quality: int = 90) -> bytes:
    """One uint8 CxHxW image (C = 1 or 3) as a PNG or JPEG file, as Pillow writes it."""
    from PIL import Image

    image = Image.fromarray(pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0))
    out = io.BytesIO()
    if fmt == "png":
        image.save(out, format="PNG")
    else:
        image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def as_pixels(x: torch.Tensor) -> torch.Tensor:
    """Inputs in [0, 1] as the uint8 pixels they are stored as."""
    return torch.round(x.clamp(0, 1) * 255).to(torch.uint8)


def stored_bytes(x: torch.Tensor) -> tuple[int, int]:
    """Bytes of ``x``'s images (and one label byte each) as cloud mode uploads them: uint8
    pixels, and PNG files (with a 4-byte size each)."""
    pixels = as_pixels(x)
    n = len(pixels)
    png = sum(len(image_file(p.numpy(), "png")) for p in pixels)
    return pixels.numel() + n, png + 5 * n
