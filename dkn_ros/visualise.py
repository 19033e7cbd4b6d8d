"""Colour-mapped pictures of depth and error for people to look at.

Every depth picture carries a scale bar (:func:`with_scale_bar`): the colour map from
its low to its high value with labelled ticks, so a colour can be read back as a
depth. Depth is coloured over a robust range (:func:`robust_range`, the 2nd to 98th
percentile of the valid values), so a few far outliers (sky, a window, a sensor's
maximum range) do not squeeze the rest of the scene into one colour.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ROBUST_PERCENTILES",
    "colorize",
    "depth_preview",
    "draw_text",
    "label",
    "pad_below",
    "robust_range",
    "scale_bar",
    "side_by_side",
    "text_width",
    "with_scale_bar",
]

ROBUST_PERCENTILES = (2.0, 98.0)  # the colour range of depth pictures

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


def text_width(text: str, scale: int) -> int:
    """Width in pixels of ``text`` drawn by :func:`draw_text` (4 glyph columns a char)."""
    return max(0, 4 * len(text) - 1) * scale


def draw_text(image: np.ndarray, text: str, x: int, y: int, scale: int) -> None:
    """Draw ``text`` (upper-cased) in white into ``image`` in place, top-left corner at
    (x, y); characters that do not fit are left out."""
    for n, char in enumerate(text.upper()):
        bits = _GLYPHS.get(char, _GLYPHS[" "])
        glyph = np.array([int(b) for b in bits], dtype=bool).reshape(5, 3)
        glyph = glyph.repeat(scale, 0).repeat(scale, 1)
        x0 = x + 4 * n * scale
        if x0 < 0 or x0 + glyph.shape[1] > image.shape[1] or y + glyph.shape[0] > image.shape[0]:
            break
        region = image[y : y + glyph.shape[0], x0 : x0 + glyph.shape[1]]
        region[glyph] = 255


def label(image: np.ndarray, text: str, scale: int = 3) -> np.ndarray:
    """Draw ``text`` (upper-cased) in white on a black band at the top-left corner."""
    out = image.copy()
    height = 7 * scale
    width = min(out.shape[1], (4 * len(text) + 1) * scale)
    out[:height, :width] = 0
    draw_text(out, text, scale, scale, scale)
    return out


def robust_range(values: np.ndarray) -> tuple[float, float]:
    """The colour range of a depth picture: the 2nd and 98th percentile
    (``ROBUST_PERCENTILES``) of the finite values > 0 (0 and NaN are invalid depth).
    (0, 1) when nothing is valid; a flat image gets a small non-empty range."""
    values = np.asarray(values, dtype=np.float32)
    valid = values[np.isfinite(values) & (values > 0)]
    if valid.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(valid, ROBUST_PERCENTILES))
    if hi <= lo:
        hi = lo + max(abs(lo) * 1e-3, 1e-6)
    return lo, hi


def _tick_text(value: float, step: float) -> str:
    """A tick label with as many decimals as the tick spacing needs (at most 3)."""
    decimals = 0 if step >= 1 else 1 if step >= 0.1 else 2 if step >= 0.01 else 3
    return f"{value:.{decimals}f}"


def scale_bar(width: int, vmin: float, vmax: float, unit: str) -> np.ndarray:
    """A (rows, width, 3) uint8 strip: the colour map from ``vmin`` (left) to ``vmax``
    (right), tick marks, and tick labels in ``unit`` (e.g. ``"m"``, ``"mm"``; the unit
    follows the last label). As many ticks (2 to 5) as fit in the width."""
    glyph = 1 if width < 240 else 2 if width < 480 else 3  # font scale: 5 to 15 px digits
    bar_rows, tick_rows, gap = 4 * glyph + 4, 2 * glyph, 2
    rows = gap + bar_rows + tick_rows + gap + 5 * glyph + gap
    strip = np.zeros((rows, width, 3), dtype=np.uint8)
    ramp = np.linspace(vmin, vmax, width, dtype=np.float32)[None, :]
    strip[gap : gap + bar_rows] = colorize(np.repeat(ramp, bar_rows, 0), vmin, vmax)

    span = vmax - vmin
    for count in (5, 4, 3, 2):
        step = span / (count - 1)
        texts = [_tick_text(vmin + i * step, step) for i in range(count)]
        texts[-1] += f" {unit}"
        widest = max(text_width(t, glyph) for t in texts)
        if count == 2 or width // count > widest + 3 * glyph:
            break
    y_tick, y_text = gap + bar_rows, gap + bar_rows + tick_rows + gap
    for i, text in enumerate(texts):
        x = round(i * (width - 1) / (count - 1))
        strip[y_tick : y_tick + tick_rows, max(0, x - glyph // 2) : x + glyph // 2 + 1] = 255
        size = text_width(text, glyph)
        left = min(max(glyph, x - size // 2), width - size - glyph)
        draw_text(strip, text, max(0, left), y_text, glyph)
    return strip


def with_scale_bar(picture: np.ndarray, vmin: float, vmax: float, unit: str) -> np.ndarray:
    """``picture`` (H, W, 3) with its :func:`scale_bar` appended below it."""
    bar = scale_bar(picture.shape[1], vmin, vmax, unit)
    return np.concatenate([picture, bar], axis=0)


def depth_preview(depth: np.ndarray) -> np.ndarray:
    """A picture of depth for people: (H, W) uint16 millimetres or float metres (0 or NaN
    = invalid, drawn black) coloured over its :func:`robust_range`, in metres, with a
    scale bar below (H + bar rows, W, 3) uint8."""
    metres = np.asarray(depth, dtype=np.float32)
    if depth.dtype == np.uint16:
        metres = metres / np.float32(1000.0)
    metres = np.where(np.isfinite(metres) & (metres > 0), metres, np.nan)
    lo, hi = robust_range(metres)
    return with_scale_bar(colorize(metres, lo, hi), lo, hi, "m")


def pad_below(picture: np.ndarray, height: int) -> np.ndarray:
    """``picture`` (h, W, 3) with black rows added below it up to ``height``."""
    missing = height - picture.shape[0]
    if missing <= 0:
        return picture
    pad = np.zeros((missing, *picture.shape[1:]), dtype=picture.dtype)
    return np.concatenate([picture, pad], axis=0)


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
