"""What both demos share: the degradation they apply, the comparison with bicubic
upsampling against ground truth, and the picture they write per frame."""

from __future__ import annotations

import numpy as np

from dkn_ros.processing import bicubic_upsample_depth
from dkn_ros.synthetic import KinectDegradation
from dkn_ros.visualise import colorize, label, side_by_side

__all__ = ["compare_with_bicubic", "demo_degradation", "demo_panel", "rmse_mm"]


def demo_degradation(scale: int) -> KinectDegradation:
    """Kinect-like noise (std 1.5 mm x z^2), 1 mm steps and 1 % holes at 1/scale.

    No edge-shadow bands: at 1/8 resolution the generator's two-pixel bands would blank
    16 px around every silhouette, far wider than a real sensor's shadows.
    """
    return KinectDegradation(scale=scale, hole_fraction=0.01, edge_holes=False)


def rmse_mm(estimate_mm: np.ndarray, truth_m: np.ndarray, mask: np.ndarray) -> float:
    """Root mean squared error in millimetres over ``mask``."""
    diff = estimate_mm[mask].astype(np.float64) - truth_m[mask].astype(np.float64) * 1000.0
    return float(np.sqrt(np.mean(diff**2)))


def demo_panel(color, depth_lr, bicubic, enhanced, truth_m, rmses, name) -> np.ndarray:
    """colour | input depth | bicubic | enhanced | error map, colour-mapped (H, 5 W, 3)."""
    height, width = truth_m.shape
    valid = truth_m > 0
    lo, hi = np.percentile(truth_m[valid], [1, 99]) * 1000.0

    def depth_picture(mm: np.ndarray) -> np.ndarray:
        values = np.where(mm > 0, mm.astype(np.float32), np.nan)
        return colorize(values, lo, hi)

    step = height // depth_lr.shape[0]
    nearest = depth_lr.repeat(step, 0).repeat(step, 1)[:height, :width]
    error = np.abs(enhanced.astype(np.float32) - truth_m * 1000.0)
    error[enhanced == 0] = np.nan
    panels = [
        label(color, "COLOUR"),
        label(depth_picture(nearest), f"INPUT X{step}"),
        label(depth_picture(bicubic), f"BICUBIC {rmses[0]:.1f}MM"),
        label(depth_picture(enhanced), f"{name} {rmses[1]:.1f}MM"),
        label(colorize(error, 0.0, 100.0), "ERROR 0-100MM"),
    ]
    return side_by_side(panels)



def compare_with_bicubic(
    truth_m: np.ndarray, depth_lr: np.ndarray, enhanced: np.ndarray
) -> tuple[np.ndarray, tuple[float, float]]:
    """Bicubic upsampling of ``depth_lr`` (uint16 mm) to the truth's size, and the RMSE
    in mm of (bicubic, enhanced) over the pixels valid in the truth and in both."""
    bicubic = bicubic_upsample_depth(depth_lr, truth_m.shape)
    mask = (truth_m > 0) & (enhanced > 0) & (bicubic > 0)
    return bicubic, (rmse_mm(bicubic, truth_m, mask), rmse_mm(enhanced, truth_m, mask))
