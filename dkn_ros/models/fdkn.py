"""FDKN, the fast deformable kernel network (paper section 3.3, Table 2, Fig. 5).

Both inputs are resampled with stride 4 (pixel unshuffle, Fig. 6): the guidance
(B, C, H, W) becomes (B, 16 C, H/4, W/4) and the target (B, 1, H, W) becomes
(B, 16, H/4, W/4). Each stream runs six 3 x 3 convolutions (batch norm after the 1st,
3rd and 5th; receptive field 13 x 13 at quarter resolution, comparable with DKN's
51 x 51; widths c1, c1, c2, c2, n1, n2 = 32, 32, 64, 64, 128, 128) and two 1 x 1
heads with 16 k^2 weight and 32 k^2 offset channels. The
weights of the two streams are multiplied after a sigmoid, the offsets are multiplied
as they are, and both are pixel-shuffled back to full resolution, so one forward pass
gives a k x k kernel and its offsets for every pixel. The deformable weighted average
(eq. 3 or 7) then filters the target.

:class:`FDKNSmall` is the same network with narrower streams (Table 7 varies n1 and n2;
this goes below it and narrows c1 and c2 too), trained by distillation from the full
FDKN (``training/train.py --teacher``) for the ``fast`` quality of the node.

Precision: each stream computes in the dtype of its parameters. ``engines.optimise``
can turn the feature convolutions into bfloat16 for the CPU (``to_bfloat16``); the
stream's input is cast to that dtype and its features back to the heads' dtype, and the
kernel weights and offsets always leave :meth:`FDKN.kernels` as float32 in the
contiguous (N, C, H, W) layout, so the deformable weighted average and the residual add
run in float32 whatever the streams use.

For inference on the CPU, :meth:`FDKN.forward` hands the four heads' outputs to one
compiled pass (:mod:`dkn_ros.models.sampling_cpu`) that takes the sigmoid, the products
and the deformable weighted average in float32 without the full-size intermediate
tensors; it equals :meth:`FDKN.block_kernels` followed by
:func:`~dkn_ros.models.sampling.deformable_weighted_average_blocks` to float rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dkn_ros.models import sampling_cpu
from dkn_ros.models.sampling import deformable_weighted_average_blocks

__all__ = ["FDKN", "FDKNSmall", "FDKNStream", "RESAMPLE", "shuffle_to_float32"]

RESAMPLE = 4  # the resampling stride r of Fig. 6


class FDKNStream(nn.Module):
    """One stream of FDKN (Table 2): six 3 x 3 convolutions and the two 1 x 1 heads.

    Args:
        in_channels: 16 C for a C-channel image resampled by 4.
        kernel_size: k.
        c1, c2: channels of the first and of the second pair of feature layers (Table 2:
            32 and 64).
        n1, n2: channels of the last two feature layers (Table 7; 128 and 128).
    """

    def __init__(
        self,
        in_channels: int,
        kernel_size: int,
        n1: int = 128,
        n2: int = 128,
        c1: int = 32,
        c2: int = 64,
    ):
        super().__init__()
        r2 = RESAMPLE * RESAMPLE
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1),
            nn.BatchNorm2d(c1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c1, c1, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.BatchNorm2d(c2),
            nn.ReLU(inplace=True),
            nn.Conv2d(c2, c2, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c2, n1, 3, padding=1),
            nn.BatchNorm2d(n1),
            nn.ReLU(inplace=True),
            nn.Conv2d(n1, n2, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.weight_head = nn.Conv2d(n2, r2 * kernel_size**2, 1)
        self.offset_head = nn.Conv2d(n2, 2 * r2 * kernel_size**2, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, in_channels, H/4, W/4) -> sigmoid weights (B, 16 k^2, H/4, W/4) and
        offsets (B, 32 k^2, H/4, W/4), both still at quarter resolution, in the heads'
        dtype. The features compute in the dtype of their own parameters."""
        weight_logits, offsets = self.heads(x)
        return torch.sigmoid(weight_logits), offsets

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` without the sigmoid of the weights (the fused CPU step takes
        it, ``sampling_cpu``)."""
        x = self.features(x.to(self.features[0].weight.dtype))
        x = x.to(self.weight_head.weight.dtype)
        return self.weight_head(x), self.offset_head(x)


def shuffle_to_float32(x: torch.Tensor) -> torch.Tensor:
    """``F.pixel_shuffle(x, 4)`` as a new contiguous float32 (N, C, H, W) tensor, in one
    copy whatever the dtype and memory layout of ``x`` (bfloat16 channels-last from the
    streams on the CPU: pixel shuffle, cast and relayout one after the other cost three
    passes over the largest tensors of the network).

    (B, 16 C, h, w) -> (B, C, 4 h, 4 w): out[b, c, 4 y + i, 4 x + j] = x[b, 16 c + 4 i + j, y, x].
    """
    batch, channels, height, width = x.shape
    r = RESAMPLE
    out = torch.empty(
        (batch, channels // (r * r), height * r, width * r), dtype=torch.float32, device=x.device
    )
    blocks = x.view(batch, channels // (r * r), r, r, height, width).permute(0, 1, 4, 2, 5, 3)
    out.view(batch, channels // (r * r), height, r, width, r).copy_(blocks)
    return out


class FDKN(nn.Module):
    """Fast deformable kernel network.

    Args:
        kernel_size: k, the number of samples per pixel is k^2 (3, 5 or 7).
        window: d, offsets are confined to a d x d window (15).
        residual: eq. 3 with a residual connection (upsampling) or eq. 7 (denoising).
        n1, n2: channels of the last two feature layers (Table 7).
        guidance_channels: C, channels of the guidance image (3 for RGB).
        c1, c2: channels of the first four feature layers (c1, c1, c2, c2; Table 2).
    """

    # CPU inference takes the fused last step (sampling_cpu) where it is usable; a copy
    # that shadows block_kernels (engines.torch_cuda's mixed-precision islands) sets False
    fused_cpu_step = True

    def __init__(
        self,
        kernel_size: int = 3,
        window: int = 15,
        residual: bool = True,
        n1: int = 128,
        n2: int = 128,
        guidance_channels: int = 3,
        c1: int = 32,
        c2: int = 64,
    ):
        super().__init__()
        r2 = RESAMPLE * RESAMPLE
        self.kernel_size = kernel_size
        self.window = window
        self.residual = residual
        self.guidance_stream = FDKNStream(r2 * guidance_channels, kernel_size, n1, n2, c1, c2)
        self.target_stream = FDKNStream(r2, kernel_size, n1, n2, c1, c2)

    def block_kernels(
        self, guidance: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw kernel weights (B, 16 k^2, H/4, W/4) and offsets (B, 32 k^2, H/4, W/4),
        the products of the two streams before the pixel shuffle, in the streams' dtype
        and memory layout, for inputs whose H and W are multiples of 4."""
        w_g, o_g = self.guidance_stream(F.pixel_unshuffle(guidance, RESAMPLE))
        w_t, o_t = self.target_stream(F.pixel_unshuffle(target, RESAMPLE))
        return w_g * w_t, o_g * o_t

    def kernels(
        self, guidance: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw kernel weights (B, k^2, H, W) and offsets (B, 2 k^2, H, W) at full
        resolution (:meth:`block_kernels` pixel-shuffled): float32, contiguous
        (N, C, H, W) whatever the streams' dtype and layout."""
        weights, offsets = self.block_kernels(guidance, target)
        return shuffle_to_float32(weights), shuffle_to_float32(offsets)

    def forward(self, guidance: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Filter the target under the guidance.

        Args:
            guidance: (B, C, H, W) guidance image, RGB in [0, 1].
            target: (B, 1, H, W) target at guidance resolution (normalised depth,
                bicubic-upsampled for upsampling tasks).

        Returns:
            (B, 1, H, W) filtered target. Any H, W: the inputs are padded (replicate)
            to a multiple of 4 and the output is cropped back.
        """
        height, width = target.shape[-2:]
        pad_h = (-height) % RESAMPLE
        pad_w = (-width) % RESAMPLE
        if pad_h or pad_w:
            guidance = F.pad(guidance, (0, pad_w, 0, pad_h), mode="replicate")
            target = F.pad(target, (0, pad_w, 0, pad_h), mode="replicate")
        if self.fused_cpu_step and sampling_cpu.usable(
            target, guidance, *self.parameters(), kernel_size=self.kernel_size, block=RESAMPLE
        ):  # CPU inference: the heads go straight into one compiled pass
            w_g, o_g = self.guidance_stream.heads(F.pixel_unshuffle(guidance, RESAMPLE))
            w_t, o_t = self.target_stream.heads(F.pixel_unshuffle(target, RESAMPLE))
            out = sampling_cpu.fdkn_last_step(
                target, (w_g, w_t), (o_g, o_t), residual=self.residual, window=self.window,
                block=RESAMPLE,
            )  # fmt: skip
            return out[:, :, :height, :width]
        # The kernels stay at quarter resolution in pixel_shuffle's channel order: the
        # weighted average reads them there (same result as on self.kernels' output).
        weights, offsets = self.block_kernels(guidance, target)
        out = deformable_weighted_average_blocks(
            target, weights, offsets, residual=self.residual, window=self.window,
            block=RESAMPLE,
        )  # fmt: skip
        return out[:, :, :height, :width]


class FDKNSmall(FDKN):
    """FDKN with narrow streams, for camera rate on a CPU (quality ``fast``).

    The same network as :class:`FDKN` (its card names every width, so a card rebuilds
    it exactly); only the defaults differ: c1, c2, n1, n2 = 16, 32, 32, 32, about 1/9
    of FDKN's multiply-adds. Chosen by measurement: width against latency and RMSE in
    ``bench/RESULTS.md``.
    """

    def __init__(
        self,
        kernel_size: int = 3,
        window: int = 15,
        residual: bool = True,
        n1: int = 32,
        n2: int = 32,
        guidance_channels: int = 3,
        c1: int = 16,
        c2: int = 32,
    ):
        super().__init__(kernel_size, window, residual, n1, n2, guidance_channels, c1, c2)
