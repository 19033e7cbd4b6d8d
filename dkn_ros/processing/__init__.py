"""The depth pipeline around the network, written once: colour and depth as a camera
delivers them in, the network's two inputs, the network's output back to depth in the
input's own dtype and units out.

This package knows nothing of models or engines. The steps at the depth's own (low)
resolution (checks, units, validity, hole filling, normalisation) run on the host with
numpy; the steps at colour resolution (guidance, upsampling, de-normalisation, the
invalid-pixel policy, output units) are written against a small array interface
(``dkn_ros.processing.arrays``) and run on numpy arrays (:data:`arrays.NUMPY`, the
default) or on torch tensors on an engine's device (``arrays.TorchArrays``), so the
CPU and GPU paths are the same code::

    guidance = prepare_guidance(color, color_order="rgb", arrays=NUMPY)
    depth_in = prepare_depth(depth, color.shape)          # host, low resolution
    target = upsample(arrays.upload(depth_in.normalised), depth_in.output_shape,
                      "guided", guidance, arrays)[None, None]
    output = arrays.run(engine, guidance, target)         # (1, 1, H, W) normalised
    enhanced = finish(output, depth_in, invalid="keep", arrays=arrays)   # numpy

(``prepare`` does the first three lines on the host in one call.)

Conventions
    colour: (H, W, 3) uint8, channel order ``"rgb"`` or ``"bgr"``.
    depth (REP 118): 2-D (h, w) ``uint16`` millimetres with 0 = invalid, or
        ``float32`` metres with NaN (or 0) = invalid. +-Inf, negative values and finite
        values above :data:`MAX_DEPTH_M` (10 km) are errors, not invalid pixels: they
        mean the image is not the depth we think it is. No camera, stereo pair or
        LiDAR that gives a depth image measures 10 km (far-range stereo depth of a few
        hundred metres is accepted), so such a value is garbage (1e30, 3e38:
        uninitialised memory, a bad conversion), and one of them would set the
        normalisation range of the whole frame and squeeze every other pixel flat.
        The output never contains +-Inf: a non-finite network output is invalid.
    sizes: depth of colour size (denoising, scale 1) or smaller by any real factor s
        up to 16 that keeps the colour image's aspect ratio within 1 % (upsampling by s,
        see :func:`infer_scale`): 80x60, 160x120 and 240x180 under 640x480, 144x192
        under 384x512 (s = 2.67), 240x180 under 1920x1440...
    metres: the working representation is float32 metres with NaN = invalid.
    normalised: (d - dmin) / span, dmin and dmax taken from the valid pixels of the
        input depth itself (never from ground truth), span = :func:`depth_span`.

Design decisions
    * Holes are filled *before* the network (and before the upsampling) with the value
      of the nearest valid pixel (Euclidean distance transform), so neither the
      interpolation nor the network's kernels ever see the 0 / NaN placeholders and no
      invalid value is smeared into valid neighbours.
    * ``invalid="keep"``: an output pixel is valid when the input measurement that
      covers it is valid. For upsampling by s, output pixel (i, j) is covered by the
      low-resolution pixel (i // s, j // s): the LR pixel whose footprint contains it
      (the nearest LR pixel under the pixel-area convention that PIL's resampler uses;
      for a real s, LR pixel floor((i + 0.5) / s), ``resampling.nearest_indices``).
      The bicubic support (4 x 4 LR pixels) was not chosen because it would grow every
      hole by one to two LR pixels on each side. For same-size input the output is
      invalid exactly where the input was. ``invalid="fill"``: every pixel gets a value.
      A non-finite network output is invalid under both policies.
    * The output is not clipped to the input's range (bicubic interpolation legitimately
      extrapolates a sloped floor past the outermost LR pixel centres, and the evaluation
      protocol does not clip); it is only kept >= 1 mm so that a valid output pixel never
      reads as invalid (0 or negative) after a rare undershoot.
    * The LR depth is brought to colour size by the upsampling its weights were trained
      with (the card's ``input_upsampling``): ``bicubic`` (PIL, the paper's protocol)
      , ``nearest`` (each LR pixel's footprint gets its value) or ``guided`` (joint
      bilateral upsampling under the colour image, ``dkn_ros.processing.guided``: the
      LR samples are weighted by distance and colour similarity, so depth edges follow
      colour edges instead of the LR grid).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from dkn_ros.processing.arrays import NUMPY
from dkn_ros.processing.guided import guided_smoothing, joint_bilateral_upsample
from dkn_ros.processing.resampling import bicubic_resize, nearest_indices, nearest_resize

__all__ = [
    "COLOR_ORDERS",
    "INVALID_POLICIES",
    "MAX_DEPTH_M",
    "MAX_SCALE",
    "MIN_SCALE",
    "NUMPY",
    "UPSAMPLINGS",
    "DepthInput",
    "InputError",
    "bicubic_resize",
    "bicubic_upsample_depth",
    "check_color",
    "check_depth",
    "denormalise",
    "depth_span",
    "fill_holes",
    "finish",
    "from_metres",
    "guidance_from_color",
    "implausible_depth_message",
    "infer_scale",
    "nearest_indices",
    "nearest_resize",
    "normalise",
    "prepare",
    "prepare_depth",
    "prepare_guidance",
    "prepare_target",
    "to_metres",
    "upsample",
    "upsample_mask",
    "valid_mask",
]

COLOR_ORDERS = ("rgb", "bgr")
INVALID_POLICIES = ("keep", "fill")
DEPTH_DTYPES = (np.dtype(np.uint16), np.dtype(np.float32))
MIN_SCALE, MAX_SCALE = 1, 16  # depth may be colour size up to 16 times smaller
ASPECT_TOLERANCE = 0.01  # depth and colour aspect ratios may differ by 1 %
UPSAMPLINGS = ("bicubic", "nearest", "guided")  # how LR depth is brought to colour size
MM_PER_M = 1000.0
MIN_DEPTH_M = 0.001  # valid outputs are at least 1 mm (0 means invalid)
MAX_MM = float(np.iinfo(np.uint16).max)
#: Largest float32 depth accepted, metres (see Conventions in the module docstring).
MAX_DEPTH_M = 10_000.0
GUIDANCE_SCALE = float(np.float32(1.0 / 255.0))  # uint8 colour -> [0, 1]


# --------------------------------------------------------------------------- validation


class InputError(ValueError):
    """Colour or depth that cannot be enhanced as given (wrong shape, dtype, units,
    sizes). ``reason`` is a short name for counting drops: ``bad_color``, ``bad_depth``
    or ``size_mismatch``; the message says what is wrong in one line."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def _shape_text(array: np.ndarray) -> str:
    return f"shape {tuple(array.shape)} and dtype {array.dtype}"


