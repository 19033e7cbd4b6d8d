"""The deformable weighted average of DKN (paper eq. 3-7), shared by DKN and FDKN.

For every output pixel p the network predicts k x k kernel weights K_p and offsets dq.
The filtered value is a weighted average of the target f sampled bilinearly (eq. 5-6)
at the irregular positions s(q) = p + q + dq (eq. 4), q running over the regular k x k
grid centred on p:

    residual (eq. 3):  f_hat_p = f_p + sum_q K_p(q) f_s(q)   with K mean-subtracted
    plain    (eq. 7):  f_hat_p =       sum_q K_p(q) f_s(q)   with K L1-normalised

Offsets are confined to a d x d window centred on p (d = 15 in the paper): the
relative position q + dq is clamped to [-(d // 2), d // 2] on each axis.

The samples are taken with k^2 full-image gathers (one ``grid_sample`` over a grid of
k^2 stacked images), so memory grows with k^2 * H * W; a d x d window is never
unfolded per pixel.

Conventions (used by every model in this package):
    offsets (B, 2 k^2, h, w): channels [0, k^2) are dx, channels [k^2, 2 k^2) are dy,
        in pixels; sample n = i * k + j sits at q = (j - k // 2, i - k // 2) = (qx, qy).
    Positions outside the image repeat the border pixel (replicate padding), so depth
    near the image border is not pulled towards zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "deformable_weighted_average",
    "deformable_weighted_average_blocks",
    "normalise_kernel_weights",
    "regular_grid",
]


def normalise_kernel_weights(weights: torch.Tensor, residual: bool) -> torch.Tensor:
    """Constrain raw (positive) kernel weights as in section 3.2.

    Args:
        weights: (B, k^2, h, w) positive weights, the product of the two streams' sigmoids.
        residual: True: subtract the mean over the k^2 samples (weights add up to 0, a
            high-pass kernel, eq. 3). False: L1-normalise (weights add up to 1, eq. 7).

    Returns:
        (B, k^2, h, w) normalised weights.
    """
    if residual:
        return weights - weights.mean(dim=1, keepdim=True)
    return weights / weights.abs().sum(dim=1, keepdim=True).clamp_min(1e-12)


def regular_grid(kernel_size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The regular k x k grid q of eq. 3, centred on 0.

    Returns:
        (2, k^2) tensor: row 0 holds qx, row 1 holds qy, sample n = i * k + j.
    """
    r = torch.arange(kernel_size, dtype=dtype, device=device) - kernel_size // 2
    qy, qx = torch.meshgrid(r, r, indexing="ij")
    return torch.stack([qx.reshape(-1), qy.reshape(-1)])


