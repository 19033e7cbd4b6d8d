"""The two resampling rules of the pipeline, on the host: PIL bicubic and the
nearest-footprint index rule. Every other resize (the torch back-end, the joint
bilateral upsampling, the validity mask) is defined by these two.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["bicubic_resize", "nearest_indices", "nearest_resize"]


def bicubic_resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize of a 2-D float array with PIL, the resampler of the evaluation
    protocol (training code imports this function, keep it the only one).

    Args:
        array: (h, w) float array, any units; cast to float32. Must be finite.
        size: (height, width) of the result.

    Returns:
        (height, width) float32 array. Values may overshoot the input range slightly
        near edges (bicubic is not monotone); nothing is clipped.
    """
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"bicubic_resize expects a 2-D array, got shape {array.shape}")
    height, width = (int(v) for v in size)
    if height < 1 or width < 1:
        raise ValueError(f"bicubic_resize size must be positive (height, width), got {size}")
    if array.shape == (height, width):
        return np.array(array, dtype=np.float32)
    # A 2-D float32 array is PIL mode "F" (32-bit float, no clipping to 0..255).
    image = Image.fromarray(np.ascontiguousarray(array, dtype=np.float32))
    resized = image.resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(resized, dtype=np.float32).copy()


def nearest_indices(
    source: tuple[int, int], size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The row and column indices of :func:`nearest_resize` from ``source`` (h, w) to
    ``size`` (H, W): output pixel i takes input pixel floor((i + 0.5) h / H), the LR
    pixel whose footprint holds it (PIL's pixel-centre convention; i // s for an
    integer factor s)."""
    (h, w), (height, width) = source, size
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.intp), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.intp), w - 1)
    return rows, cols


def nearest_resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of the first two axes by :func:`nearest_indices`.

    Args:
        array: (h, w, ...) array of any dtype (NaN and bool are kept as they are).
        size: (height, width) of the result.

    Returns:
        (height, width, ...) array of the input's dtype.
    """
    rows, cols = nearest_indices(array.shape[:2], size)
    return array[rows[:, None], cols[None, :]]
