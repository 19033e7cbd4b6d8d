"""How a real camera forms its depth: a small library of named, seeded sensor effects.

The paper's protocol makes the low-resolution (LR) depth by *bicubic* (anti-aliased)
downsampling. Cameras do not anti-alias, so every function here models one thing a
real sensor or driver does, on depth in **metres** (NaN = invalid), with its own
parameters, drawing only from the generator it is given.

How the LR grid is formed (:func:`downsample`)
    ``bicubic``  PIL bicubic with anti-aliasing: the paper's protocol.
    ``area``     the mean of each LR pixel's footprint: pixel binning, a ToF pixel
                 integrating its footprint (mixes foreground and background at edges).
    ``median``   the median of each footprint: RealSense's decimation filter.
    ``nearest``  point sampling: one HR pixel per LR pixel, by default the centre of
                 the footprint (a native LR sensor, a driver's decimation), optionally
                 with a phase offset (a sub-block shift of the sampling grid).
    The factor may be any real number >= 1 (2.67, 4.5, ...): the LR size is
    ``round(H / factor)`` x ``round(W / factor)`` and LR pixel i covers the HR interval
    [i H / h, (i + 1) H / h) on each axis, PIL's pixel-area convention.

Sensor effects (each one function; depth in metres, float32, NaN = invalid, (H, W))
    :func:`shadow_holes`      projector (or second stereo camera) shadows behind edges
    :func:`dropout`           missing returns in blobs, biased to dark and grazing surfaces
    :func:`flying_pixels`     foreground / background mixtures along depth edges
    :func:`misregister`       colour-to-depth shift and scale error
    :func:`depth_noise`       Gaussian noise, sigma(z) = sigma_m + relative z + k z^2
    :func:`quantise_disparity`  disparity rounded to 1/8 px (Kinect v1, Xtion)
    :func:`quantise_depth`    depth rounded to the output unit (1 mm for uint16 mm)
    :func:`out_of_range`      invalid outside the working range
    Random effects draw only from the ``np.random.Generator`` they are given.

Camera profiles (:class:`CameraProfile`, YAML files in ``training/profiles/``)
    A profile names the LR grid, the effects in order with their parameters (a
    parameter given as ``[low, high]`` is drawn uniformly per call) and the intrinsics
    the geometric effects need. :func:`simulate` turns full-resolution ground truth
    into the depth such a camera would deliver. Non-metric data (middlebury30, 0..255
    disparity-like) first goes through :func:`pseudo_metres`.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image
from scipy import ndimage

__all__ = [
    "EFFECTS",
    "GRIDS",
    "NOISE_KINDS",
    "PROFILES",
    "PROFILE_DIR",
    "CameraProfile",
    "Effect",
    "depth_noise",
    "downsample",
    "dropout",
    "flying_pixels",
    "load_profile",
    "lr_size",
    "misregister",
    "out_of_range",
    "pseudo_metres",
    "quantise_depth",
    "quantise_disparity",
    "shadow_holes",
    "simulate",
]

GRIDS = ("bicubic", "area", "median", "nearest")


def lr_size(shape: tuple[int, int], factor: float) -> tuple[int, int]:
    """(h, w) of the LR grid of an (H, W) image at a real ``factor`` >= 1."""
    if not factor >= 1.0:
        raise ValueError(f"factor must be a real number >= 1, got {factor!r}")
    height, width = shape
    return max(1, round(height / factor)), max(1, round(width / factor))


def _edges(length: int, n: int) -> np.ndarray:
    """n + 1 integer footprint boundaries of n LR pixels over ``length`` HR pixels."""
    return np.floor(np.arange(n + 1) * length / n + 1e-9).astype(np.intp)


def _block_reduce(depth: np.ndarray, size: tuple[int, int], reduce) -> np.ndarray:
    """Apply ``reduce`` (nanmean or nanmedian over axis -1) to every footprint."""
    height, width = depth.shape
    h, w = size
    if height % h == 0 and width % w == 0:  # integer factor: one vectorised call
        sy, sx = height // h, width // w
        blocks = depth.reshape(h, sy, w, sx).transpose(0, 2, 1, 3).reshape(h, w, sy * sx)
        return reduce(blocks, axis=-1).astype(np.float32)
    rows, cols = _edges(height, h), _edges(width, w)
    out = np.empty((h, w), dtype=np.float32)
    for i in range(h):
        band = depth[rows[i] : max(rows[i + 1], rows[i] + 1)]
        for j in range(w):
            block = band[:, cols[j] : max(cols[j + 1], cols[j] + 1)].reshape(-1)
            out[i, j] = reduce(block, axis=-1)
    return out


def downsample(
    depth: np.ndarray,
    factor: float,
    grid: str = "nearest",
    *,
    phase: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """Form the LR grid of a camera from full-resolution depth.

    Args:
        depth: (H, W) float depth, any unit; NaN = invalid.
        factor: real factor >= 1 (HR pixels per LR pixel on each axis).
        grid: one of :data:`GRIDS` (see the module docstring).
        phase: ``nearest`` only: where in its footprint each LR pixel samples, as a
            fraction of the footprint in (-0.5, 0.5) per axis (row, column); (0, 0) is
            the centre, the camera protocol of the data README (``d[s//2::s, s//2::s]``
            for an integer s). Draw it per image to model a shifted grid.

    Returns:
        (h, w) float32 LR depth (:func:`lr_size`). ``area`` and ``median`` ignore
        invalid pixels of a footprint and are invalid only where all of it is;
        ``bicubic`` must be given finite depth.
    """
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"depth must be 2-D (H, W), got shape {depth.shape}")
    if grid not in GRIDS:
        raise ValueError(f"unknown grid {grid!r}; known: {', '.join(GRIDS)}")
    size = lr_size(depth.shape, factor)
    if size == depth.shape:
        return depth.copy()
    if grid == "bicubic":
        if not np.isfinite(depth).all():
            raise ValueError("bicubic downsampling needs finite depth: fill the holes first")
        image = Image.fromarray(np.ascontiguousarray(depth))
        return np.asarray(image.resize(size[::-1], Image.Resampling.BICUBIC), np.float32).copy()
    if grid == "nearest":
        py, px = phase
        if not (-0.5 < py < 0.5 and -0.5 < px < 0.5):
            raise ValueError(f"phase must be in (-0.5, 0.5) per axis, got {phase!r}")
        (height, width), (h, w) = depth.shape, size
        rows = np.floor((np.arange(h) + 0.5 + py) * height / h).astype(np.intp)
        cols = np.floor((np.arange(w) + 0.5 + px) * width / w).astype(np.intp)
        rows, cols = np.clip(rows, 0, height - 1), np.clip(cols, 0, width - 1)
        return np.ascontiguousarray(depth[rows[:, None], cols[None, :]])
    reduce = np.nanmean if grid == "area" else np.nanmedian
    with np.errstate(invalid="ignore"), _quiet_all_nan():
        return _block_reduce(depth, size, reduce)


class _quiet_all_nan:
    """Silence numpy's 'mean of empty slice' warnings: an all-invalid footprint is
    simply an invalid LR pixel."""

    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._catch.__exit__(*exc)


# --------------------------------------------------------------------------------------
# Sensor effects: (H, W) float32 metres in, (H, W) float32 metres out, NaN = invalid.
# --------------------------------------------------------------------------------------

# kind: default (sigma_m, relative, k_per_m) of sigma(z) = sigma_m + relative z + k_per_m z^2
NOISE_KINDS = {
    # Kinect v1 / Xtion: random error grows with z^2, k = 1.4e-3 .. 2.85e-3 /m
    # (Khoshelham & Elberink 2012: about 4 cm at 5 m).
    "structured_light": (0.0, 0.0, 1.5e-3),
    # Active stereo: k = subpixel RMS / (f b), e.g. RealSense D435 at 848 px wide:
    # 0.08 px / (430 px * 0.050 m) = 3.7e-3 /m (Intel's depth RMS error formula).
    "stereo": (0.0, 0.0, 3.7e-3),
    # Time of flight: roughly constant sigma plus a small multiplicative term.
    "tof": (0.005, 0.002, 0.0),
}


def _metres(depth: np.ndarray) -> np.ndarray:
    """A float32 copy of (H, W) depth in metres; NaN = invalid."""
    depth = np.array(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"depth must be 2-D (H, W) metres, got shape {depth.shape}")
    return depth


def depth_noise(
    depth: np.ndarray,
    rng: np.random.Generator,
    kind: str = "structured_light",
    *,
    sigma_m: float | None = None,
    relative: float | None = None,
    k_per_m: float | None = None,
) -> np.ndarray:
    """Add zero-mean Gaussian noise whose standard deviation grows with depth.

    ``sigma(z) = sigma_m + relative * z + k_per_m * z**2`` metres, independent per pixel.
    Triangulating sensors (structured light, stereo) measure disparity d = f b / z with a
    roughly constant error sigma_d px, hence ``sigma(z) = z**2 sigma_d / (f b)``: only
    ``k_per_m``. Time-of-flight sensors: ``sigma_m`` plus a small ``relative`` term.
    ``kind`` (a :data:`NOISE_KINDS` key) gives the defaults of the parameters left None.

    Args:
        depth: (H, W) metres, NaN = invalid.
        rng: the only source of randomness (one standard normal per pixel).
        kind: ``structured_light``, ``stereo`` or ``tof``.

    Returns:
        (H, W) float32 metres; NaN stays NaN, and a value pushed to <= 0 becomes NaN
        (no camera reports a valid depth <= 0).
    """
    if kind not in NOISE_KINDS:
        raise ValueError(f"unknown noise kind {kind!r}; known: {', '.join(NOISE_KINDS)}")
    defaults = NOISE_KINDS[kind]
    sigma_m, relative, k_per_m = (
        default if value is None else float(value)
        for value, default in zip((sigma_m, relative, k_per_m), defaults, strict=True)
    )
    if min(sigma_m, relative, k_per_m) < 0:
        raise ValueError(f"noise parameters must be >= 0, got {sigma_m, relative, k_per_m}")
    depth = _metres(depth)
    sigma = sigma_m + relative * depth + k_per_m * depth**2
    noisy = depth + (rng.standard_normal(depth.shape) * sigma).astype(np.float32)
    noisy[~(noisy > 0)] = np.nan
    return noisy


def quantise_disparity(
    depth: np.ndarray, focal_px: float, baseline_m: float, step_px: float = 1 / 8
) -> np.ndarray:
    """Round the disparity d = f b / z to multiples of ``step_px`` and convert back.

    Kinect v1 and Xtion (PrimeSense) report disparity in 1/8 px steps, so the depth
    levels are f b / (n step) and their spacing at z is about ``z**2 step / (f b)``
    (2.9 mm at 1 m, 26 mm at 3 m for f = 580 px, b = 0.075 m).

    Args:
        depth: (H, W) metres, NaN = invalid.
        focal_px: focal length in px of the grid the disparity is computed on (the
            sensor's native resolution).
        baseline_m: projector-camera (or stereo) baseline in metres.
        step_px: disparity step in px.

    Returns:
        (H, W) float32 metres; a disparity that rounds to 0 (beyond the range) is NaN.
    """
    if not (focal_px > 0 and baseline_m > 0 and step_px > 0):
        raise ValueError(
            f"focal_px, baseline_m and step_px must be > 0, got {focal_px, baseline_m, step_px}"
        )
    depth = _metres(depth)
    fb = float(focal_px) * float(baseline_m)
    with np.errstate(divide="ignore", invalid="ignore"):
        steps = np.round(fb / depth.astype(np.float64) / step_px)
        out = fb / (steps * step_px)
    out[~(steps > 0)] = np.nan
    return out.astype(np.float32)


def quantise_depth(depth: np.ndarray, step_m: float = 0.001) -> np.ndarray:
    """Round depth to multiples of ``step_m`` (the output unit: 1 mm for uint16 mm
    images such as RealSense's and most ToF cameras'). (H, W) float32 metres; a value
    that rounds to 0 is NaN."""
    if not step_m > 0:
        raise ValueError(f"step_m must be > 0, got {step_m}")
    depth = _metres(depth)
    out = (np.round(depth.astype(np.float64) / step_m) * step_m).astype(np.float32)
    out[~(out > 0)] = np.nan
    return out


def out_of_range(depth: np.ndarray, min_m: float, max_m: float) -> np.ndarray:
    """Invalidate (NaN) depth outside the working range [min_m, max_m] metres.

    Returns (H, W) float32 metres."""
    if not 0 <= min_m < max_m:
        raise ValueError(f"need 0 <= min_m < max_m, got {min_m, max_m}")
    depth = _metres(depth)
    with np.errstate(invalid="ignore"):
        depth[(depth < min_m) | (depth > max_m)] = np.nan
    return depth


def shadow_holes(
    depth: np.ndarray,
    focal_px: float,
    baseline_m: float,
    side: str = "right",
    *,
    border: bool = False,
) -> np.ndarray:
    """Invalidate the pixels the projector (or the second stereo camera) cannot see.

    Geometry, for a rectified horizontal baseline b with the projector on ``side`` of
    the depth camera (``right`` = +x in the image): the projector sees the point at
    pixel u of a row at ``u_p = u - f b / z`` (``u + f b / z`` for ``left``). Along a row
    the projector coordinates of visible surface points increase with u; a pixel is in
    shadow when a pixel further towards the projector has a smaller (``right``) or
    larger (``left``) projector coordinate, i.e. a nearer surface blocks its projector
    ray. One running minimum (maximum) per row, vectorised over rows.

    A step from z_far to z_near leaves a band ``f b (1/z_near - 1/z_far)`` px wide on
    the far side of the near object, on the side *away* from the projector: with the
    projector on the right (Kinect v1, Xtion; RealSense D4xx's right imager) the bands
    are on the left of near objects, as in real Kinect frames. ``border``: also
    invalidate pixels whose projector coordinate falls outside [0, W), the band
    ``f b / z`` px wide along the image edge away from a second stereo imager of the
    same field of view (RealSense's "invalid depth band").

    Args:
        depth: (H, W) metres, NaN = invalid (an invalid pixel occludes nothing).
        focal_px: focal length in px of this grid.
        baseline_m: projector-camera baseline in metres.
        side: ``right`` or ``left``, where the projector is.
        border: also invalidate projector coordinates outside the image.

    Returns:
        (H, W) float32 metres with the shadowed pixels NaN.
    """
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    if not (focal_px > 0 and baseline_m > 0):
        raise ValueError(f"focal_px and baseline_m must be > 0, got {focal_px, baseline_m}")
    depth = _metres(depth)
    valid = np.isfinite(depth)
    with np.errstate(divide="ignore", invalid="ignore"):
        disparity = float(focal_px) * float(baseline_m) / depth.astype(np.float64)
    columns = np.arange(depth.shape[1], dtype=np.float64)
    tolerance = 1e-6  # px: equal projector coordinates are not an occlusion
    if side == "right":
        u_p = np.where(valid, columns - disparity, np.inf)
        # the smallest projector coordinate strictly to the right of each pixel
        right_min = np.minimum.accumulate(u_p[:, ::-1], axis=1)[:, ::-1]
        beyond = np.full_like(u_p, np.inf)
        beyond[:, :-1] = right_min[:, 1:]
        shadow = valid & (u_p > beyond + tolerance)
    else:
        u_p = np.where(valid, columns + disparity, -np.inf)
        left_max = np.maximum.accumulate(u_p, axis=1)
        beyond = np.full_like(u_p, -np.inf)
        beyond[:, 1:] = left_max[:, :-1]
        shadow = valid & (u_p < beyond - tolerance)
    if border:
        shadow |= valid & ((u_p < 0) | (u_p > depth.shape[1] - 1))
    depth[shadow] = np.nan
    return depth


def _grazing(depth: np.ndarray, focal_px: float) -> np.ndarray:
    """1 - cos(angle between the viewing ray and the surface normal), in [0, 1), from the
    depth gradient: tan(angle) ~ f |grad z| / z. Depth edges score ~1; 0 near holes."""
    dz_dy, dz_dx = np.gradient(depth.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        tangent = float(focal_px) * np.hypot(dz_dx, dz_dy) / depth
    score = 1.0 - 1.0 / np.sqrt(1.0 + tangent**2)
    return np.nan_to_num(score, nan=0.0)


def dropout(
    depth: np.ndarray,
    rng: np.random.Generator,
    fraction: float,
    rgb: np.ndarray | None = None,
    *,
    dark_bias: float = 0.0,
    grazing_bias: float = 0.0,
    focal_px: float | None = None,
    blob_sigma_px: float | None = None,
) -> np.ndarray:
    """Drop returns in smooth blobs, preferring dark and grazing surfaces.

    Each pixel's score is a smooth Gaussian random field (unit std, the construction of
    ``dkn_ros.synthetic.blob_mask``) plus ``dark_bias * (1 - luminance)`` of ``rgb``
    (dark surfaces return little light) plus ``grazing_bias * (1 - cos angle)`` (grazing
    incidence and depth edges, :func:`_grazing`); the ``round(fraction * N)`` valid
    pixels of highest score become NaN. A bias of 1 is one standard deviation of the
    field.

    Args:
        depth: (H, W) metres, NaN = invalid.
        rng: the only source of randomness (one (H, W) standard normal field).
        fraction: fraction of the N valid pixels dropped, in [0, 1).
        rgb: (H, W, 3) colour registered to ``depth``, uint8 or float in [0, 1];
            without it ``dark_bias`` has no effect.
        dark_bias, grazing_bias: >= 0, in units of the field's std.
        focal_px: focal length in px of this grid; needed when ``grazing_bias > 0``.
        blob_sigma_px: smoothing of the field (blob size); default 1 % of max(H, W).

    Returns:
        (H, W) float32 metres with the dropped pixels NaN.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    if dark_bias < 0 or grazing_bias < 0:
        raise ValueError(f"biases must be >= 0, got {dark_bias, grazing_bias}")
    depth = _metres(depth)
    sigma = blob_sigma_px if blob_sigma_px is not None else max(0.8, 0.01 * max(depth.shape))
    score = ndimage.gaussian_filter(rng.standard_normal(depth.shape), sigma=sigma, mode="wrap")
    score /= score.std() or 1.0
    if rgb is not None and dark_bias > 0:
        rgb = np.asarray(rgb)
        if rgb.shape != (*depth.shape, 3):
            raise ValueError(f"rgb must be {(*depth.shape, 3)}, got {rgb.shape}")
        scale = 255.0 if rgb.dtype == np.uint8 else 1.0
        luminance = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / scale
        score += dark_bias * (1.0 - np.clip(luminance, 0.0, 1.0))
    if grazing_bias > 0:
        if focal_px is None:
            raise ValueError("grazing_bias needs focal_px")
        score += grazing_bias * _grazing(depth, focal_px)
    candidates = np.flatnonzero(np.isfinite(depth))
    n, k = candidates.size, round(fraction * candidates.size)
    if k > 0:
        chosen = candidates[np.argpartition(score.ravel()[candidates], n - k)[n - k :]]
        depth.ravel()[chosen] = np.nan
    return depth


def flying_pixels(
    depth: np.ndarray,
    rng: np.random.Generator,
    probability: float,
    *,
    edge_jump: float = 0.05,
    size: int = 3,
) -> np.ndarray:
    """Mix foreground and background along depth edges, as ToF and binned pixels do.

    An edge pixel is a valid pixel whose ``size`` x ``size`` neighbourhood (valid pixels
    only) spans more than ``edge_jump`` times its nearest depth. With ``probability``
    each edge pixel becomes ``w * fg + (1 - w) * bg``, w ~ U(0, 1), fg and bg the
    nearest and farthest depth of its neighbourhood: a point floating between the two
    surfaces.

    Args:
        depth: (H, W) metres, NaN = invalid.
        rng: the only source of randomness (two (H, W) uniform draws).
        probability: in [0, 1], per edge pixel.
        edge_jump: relative depth jump that makes an edge.
        size: neighbourhood width in px (odd).

    Returns:
        (H, W) float32 metres; every changed pixel lies in [fg, bg].
    """
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {probability}")
    depth = _metres(depth)
    valid = np.isfinite(depth)
    fg = ndimage.minimum_filter(np.where(valid, depth, np.inf), size=size, mode="nearest")
    bg = ndimage.maximum_filter(np.where(valid, depth, -np.inf), size=size, mode="nearest")
    picked = rng.random(depth.shape) < probability
    weight = rng.random(depth.shape, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        fly = valid & picked & (bg - fg > edge_jump * fg)
    w = weight[fly]
    depth[fly] = w * fg[fly] + (1.0 - w) * bg[fly]
    return depth


def misregister(
    depth: np.ndarray,
    rng: np.random.Generator,
    max_shift_px: float = 2.0,
    max_scale_error: float = 0.01,
    *,
    shift: tuple[float, float] | None = None,
    scale: float | None = None,
    interpolation: str = "nearest",
) -> np.ndarray:
    """Misregister depth against colour: a shift and a small scale error.

    The content moves by ``shift`` = (rows, columns) px and is scaled by ``scale``
    about the image centre: output pixel p samples the input at
    ``c + (p - c - shift) / scale``. Drawn per call: shift = r (sin a, cos a) with
    r ~ U(0, max_shift_px), a ~ U(0, 2 pi), and scale = 1 + U(-max_scale_error,
    max_scale_error); a given ``shift`` or ``scale`` replaces its draw (the draws are
    made anyway, so the generator advances the same).

    ``nearest`` never mixes depths; ``linear`` is bilinear where all four neighbours
    are valid and nearest elsewhere, so valid and NaN are never mixed. Samples from
    outside the image are NaN.

    Args:
        depth: (H, W) metres, NaN = invalid.
        rng: the only source of randomness (three uniform draws).

    Returns:
        (H, W) float32 metres, the depth as the camera delivers it in the colour frame.
    """
    if max_shift_px < 0 or not 0 <= max_scale_error < 1:
        raise ValueError(
            f"need max_shift_px >= 0 and 0 <= max_scale_error < 1, "
            f"got {max_shift_px, max_scale_error}"
        )
    if interpolation not in ("nearest", "linear"):
        raise ValueError(f"interpolation must be 'nearest' or 'linear', got {interpolation!r}")
    radius, angle = rng.uniform(0.0, max_shift_px), rng.uniform(0.0, 2 * math.pi)
    drawn_scale = 1.0 + rng.uniform(-max_scale_error, max_scale_error)
    dy, dx = shift if shift is not None else (radius * math.sin(angle), radius * math.cos(angle))
    scale = drawn_scale if scale is None else float(scale)
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    depth = _metres(depth)
    height, width = depth.shape
    # separable warp: source row depends on the output row only, column on the column
    src_y = (height - 1) / 2 + (np.arange(height) - (height - 1) / 2 - dy) / scale
    src_x = (width - 1) / 2 + (np.arange(width) - (width - 1) / 2 - dx) / scale
    ny, nx = np.floor(src_y + 0.5).astype(np.intp), np.floor(src_x + 0.5).astype(np.intp)
    inside = ((ny >= 0) & (ny < height))[:, None] & ((nx >= 0) & (nx < width))[None, :]
    near = depth[np.clip(ny, 0, height - 1)[:, None], np.clip(nx, 0, width - 1)[None, :]]
    out = np.where(inside, near, np.float32(np.nan))
    if interpolation == "linear":
        y0, x0 = np.floor(src_y).astype(np.intp), np.floor(src_x).astype(np.intp)
        fy, fx = (src_y - y0)[:, None], (src_x - x0)[None, :]
        inside4 = ((y0 >= 0) & (y0 + 1 < height))[:, None] & ((x0 >= 0) & (x0 + 1 < width))[None, :]
        ya, yb = np.clip(y0, 0, height - 1)[:, None], np.clip(y0 + 1, 0, height - 1)[:, None]
        xa, xb = np.clip(x0, 0, width - 1)[None, :], np.clip(x0 + 1, 0, width - 1)[None, :]
        linear = (1 - fy) * ((1 - fx) * depth[ya, xa] + fx * depth[ya, xb]) + fy * (
            (1 - fx) * depth[yb, xa] + fx * depth[yb, xb]
        )
        use = inside4 & np.isfinite(linear)
        out = np.where(use, linear, out).astype(np.float32)
    return out


def pseudo_metres(
    depth: np.ndarray, near_m: float = 0.6, far_m: float = 4.0, kind: str = "disparity"
) -> np.ndarray:
    """Map normalised depth or disparity in [0, 1] to a plausible metric range.

    For data whose depth is not metric, e.g. middlebury30 (uint8 0..255, disparity-like,
    larger = nearer: pass ``depth / 255``), so that camera profiles, whose noise,
    shadows and range are in metres, can be applied. ``disparity``: 1 / z is linear in
    d (a rectified pair's disparity is f b / z), d = 1 -> near_m, d = 0 -> far_m.
    ``depth``: z = near_m + d (far_m - near_m). The result is plausible, not true,
    metric depth: errors in metres measured on it are not comparable with real data.

    Args:
        depth: (H, W) values in [0, 1], NaN = invalid.

    Returns:
        (H, W) float32 metres in [near_m, far_m], NaN stays NaN.
    """
    if not 0 < near_m < far_m:
        raise ValueError(f"need 0 < near_m < far_m, got {near_m, far_m}")
    if kind not in ("disparity", "depth"):
        raise ValueError(f"kind must be 'disparity' or 'depth', got {kind!r}")
    d = np.asarray(depth, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"depth must be 2-D (H, W), got shape {d.shape}")
    finite = d[np.isfinite(d)]
    if finite.size and (finite.min() < 0 or finite.max() > 1):
        raise ValueError(
            f"depth must be normalised to [0, 1], got {finite.min():g}..{finite.max():g}"
        )
    if kind == "disparity":
        return (1.0 / (1.0 / far_m + d * (1.0 / near_m - 1.0 / far_m))).astype(np.float32)
    return (near_m + d * (far_m - near_m)).astype(np.float32)


# --------------------------------------------------------------------------------------
# Camera profiles and the simulation.
# --------------------------------------------------------------------------------------

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
PROFILES = ("kinect_v1", "paper_bicubic", "realsense_d4xx", "tof_lowres", "xtion")

# name: (function, stage). Stages run in this order in :func:`simulate`: ``hr`` on the
# full-resolution grid, then the LR grid is formed, ``lr`` on the LR values, ``cut`` last.
EFFECTS: dict[str, tuple[Callable[..., np.ndarray], str]] = {
    "shadow_holes": (shadow_holes, "hr"),
    "dropout": (dropout, "hr"),
    "flying_pixels": (flying_pixels, "hr"),
    "misregister": (misregister, "hr"),
    "depth_noise": (depth_noise, "lr"),
    "quantise_disparity": (quantise_disparity, "lr"),
    "quantise_depth": (quantise_depth, "lr"),
    "out_of_range": (out_of_range, "cut"),
}
_STAGES = ("hr", "lr", "cut")
# arguments simulate() supplies itself; a profile cannot set them
_SUPPLIED = ("depth", "rng", "rgb", "focal_px", "baseline_m")
# effects that leave holes on the HR grid, which the bicubic grid cannot take
_HR_HOLES = ("shadow_holes", "dropout", "misregister")


@dataclass(frozen=True)
class Effect:
    """One step of a camera profile: an :data:`EFFECTS` name and its parameters as
    (name, value) pairs, kept sorted by name; a (low, high) value is drawn uniformly
    per call, in that order."""

    name: str
    params: tuple[tuple[str, object], ...] = ()

    def __post_init__(self) -> None:
        keys = [key for key, _ in self.params]
        if len(set(keys)) != len(keys):
            raise ValueError(f"{self.name}: a parameter is given twice in {keys}")
        object.__setattr__(self, "params", tuple(sorted(self.params, key=lambda kv: kv[0])))
        if self.name not in EFFECTS:
            raise ValueError(f"unknown effect {self.name!r}; known: {', '.join(EFFECTS)}")
        signature = inspect.signature(EFFECTS[self.name][0]).parameters
        settable = [p for p in signature if p not in _SUPPLIED]
        given = dict(self.params)
        for key, value in self.params:
            if key not in settable:
                raise ValueError(
                    f"{self.name}: unknown parameter {key!r}; settable: {', '.join(settable)}"
                )
            if isinstance(value, tuple):
                if len(value) != 2 or not all(_is_number(v) for v in value):
                    raise ValueError(f"{self.name}.{key}: a range is [low, high], got {value!r}")
                if value[0] > value[1]:
                    raise ValueError(f"{self.name}.{key}: low > high in {list(value)}")
            elif not (value is None or isinstance(value, str | bool) or _is_number(value)):
                raise ValueError(f"{self.name}.{key}: not a number, string or range: {value!r}")
        missing = [
            p
            for p in settable
            if signature[p].default is inspect.Parameter.empty and p not in given
        ]
        if missing:
            raise ValueError(f"{self.name}: missing parameter(s) {', '.join(missing)}")

    @property
    def stage(self) -> str:
        """``hr``, ``lr`` or ``cut``: where :func:`simulate` applies it."""
        return EFFECTS[self.name][1]

    def draw(self, rng: np.random.Generator) -> dict[str, object]:
        """The parameters of one call, ranges drawn uniformly in their listed order."""
        return {k: rng.uniform(*v) if isinstance(v, tuple) else v for k, v in self.params}

    def describe(self) -> str:
        """``name(key=value, ...)``, a range as ``U(low, high)``."""
        return f"{self.name}({', '.join(f'{k}={_show(v)}' for k, v in self.params)})"


def _show(value: object) -> str:
    if isinstance(value, tuple):
        return f"U({value[0]:g}, {value[1]:g})"
    return f"{value:g}" if _is_number(value) else str(value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class CameraProfile:
    """What a camera does to depth: the LR grid, the effects in order, the intrinsics.

    Attributes:
        name: the profile's name (its file's stem).
        grid: the LR grid, one of :data:`GRIDS`; several = one drawn per call.
        effects: applied in this order, which must follow the stages of
            :data:`EFFECTS` (full-resolution effects, then LR effects, then the range cut).
        focal_px: depth camera focal length in px at ``width_px`` image width.
        width_px: the image width ``focal_px`` refers to (the sensor's native width).
        baseline_m: projector-camera (or stereo) baseline in metres.
        description: one line of what camera this is.
    """

    name: str
    grid: tuple[str, ...]
    effects: tuple[Effect, ...] = ()
    focal_px: float | None = None
    width_px: int | None = None
    baseline_m: float | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not self.grid or any(g not in GRIDS for g in self.grid):
            raise ValueError(f"grid must be one or more of {', '.join(GRIDS)}, got {self.grid!r}")
        stages = [_STAGES.index(e.stage) for e in self.effects]
        if stages != sorted(stages):
            order = ", ".join(f"{e.name} ({e.stage})" for e in self.effects)
            raise ValueError(f"effects must run hr, then lr, then cut; got {order}")
        if "bicubic" in self.grid and any(e.name in _HR_HOLES for e in self.effects):
            raise ValueError(
                f"the bicubic grid needs finite depth: no {', '.join(_HR_HOLES)} before it"
            )
        intrinsics = (self.focal_px, self.width_px, self.baseline_m)
        for key, value in zip(("focal_px", "width_px", "baseline_m"), intrinsics, strict=True):
            if value is not None and not (_is_number(value) and value > 0):
                raise ValueError(f"{key} must be a number > 0, got {value!r}")
        if (self.focal_px is None) != (self.width_px is None):
            raise ValueError("focal_px and width_px go together")
        for effect in self.effects:
            params = dict(effect.params)
            if effect.name in ("shadow_holes", "quantise_disparity") and None in intrinsics:
                raise ValueError(f"{effect.name} needs focal_px, width_px and baseline_m")
            if effect.name == "dropout" and params.get("grazing_bias") and self.focal_px is None:
                raise ValueError("dropout with grazing_bias needs focal_px and width_px")

    @classmethod
    def from_dict(cls, data: Mapping) -> CameraProfile:
        """From the mapping of a profile file (see ``training/profiles/``) or :meth:`to_dict`."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a profile is a mapping, got {type(data).__name__}")
        known = ("name", "description", "grid", "focal_px", "width_px", "baseline_m", "effects")
        unknown = [k for k in data if k not in known]
        if unknown:
            raise ValueError(
                f"unknown key(s) {', '.join(map(str, unknown))}; known: {', '.join(known)}"
            )
        if "name" not in data or "grid" not in data:
            raise ValueError("a profile needs at least name and grid")
        grid = data["grid"]
        grid = (grid,) if isinstance(grid, str) else tuple(grid)
        effects = []
        for item in data.get("effects") or ():
            if isinstance(item, str):
                item = {item: {}}
            if not (isinstance(item, Mapping) and len(item) == 1):
                raise ValueError(f"an effect is 'name' or {{name: {{parameters}}}}, got {item!r}")
            ((name, params),) = item.items()
            params = params or {}
            if not isinstance(params, Mapping):
                raise ValueError(f"{name}: parameters must be a mapping, got {params!r}")
            pairs = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in params.items())
            effects.append(Effect(name, pairs))
        return cls(
            name=str(data["name"]),
            grid=grid,
            effects=tuple(effects),
            focal_px=data.get("focal_px"),
            width_px=data.get("width_px"),
            baseline_m=data.get("baseline_m"),
            description=str(data.get("description", "")),
        )

    def to_dict(self) -> dict:
        """Every parameter, JSON- and YAML-ready; :meth:`from_dict` reads it back."""
        return {
            "name": self.name,
            "description": self.description,
            "grid": self.grid[0] if len(self.grid) == 1 else list(self.grid),
            "focal_px": self.focal_px,
            "width_px": self.width_px,
            "baseline_m": self.baseline_m,
            "effects": [
                {e.name: {k: list(v) if isinstance(v, tuple) else v for k, v in e.params}}
                for e in self.effects
            ],
        }

    def describe(self) -> str:
        """One line for model cards."""
        grid = self.grid[0] if len(self.grid) == 1 else f"one of {'/'.join(self.grid)}"
        parts = [f"camera profile {self.name}: {grid} LR grid"]
        parts += [e.describe() for e in self.effects]
        if self.focal_px is not None:
            baseline = "" if self.baseline_m is None else f", baseline {self.baseline_m:g} m"
            parts.append(f"f = {self.focal_px:g} px at {self.width_px} px wide{baseline}")
        return "; ".join(parts)


def load_profile(name_or_path: str | Path) -> CameraProfile:
    """A camera profile by name (one of :data:`PROFILES`, in ``training/profiles/``) or
    from a YAML file path (a str with a '/' or a '.yaml' / '.yml' suffix, or a Path).
    The name defaults to the file's stem. Errors are ValueErrors naming the file."""
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or "/" in text or text.endswith((".yaml", ".yml")):
        path = Path(name_or_path)
    elif text in PROFILES:
        path = PROFILE_DIR / f"{text}.yaml"
    else:
        raise ValueError(f"unknown camera profile {text!r}; shipped: {', '.join(PROFILES)}")
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the profile: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from exc
    if isinstance(data, dict):
        data = {"name": path.stem, **data}
    try:
        return CameraProfile.from_dict(data)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: {exc}") from exc


def simulate(
    depth_m: np.ndarray,
    profile: CameraProfile,
    factor: float,
    rng: np.random.Generator,
    rgb: np.ndarray | None = None,
    focal_px: float | None = None,
) -> np.ndarray:
    """The depth a camera of ``profile`` would deliver for full-resolution ground truth.

    Order, and why:

    1. The grid is drawn if the profile lists several, then each effect's ranges as it
       comes (so a seed fixes everything).
    2. ``hr`` effects on the full-resolution grid, in the profile's order: shadows,
       dropout, flying pixels and misregistration are geometry at the resolution of
       the scene (a shadow band a few px wide, a 1 px edge, a sub-pixel shift), which
       the LR grid would lose; misregistration comes last because the camera's own
       effects happen in its frame before the driver registers it to colour.
    3. The LR grid, :func:`downsample` (``lr_size((H, W), factor)``).
    4. ``lr`` effects on the LR values, as the sensor measures and encodes each of its
       pixels: noise, then disparity or depth quantisation (the encoding is last).
    5. ``cut``: the range cut, on the final values, as the driver does.

    Args:
        depth_m: (H, W) ground-truth depth in metres; NaN, 0 or negative = invalid.
            Non-metric data: :func:`pseudo_metres` first.
        profile: a :class:`CameraProfile` (:func:`load_profile`).
        factor: real factor >= 1 of the LR grid (1 = same size).
        rng: the only source of randomness.
        rgb: (H, W, 3) colour, for ``dropout``'s dark bias.
        focal_px: the ground truth's focal length in px; default the profile's focal
            scaled to W (same field of view). ``hr`` effects use it; disparity
            quantisation uses it scaled back to the sensor's native width ``width_px``
            (the sensor quantises at its own resolution whatever the LR grid).

    Returns:
        (h, w) float32 metres with NaN holes, (h, w) = ``lr_size((H, W), factor)``.
    """
    depth = _metres(depth_m)
    if np.isinf(depth).any():
        raise ValueError("depth_m has +-Inf: not depth in metres")
    with np.errstate(invalid="ignore"):
        depth[~(depth > 0)] = np.nan
    width = depth.shape[1]
    if focal_px is None and profile.focal_px is not None:
        focal_px = profile.focal_px * width / profile.width_px
    sensor_focal = None
    if focal_px is not None and profile.width_px is not None:
        sensor_focal = focal_px * profile.width_px / width
    grid = (
        profile.grid[0] if len(profile.grid) == 1 else profile.grid[rng.integers(len(profile.grid))]
    )
    supplied = {"rng": rng, "rgb": rgb, "baseline_m": profile.baseline_m}
    downsampled = False
    for effect in profile.effects:
        if effect.stage != "hr" and not downsampled:
            depth, downsampled = downsample(depth, factor, grid), True
        function = EFFECTS[effect.name][0]
        params = effect.draw(rng)
        supplied["focal_px"] = focal_px if effect.stage == "hr" else sensor_focal
        wanted = inspect.signature(function).parameters
        params.update({k: v for k, v in supplied.items() if k in wanted})
        depth = function(depth, **params)
    if not downsampled:
        depth = downsample(depth, factor, grid)
    return depth.astype(np.float32, copy=False)
