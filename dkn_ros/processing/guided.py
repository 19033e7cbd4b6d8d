"""Joint bilateral upsampling of low-resolution depth under its colour image.

Cameras do not anti-alias their depth: a native low-resolution sensor, a driver's
decimation or a block median *point-samples* it, so a depth edge lands on the LR grid,
up to half an LR pixel (4 colour pixels at x8) from where the colour edge is. Bicubic
upsampling smears that error over +-2 LR pixels (16 colour pixels at x8), further than
the deformable kernel reaches (offsets within +-7 pixels), and a network fed with it
cannot move the edge back (measured: FDKN fine-tuned on point-sampled input stays at
0.96 x bicubic on middlebury30 x8, with all of the gain in flat regions).

Joint bilateral upsampling (Kopf et al., SIGGRAPH 2007) instead gives every colour
pixel p a weighted mean of the LR samples q around it, the weight falling with the
distance to the sample and with the colour difference between p and the colour pixel
the sample was taken at:

    f_up(p) = sum_q w(p, q) f_lr(q) / sum_q w(p, q)
    w(p, q) = exp(-|p - c(q)|^2 / (2 (sigma_s s)^2) - |I(p) - I(c(q))|^2 / (2 sigma_r^2))

with c(q) = (q + 0.5) s - 0.5 the centre of LR pixel q's footprint in colour pixels
(s = H / h, any real factor), I the RGB guidance in [0, 1], and q over the
(2 r + 1)^2 LR pixels around the one whose footprint holds p. The depth edge then
follows the colour edge where colour and depth agree, and the network refines the rest.

The parameters are chosen on training images only (RGB-D-D training split and synthetic
training scenes, point-sampled and block-median x8): sigma_s = 0.5 LR pixel,
sigma_r = 0.2, r = 1. RGB-D-D's colour is not well registered to its depth (JBU alone is
0.98 x bicubic there), the synthetic scenes' is exact (0.42 x); the network, trained on
both, learns how far to trust it.

Same-size depth (a Kinect's registered depth: noisy, with shadow bands and dropouts,
its holes already filled with the nearest valid value) goes the same way through a grid
4 times coarser (:func:`guided_smoothing`): the area mean of each 4 x 4 block, then the
joint bilateral upsampling back, with sigma_s = 1 block. That averages the sensor's
noise and quantisation and re-draws the filled holes and the edges from the colour
image. Chosen on training images with the kinect_v1 profile (RGB-D-D training split
and synthetic training scenes): 0.89 and 0.78 x the hole-filled input's RMSE, against
0.92 and 0.88 for a factor 2 and sigma_s 0.5. (Describing each block by its mean
colour instead of its centre pixel's did not change these numbers.)

One implementation in torch serves both array back-ends of ``dkn_ros.processing``:
it takes and returns numpy arrays or device tensors. On the CPU the same computation
runs in one C pass (``guided.c``, compiled on first use by :mod:`dkn_ros.native`;
equal to the torch version to float rounding, ``test/test_guided_upsampling.py``).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dkn_ros import native
from dkn_ros.processing.resampling import nearest_indices

__all__ = [
    "RADIUS",
    "SAME_SIZE_FACTOR",
    "SAME_SIZE_SIGMA_SPACE",
    "SIGMA_COLOR",
    "SIGMA_SPACE",
    "guided_smoothing",
    "joint_bilateral_upsample",
]

SIGMA_SPACE = 0.5  # sigma_s, in LR pixels
SIGMA_COLOR = 0.2  # sigma_r, on RGB in [0, 1]
RADIUS = 1  # r: the (2 r + 1)^2 LR pixels around the footprint's own
SAME_SIZE_FACTOR = 4  # same-size depth is area-averaged by this before the JBU back
SAME_SIZE_SIGMA_SPACE = 1.0  # sigma_s of that JBU, in pixels of the averaged grid


C_SOURCE = Path(__file__).with_name("guided.c")
C_ARGTYPES = (ctypes.c_void_p,) * 7 + (ctypes.c_int64,) * 5 + (ctypes.c_float, ctypes.c_int64)


def _compiled():
    """The C version of :func:`joint_bilateral_upsample` (``guided.c``), or None where
    it cannot be compiled."""
    return native.function(C_SOURCE, "joint_bilateral_upsample", C_ARGTYPES, ctypes.c_int)


def _footprints(n_lr: int, n_hr: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """For one axis: the LR pixel whose footprint holds each colour pixel
    (``resampling.nearest_indices``) and each LR pixel's centre in colour pixels."""
    index = torch.from_numpy(nearest_indices((n_lr, 1), (n_hr, 1))[0]).long()
    centre = (torch.arange(n_lr, dtype=torch.float64) + 0.5) * n_hr / n_lr - 0.5
    return index.to(device), centre.to(device)


