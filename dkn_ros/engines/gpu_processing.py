"""Pre- and post-processing on the engine's device, so that only the frame crosses the bus.

The CPU path (``dkn_ros.processing``) turns colour and depth into the network's two
float32 inputs at colour resolution (3.7 MB + 1.2 MB at 640 x 480) and back. On a GPU
this module moves the full-resolution work to the device:

* up: the colour image as uint8 (0.9 MB at 640 x 480) and the low-resolution depth,
  normalised and hole-filled, as float32 (19 KB at 80 x 60), plus its validity mask;
* on the device: uint8 -> float RGB in [0, 1], bicubic upsampling, the network,
  de-normalisation, the >= 1 mm floor, the invalid-pixel policy and the conversion to
  millimetres or metres;
* down: the result, (H, W) int32 millimetres (converted to uint16 on the host) or
  float32 metres.

What stays on the CPU is cheap at low resolution: checks, units, the validity mask,
nearest-valid hole filling (a Euclidean distance transform, scipy) and the min / max
normalisation, all done by ``processing.prepare_target_lr``, the first steps of
``processing.prepare_target``.

Agreement with the CPU path (measured here on the CPU, bounded by the tests and by
``bench/gpu_check.py`` on a GPU):

* guidance: the same float32 arithmetic (x * float32(1/255)), bit-identical;
* bicubic upsampling: PIL's bicubic (a = -0.5, pixel-centre aligned, weights
  renormalised at the borders) is what ``torch.nn.functional.interpolate(...,
  mode="bicubic", align_corners=False, antialias=True)`` implements; it agrees with
  ``processing.bicubic_resize`` within 2.4e-7 of the normalised range (float32
  rounding). Without ``antialias`` torch uses a = -0.75 and clamped borders: up to
  1.2e-2 of the range apart (0.9 to 1.2e-2 at x2..x16, mean 1.6e-3), so it is not used;
* post-processing: the same float32 arithmetic as ``processing.finish``; uint16 output
  may differ by 1 mm where a value sits on a rounding boundary and the upstream float
  differs by one ulp.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dkn_ros import processing
from dkn_ros.guided_upsampling import guided_smoothing, joint_bilateral_upsample
from dkn_ros.processing import Prepared

__all__ = [
    "BICUBIC_TOLERANCE",
    "DeviceFrames",
    "finish_tensor",
    "guidance_tensor",
    "nearest_tensor",
    "upsample_target",
]

BICUBIC_TOLERANCE = 1e-5  # |torch bicubic (antialias) - PIL bicubic| on [0, 1] data


def guidance_tensor(color: torch.Tensor, color_order: str = "rgb") -> torch.Tensor:
    """(H, W, 3) uint8 tensor in ``color_order`` -> (1, 3, H, W) float32 RGB in [0, 1],
    the arithmetic of ``processing.guidance_from_color``."""
    rgb = color.flip(-1) if color_order == "bgr" else color
    guidance = rgb.permute(2, 0, 1).unsqueeze(0).to(torch.float32)
    return guidance.mul_(float(np.float32(1.0 / 255.0))).contiguous()


def nearest_tensor(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``processing.nearest_resize`` of the last two axes of a tensor, index for index."""
    rows, cols = processing.nearest_indices(tuple(image.shape[-2:]), tuple(size))
    rows = torch.from_numpy(rows).to(image.device)
    return image.index_select(-2, rows).index_select(-1, torch.from_numpy(cols).to(image.device))


def upsample_target(
    normalised: torch.Tensor,
    size: tuple[int, int],
    mode: str = "bicubic",
    guidance: torch.Tensor | None = None,
) -> torch.Tensor:
    """(h, w) float32 -> (1, 1, H, W) float32, ``processing.upsample`` on the device:
    bicubic like PIL (see the module docstring), nearest index for index, or guided
    (the same torch code as the CPU path, under ``guidance`` (1, 3, H, W), also at the
    same size); bicubic and nearest copy same-size input."""
    image = normalised.to(torch.float32).reshape(1, 1, *normalised.shape[-2:])
    if mode == "guided":
        if guidance is None:
            raise ValueError("guided upsampling needs the guidance")
        if tuple(image.shape[-2:]) == tuple(size):
            return guided_smoothing(image[0, 0], guidance)[None, None]
        return joint_bilateral_upsample(image[0, 0], guidance)[None, None]
    if tuple(image.shape[-2:]) == tuple(size):
        return image.clone()
    if mode == "nearest":
        return nearest_tensor(image, size).contiguous()
    if mode != "bicubic":
        raise ValueError(f"upsampling must be one of {processing.UPSAMPLINGS}, got {mode!r}")
    return F.interpolate(
        image, size=tuple(size), mode="bicubic", align_corners=False, antialias=True
    )


