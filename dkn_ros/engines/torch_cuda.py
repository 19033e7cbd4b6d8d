"""PyTorch on a CUDA GPU: FP16 with FP32 islands, channels-last, CUDA graphs.

Precision (:func:`mixed_precision_model`)
    ``fp16`` runs the kernel-predicting part of the network (the two convolution
    streams of FDKN or DKN, up to the sigmoid weights and the offsets) in half
    precision and everything after it in float32: the model's ``kernels`` method is
    wrapped so that its outputs come back as float32, and the model's own ``forward``
    then does the deformable weighted average (``models/sampling.py``: sampling grid,
    ``grid_sample``, kernel normalisation, weighted sum) and the residual add on
    float32 tensors, outside any autocast region. Two ways to get the FP16 part, with
    the same FP32 islands: ``cast`` (default; the streams' weights are converted to
    half once and their inputs cast, no per-call weight casts) and ``autocast``
    (``torch.autocast`` around ``kernels`` only). For these networks both run exactly
    the convolutions in FP16; ``bench/gpu_check.py`` compares them.

CUDA graphs
    For each input size (up to :data:`MAX_GRAPHS`), the model is captured once into a
    ``torch.cuda.CUDAGraph`` and replayed: one launch per frame instead of ~100 kernel
    launches (FDKN) or ~1,500 (DKN shift-and-stitch). The capture goes through
    ``torch.export`` at that fixed size: the exported program holds the small constants
    that ``deformable_weighted_average`` builds with ``torch.tensor(..., device=...)``
    as lifted device tensors, whereas capturing the eager model would hit that
    synchronous host-to-device copy, which a capturing stream forbids. If export or
    capture fails, that size runs eagerly and one warning says why.

Transfers
    :meth:`TorchCudaEngine.run` (numpy in and out) copies through pinned host buffers,
    one set per input size, on the engine's own stream.
    :meth:`TorchCudaEngine.run_tensors` takes and returns device tensors, so the GPU
    pre- and post-processing (``processing.arrays.TorchArrays``) keeps the frame there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from dkn_ros.engines.base import PRECISIONS, Engine, check_gpu_arguments
from dkn_ros.engines.optimise import fold_batch_norm

__all__ = [
    "MAX_GRAPHS",
    "MIXED_MODES",
    "PRECISIONS",
    "TorchCudaEngine",
    "export_for_capture",
    "mixed_precision_model",
]

logger = logging.getLogger(__name__)

MIXED_MODES = ("cast", "autocast")
MAX_GRAPHS = 4  # input sizes captured per engine; more sizes run eagerly


def mixed_precision_model(
    model: nn.Module, dtype: torch.dtype = torch.float16, mode: str = "cast"
) -> nn.Module:
    """An eval-mode copy of ``model`` (FDKN or DKN, BatchNorm folded) whose kernel
    prediction runs in ``dtype`` and whose weighted average and residual add run in
    float32 (see the module docstring). The input model is not modified.

    Args:
        model: FDKN or DKN (anything with ``guidance_stream``, ``target_stream`` and a
            ``kernels(guidance, target, ...)`` method returning weights and offsets).
        dtype: ``torch.float16`` (CUDA) or ``torch.bfloat16`` (also on the CPU).
        mode: ``cast`` or ``autocast``.

    Returns:
        The copy; ``copy.kernels`` returns float32 weights (B, k^2, H, W) and offsets
        (B, 2 k^2, H, W); ``copy(guidance, target)`` takes and returns float32.
    """
    if mode not in MIXED_MODES:
        raise ValueError(f"mode must be one of {MIXED_MODES}, got {mode!r}")
    model = fold_batch_norm(model)
    if mode == "cast":
        model.guidance_stream.to(dtype)
        model.target_stream.to(dtype)

    def island(kernels):
        """``kernels`` (a bound method of the copy) in ``dtype``, float32 out."""
        if mode == "cast":

            def fp32_island_kernels(guidance, target, *args):
                weights, offsets = kernels(guidance.to(dtype), target.to(dtype), *args)
                return weights.float(), offsets.float()

        else:

            def fp32_island_kernels(guidance, target, *args):
                with torch.autocast(guidance.device.type, dtype=dtype):
                    weights, offsets = kernels(guidance, target, *args)
                return weights.float(), offsets.float()

        return fp32_island_kernels

    # Shadow the methods for this copy only (FDKN's forward uses block_kernels, and not
    # the fused CPU step, which would bypass the island).
    model.kernels = island(model.kernels)
    if hasattr(model, "block_kernels"):
        model.block_kernels = island(model.block_kernels)
        model.fused_cpu_step = False
    model.mixed_precision = (dtype, mode)
    return model


class _Call(nn.Module):
    """``model(guidance, target)`` as a module of its own, for ``torch.export``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, guidance: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.model(guidance, target)


