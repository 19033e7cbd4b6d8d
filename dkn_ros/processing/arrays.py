"""The two array back-ends the pipeline's full-resolution steps run on.

``dkn_ros.processing`` writes each step once (guidance, upsampling, de-normalisation,
the 1 mm floor, the invalid-pixel policy, the output units) against this small
interface; :data:`NUMPY` runs it on the host, :class:`TorchArrays` on an engine's device
(a GPU, so that only the uint8 colour, the low-resolution depth and the result cross
the bus; the tests run it on CPU tensors). Arithmetic (``*``, ``+``, comparisons,
indexing) is written directly in the steps and means the same for both array kinds;
only what the two libraries spell differently is here.

Agreement of the two (bounded by the tests and by ``bench/gpu_check.py`` on a GPU):

* guidance, de-normalisation, floor, policy, rounding: the same float32 operations,
  bit-identical on the same input;
* bicubic: PIL's bicubic (a = -0.5, pixel-centre aligned, weights renormalised at the
  borders) is what ``torch.nn.functional.interpolate(..., mode="bicubic",
  align_corners=False, antialias=True)`` implements: within :data:`TORCH_BICUBIC_ERROR`
  of PIL on [0, 1] data (float32 rounding). Without ``antialias`` torch uses a = -0.75
  and clamped borders, up to 1.2e-2 of the range away, so it is not used;
* nearest: the same indices (``resampling.nearest_indices``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dkn_ros.processing.resampling import bicubic_resize, nearest_indices

__all__ = ["NUMPY", "TORCH_BICUBIC_ERROR", "NumpyArrays", "TorchArrays"]

TORCH_BICUBIC_ERROR = 1e-5  # |torch bicubic (antialias) - PIL bicubic| on [0, 1] data


class NumpyArrays:
    """Host numpy arrays; engines take them through ``engine.run``."""

    name = "numpy"

    def upload(self, array: np.ndarray) -> np.ndarray:
        return array

    def to_host(self, array: np.ndarray) -> np.ndarray:
        return np.asarray(array)

    def channels_first(self, color: np.ndarray, reverse: bool) -> np.ndarray:
        """(H, W, 3) uint8 -> (1, 3, H, W) float32 (0..255), channels reversed if asked."""
        rgb = color[:, :, ::-1] if reverse else color
        return rgb.transpose(2, 0, 1)[None].astype(np.float32)

    def bicubic(self, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        return bicubic_resize(image, size)

    def nearest(self, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        rows, cols = nearest_indices(image.shape[-2:], size)
        return np.take(np.take(image, rows, axis=-2), cols, axis=-1)  # no (H, W) index arrays

    def where(self, condition, a, b):
        return np.where(condition, a, b)

    def isfinite(self, array):
        return np.isfinite(array)

    def maximum_(self, array, low: float):
        """In place: max(array, low), NaN kept."""
        return np.maximum(array, np.float32(low), out=array)

    def clip_(self, array, low: float, high: float):
        return np.clip(array, np.float32(low), np.float32(high), out=array)

    def rint_(self, array):
        return np.rint(array, out=array)

    def run(self, engine, guidance: np.ndarray, target: np.ndarray) -> np.ndarray:
        return engine.run(guidance, target)

    def synchronize(self) -> None:
        pass


class TorchArrays:
    """Torch tensors on ``device``; engines take them through ``engine.run_tensors``
    (GPU engines; ``FallbackEngine`` goes through the host for one that cannot).
    Uploads go through pinned host memory on a GPU.

    Args:
        device: ``cpu``, ``cuda`` or ``cuda:N``.
    """

    name = "torch"

    def __init__(self, device: str | torch.device):
        self.device = torch.device(device)
        self._pin = self.device.type == "cuda"
        self._color_host: torch.Tensor | None = None

    def upload(self, array: np.ndarray) -> torch.Tensor:
        if not self._pin:
            return torch.from_numpy(np.ascontiguousarray(array))
        if array.dtype == np.uint8 and array.ndim == 3:  # the colour image: reuse its buffer
            if self._color_host is None or tuple(self._color_host.shape) != array.shape:
                self._color_host = torch.empty(array.shape, dtype=torch.uint8, pin_memory=True)
            np.copyto(self._color_host.numpy(), array)
            return self._color_host.to(self.device, non_blocking=True)
        host = torch.from_numpy(np.ascontiguousarray(array)).pin_memory()
        return host.to(self.device, non_blocking=True)

    def to_host(self, array: torch.Tensor) -> np.ndarray:
        return array.cpu().numpy()

    def channels_first(self, color: torch.Tensor, reverse: bool) -> torch.Tensor:
        rgb = color.flip(-1) if reverse else color
        return rgb.permute(2, 0, 1).unsqueeze(0).to(torch.float32).contiguous()

    def bicubic(self, image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        batch = image.to(torch.float32).reshape(1, 1, *image.shape[-2:])
        resized = F.interpolate(
            batch, size=tuple(size), mode="bicubic", align_corners=False, antialias=True
        )
        return resized.reshape(*image.shape[:-2], *size)

    def nearest(self, image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        rows, cols = nearest_indices(tuple(image.shape[-2:]), tuple(size))
        rows = torch.from_numpy(rows).to(image.device)
        cols = torch.from_numpy(cols).to(image.device)
        return image.index_select(-2, rows).index_select(-1, cols).contiguous()

    def where(self, condition, a, b):
        return torch.where(condition, a, b)

    def isfinite(self, array):
        return torch.isfinite(array)

    def maximum_(self, array, low: float):
        """In place: max(array, low), NaN kept."""
        return array.clamp_min_(low)

    def clip_(self, array, low: float, high: float):
        return array.clamp_(low, high)

    def rint_(self, array):
        return array.round_()  # half to even, as np.rint

    def run(self, engine, guidance: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return engine.run_tensors(guidance, target)

    def synchronize(self) -> None:
        """Wait for the device (for honest stage timings)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


NUMPY = NumpyArrays()