def deformable_weighted_average(
    target: torch.Tensor,
    weights: torch.Tensor,
    offsets: torch.Tensor,
    *,
    residual: bool,
    window: int = 15,
    stride: int = 1,
    origin: tuple[int, int] = (0, 0),
) -> torch.Tensor:
    """Filter ``target`` with per-pixel deformable kernels (eq. 3-7).

    The output pixel (a, b) sits at p = (origin[0] + stride * a, origin[1] + stride * b)
    in target coordinates (row, column); with the defaults the output has the target's
    size. ``stride`` and ``origin`` let DKN's shift-and-stitch inference (section 3.2.1)
    filter one shifted pass, i.e. the pixels p = (i + 4a, j + 4b), at a time.

    Args:
        target: (B, C, H, W) image f that is sampled; C channels share the kernels.
        weights: (B, k^2, h, w) raw positive kernel weights (normalised here, see
            :func:`normalise_kernel_weights`).
        offsets: (B, 2 k^2, h, w) offsets dq in pixels, dx first then dy.
        residual: eq. 3 (mean-subtracted weights, result added to f_p) if True,
            eq. 7 (L1-normalised weights) if False.
        window: d, the side of the window that confines q + dq (odd, >= k).
        stride, origin: where the output pixels sit in the target, see above.

    Returns:
        (B, C, h, w) filtered image.
    """
    batch, _, height, width = target.shape
    k2 = weights.shape[1]
    kernel_size = int(round(k2**0.5))
    if kernel_size * kernel_size != k2 or offsets.shape[1] != 2 * k2:
        raise ValueError(
            f"expected weights with k^2 channels and offsets with 2 k^2 channels, got "
            f"{tuple(weights.shape)} and {tuple(offsets.shape)}"
        )
    if window < kernel_size or window % 2 == 0:
        raise ValueError(f"window must be odd and >= kernel size {kernel_size}, got {window}")
    h, w = weights.shape[-2:]
    dtype, device = target.dtype, target.device

    # Positions s(q) = p + q + dq with q + dq confined to the d x d window, normalised
    # to [-1, 1] (align_corners=True); one (B, 2, k^2, h, w) buffer updated in place
    # (x first, then y), which saves ~10 full-size temporaries on the CPU.
    radius = float(window // 2)
    grid_q = regular_grid(kernel_size, dtype, device).view(1, 2, k2, 1, 1)
    positions = torch.add(offsets.view(batch, 2, k2, h, w), grid_q).clamp_(-radius, radius)
    base_x = origin[1] + stride * torch.arange(w, dtype=dtype, device=device)
    base_y = origin[0] + stride * torch.arange(h, dtype=dtype, device=device)
    base = torch.stack(torch.broadcast_tensors(base_x.view(1, w), base_y.view(h, 1)))
    to_unit = torch.tensor(
        [2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], dtype=dtype, device=device
    )
    positions.add_(base.view(1, 2, 1, h, w)).mul_(to_unit.view(1, 2, 1, 1, 1)).sub_(1.0)
    grid = positions.permute(0, 2, 3, 4, 1).reshape(batch, k2 * h, w, 2)

    # f_s(q) by bilinear interpolation (eq. 5-6): (B, C, k^2, h, w).
    samples = F.grid_sample(
        target, grid, mode="bilinear", padding_mode="border", align_corners=True
    ).view(batch, -1, k2, h, w)

    kernel = normalise_kernel_weights(weights, residual).unsqueeze(1)
    out = samples.mul_(kernel).sum(dim=2)
    if residual:
        out += target[:, :, origin[0] :: stride, origin[1] :: stride][:, :, :h, :w]
    return out


def deformable_weighted_average_blocks(
    target: torch.Tensor,
    weights: torch.Tensor,
    offsets: torch.Tensor,
    *,
    residual: bool,
    window: int = 15,
    block: int = 4,
) -> torch.Tensor:
    """:func:`deformable_weighted_average` with the kernels still in FDKN's block layout:
    equal to ``deformable_weighted_average(target, pixel_shuffle(weights, block),
    pixel_shuffle(offsets, block), residual=..., window=...)`` (to float rounding), without
    the two pixel shuffles of 27 full-size channels (k = 3), which cost more than the
    sampling itself on a CPU.

    Each output pixel p = (block y + i, block x + j) takes its kernel from channel
    ``c * block^2 + i * block + j`` of ``weights`` / ``offsets`` at (y, x), which is how
    ``pixel_shuffle`` lays them out. The positions are computed pixel by pixel in that
    layout (the heads' channels-last output is read in its own memory order), sampled
    with one ``grid_sample`` whose grid holds, for each (y, x), the k^2 block^2 positions
    side by side, and only the one-channel result is shuffled to full size. For
    inference on the CPU, FDKN runs this and the products before it fused in one
    compiled pass (:mod:`dkn_ros.models.sampling_cpu`).

    Args:
        target: (B, C, H, W) image f that is sampled, H = block h and W = block w.
        weights: (B, k^2 block^2, h, w) raw positive kernel weights, any dtype or layout.
        offsets: (B, 2 k^2 block^2, h, w) offsets in pixels (dx channels first).
        residual, window: as for :func:`deformable_weighted_average`.

    Returns:
        (B, C, H, W) filtered image of the target's dtype (the weights and offsets are
        cast to it: float32 for a float32 target whatever the streams computed in).
    """
    batch, channels, height, width = target.shape
    _, n_weights, h, w = weights.shape
    r2 = block * block
    k2 = n_weights // r2
    kernel_size = int(round(k2**0.5))
    if kernel_size * kernel_size * r2 != n_weights or offsets.shape[1] != 2 * n_weights:
        raise ValueError(
            f"expected weights with k^2 {r2} channels and offsets with twice as many, got "
            f"{tuple(weights.shape)} and {tuple(offsets.shape)}"
        )
    if (height, width) != (block * h, block * w):
        raise ValueError(f"target {height}x{width} is not {block} x the kernels' {h}x{w}")
    if window < kernel_size or window % 2 == 0:
        raise ValueError(f"window must be odd and >= kernel size {kernel_size}, got {window}")
    dtype, device = target.dtype, target.device  # float32 whatever the kernels' dtype
    pixels = h * w

    # Per low-resolution pixel, (2, k^2, block^2) offsets, read in the heads' own
    # channels-last memory order when that is what they gave (then only cast). q + dq is
    # confined to the window, then p + q + dq goes to grid_sample's [-1, 1]
    # (align_corners=True) and x, y last: (B, h w, k^2 block^2, 2).
    dq = offsets.permute(0, 2, 3, 1).to(dtype).reshape(batch, pixels, 2, k2, r2)
    radius = float(window // 2)
    q = regular_grid(kernel_size, dtype, device).view(1, 1, 2, k2, 1)
    relative = (dq + q).clamp_(-radius, radius)
    to_unit = torch.tensor(
        [2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], dtype=dtype, device=device
    ).view(1, 1, 2, 1, 1)
    inner = torch.arange(block, dtype=dtype, device=device)
    base_x = block * torch.arange(w, dtype=dtype, device=device).view(1, w, 1, 1)
    base_x = base_x + inner.view(1, 1, 1, block)  # (1, w, 1, block): column of p
    base_y = block * torch.arange(h, dtype=dtype, device=device).view(h, 1, 1, 1)
    base_y = base_y + inner.view(1, 1, block, 1)  # (h, 1, block, 1): row of p
    base = torch.stack(torch.broadcast_tensors(base_x, base_y), 2)  # (h, w, 2, block, block)
    base_unit = base.reshape(1, pixels, 2, 1, r2) * to_unit - 1.0
    grid = torch.addcmul(base_unit, relative, to_unit).permute(0, 1, 3, 4, 2)
    grid = grid.reshape(batch, pixels, k2 * r2, 2)

    # f_s(q) (eq. 5-6), then the weighted sum over the k^2 samples of each pixel.
    samples = F.grid_sample(
        target, grid, mode="bilinear", padding_mode="border", align_corners=True
    ).view(batch, channels, pixels, k2, r2)
    raw = weights.permute(0, 2, 3, 1).to(dtype).reshape(batch, 1, pixels, k2, r2)
    kernel = normalise_kernel_weights(raw.transpose(1, 3), residual).transpose(1, 3)
    out = samples.mul_(kernel).sum(dim=3)  # (B, C, h w, block^2)
    out = out.view(batch, channels, h, w, block, block).permute(0, 1, 2, 4, 3, 5)
    out = out.reshape(batch, channels, height, width)
    if residual:
        out = out + target
    return out