def export_for_capture(
    model: nn.Module, guidance: torch.Tensor, target: torch.Tensor
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``model(guidance, target)`` as a ``torch.export`` program fixed to these input
    sizes, device and dtypes, ready to be captured into a CUDA graph: the constants the
    eager code makes from host data (``torch.tensor(..., device=...)`` in
    ``deformable_weighted_average``) are lifted into the program as device tensors, so
    running it copies nothing from the host."""
    with torch.no_grad():
        exported = torch.export.export(_Call(model), (guidance, target), strict=False)
    return exported.module()


class _Graph:
    """A captured graph with its static input and output tensors."""

    def __init__(self, graph, guidance: torch.Tensor, target: torch.Tensor, output: torch.Tensor):
        self.graph, self.guidance, self.target, self.output = graph, guidance, target, output


class TorchCudaEngine(Engine):
    """FDKN / DKN in PyTorch on a CUDA device (see the module docstring).

    DKN runs as its ``inference`` setting says (``single_pass`` or the paper's
    ``shift_and_stitch``); both give the same result.

    Args:
        model: the network (not modified; the engine keeps an optimised copy).
        device: ``cuda`` or ``cuda:N``.
        precision: ``fp16`` (FP32 islands) or ``fp32`` (cuDNN may use TF32 for the
            convolutions, as PyTorch allows by default).
        channels_last: keep the convolution weights in NHWC, which cuDNN's tensor-core
            kernels prefer.
        cuda_graphs: capture and replay CUDA graphs per input size.
        mixed: ``cast`` or ``autocast`` (see :func:`mixed_precision_model`).
    """

    name = "torch"

    def __init__(
        self,
        model: nn.Module,
        device: str = "cuda",
        *,
        precision: str = "fp16",
        channels_last: bool = True,
        cuda_graphs: bool = True,
        mixed: str = "cast",
    ):
        check_gpu_arguments("torch CUDA", device, precision)
        self.device = device
        self._device = torch.device(device)
        if self._device.index is None:
            self._device = torch.device("cuda", torch.cuda.current_device())
        self.precision = precision
        self.channels_last = channels_last
        self.cuda_graphs = cuda_graphs
        if precision == "fp16":
            copy = mixed_precision_model(model, torch.float16, mixed)
        else:
            copy = fold_batch_norm(model)
        if channels_last:
            copy = copy.to(memory_format=torch.channels_last)
        self.model = copy.to(self._device).eval()
        self.stream = torch.cuda.Stream(self._device)
        self._graphs: dict[tuple, _Graph] = {}
        self._eager_sizes: set[tuple] = set()
        self._buffers: dict[tuple, tuple[torch.Tensor, ...]] = {}

    # ------------------------------------------------------------------ graphs

    def _capture(self, guidance: torch.Tensor, target: torch.Tensor) -> _Graph | None:
        key = (tuple(guidance.shape), tuple(target.shape))
        if len(self._graphs) >= MAX_GRAPHS:
            self._eager_sizes.add(key)
            return None
        # A side stream of its own, so that a failed capture cannot leave the engine's
        # stream in a capturing state; replays then run on the engine's stream.
        side = torch.cuda.Stream(self._device)
        side.wait_stream(self.stream)
        try:
            with torch.cuda.stream(side):
                static_g = guidance.clone()
                static_t = target.clone()
                forward = export_for_capture(self.model, static_g, static_t)
                for _ in range(2):  # warm-up on the (non-default) capture stream
                    forward(static_g, static_t)
            side.synchronize()
            graph = torch.cuda.CUDAGraph()
            # thread_local: other threads' CUDA calls (e.g. a ROS executor) cannot break it
            with torch.cuda.graph(graph, stream=side, capture_error_mode="thread_local"):
                output = forward(static_g, static_t)
            self.stream.wait_stream(side)
        except Exception as exc:  # export or capture: run this size eagerly
            self.stream.wait_stream(side)
            self._eager_sizes.add(key)
            height, width = target.shape[-2:]
            logger.warning(
                "CUDA graph capture failed for %dx%d (W x H), running it eagerly: %s",
                width,
                height,
                " ".join(str(exc).split())[:300],
            )
            return None
        captured = _Graph(graph, static_g, static_t, output)
        self._graphs[key] = captured
        return captured

    def _forward(self, guidance: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """On :attr:`stream`, in inference mode: the output (a graph's static tensor or a
        fresh one)."""
        key = (tuple(guidance.shape), tuple(target.shape))
        if self.cuda_graphs and key not in self._eager_sizes:
            captured = self._graphs.get(key) or self._capture(guidance, target)
            if captured is not None:
                captured.guidance.copy_(guidance)
                captured.target.copy_(target)
                captured.graph.replay()
                return captured.output
        return self.model(guidance, target)

    # ------------------------------------------------------------------ run

    def run_tensors(self, guidance: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """guidance (1, C, H, W) and target (1, 1, H, W), float32 tensors on this device
        -> a new (1, 1, H, W) float32 tensor on it. The work is queued on :attr:`stream`
        and ordered with the caller's current stream both ways."""
        current = torch.cuda.current_stream(self._device)
        self.stream.wait_stream(current)
        with torch.inference_mode(), torch.cuda.stream(self.stream):
            output = self._forward(guidance.float(), target.float())
        current.wait_stream(self.stream)
        return output.float().clone(memory_format=torch.contiguous_format)

    def _staging(self, gshape: tuple, tshape: tuple) -> tuple[torch.Tensor, ...]:
        key = (gshape, tshape)
        if key not in self._buffers:
            if len(self._buffers) >= 2 * MAX_GRAPHS:
                self._buffers.clear()
            pinned = {"pin_memory": True, "dtype": torch.float32}
            on_gpu = {"device": self._device, "dtype": torch.float32}
            self._buffers[key] = (
                torch.empty(gshape, **pinned),
                torch.empty(tshape, **pinned),
                torch.empty(tshape, **pinned),
                torch.empty(gshape, **on_gpu),
                torch.empty(tshape, **on_gpu),
            )
        return self._buffers[key]

    def run(self, guidance: np.ndarray, target: np.ndarray) -> np.ndarray:
        host_g, host_t, host_out, dev_g, dev_t = self._staging(guidance.shape, target.shape)
        np.copyto(host_g.numpy(), guidance, casting="same_kind")
        np.copyto(host_t.numpy(), target, casting="same_kind")
        with torch.inference_mode(), torch.cuda.stream(self.stream):
            dev_g.copy_(host_g, non_blocking=True)
            dev_t.copy_(host_t, non_blocking=True)
            output = self._forward(dev_g, dev_t)
            host_out.copy_(output, non_blocking=True)
        self.stream.synchronize()
        return host_out.numpy().copy()

    def describe(self) -> str:
        extras = [self.precision]
        if self.channels_last:
            extras.append("channels-last")
        if self.cuda_graphs:
            extras.append("CUDA graphs")
        return f"torch on {self.device} ({', '.join(extras)})"
