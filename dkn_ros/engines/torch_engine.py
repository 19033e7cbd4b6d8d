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

``cpu_precision="bf16"`` (CPU only, and only where oneDNN computes bfloat16 natively:
``optimise.cpu_computes_bf16``) runs FDKN's two streams in bfloat16
(``optimise.to_bfloat16``); the weighted average and the residual add stay float32.
"""

from __future__ import annotations

import numpy as np
import torch

from dkn_ros.engines.base import Engine
from dkn_ros.engines.optimise import (
    CPU_PRECISIONS,
    ShrinkAfterPeak,
    cpu_computes_bf16,
    optimise_for_cpu,
    release_free_memory,
    to_bfloat16,
    tune_glibc_malloc,
)


class TorchEngine(Engine):
    name = "torch"

    def __init__(
        self,
        model: torch.nn.Module,
        device: str = "cpu",
        *,
        tune_malloc: bool = True,
        cpu_precision: str = "fp32",
    ):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} asked for, but CUDA is not available")
        if cpu_precision not in CPU_PRECISIONS:
            raise ValueError(
                f"cpu_precision must be one of {CPU_PRECISIONS}, got {cpu_precision!r}"
            )
        if cpu_precision == "bf16" and device != "cpu":
            raise ValueError(f"cpu_precision 'bf16' is for the CPU, not {device!r}")
        if cpu_precision == "bf16" and not cpu_computes_bf16():
            raise RuntimeError("this CPU has no native bfloat16 arithmetic (AVX-512 BF16 or AMX)")
        if device == "cpu" and tune_malloc:
            tune_glibc_malloc()
        self.device = device
        self.precision = cpu_precision if device == "cpu" else "fp32"
        model = optimise_for_cpu(model)
        self.model = (to_bfloat16(model) if cpu_precision == "bf16" else model).to(device)
        self._sizes = ShrinkAfterPeak()

    def describe(self) -> str:
        """``torch on cpu``, with ``(bf16)`` when the streams compute in bfloat16."""
        return f"torch on {self.device}" + (" (bf16)" if self.precision == "bf16" else "")

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
