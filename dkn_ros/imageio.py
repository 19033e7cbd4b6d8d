"""Reading and writing the image files the CLI takes: PNG/JPEG colour, 8/16-bit PNG
and NPY depth. Every error names the file and the problem.

Depth must be stored losslessly: a JPEG (or other lossy format) of depth is refused,
because its compression changes the values near every edge.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from dkn_ros import processing

__all__ = ["read_color", "read_depth", "write_depth", "write_png"]

DEPTH_SUFFIXES = (".png", ".npy", ".pgm", ".tif", ".tiff")
DEPTH_OUTPUT_SUFFIXES = (".png", ".npy")  # what write_depth writes
LOSSY_FORMATS = ("JPEG", "MPO", "JPEG2000", "WEBP")  # PIL format names; never depth


def _open(path: Path) -> Image.Image:
    """Open and decode an image; every failure is a ValueError naming the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        image = Image.open(path)
        image.load()
    except Image.DecompressionBombError:
        raise ValueError(
            f"{path}: image too large to read safely (over {2 * Image.MAX_IMAGE_PIXELS} "
            "pixels); give camera-sized images"
        ) from None
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{path}: not a readable image ({exc})") from None
    return image


def read_color(path: str | Path) -> np.ndarray:
    """A colour image as (H, W, 3) uint8 RGB. Grey images are repeated on 3 channels
    (the paper's way for a 1-channel guidance); alpha is dropped."""
    path = Path(path)
    image = _open(path)
    if image.mode in ("I;16", "I;16B", "I", "F"):
        raise ValueError(f"{path}: expected an 8-bit colour image, got mode {image.mode}")
    return np.asarray(image.convert("RGB"))


def read_depth(path: str | Path) -> np.ndarray:
    """A depth image: 16-bit PNG/TIFF/PGM (uint16 millimetres, 0 = invalid), 8-bit PNG
    (returned as uint8, e.g. Middlebury disparity: the caller decides what it means),
    float TIFF (float32 metres) or NPY (2-D float32 metres, float64 is cast, or uint16
    mm or uint8). Lossy formats (JPEG, WebP...) and arrays that are not 2-D are refused
    with a ValueError naming the file."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        if not path.is_file():
            raise FileNotFoundError(f"{path}: file not found")
        try:
            depth = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable .npy array ({exc})") from None
        if depth.ndim != 2:
            raise ValueError(
                f"{path}: expected a 2-D (h, w) depth array, got shape {tuple(depth.shape)} "
                f"{depth.dtype}"
            )
        if depth.dtype == np.float64:
            depth = depth.astype(np.float32)
        if depth.dtype not in (np.float32, np.uint16, np.uint8):
            raise ValueError(
                f"{path}: depth array of dtype {depth.dtype}: expected float32 metres or "
                "uint16 millimetres"
            )
        return depth
    image = _open(path)
    if image.format in LOSSY_FORMATS:
        raise ValueError(
            f"{path}: {image.format} depth is lossy (its compression changes depth values); "
            "store depth losslessly: 16-bit PNG in millimetres or .npy/.tiff float32 metres"
        )
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        depth = np.asarray(image)
        if depth.dtype != np.uint16:
            if depth.min() < 0 or depth.max() > 65535:
                raise ValueError(f"{path}: depth values outside 0..65535 in a 32-bit image")
            depth = depth.astype(np.uint16)
        return depth
    if image.mode == "L":
        return np.asarray(image)
    if image.mode == "F":
        return np.asarray(image, dtype=np.float32)
    raise ValueError(
        f"{path}: expected a one-channel depth image (16-bit or 8-bit PNG, or .npy), "
        f"got mode {image.mode}"
    )


def write_depth(path: str | Path, depth: np.ndarray) -> None:
    """Write depth as 16-bit PNG (uint16 mm; float metres are converted as
    ``processing.from_metres`` does: NaN, +-Inf and <= 0 -> 0, valid values 1..65535 mm)
    or as NPY (the array as it is)."""
    path = Path(path)
    if path.suffix.lower() not in DEPTH_OUTPUT_SUFFIXES:
        raise ValueError(f"{path}: depth output must end in .png (16-bit mm) or .npy")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".npy":
        np.save(path, depth)
        return
    if depth.dtype != np.uint16:  # metres -> mm by the pipeline's own rule
        metres = processing.to_metres(np.asarray(depth, dtype=np.float32))
        depth = processing.from_metres(metres, np.uint16)
    Image.fromarray(depth).save(path)


def write_png(path: str | Path, rgb: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 RGB picture."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
