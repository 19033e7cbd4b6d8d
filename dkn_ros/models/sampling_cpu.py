"""FDKN's last step fused into one pass, for CPU inference.

FDKN ends with the products of its two streams' heads (sigmoid weights, offsets;
:meth:`dkn_ros.models.fdkn.FDKN.block_kernels`) and the deformable weighted average
(eq. 3-7, :func:`dkn_ros.models.sampling.deformable_weighted_average_blocks`): the
definitions. On a CPU, written as PyTorch tensor operations, they materialise the
products, their float32 casts, the k^2 sample positions, the grid, the samples and
the normalised kernels of every pixel as full-size tensors (about 25 passes over
9 x H x W floats), which cost as much as the small FDKN's convolutions.
``sampling_cpu.c`` computes the same thing pixel by pixel in one loop that reads the
four heads where they were written (channels last, float32 or bfloat16) and writes only
the output. It is compiled on first use (:mod:`dkn_ros.native`) and equals the
definitions to float rounding (``test/test_models.py``); ``bench/RESULTS.md`` has what
it saves.

:meth:`dkn_ros.models.fdkn.FDKN.forward` uses it for inference only (no autograd, not
under tracing, export or ``torch.compile``), for float32 targets on the CPU, where a C
compiler is found (:func:`usable`). ``DKN_NATIVE_KERNELS=0`` turns it off.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch

from dkn_ros import native

__all__ = ["fdkn_last_step", "usable"]

SOURCE = Path(__file__).with_name("sampling_cpu.c")
MAX_KERNEL_SIZE, MAX_BLOCK = 7, 8  # the C file's fixed buffers

_I64, _F32, _PTR = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p
ARGTYPES = (_PTR,) * 5 + (_I64, _PTR) + (_I64,) * 9 + (_F32, _I64)


def _function():
    """The C function, or None without a compiler."""
    return native.function(SOURCE, "fdkn_last_step", ARGTYPES)


def usable(target: torch.Tensor, *tensors: torch.Tensor, kernel_size: int, block: int) -> bool:
    """Whether :func:`fdkn_last_step` may stand in for the definitions here: inference
    on the CPU (no gradient needed for ``target`` or ``tensors``, e.g. the model's
    parameters; not tracing, exporting or compiling), a float32 target, the C file's
    limits (k <= 7, block <= 8), the C file compiled, and not turned off by
    ``DKN_NATIVE_KERNELS=0``."""
    if not native.ENABLED or target.device.type != "cpu" or target.dtype != torch.float32:
        return False
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling():
        return False
    if torch.is_grad_enabled() and any(t.requires_grad for t in (target, *tensors)):
        return False
    if kernel_size > MAX_KERNEL_SIZE or block > MAX_BLOCK:
        return False
    return _function() is not None


def fdkn_last_step(
    target: torch.Tensor,
    weight_logits: tuple[torch.Tensor, torch.Tensor],
    offsets: tuple[torch.Tensor, torch.Tensor],
    *,
    residual: bool,
    window: int,
    block: int,
) -> torch.Tensor:
    """``deformable_weighted_average_blocks(target, sigmoid(w_g) * sigmoid(w_t), o_g * o_t,
    ...)`` in one compiled pass on ``torch.get_num_threads()`` of PyTorch's OpenMP
    threads (the products are taken in float32).

    Args:
        target: (B, C, H, W) float32 on the CPU, H = block h, W = block w.
        weight_logits: the two weight heads' outputs before their sigmoid, each
            (B, k^2 block^2, h, w), float32 or bfloat16, any layout.
        offsets: the two offset heads' outputs, each (B, 2 k^2 block^2, h, w), of the
            same dtype.
        residual, window: as for ``deformable_weighted_average_blocks``.

    Returns:
        (B, C, H, W) float32.
    """
    batch, channels, height, width = target.shape
    h, w = weight_logits[0].shape[-2:]
    n_weights = weight_logits[0].shape[1]
    kernel_size = int(round((n_weights // (block * block)) ** 0.5))
    heads = [*weight_logits, *offsets]
    dtype = heads[0].dtype
    if dtype not in (torch.float32, torch.bfloat16) or any(t.dtype != dtype for t in heads):
        dtype = torch.float32
    expected = [(batch, n_weights, h, w)] * 2 + [(batch, 2 * n_weights, h, w)] * 2
    if kernel_size > MAX_KERNEL_SIZE or block > MAX_BLOCK:
        raise ValueError(f"k = {kernel_size} or block = {block} is beyond the C pass's 7 and 8")
    if kernel_size**2 * block**2 != n_weights or [tuple(t.shape) for t in heads] != expected:
        raise ValueError(
            f"heads {[tuple(t.shape) for t in heads]} do not fit k^2 {block}^2 weights and "
            f"twice as many offsets per pixel"
        )
    if (height, width) != (block * h, block * w):
        raise ValueError(f"target {height}x{width} is not {block} x the heads' {h}x{w}")
    target = target.detach().contiguous()
    # (B, h, w, channels): free for the channels-last heads of the CPU engines
    heads = [t.detach().permute(0, 2, 3, 1).to(dtype).contiguous() for t in heads]
    out = torch.empty_like(target, memory_format=torch.contiguous_format)
    _function()(
        target.data_ptr(), *[t.data_ptr() for t in heads], int(dtype == torch.bfloat16),
        out.data_ptr(), batch, channels, height, width, h, w, kernel_size, block,
        int(bool(residual)), float(window // 2), torch.get_num_threads(),
    )  # fmt: skip
    return out