def check_color(color: np.ndarray, color_order: str = "rgb") -> None:
    """Raise :class:`InputError` unless ``color`` is a non-empty (H, W, 3) uint8 image and
    ``color_order`` is ``"rgb"`` or ``"bgr"``."""
    if color_order not in COLOR_ORDERS:
        raise InputError("bad_color", f"color_order must be 'rgb' or 'bgr', got {color_order!r}")
    if not isinstance(color, np.ndarray):
        raise InputError("bad_color", f"colour must be a numpy array, got {type(color).__name__}")
    if color.ndim != 3 or color.shape[2] != 3 or color.dtype != np.uint8:
        raise InputError(
            "bad_color",
            f"colour must be an (H, W, 3) uint8 image with channel order "
            f"{color_order!r} (set color_order='rgb' or 'bgr'), got {_shape_text(color)}",
        )
    if color.size == 0:
        raise InputError("bad_color", f"colour image is empty: shape {tuple(color.shape)}")


def check_depth(depth: np.ndarray) -> None:
    """Raise :class:`InputError` unless ``depth`` is non-empty 2-D uint16 millimetres or float32
    metres with no +-Inf, no negative values, no value above :data:`MAX_DEPTH_M` and at
    least one valid pixel."""
    if not isinstance(depth, np.ndarray):
        raise InputError("bad_depth", f"depth must be a numpy array, got {type(depth).__name__}")
    if depth.ndim != 2:
        raise InputError("bad_depth", f"depth must be a 2-D (h, w) image, got {_shape_text(depth)}")
    if depth.dtype not in DEPTH_DTYPES:
        raise InputError(
            "bad_depth",
            "depth must be uint16 millimetres (0 = invalid) or float32 metres "
            f"(NaN or 0 = invalid), got dtype {depth.dtype}",
        )
    if depth.size == 0:
        raise InputError("bad_depth", f"depth image is empty: shape {tuple(depth.shape)}")
    if depth.dtype == np.float32:
        if np.isinf(depth).any():
            raise InputError(
                "bad_depth",
                f"depth contains {int(np.isinf(depth).sum())} +-Inf values; +-Inf is an "
                "error, not an invalid pixel: mark invalid float32 depth with NaN (or 0)",
            )
        if (depth < 0).any():  # NaN compares False
            raise InputError(
                "bad_depth",
                f"depth contains negative values (min {float(np.nanmin(depth))} m); "
                "float32 depth must be metres >= 0 with NaN or 0 = invalid",
            )
        if (depth > MAX_DEPTH_M).any():  # NaN compares False
            raise InputError(
                "bad_depth",
                f"depth contains {int((depth > MAX_DEPTH_M).sum())} values above "
                f"{MAX_DEPTH_M:g} m (max {float(np.nanmax(depth)):.4g} m); float32 depth "
                "must be metres (no depth camera measures 10 km), NaN or 0 = invalid",
            )
    if not valid_mask(depth).any():
        invalid = "0" if depth.dtype == np.uint16 else "NaN or 0"
        raise InputError(
            "bad_depth",
            f"depth has no valid pixel: all {depth.size} pixels are {invalid} (invalid)",
        )


