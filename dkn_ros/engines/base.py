"""The interface every engine implements."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

PRECISIONS = ("fp16", "fp32")  # of the GPU engines; the CPU always computes in fp32


def check_gpu_arguments(engine: str, device: str, precision: str) -> None:
    """Raise ValueError for a precision or device a GPU engine cannot take, and
    RuntimeError when CUDA is not available."""
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if not device.startswith("cuda"):
        raise ValueError(f"the {engine} engine runs on 'cuda' or 'cuda:N', got {device!r}")
    if not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} asked for, but CUDA is not available")


class Engine(ABC):
    """Runs one model: float32 numpy in, float32 numpy out.

    Attributes:
        name: the engine's name as chosen by ``create_engine`` (``torch``, ``onnx``,
            ``tensorrt``).
        device: where it runs (``cpu``, ``cuda``, ``cuda:1``). Engines on a GPU also
            have ``run_tensors(guidance, target)``: the same on device tensors.
    """

    name: str = ""
    device: str = "cpu"

    @abstractmethod
    def run(self, guidance: np.ndarray, target: np.ndarray) -> np.ndarray:
        """guidance (1, C, H, W) and target (1, 1, H, W), float32 -> (1, 1, H, W) float32."""

    def describe(self) -> str:
        """One line for logs and diagnostics, e.g. ``torch on cpu``."""
        return f"{self.name} on {self.device}"
