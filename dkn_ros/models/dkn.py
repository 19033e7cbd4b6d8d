"""DKN, the deformable kernel network (paper section 3.2, Table 1, Fig. 2 and 4).

Each stream maps a 51 x 51 patch to a 128 x 1 x 1 feature with valid convolutions and
two stride-2 "DownConv" layers (Table 1):

    Conv 7x7-BN-ReLU 32      DownConv 2x2/2-ReLU 32   Conv 5x5-BN-ReLU 64
    DownConv 2x2/2-ReLU 64   Conv 5x5-BN-ReLU 128     Conv 3x3-ReLU n1 = 128
    Conv 3x3-ReLU n2 = 128   -> 1x1 heads: k^2 weights (sigmoid), 2 k^2 offsets

Table 7 varies n1 and n2, the channels of the two 3 x 3 layers; the 5 x 5 layer
before them keeps 128 (this reproduces Table 7's parameter counts, 1.1 M and 5.8 M).

The kernel at pixel p is computed from the patch of rows and columns [p - 25, p + 25]
of the replicate-padded inputs (the last row and column of the 51 x 51 patch fall off
the valid stride-2 convolutions, so 50 x 50 pixels are actually used). Two equivalent
ways compute it for every pixel of an image:

* ``shift_and_stitch``: the paper's inference (section 3.2.1). The padded inputs are
  shifted by (i, j), 0 <= i, j <= 3; each of the 16 passes gives kernels for the pixels
  (i + 4a, j + 4b), which are used at once in the weighted average, and the 16
  one-channel outputs are stitched.
* ``single_pass``: the strides are removed and the layers after each former stride
  are dilated by 2 (then 4), which gives the kernels of every pixel in one pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dkn_ros.models.sampling import deformable_weighted_average

__all__ = ["DKN", "DKNStream", "PATCH", "INFERENCE_MODES"]

PATCH = 51  # input patch side of Table 1
PAD_BEFORE = 25  # rows/columns of context above and left of p
PAD_AFTER = 24  # ... below and right of p (the receptive field is 50 pixels wide)
STRIDE = 4  # product of the two DownConv strides
INFERENCE_MODES = ("single_pass", "shift_and_stitch")


class DKNStream(nn.Module):
    """One stream of DKN (Table 1).

    Args:
        in_channels: 3 for the guidance, 1 for the target.
        kernel_size: k.
        n1, n2: channels of the two 3 x 3 layers at the end of feature extraction
            (Table 7, 128 and 128).
    """

    def __init__(self, in_channels: int, kernel_size: int, n1: int = 128, n2: int = 128):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, 7)
        self.bn1 = nn.BatchNorm2d(32)
        self.down1 = nn.Conv2d(32, 32, 2, stride=2)
        self.conv2 = nn.Conv2d(32, 64, 5)
        self.bn2 = nn.BatchNorm2d(64)
        self.down2 = nn.Conv2d(64, 64, 2, stride=2)
        self.conv3 = nn.Conv2d(64, 128, 5)
        self.bn3 = nn.BatchNorm2d(128)
        self.conv4 = nn.Conv2d(128, n1, 3)
        self.conv5 = nn.Conv2d(n1, n2, 3)
        self.weight_head = nn.Conv2d(n2, kernel_size**2, 1)
        self.offset_head = nn.Conv2d(n2, 2 * kernel_size**2, 1)

    def forward(self, x: torch.Tensor, dilated: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Sigmoid weights and offsets.

        Args:
            x: (B, in_channels, H_in, W_in) padded input.
            dilated: False: Table 1 as written (valid convolutions, two stride-2
                DownConvs), output (B, *, (H_in - 47) // 4, ...) for H_in = 4 m + 47.
                True: strides turned into dilations, output (B, *, H_in - 49, W_in - 49).

        Returns:
            weights (B, k^2, h, w) in (0, 1) and offsets (B, 2 k^2, h, w).
        """

        def conv(layer: nn.Conv2d, x: torch.Tensor, dilation: int) -> torch.Tensor:
            if not dilated:
                return layer(x)
            return F.conv2d(x, layer.weight, layer.bias, stride=1, dilation=dilation)

        x = F.relu(self.bn1(conv(self.conv1, x, 1)))
        x = F.relu(conv(self.down1, x, 1))
        x = F.relu(self.bn2(conv(self.conv2, x, 2)))
        x = F.relu(conv(self.down2, x, 2))
        x = F.relu(self.bn3(conv(self.conv3, x, 4)))
        x = F.relu(conv(self.conv4, x, 4))
        x = F.relu(conv(self.conv5, x, 4))
        return torch.sigmoid(self.weight_head(x)), self.offset_head(x)


