"""How training inputs are degraded: the depth a camera would give for a ground truth.

The paper's protocol (section 4.1.1) is bicubic downsampling only: LR = bicubic down by
s, and the network's input is LR bicubic-upsampled back. Users' cameras do not
anti-alias (``training/sensors.py``: point sampling, block median, area), add noise,
quantise and drop pixels, and one model may serve several scales, so
:class:`Degradation` forms the LR grid with one of ``grids`` (drawn per sample;
``sensors.downsample``, centre phase) and optionally adds, in this order, on the LR depth:

1. a scale drawn uniformly from ``scales`` per sample (one scale = the paper's protocol;
   1 = same size, the denoising task);
2. zero-mean Gaussian noise whose standard deviation is drawn uniformly from
   ``noise_std`` per sample (normalised depth units; the paper's denoising models use
   variance 0.005, i.e. ``noise_std = (0.0707, 0.0707)``);
3. quantisation to multiples of ``quantisation`` (normalised units);
4. holes: a fraction ``holes`` of the LR pixels in smooth blobs, filled with the nearest
   valid pixel's value, which is what the node does before the network
   (``dkn_ros.processing.fill_holes``), so the network learns to repair that fill;

then upsampling back to the guidance size with ``upsampling`` (``bicubic``, the
paper's, ``nearest`` or ``guided``, joint bilateral under the colour image, which also
smooths same-size input; ``dkn_ros.processing.upsample``, exactly what the node does
for weights whose card names it). A camera ``profile`` replaces the LR grid and steps
2-4 with ``training.sensors.simulate``. Everything works on depth normalised to [0, 1] (see
``training/data.py``) and draws only from the given generator, so a seeded run is
deterministic. A degradation that draws nothing (one scale, no noise, no
holes) is :attr:`Degradation.deterministic` and its result can be cached per image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dkn_ros.processing import UPSAMPLINGS, fill_holes, guidance_from_color, upsample
from dkn_ros.synthetic import blob_mask
from training.sensors import (
    GRIDS,
    CameraProfile,
    downsample,
    load_profile,
    pseudo_metres,
    simulate,
)

__all__ = ["PAPER_DENOISING_NOISE_STD", "Degradation"]

PAPER_DENOISING_NOISE_STD = math.sqrt(0.005)  # section 4.1.1: variance 0.005
PROFILE_NEAR_M, PROFILE_FAR_M = 0.6, 4.0  # normalised 0..1 read as this depth for profiles


@dataclass(frozen=True)
class Degradation:
    """The degradation of one training or validation input (see the module docstring).

    Attributes:
        scales: upsampling factors, one drawn per sample (1 = same size).
        noise_std: (low, high) Gaussian noise std on normalised depth, drawn per sample.
        quantisation: quantisation step on normalised depth (0 = off).
        holes: fraction of LR pixels dropped in blobs and filled (0 = off).
        grids: how the LR grid is formed (``training.sensors.GRIDS``), one drawn per
            sample; ``("bicubic",)`` is the paper's protocol.
        upsampling: how the LR depth is brought back to the guidance size
            (``dkn_ros.processing.UPSAMPLINGS``); written into the model card.
        profile: a camera profile of ``training/profiles`` (e.g. ``kinect_v1``) that
            makes the LR depth instead of ``grids``, noise, quantisation and holes
            (``training.sensors.simulate``: shadow bands, dropout, misregistration,
            z^2 noise, disparity steps, range). The normalised ground truth is read as
            depth from :data:`PROFILE_NEAR_M` to :data:`PROFILE_FAR_M` for it
            (``sensors.pseudo_metres``); its holes are filled as the node fills them.
    """

    scales: tuple[int, ...] = (8,)
    noise_std: tuple[float, float] = (0.0, 0.0)
    quantisation: float = 0.0
    holes: float = 0.0
    grids: tuple[str, ...] = ("bicubic",)
    upsampling: str = "bicubic"
    profile: str = ""
    # The profile's YAML, read once here rather than for every training crop.
    _camera: CameraProfile | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.scales or any(int(s) != s or not 1 <= s <= 16 for s in self.scales):
            raise ValueError(f"scales must be integers in [1, 16], got {self.scales!r}")
        low, high = self.noise_std
        if not 0.0 <= low <= high:
            raise ValueError(f"noise_std must be (low, high), 0 <= low <= high, got {low, high}")
        if self.quantisation < 0:
            raise ValueError(f"quantisation must be >= 0, got {self.quantisation}")
        if not 0.0 <= self.holes < 1.0:
            raise ValueError(f"holes must be in [0, 1), got {self.holes}")
        if not self.grids or any(g not in GRIDS for g in self.grids):
            raise ValueError(f"grids must be some of {', '.join(GRIDS)}, got {self.grids!r}")
        if self.profile:
            object.__setattr__(self, "_camera", load_profile(self.profile))  # fails early
        if self.upsampling not in UPSAMPLINGS:
            raise ValueError(
                f"upsampling must be one of {', '.join(UPSAMPLINGS)}, got {self.upsampling!r}"
            )

    @property
    def align(self) -> int:
        """Image sizes and crop corners are multiples of this: every scale's LR grid
        and FDKN's 4 x 4 pixel-unshuffle grid line up (lcm of the scales and 4)."""
        return math.lcm(4, *self.scales)

    @property
    def deterministic(self) -> bool:
        """True when :meth:`apply` draws nothing from the generator."""
        return (
            len(self.scales) == 1
            and len(self.grids) == 1
            and self.noise_std[1] == 0.0
            and self.holes == 0.0
            and not self.profile
        )

    def describe(self) -> str:
        """One line for logs and model cards."""
        down = (
            "PIL bicubic down"
            if self.grids == ("bicubic",)
            else f"LR grid drawn from {list(self.grids)} per sample (training/sensors.py)"
        )
        up = {"bicubic": "PIL bicubic up", "nearest": "nearest up"}.get(
            self.upsampling, "joint bilateral up under the colour image"
        )
        if self.profile:
            down = (
                f"camera profile {self.profile} ({self._camera.describe()}) on "
                f"the ground truth read as {PROFILE_NEAR_M:g}-{PROFILE_FAR_M:g} m depth, "
                "holes nearest-filled"
            )
            same = "same size" + (
                ", guided smoothing (4x coarser grid and joint bilateral back)"
                if self.upsampling == "guided"
                else ""
            )
            size = same if self.scales == (1,) else f"s from {list(self.scales)}, {up}"
            return f"{down}; {size}"
        if self.scales == (1,):
            parts = ["same size (denoising)"]
        elif len(self.scales) == 1:
            parts = [f"{down} by {self.scales[0]}, {up}"]
        else:
            parts = [f"{down} by s, {up}, s drawn from {list(self.scales)} per sample"]
        low, high = self.noise_std
        if high > 0:
            std = f"{low:g}" if low == high else f"U({low:g}, {high:g})"
            parts.append(f"Gaussian noise std {std} on normalised depth")
        if self.quantisation > 0:
            parts.append(f"quantised to {self.quantisation:g}")
        if self.holes > 0:
            parts.append(f"{self.holes:.0%} of LR pixels dropped in blobs and nearest-filled")
        return "; ".join(parts)

    def apply(
        self, depth: np.ndarray, rng: np.random.Generator, rgb: np.ndarray | None = None
    ) -> np.ndarray:
        """Degrade a normalised ground truth.

        Args:
            depth: (H, W) float32 in [0, 1], H and W multiples of :attr:`align`.
            rng: the only source of randomness.
            rgb: (H, W, 3) uint8, the colour image; needed by ``upsampling="guided"``.

        Returns:
            (H, W) float32, the network's input (upsampled when s > 1).
        """
        h, w = depth.shape
        if h % self.align or w % self.align:
            raise ValueError(f"depth {depth.shape} is not a multiple of {self.align}; crop it")
        scale = self.scales[0] if len(self.scales) == 1 else int(rng.choice(self.scales))
        if self.profile:
            low = self._simulate_camera(depth, scale, rng, rgb)
        else:
            grid = self.grids[0] if len(self.grids) == 1 else str(rng.choice(self.grids))
            low = np.array(depth if scale == 1 else downsample(depth, scale, grid), np.float32)
        if self.noise_std[1] > 0 and not self.profile:
            std = (
                self.noise_std[0]
                if self.noise_std[0] == self.noise_std[1]
                else rng.uniform(*self.noise_std)
            )
            low += (rng.standard_normal(low.shape) * std).astype(np.float32)
        if self.quantisation > 0 and not self.profile:
            low = np.round(low / self.quantisation) * np.float32(self.quantisation)
        if self.holes > 0 and not self.profile:
            dropped = blob_mask(low.shape, self.holes, rng)
            if not dropped.all():
                low = fill_holes(low, ~dropped)
        if scale == 1 and self.upsampling != "guided":
            return low.astype(np.float32)
        guidance = None
        if self.upsampling == "guided":
            if rgb is None:
                raise ValueError("guided upsampling needs the colour image (rgb=...)")
            guidance = guidance_from_color(rgb)
        return upsample(low, (h, w), self.upsampling, guidance)

    def _simulate_camera(
        self, depth: np.ndarray, scale: int, rng: np.random.Generator, rgb: np.ndarray | None
    ) -> np.ndarray:
        """The LR depth :attr:`profile`'s camera would deliver, normalised back and
        hole-filled: (H / s, W / s) float32."""
        span = PROFILE_FAR_M - PROFILE_NEAR_M
        metres = pseudo_metres(np.clip(depth, 0.0, 1.0), PROFILE_NEAR_M, PROFILE_FAR_M, "depth")
        low = simulate(metres, self._camera, float(scale), rng, rgb=rgb)
        low = ((low - PROFILE_NEAR_M) / span).astype(np.float32)
        valid = np.isfinite(low)
        if not valid.any():  # the camera saw nothing: the network gets a flat input
            return np.zeros(low.shape, np.float32)
        return fill_holes(np.where(valid, low, 0.0).astype(np.float32), valid)
