"""What both demos share: the camera they show (the bundled Open3D RGB-D sequence or our
synthetic one), the comparison with bicubic upsampling, and the picture they write per
frame.

Sources (``demo_frames``):

- ``sequence`` (the default): the five 640 x 480 frames bundled with the package
  (Open3D's sample RGB-D images, :mod:`dkn_ros.sample_data`: a rendered room whose depth
  has a simulated PrimeSense sensor's steps and holes), looped. The low-resolution depth is
  point-sampled from the camera's depth, ``depth[s//2::s, s//2::s]`` (every s-th pixel,
  the centre of each block, as a native low-resolution sensor or driver decimation
  delivers it; 0 stays invalid), and RMSE is measured against the camera's own
  full-resolution depth where it is valid. A ``size`` smaller than 640 x 480 is a
  centre crop (the data are not resampled).
- ``synthetic``: a rendered room seen by a moving camera with exact ground truth, its
  depth degraded as a Kinect would (:func:`demo_degradation`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dkn_ros.processing import bicubic_upsample_depth
from dkn_ros.synthetic import CameraIntrinsics, KinectDegradation
from dkn_ros.visualise import colorize, label, pad_below, robust_range, side_by_side, with_scale_bar

__all__ = [
    "SOURCES",
    "ERROR_SPAN_MM",
    "DemoFrame",
    "compare_with_bicubic",
    "demo_degradation",
    "demo_frames",
    "demo_panel",
    "describe_source",
    "rmse_mm",
]

SOURCES = ("sequence", "synthetic")
SEQUENCE_SIZE = (640, 480)
ERROR_SPAN_MM = 100  # the error panel's colours span 0 .. ERROR_SPAN_MM of absolute error


@dataclass(frozen=True)
class DemoFrame:
    """One frame of a demo camera.

    ``color`` (H, W, 3) uint8 RGB; ``depth_lr`` (H / s, W / s) uint16 mm, 0 = invalid (what
    the camera publishes); ``truth_m`` (H, W) float32 metres, 0 = invalid (what RMSE is
    measured against: the exact depth for ``synthetic``, the camera's own full-resolution
    depth for ``sequence``); ``intrinsics`` of the colour image.
    """

    color: np.ndarray
    depth_lr: np.ndarray
    truth_m: np.ndarray
    intrinsics: CameraIntrinsics


def demo_degradation(scale: int) -> KinectDegradation:
    """The synthetic source's Kinect: noise (std 1.5 mm x z^2), 1 mm steps, 1 % holes and
    edge-shadow bands at 1/scale (low-res pixels beside a depth jump larger than
    ``EDGE_JUMP_RELATIVE * z`` are dropped, as a structured-light sensor loses depth
    beside silhouettes; one low-res pixel is ``scale`` colour pixels wide)."""
    return KinectDegradation(scale=scale, hole_fraction=0.01, edge_holes=True)


def _sequence_crop(size: tuple[int, int] | None, scale: int) -> tuple[int, int, int, int]:
    """(x0, y0, width, height) of the centre crop of the bundled 640 x 480 frames."""
    full_w, full_h = SEQUENCE_SIZE
    width, height = size or SEQUENCE_SIZE
    if width > full_w or height > full_h:
        raise ValueError(
            f"size {width}x{height}: the bundled sequence is {full_w}x{full_h}; "
            "give that or less (a centre crop)"
        )
    if width < scale or height < scale:
        raise ValueError(f"size {width}x{height}: smaller than the scale {scale}")
    width, height = width - width % scale, height - height % scale
    return (full_w - width) // 2, (full_h - height) // 2, width, height


def describe_source(source: str, size: tuple[int, int] | None, scale: int) -> str:
    """One line saying what a source's camera delivers (ValueError for a bad source,
    size or scale)."""
    if scale < 1:
        raise ValueError(f"scale {scale}: must be at least 1")
    if source == "sequence":
        _, _, width, height = _sequence_crop(size, scale)
        return (
            f"the bundled Open3D RGB-D sequence, {width}x{height} colour, "
            f"depth point-sampled x{scale} to {width // scale}x{height // scale} "
            "(RMSE against the sequence's own full-resolution depth)"
        )
    if source == "synthetic":
        width, height = size or SEQUENCE_SIZE
        return (
            f"a synthetic room, {width}x{height} colour, depth x{scale} lower with "
            "Kinect-like noise, 1 mm steps, holes and edge shadows (RMSE against exact "
            "ground truth)"
        )
    raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")


def demo_frames(
    source: str,
    count: int,
    size: tuple[int, int] | None = None,
    scale: int = 8,
    seed: int = 0,
) -> list[DemoFrame]:
    """Frames 0 .. count - 1 of a demo camera (see the module docstring).

    ``size`` (width, height): the colour size, default 640 x 480; for ``sequence`` a
    centre crop, rounded down to a multiple of ``scale``. ``seed``: the synthetic scene
    and its noise (the sequence has none to choose).
    """
    describe_source(source, size, scale)  # checks source and size
    frames = []
    if source == "sequence":
        from dkn_ros.sample_data import SEQUENCE_INTRINSICS, point_sample, rgbd_sequence

        x0, y0, width, height = _sequence_crop(size, scale)
        intrinsics = CameraIntrinsics(
            fx=SEQUENCE_INTRINSICS.fx, fy=SEQUENCE_INTRINSICS.fy,
            cx=SEQUENCE_INTRINSICS.cx - x0, cy=SEQUENCE_INTRINSICS.cy - y0,
            width=width, height=height,
        )  # fmt: skip
        sequence = rgbd_sequence()
        for index in range(count):
            color, depth = sequence[index % len(sequence)]
            color = np.ascontiguousarray(color[y0 : y0 + height, x0 : x0 + width])
            depth = depth[y0 : y0 + height, x0 : x0 + width]
            truth_m = depth.astype(np.float32) / np.float32(1000.0)
            frames.append(DemoFrame(color, point_sample(depth, scale), truth_m, intrinsics))
        return frames

    from dkn_ros.synthetic import degrade_depth, render_frame

    width, height = size or SEQUENCE_SIZE
    degradation = demo_degradation(scale)
    for index in range(count):
        frame = render_frame(index / 30.0, width=width, height=height, seed=seed)
        depth_lr = degrade_depth(frame.depth, degradation, seed=seed + index)
        frames.append(DemoFrame(frame.color, depth_lr, frame.depth, frame.intrinsics))
    return frames


def rmse_mm(estimate_mm: np.ndarray, truth_m: np.ndarray, mask: np.ndarray) -> float:
    """Root mean squared error in millimetres over ``mask``."""
    diff = estimate_mm[mask].astype(np.float64) - truth_m[mask].astype(np.float64) * 1000.0
    return float(np.sqrt(np.mean(diff**2)))


def demo_panel(color, depth_lr, bicubic, enhanced, truth_m, rmses, name) -> np.ndarray:
    """colour | input depth | bicubic | enhanced | error map, colour-mapped, each with a
    scale bar below it ((H + bar, 5 W, 3) uint8).

    The three depth panels share one colour range, the robust range of the reference
    depth (:func:`dkn_ros.visualise.robust_range`, in metres); the error panel spans
    0 .. ``ERROR_SPAN_MM`` mm of absolute error.
    """
    height, width = truth_m.shape
    valid = truth_m > 0
    lo, hi = robust_range(truth_m)

    def depth_picture(mm: np.ndarray) -> np.ndarray:
        metres = np.where(mm > 0, mm.astype(np.float32) / np.float32(1000.0), np.nan)
        return with_scale_bar(colorize(metres, lo, hi), lo, hi, "m")

    step = height // depth_lr.shape[0]
    nearest = depth_lr.repeat(step, 0).repeat(step, 1)[:height, :width]
    error = np.abs(enhanced.astype(np.float32) - truth_m * 1000.0)
    error[(enhanced == 0) | ~valid] = np.nan
    error_picture = with_scale_bar(colorize(error, 0.0, ERROR_SPAN_MM), 0.0, ERROR_SPAN_MM, "mm")
    panels = [
        label(depth_picture(nearest), f"INPUT X{step}"),
        label(depth_picture(bicubic), f"BICUBIC {rmses[0]:.1f}MM"),
        label(depth_picture(enhanced), f"{name} {rmses[1]:.1f}MM"),
        label(error_picture, f"ERROR 0-{ERROR_SPAN_MM}MM"),
    ]
    colour = pad_below(label(color, "COLOUR"), panels[0].shape[0])
    return side_by_side([colour, *panels])


def compare_with_bicubic(
    truth_m: np.ndarray, depth_lr: np.ndarray, enhanced: np.ndarray
) -> tuple[np.ndarray, tuple[float, float]]:
    """Bicubic upsampling of ``depth_lr`` (uint16 mm) to the truth's size, and the RMSE
    in mm of (bicubic, enhanced) over the same pixels: those valid (> 0) in the truth, in
    the enhanced depth and in the bicubic one."""
    bicubic = bicubic_upsample_depth(depth_lr, truth_m.shape)
    mask = (truth_m > 0) & (enhanced > 0) & (bicubic > 0)
    return bicubic, (rmse_mm(bicubic, truth_m, mask), rmse_mm(enhanced, truth_m, mask))