class DKN(nn.Module):
    """Deformable kernel network.

    Args:
        kernel_size: k (3, 5 or 7).
        window: d, offsets are confined to a d x d window (15).
        residual: eq. 3 with a residual connection (upsampling) or eq. 7 (denoising).
        n1, n2: channels of the last feature layers (Table 7).
        guidance_channels: C, channels of the guidance image (3 for RGB).
        inference: ``single_pass`` (dilated, the default) or ``shift_and_stitch``
            (the paper's 16 passes); both give the same result.
    """

    def __init__(
        self,
        kernel_size: int = 3,
        window: int = 15,
        residual: bool = True,
        n1: int = 128,
        n2: int = 128,
        guidance_channels: int = 3,
        inference: str = "single_pass",
    ):
        super().__init__()
        if inference not in INFERENCE_MODES:
            raise ValueError(f"inference must be one of {INFERENCE_MODES}, got {inference!r}")
        self.kernel_size = kernel_size
        self.window = window
        self.residual = residual
        self.inference = inference
        self.guidance_stream = DKNStream(guidance_channels, kernel_size, n1, n2)
        self.target_stream = DKNStream(1, kernel_size, n1, n2)

    def kernels(
        self, guidance: torch.Tensor, target: torch.Tensor, dilated: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw weights and offsets from already padded inputs (see ``DKNStream``)."""
        w_g, o_g = self.guidance_stream(guidance, dilated)
        w_t, o_t = self.target_stream(target, dilated)
        return w_g * w_t, o_g * o_t

    def forward(self, guidance: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Filter the target under the guidance.

        Args:
            guidance: (B, C, H, W) guidance image, RGB in [0, 1].
            target: (B, 1, H, W) target at guidance resolution.

        Returns:
            (B, 1, H, W) filtered target, for any H and W.
        """
        if self.inference == "shift_and_stitch":
            return self.forward_shift_and_stitch(guidance, target)
        return self.forward_single_pass(guidance, target)

    def forward_single_pass(self, guidance: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Every pixel's kernel in one pass with dilated convolutions."""
        pad = (PAD_BEFORE, PAD_AFTER, PAD_BEFORE, PAD_AFTER)
        weights, offsets = self.kernels(
            F.pad(guidance, pad, mode="replicate"), F.pad(target, pad, mode="replicate"), True
        )
        return deformable_weighted_average(
            target, weights, offsets, residual=self.residual, window=self.window
        )

    def forward_shift_and_stitch(
        self, guidance: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        """The paper's inference: 16 shifted passes, each filtered, then stitched."""
        height, width = target.shape[-2:]
        out = target.new_zeros(target.shape)
        for i in range(min(STRIDE, height)):  # images under 4 pixels have fewer passes
            for j in range(min(STRIDE, width)):
                out[:, :, i::STRIDE, j::STRIDE] = self.forward_shift(guidance, target, i, j)
        return out

    def forward_shift(
        self, guidance: torch.Tensor, target: torch.Tensor, i: int, j: int
    ) -> torch.Tensor:
        """One pass of shift-and-stitch: the filtered target at the pixels (i + 4a, j + 4b).

        Args:
            guidance: (B, C, H, W), target: (B, 1, H, W).
            i, j: the shift, 0 <= i, j < 4 (and i < H, j < W).

        Returns:
            (B, 1, len(range(i, H, 4)), len(range(j, W, 4))), equal to
            ``forward(guidance, target)[:, :, i::4, j::4]``. Training uses one random
            shift per step: 16 times cheaper than every pixel, and the same network.
        """
        height, width = target.shape[-2:]
        rows = -(-height // STRIDE) * STRIDE  # rounded up to a multiple of 4
        cols = -(-width // STRIDE) * STRIDE
        # Shift by (i, j) and pad so that pass output (a, b) is pixel (i + 4a, j + 4b).
        # A pass over 4 m + 47 padded rows gives m output rows (Table 1).
        pad = (
            PAD_BEFORE - j,
            cols + PATCH - STRIDE - (PAD_BEFORE - j) - width,
            PAD_BEFORE - i,
            rows + PATCH - STRIDE - (PAD_BEFORE - i) - height,
        )
        weights, offsets = self.kernels(
            F.pad(guidance, pad, mode="replicate"), F.pad(target, pad, mode="replicate"), False
        )
        h = len(range(i, height, STRIDE))
        w = len(range(j, width, STRIDE))
        return deformable_weighted_average(
            target,
            weights[:, :, :h, :w],
            offsets[:, :, :h, :w],
            residual=self.residual,
            window=self.window,
            stride=STRIDE,
            origin=(i, j),
        )
