"""Colour-mapped pictures of depth and error for people to look at."""

from __future__ import annotations

import numpy as np

__all__ = ["colorize", "side_by_side", "label"]

# Anchor colours of a perceptually ordered map (dark blue -> cyan -> yellow -> red).
_ANCHORS = np.array(
    [
        [48, 18, 59],
        [70, 107, 227],
        [40, 187, 236],
        [49, 242, 153],
        [162, 252, 60],
        [237, 208, 58],
        [251, 128, 34],
        [210, 49, 5],
        [122, 4, 3],
    ],
    dtype=np.float32,
)


def colorize(values: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    """(H, W) values -> (H, W, 3) uint8; NaN (invalid) is black."""
    scaled = (np.asarray(values, dtype=np.float32) - vmin) / max(vmax - vmin, 1e-12)
    invalid = ~np.isfinite(scaled)
    position = np.clip(np.nan_to_num(scaled), 0.0, 1.0) * (len(_ANCHORS) - 1)
    low = np.floor(position).astype(int).clip(0, len(_ANCHORS) - 2)
    frac = (position - low)[..., None]
    rgb = _ANCHORS[low] * (1.0 - frac) + _ANCHORS[low + 1] * frac
    rgb[invalid] = 0.0
    return rgb.astype(np.uint8)


# A 3 x 5 pixel font for short labels (digits, upper-case letters and a few signs).
_GLYPHS = {
    "A": "010101111101101", "B": "110101110101110", "C": "011100100100011",
    "D": "110101101101110", "E": "111100110100111", "F": "111100110100100",
    "G": "011100101101011", "H": "101101111101101", "I": "111010010010111",
    "K": "101101110101101", "L": "100100100100111", "M": "101111111101101",
    "N": "110101101101101", "O": "010101101101010", "P": "110101110100100",
    "R": "110101110101101", "S": "011100010001110", "T": "111010010010010",
    "U": "101101101101111", "V": "101101101101010", "W": "101101111111101",
    "X": "101101010101101", "Y": "101101010010010", "Z": "111001010100111",
    "0": "111101101101111", "1": "010110010010111", "2": "110001010100111",
    "3": "110001010001110", "4": "101101111001001", "5": "111100110001110",
    "6": "011100111101111", "7": "111001010010010", "8": "111101111101111",
    "9": "111101111001110", ".": "000000000000010", "=": "000111000111000",
    "-": "000000111000000", "|": "010010010010010", ":": "000010000010000",
    " ": "000000000000000",
}


def label(image: np.ndarray, text: str, scale: int = 3) -> np.ndarray:
    """Draw ``text`` (upper-cased) in white on a black band at the top-left corner."""
    out = image.copy()
    text = text.upper()
    height = 7 * scale
    width = min(out.shape[1], (4 * len(text) + 1) * scale)
    out[:height, :width] = 0
    for n, char in enumerate(text):
        bits = _GLYPHS.get(char, _GLYPHS[" "])
        glyph = np.array([int(b) for b in bits], dtype=bool).reshape(5, 3)
        glyph = glyph.repeat(scale, 0).repeat(scale, 1)
        y0, x0 = scale, (1 + 4 * n) * scale
        if x0 + glyph.shape[1] > out.shape[1]:
            break
        region = out[y0 : y0 + glyph.shape[0], x0 : x0 + glyph.shape[1]]
        region[glyph] = 255
    return out


def side_by_side(panels: list[np.ndarray], gap: int = 4) -> np.ndarray:
    """Concatenate (H, W, 3) uint8 panels of the same height with white gaps."""
    height = panels[0].shape[0]
    spacer = np.full((height, gap, 3), 255, dtype=np.uint8)
    row: list[np.ndarray] = []
    for panel in panels:
        if panel.shape[0] != height:
            raise ValueError("panels must have the same height")
        row += [panel, spacer]
    return np.concatenate(row[:-1], axis=1)