def joint_bilateral_upsample(
    depth: torch.Tensor | np.ndarray,
    guidance: torch.Tensor | np.ndarray,
    *,
    sigma_space: float = SIGMA_SPACE,
    sigma_color: float = SIGMA_COLOR,
    radius: int = RADIUS,
) -> torch.Tensor | np.ndarray:
    """Upsample LR depth to the guidance's size (see the module docstring).

    Args:
        depth: (h, w) float32 LR depth, hole-filled (no NaN), any units.
        guidance: (1, 3, H, W) float32 RGB in [0, 1] (the network's guidance), H >= h
            and W >= w.
        sigma_space: sigma_s in LR pixels.
        sigma_color: sigma_r on the guidance's scale.
        radius: r; (2 r + 1)^2 LR pixels contribute to each colour pixel.

    Returns:
        (H, W) float32, numpy when ``depth`` was numpy, else a tensor on its device. A
        copy of ``depth`` when it already has the guidance's size.
    """
    as_numpy = isinstance(depth, np.ndarray)
    depth_t = torch.as_tensor(depth, dtype=torch.float32)
    guide = torch.as_tensor(guidance, dtype=torch.float32, device=depth_t.device)
    if depth_t.ndim != 2 or guide.ndim != 4 or guide.shape[:2] != (1, 3):
        raise ValueError(
            f"expected depth (h, w) and guidance (1, 3, H, W), got {tuple(depth_t.shape)} "
            f"and {tuple(guide.shape)}"
        )
    (h, w), (height, width) = depth_t.shape, guide.shape[-2:]
    if (h, w) == (height, width):
        result = depth_t.clone()
        return result.numpy() if as_numpy else result
    if h > height or w > width:
        raise ValueError(f"depth {h}x{w} is larger than the guidance {height}x{width}")
    device = depth_t.device
    rows, row_centre = _footprints(h, height, device)
    cols, col_centre = _footprints(w, width, device)
    # The guidance colour at each LR sample's centre pixel: (3, h, w).
    at_row = (row_centre + 0.5).floor().long().clamp_(0, height - 1)
    at_col = (col_centre + 0.5).floor().long().clamp_(0, width - 1)
    image = guide[0]
    sample_color = image[:, at_row][:, :, at_col]
    row_d, col_d = row_centre.to(torch.float32), col_centre.to(torch.float32)
    y = torch.arange(height, dtype=torch.float32, device=device)
    x = torch.arange(width, dtype=torch.float32, device=device)
    scale_y, scale_x = height / h, width / w
    inv_space = 1.0 / (2.0 * sigma_space**2)
    inv_color = 1.0 / (2.0 * sigma_color**2)
    samples = torch.cat([depth_t[None], sample_color], 0)  # (4, h, w): depth and colour
    if native.ENABLED and device.type == "cpu" and _compiled() is not None:  # guided.c
        near_row = torch.stack([(rows + dy).clamp(0, h - 1) for dy in range(-radius, radius + 1)])
        near_col = torch.stack([(cols + dx).clamp(0, w - 1) for dx in range(-radius, radius + 1)])
        space_row = ((row_d[near_row] - y) / scale_y).square_().mul_(inv_space)
        space_col = ((col_d[near_col] - x) / scale_x).square_().mul_(inv_space)
        arrays = [samples, image, near_row, space_row, near_col, space_col]
        arrays = [a.contiguous() for a in arrays]
        result = torch.empty((height, width), dtype=torch.float32)
        failed = _compiled()(
            *[a.data_ptr() for a in arrays], result.data_ptr(), h, w, height, width,
            2 * radius + 1, inv_color, torch.get_num_threads(),
        )  # fmt: skip
        if failed:
            raise MemoryError("joint bilateral upsampling: out of memory for two rows")
        return result.numpy() if as_numpy else result
    # Rows as (A, B) with A B = H: when every LR row covers exactly H / h colour rows
    # (an integer ratio), A = h and B = H / h, and a neighbour's LR row is broadcast
    # over its B colour rows instead of being copied to each; otherwise A = H, B = 1.
    if height % h == 0:
        rows_a, (a, b) = torch.arange(h, device=device), (h, height // h)
    else:
        rows_a, (a, b) = rows, (height, 1)
    image = image.reshape(3, a, b, width)
    numerator = torch.zeros((a, b, width), dtype=torch.float32, device=device)
    denominator = torch.zeros_like(numerator)
    # Depth and colour of the LR samples stacked as 4 channels, gathered once per
    # neighbour (dy, dx): columns first on the LR rows, (4, h, W) per dx, then rows,
    # (4, A, 1, W). Gathering along the last axis at full size is 3 times slower.
    by_column = []
    for dx in range(-radius, radius + 1):
        qx = (cols + dx).clamp(0, w - 1)
        space_x = ((col_d[qx] - x) / scale_x).square_().mul_(inv_space)  # (W,)
        by_column.append((samples.index_select(2, qx), space_x))  # (4, h, W)
    for dy in range(-radius, radius + 1):
        qy = (rows + dy).clamp(0, h - 1)
        space_y = ((row_d[qy] - y) / scale_y).square_().mul_(inv_space).view(a, b, 1)
        q_rows = (rows_a + dy).clamp(0, h - 1)
        for columns, space_x in by_column:
            near = columns.index_select(1, q_rows).unsqueeze(2)  # (4, A, 1, W)
            logit = (near[1:] - image).square_().sum(0).mul_(-inv_color)  # (A, B, W)
            logit.sub_(space_y).sub_(space_x)
            weight = logit.exp_()
            denominator += weight
            numerator.addcmul_(weight, near[0])
    result = numerator.div_(denominator.clamp_min_(1e-30)).view(height, width)
    return result.numpy() if as_numpy else result


def guided_smoothing(
    depth: torch.Tensor | np.ndarray,
    guidance: torch.Tensor | np.ndarray,
    *,
    factor: int = SAME_SIZE_FACTOR,
    sigma_space: float = SAME_SIZE_SIGMA_SPACE,
    sigma_color: float = SIGMA_COLOR,
) -> torch.Tensor | np.ndarray:
    """Same-size depth through a grid ``factor`` times coarser (see the module
    docstring): area mean, then :func:`joint_bilateral_upsample` back.

    Args:
        depth: (H, W) float32, hole-filled (no NaN), any units.
        guidance: (1, 3, H, W) float32 RGB in [0, 1].

    Returns:
        (H, W) float32, numpy when ``depth`` was numpy, else a tensor on its device.
    """
    as_numpy = isinstance(depth, np.ndarray)
    depth_t = torch.as_tensor(depth, dtype=torch.float32)
    height, width = depth_t.shape
    size = (max(1, round(height / factor)), max(1, round(width / factor)))
    low = F.interpolate(depth_t[None, None], size=size, mode="area")[0, 0]
    guide = torch.as_tensor(guidance, dtype=torch.float32, device=depth_t.device)
    result = joint_bilateral_upsample(low, guide, sigma_space=sigma_space, sigma_color=sigma_color)
    return result.numpy() if as_numpy else result
