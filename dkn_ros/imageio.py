"""Reading and writing the image files the CLI takes: PNG/JPEG colour, 8/16-bit PNG
and NPY depth. Every error names the file and the problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = ["read_color", "read_depth", "write_depth", "write_png"]

DEPTH_SUFFIXES = (".png", ".npy", ".pgm", ".tif", ".tiff")


def _open(path: Path) -> Image.Image:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        image = Image.open(path)
        image.load()
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
    """A depth image: 16-bit PNG (uint16 millimetres, 0 = invalid), 8-bit PNG (returned
    as uint8, e.g. Middlebury disparity), or NPY (2-D float32 metres or uint16 mm)."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        if not path.is_file():
            raise FileNotFoundError(f"{path}: file not found")
        try:
            depth = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable .npy array ({exc})") from None
        if depth.dtype == np.float64:
            depth = depth.astype(np.float32)
        return depth
    image = _open(path)
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
    """Write depth as 16-bit PNG (uint16 mm; float metres are converted, invalid -> 0)
    or as NPY (the array as it is)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".npy":
        np.save(path, depth)
        return
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: depth output must end in .png (16-bit mm) or .npy")
    if depth.dtype != np.uint16:
        metres = np.nan_to_num(depth.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        depth = np.clip(np.round(metres * 1000.0), 0, 65535).astype(np.uint16)
    Image.fromarray(depth).save(path)


def write_png(path: str | Path, rgb: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 RGB picture."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