def finish_tensor(
    output: torch.Tensor, prepared: Prepared, mask_lr: torch.Tensor, invalid: str = "keep"
) -> torch.Tensor:
    """``processing.finish`` on the device.

    Args:
        output: (1, 1, H, W) float32 normalised depth from the network.
        prepared: the record of ``processing.prepare_target_lr``.
        mask_lr: (h, w) bool validity at input resolution, on the device.
        invalid: ``keep`` or ``fill``.

    Returns:
        (H, W) int32 millimetres (0 = invalid, valid values 1..65535) when the input was
        uint16, else float32 metres (NaN = invalid).
    """
    if invalid not in processing.INVALID_POLICIES:
        raise ValueError(f"invalid must be 'keep' or 'fill', got {invalid!r}")
    expected = (1, 1, *prepared.output_shape)
    if tuple(output.shape) != expected:
        raise ValueError(f"network output must have shape {expected}, got {tuple(output.shape)}")
    span = prepared.dmax - prepared.dmin if prepared.dmax > prepared.dmin else 1.0
    metres = output[0, 0].to(torch.float32) * float(np.float32(span))
    metres = (metres + float(np.float32(prepared.dmin))).clamp_min_(processing.MIN_DEPTH_M)
    mask = None
    if invalid == "keep":
        mask = nearest_tensor(mask_lr, prepared.output_shape)
    if prepared.dtype == np.float32:
        return metres if mask is None else torch.where(mask, metres, float("nan"))
    millimetres = torch.round(metres * float(processing.MM_PER_M)).clamp_(1, 65535)
    millimetres = millimetres.to(torch.int32)
    return millimetres if mask is None else millimetres.masked_fill_(~mask, 0)


class DeviceFrames:
    """Colour + depth in, enhanced depth out, with the full-resolution work on the
    device of ``engine`` (an engine with ``run_tensors``, e.g. ``TorchCudaEngine`` or
    ``TensorRTEngine``; also ``TorchEngine`` on the CPU, which the tests use).

    Host buffers for the uploads are pinned when the device is a GPU.
    """

    def __init__(self, engine):
        self.engine = engine
        self.device = torch.device(engine.device)
        self._pin = self.device.type == "cuda"
        self._color_host: torch.Tensor | None = None

    def _upload(self, array: np.ndarray) -> torch.Tensor:
        host = torch.from_numpy(np.ascontiguousarray(array))
        if self._pin:
            host = host.pin_memory()
        return host.to(self.device, non_blocking=self._pin)

    def guidance(self, color: np.ndarray, color_order: str = "rgb") -> torch.Tensor:
        """Check ``color`` ((H, W, 3) uint8) and make the guidance on the device."""
        processing.check_color(color, color_order)
        if self._pin:
            if self._color_host is None or self._color_host.shape != color.shape:
                self._color_host = torch.empty(color.shape, dtype=torch.uint8, pin_memory=True)
            np.copyto(self._color_host.numpy(), color)
            color_t = self._color_host.to(self.device, non_blocking=True)
        else:
            color_t = torch.from_numpy(np.ascontiguousarray(color))
        return guidance_tensor(color_t, color_order)

    def target(
        self, normalised: np.ndarray, mask: np.ndarray, guidance: torch.Tensor, upsampling: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Upload what ``processing.prepare_target_lr`` made and upsample it there.

        Args:
            normalised: (h, w) float32 hole-filled normalised depth.
            mask: (h, w) bool validity.
            guidance: (1, 3, H, W) on the device (:meth:`guidance`); its size is the
                target's.
            upsampling: ``processing.UPSAMPLINGS``, the card's ``input_upsampling``.

        Returns:
            the target (1, 1, H, W) and the validity mask (h, w), on the device.
        """
        size = tuple(guidance.shape[-2:])
        target = upsample_target(self._upload(normalised), size, upsampling, guidance)
        return target, self._upload(mask)

    def run(
        self, guidance: torch.Tensor, target: torch.Tensor, iterations: int = 1
    ) -> torch.Tensor:
        """The network ``iterations`` times, the output fed back as the target."""
        output = target
        for _ in range(iterations):
            output = self.engine.run_tensors(guidance, output)
        return output

    def finish(
        self, output: torch.Tensor, prepared: Prepared, mask: torch.Tensor, invalid: str
    ) -> np.ndarray:
        """The output as depth of the input's dtype and units, on the host."""
        result = finish_tensor(output, prepared, mask, invalid).cpu().numpy()
        if prepared.dtype == np.uint16:
            return result.astype(np.uint16)
        return result

    def synchronize(self) -> None:
        """Wait for the device (for honest stage timings)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
