"""PyTorch engine: the model in inference mode, on CPU or CUDA.

The model is copied with its BatchNorms folded into the convolutions and its weights in
channels-last layout (``optimise_for_cpu``): the same outputs to float rounding, about
20 % faster on the CPU (``bench/RESULTS.md``). The caller's model is not modified.

On the CPU the engine also raises glibc's malloc thresholds (``tune_glibc_malloc``,
process-wide; ``tune_malloc=False`` leaves them alone): PyTorch's CPU allocator does not
cache, so without it the network's large buffers are returned to the kernel and faulted
back in every frame, how often depending on what else the process allocates (measured
at 640 x 480: 5 000 to 30 000 minor faults and up to 30 % of the frame time; about 500
with it, ``bench/enhance_frames.py``).
"""

from __future__ import annotations

import numpy as np
import torch

from dkn_ros.engines.base import Engine
from dkn_ros.engines.optimise import (
    ShrinkAfterPeak,
    optimise_for_cpu,
    release_free_memory,
    tune_glibc_malloc,
)


class TorchEngine(Engine):
    name = "torch"

    def __init__(self, model: torch.nn.Module, device: str = "cpu", *, tune_malloc: bool = True):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} asked for, but CUDA is not available")
        if device == "cpu" and tune_malloc:
            tune_glibc_malloc()
        self.device = device
        self.model = optimise_for_cpu(model).to(device)
        self._sizes = ShrinkAfterPeak()

    def run(self, guidance: np.ndarray, target: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            g = torch.from_numpy(np.ascontiguousarray(guidance, dtype=np.float32)).to(self.device)
            t = torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32)).to(self.device)
            output = self.model(g, t).float().cpu().numpy()
        if self.device == "cpu" and self._sizes.update(int(t.shape[-2]) * int(t.shape[-1])):
            release_free_memory()  # a smaller frame than before: let the larger one's go
        return output

    def run_tensors(self, guidance: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The same on tensors of this engine's device: (1, C, H, W) and (1, 1, H, W)
        float32 -> (1, 1, H, W) float32."""
        with torch.inference_mode():
            return self.model(guidance.float(), target.float()).float()