def implausible_depth_message(depth: np.ndarray) -> str | None:
    """One line saying why ``depth`` looks like the wrong units, or None if it is plausible.

    Depth cameras measure about 0.2-10 m indoors (Kinect, RealSense) and ToF up to about
    20 m, so the median of the valid pixels says much about the units:

    * uint16 whose valid values (at least 32 distinct ones) are 90 % or more multiples of
      8: millimetres shifted left by 3 bits (SUN RGB-D stores depth rotated by 3 bits,
      97 % multiples of 8 on its frame, median 21 m; real millimetres are about 12 %);
    * uint16 millimetres with a median above 20 m: raw sensor values or another unit
      (NYU v2's raw Kinect ``.pgm`` read as it is: median 54 m);
    * uint16 with a median below 10 mm, or float32 metres below 0.01 m: another unit
      (metres in uint16, kilometres);
    * float32 metres with a median above 100 m: millimetres stored as float.

    Not told apart: depth in a unit close to millimetres, e.g. TUM RGB-D's metres x 5000
    (median 12 m on its frame) or NYU raw Kinect counts once byte-swapped (839-1084, with
    2047 = no reading), which look like 1-2 m in millimetres. The check looks at a
    strided sample of at most about 20 000 pixels, so it costs well under a millisecond.
    Non-arrays and other dtypes give None (:func:`check_depth` reports those).
    """
    if not isinstance(depth, np.ndarray) or depth.dtype not in DEPTH_DTYPES or depth.size == 0:
        return None
    values = depth.reshape(-1)[:: max(1, depth.size // 20_000)]
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0:
        return None
    median = float(np.median(values))
    cameras = "RGB-D cameras measure about 0.2-10 m indoors, ToF up to about 20 m"
    if depth.dtype == np.uint16:
        on_8 = float(np.mean(values % 8 == 0))
        if on_8 >= 0.9 and np.unique(values).size >= 32:
            return (
                f"depth implausible for uint16 millimetres: {on_8:.0%} of the valid values "
                "are multiples of 8, as if shifted left by 3 bits (SUN RGB-D stores "
                "millimetres rotated by 3 bits: mm = (v >> 3) | (v << 13))"
            )
        if median > 20_000:
            return (
                f"depth implausible for uint16 millimetres: median {median / MM_PER_M:.1f} m "
                f"({cameras}); raw sensor values (e.g. Kinect counts) or another unit?"
            )
        if median < 10:
            return (
                f"depth implausible for uint16 millimetres: median {median:.0f} mm ({cameras}); "
                "metres or another unit?"
            )
        return None
    if median > 100:
        return (
            f"depth implausible for float32 metres: median {median:.4g} m ({cameras}); "
            "millimetres given as metres? (divide by 1000)"
        )
    if median < 0.01:
        return (
            f"depth implausible for float32 metres: median {median:.3g} m ({cameras}); "
            "another unit?"
        )
    return None


def infer_scale(color_shape: tuple[int, ...], depth_shape: tuple[int, ...]) -> float:
    """The upsampling factor s from the sizes: 1.0 for colour-size depth, else the
    geometric mean of H / h and W / w, any real number in (1, 16].

    Args:
        color_shape: (H, W, ...) of the colour image.
        depth_shape: (h, w, ...) of the depth image.

    Raises:
        InputError: when the depth is larger than the colour image on an axis, more than
            16 times smaller, or its aspect ratio differs from the colour's by more than
            1 % (then it is not the same field of view).
    """
    (height, width), (h, w) = tuple(color_shape[:2]), tuple(depth_shape[:2])
    if (h, w) == (height, width):
        return 1.0
    size = f"depth size {h}x{w} (h x w) under colour {height}x{width}"
    if h < 1 or w < 1 or h > height or w > width:
        raise InputError(
            "size_mismatch", f"{size}: the depth must not be larger than the colour image"
        )
    ratio_h, ratio_w = height / h, width / w
    if abs(np.log(ratio_h / ratio_w)) > np.log1p(ASPECT_TOLERANCE):
        raise InputError(
            "size_mismatch",
            f"{size}: the aspect ratios differ by more than {ASPECT_TOLERANCE:.0%} "
            f"(H/h = {ratio_h:.3f}, W/w = {ratio_w:.3f}); depth and colour must show the "
            "same field of view (register the depth to the colour camera first)",
        )
    scale = float(np.sqrt(ratio_h * ratio_w))
    if ratio_h == ratio_w:
        scale = float(ratio_h)  # exact for integer factors (sqrt(64) is 8, 2.67 stays)
    if scale > MAX_SCALE:
        raise InputError("size_mismatch", f"{size}: factor {scale:.3g} is larger than {MAX_SCALE}")
    return scale


# --------------------------------------------------------------------------- units


def valid_mask(depth: np.ndarray) -> np.ndarray:
    """(h, w) bool, True where the depth is a measurement: uint16 > 0; float32 finite
    and > 0 (works on metres with NaN = invalid too)."""
    if depth.dtype == np.uint16:
        return depth > 0
    return np.isfinite(depth) & (depth > 0)


def to_metres(depth: np.ndarray) -> np.ndarray:
    """uint16 millimetres or float32 metres -> float32 metres with NaN = invalid.

    Args:
        depth: (h, w) uint16 mm (0 = invalid) or float32 m (NaN or 0 = invalid).

    Returns:
        (h, w) float32 metres, a new array.
    """
    if depth.dtype == np.uint16:
        metres = depth.astype(np.float32) / np.float32(MM_PER_M)
    else:
        metres = np.array(depth, dtype=np.float32)
    metres[~valid_mask(depth)] = np.nan
    return metres


def from_metres(metres: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float32 metres with NaN = invalid -> the given dtype and its units (host arrays;
    :func:`finish` does the same on either back-end).

    Args:
        metres: (H, W) float metres, NaN = invalid.
        dtype: ``uint16`` (millimetres, rounded; valid pixels clipped to 1..65535 so
            that a valid value never reads as the invalid 0; invalid pixels 0) or
            ``float32`` (metres; invalid pixels NaN, as REP 118 says).

    Returns:
        (H, W) array of ``dtype``.
    """
    metres = np.asarray(metres, dtype=np.float32)
    return _output_units(metres, ~np.isnan(metres), np.dtype(dtype), NUMPY)


def _output_units(metres, valid, dtype: np.dtype, arrays) -> np.ndarray:
    """(H, W) float32 metres of the back-end and its validity -> host depth of ``dtype``:
    uint16 millimetres (rounded, valid values clipped to 1..65535, invalid 0) or float32
    metres (invalid NaN). Works in place on one full-size buffer (fewer large temporaries
    keep the allocator from returning memory that the network then faults back in)."""
    if dtype == np.float32:
        metres = arrays.to_host(arrays.where(valid, metres, float("nan")))
        return metres.astype(np.float32, copy=False)  # already float32: no second copy
    if dtype != np.uint16:
        raise ValueError(f"depth dtype must be uint16 or float32, got {dtype}")
    millimetres = arrays.where(valid, metres, 0.0)
    millimetres *= MM_PER_M
    arrays.rint_(millimetres)
    arrays.clip_(millimetres, 1.0, MAX_MM)
    millimetres[~valid] = 0.0
    return arrays.to_host(millimetres).astype(np.uint16)


# --------------------------------------------------------------------------- holes and range


def fill_holes(metres: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Give every invalid pixel the value of its nearest valid pixel (Euclidean).

    Valid pixels are returned unchanged; filled values are copies of valid values, so
    no 0 or NaN placeholder reaches the interpolation or the network.

    Args:
        metres: (h, w) float32 depth, any value at invalid pixels.
        mask: (h, w) bool, True where valid; at least one True.

    Returns:
        (h, w) float32 depth with no invalid pixel.
    """
    if mask.all():
        return np.array(metres, dtype=np.float32)
    indices = ndimage.distance_transform_edt(~mask, return_distances=False, return_indices=True)
    return np.asarray(metres, dtype=np.float32)[indices[0], indices[1]]


def normalise(metres: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Map depth to [0, 1] with the valid pixels' own min and max.

    Args:
        metres: (h, w) float32 depth in metres (hole-filled or not).
        mask: (h, w) bool, True where valid; at least one True.

    Returns:
        normalised (h, w) float32 (d - dmin) / (dmax - dmin), and dmin, dmax in metres.
        When dmax == dmin (a flat scene) the span is taken as 1 m, so the normalised
        depth is 0 and de-normalisation still gives dmin back.
    """
    valid = metres[mask]
    dmin, dmax = float(valid.min()), float(valid.max())
    normalised = (metres - np.float32(dmin)) / np.float32(depth_span(dmin, dmax))
    return normalised.astype(np.float32, copy=False), dmin, dmax


def depth_span(dmin: float, dmax: float) -> float:
    """The normalisation's divisor: dmax - dmin, or 1 (metre) for a flat scene so that
    normalised depth is 0 there and de-normalisation still gives dmin back."""
    return dmax - dmin if dmax > dmin else 1.0


def denormalise(normalised, dmin: float, dmax: float):
    """Inverse of :func:`normalise`: (H, W) normalised -> float32 metres, in float32
    arithmetic on a numpy array or a tensor alike."""
    if isinstance(normalised, np.ndarray) or np.isscalar(normalised):
        normalised = np.asarray(normalised, dtype=np.float32)
    span, low = float(np.float32(depth_span(dmin, dmax))), float(np.float32(dmin))
    metres = normalised * span  # a new array: the engine's output is left alone
    metres += low
    return metres


# --------------------------------------------------------------------------- colour resolution


def upsample_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Validity at colour resolution: output pixel (i, j) takes the LR pixel whose
    footprint contains it (:func:`nearest_resize`; (i // s, j // s) for an integer s).

    Args:
        mask: (h, w) bool, True where the LR depth is valid.
        size: (H, W), the colour size.

    Returns:
        (H, W) bool.
    """
    if mask.shape == tuple(size):
        return mask.copy()
    return np.ascontiguousarray(nearest_resize(mask, size))


def guidance_from_color(color, color_order: str = "rgb", arrays=NUMPY):
    """(H, W, 3) uint8 in ``color_order`` -> (1, 3, H, W) float32 RGB in [0, 1] on the
    back-end ``arrays`` (the colour is uploaded as uint8)."""
    guidance = arrays.channels_first(arrays.upload(color), reverse=color_order == "bgr")
    guidance *= GUIDANCE_SCALE
    return guidance


def prepare_guidance(color: np.ndarray, *, color_order: str = "rgb", arrays=NUMPY):
    """Check the colour image and make the network's guidance (1, 3, H, W) float32 RGB
    in [0, 1] on the back-end ``arrays``."""
    check_color(color, color_order)
    return guidance_from_color(color, color_order, arrays)


def upsample(normalised, size: tuple[int, int], mode: str, guidance=None, arrays=NUMPY):
    """LR depth to colour size, the way the weights were trained (:data:`UPSAMPLINGS`).

    Args:
        normalised: (h, w) float32 of the back-end ``arrays``, hole-filled (no NaN).
        size: (H, W).
        mode: ``"bicubic"`` (PIL's bicubic, :func:`bicubic_resize`), ``"nearest"``
            (:func:`nearest_resize`) or ``"guided"`` (joint bilateral upsampling under
            the colour image, ``dkn_ros.processing.guided``; same-size depth through a
            4 times coarser grid, ``guided_smoothing``). The other modes return a copy
            of same-size depth.
        guidance: (1, 3, H, W) float32 RGB in [0, 1] of the same back-end; needed by
            ``"guided"`` only.
        arrays: the back-end (``dkn_ros.processing.arrays``).

    Returns:
        (H, W) float32 of the back-end.
    """
    if mode not in UPSAMPLINGS:
        raise ValueError(f"upsampling must be one of {', '.join(UPSAMPLINGS)}, got {mode!r}")
    same_size = tuple(normalised.shape[-2:]) == tuple(size)
    if mode == "guided":
        if guidance is None or tuple(guidance.shape[-2:]) != tuple(size):
            raise ValueError(f"guided upsampling needs the (1, 3, {size[0]}, {size[1]}) guidance")
        if same_size:  # same size: through a coarser grid
            return guided_smoothing(normalised, guidance)
        return joint_bilateral_upsample(normalised, guidance)
    if same_size:
        return normalised.copy() if isinstance(normalised, np.ndarray) else normalised.clone()
    if mode == "nearest":
        return arrays.nearest(normalised, size)
    return arrays.bicubic(normalised, size)


# --------------------------------------------------------------------------- the two ends


@dataclass(frozen=True)
class DepthInput:
    """One depth image made ready for the network at its own resolution, with what
    :func:`finish` needs to turn the network's output back into depth.

    Attributes:
        normalised: (h, w) float32, hole-filled, (d - dmin) / span (host numpy).
        mask: (h, w) bool, True where the depth was a valid measurement.
        scale: upsampling factor s, a real number (1 = same size / denoising).
        dmin, dmax: the normalisation range in metres (valid input min and max).
        dtype: the input depth's dtype (uint16 mm or float32 m), also the output's.
        output_shape: (H, W), the colour size.
    """

    normalised: np.ndarray
    mask: np.ndarray
    scale: float
    dmin: float
    dmax: float
    dtype: np.dtype
    output_shape: tuple[int, int]

    @property
    def input_shape(self) -> tuple[int, int]:
        """(h, w) of the depth as given."""
        return (int(self.mask.shape[0]), int(self.mask.shape[1]))

    @property
    def output_mask(self) -> np.ndarray:
        """(H, W) bool: the validity at colour resolution (:func:`upsample_mask`)."""
        return upsample_mask(self.mask, self.output_shape)


def prepare_depth(depth: np.ndarray, color_shape: tuple[int, ...]) -> DepthInput:
    """Check the depth and make it ready for the network at its own resolution: units,
    validity, hole filling, normalisation (host numpy; cheap at low resolution).

    Args:
        depth: (h, w) uint16 mm or float32 m (see the module docstring).
        color_shape: (H, W, ...) of the colour image.

    Raises:
        InputError: the depth or the sizes cannot be enhanced (see :func:`check_depth`,
            :func:`infer_scale`).
    """
    check_depth(depth)
    height, width = int(color_shape[0]), int(color_shape[1])
    scale = infer_scale((height, width), depth.shape)
    metres = to_metres(depth)
    mask = valid_mask(metres)
    normalised, dmin, dmax = normalise(fill_holes(metres, mask), mask)
    return DepthInput(normalised, mask, scale, dmin, dmax, depth.dtype, (height, width))


def prepare_target(
    depth: np.ndarray,
    color_shape: tuple[int, ...],
    *,
    upsampling: str = "bicubic",
    guidance: np.ndarray | None = None,
) -> tuple[np.ndarray, DepthInput]:
    """Check the depth and make the network's target at colour resolution (host).

    Args:
        depth: (h, w) uint16 mm or float32 m (see the module docstring).
        color_shape: (H, W, ...) of the colour image.
        upsampling: how the LR depth reaches colour size (:data:`UPSAMPLINGS`), the
            ``input_upsampling`` of the weights' card.
        guidance: (1, 3, H, W) float32 RGB in [0, 1], for ``"guided"``.

    Returns:
        target (1, 1, H, W) float32, normalised, hole-filled, upsampled; and the
        :class:`DepthInput` for :func:`finish`.
    """
    depth_in = prepare_depth(depth, color_shape)
    target = upsample(depth_in.normalised, depth_in.output_shape, upsampling, guidance)
    return target[None, None], depth_in


def prepare(
    color: np.ndarray,
    depth: np.ndarray,
    *,
    color_order: str = "rgb",
    upsampling: str = "bicubic",
) -> tuple[np.ndarray, np.ndarray, DepthInput]:
    """Colour and depth as delivered -> the network's inputs (host numpy).

    Args:
        color: (H, W, 3) uint8 in ``color_order`` ('rgb' or 'bgr').
        depth: (h, w) uint16 mm (0 = invalid) or float32 m (NaN or 0 = invalid), colour
            size or smaller by a factor s <= 16 (see :func:`infer_scale`).
        color_order: channel order of ``color``.
        upsampling: see :func:`prepare_target`.

    Returns:
        guidance (1, 3, H, W) float32 RGB in [0, 1], target (1, 1, H, W) float32
        normalised depth at colour resolution, and the :class:`DepthInput`.
    """
    guidance = prepare_guidance(color, color_order=color_order)
    target, depth_in = prepare_target(depth, color.shape, upsampling=upsampling, guidance=guidance)
    return guidance, target, depth_in


def finish(output, depth_in: DepthInput, invalid: str = "keep", arrays=NUMPY) -> np.ndarray:
    """The network's output -> depth in the input's dtype and units at colour size.

    Args:
        output: (1, 1, H, W) float32 normalised depth from the network, of the
            back-end ``arrays``.
        depth_in: what :func:`prepare_depth` made of the input depth.
        invalid: ``"keep"`` (pixels without a supporting valid measurement are invalid:
            0 for uint16, NaN for float32) or ``"fill"`` (every pixel gets a value).
            Non-finite outputs are invalid either way.
        arrays: the back-end of ``output``.

    Returns:
        (H, W) host numpy uint16 millimetres or float32 metres, as the input depth was;
        valid pixels are >= 1 mm.
    """
    if invalid not in INVALID_POLICIES:
        raise ValueError(f"invalid must be 'keep' or 'fill', got {invalid!r}")
    expected = (1, 1, *depth_in.output_shape)
    if tuple(output.shape) != expected:
        raise ValueError(f"network output must have shape {expected}, got {tuple(output.shape)}")
    metres = denormalise(output[0, 0], depth_in.dmin, depth_in.dmax)
    arrays.maximum_(metres, MIN_DEPTH_M)  # never <= 0, i.e. never invalid; NaN stays NaN
    valid = arrays.isfinite(metres)
    if invalid == "keep":
        valid &= arrays.nearest(arrays.upload(depth_in.mask), depth_in.output_shape)
    return _output_units(metres, valid, np.dtype(depth_in.dtype), arrays)


def bicubic_upsample_depth(
    depth: np.ndarray, size: tuple[int, int], *, invalid: str = "keep"
) -> np.ndarray:
    """The baseline without a network: the same pre- and post-processing as the
    enhancer (units, hole fill, bicubic upsampling, invalid-pixel policy).

    Args:
        depth: (h, w) uint16 mm or float32 m, (H, W) or 1/s of it.
        size: (H, W), the colour size.
        invalid: ``"keep"`` or ``"fill"``, as in :func:`finish`.

    Returns:
        (H, W) depth of the input's dtype and units.
    """
    target, depth_in = prepare_target(depth, tuple(size))
    return finish(target, depth_in, invalid)
