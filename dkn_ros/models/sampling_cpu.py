"""FDKN's deformable weighted average (eq. 3-7) fused into one pass, for CPU inference.

:func:`dkn_ros.models.sampling.deformable_weighted_average_blocks` is the definition;
on a CPU, written as PyTorch tensor operations, it materialises the k^2 sample
positions, the grid, the k^2 bilinear samples and the normalised kernels of every
pixel as full-size tensors (about 20 passes over 9 x H x W floats) and costs as much as
the small FDKN's two streams. ``sampling_cpu.c`` computes the same thing pixel by pixel
in one loop that reads the kernels where the heads wrote them (the block layout of
pixel_shuffle) and writes only the output; it is compiled on first use
(:mod:`dkn_ros.native`) and equals the definition to float rounding
(``test/test_models.py``); ``bench/RESULTS.md`` has what it saves.

It is used for inference only (no autograd, not under tracing, export or
``torch.compile``), for float32 targets on the CPU, where a C compiler is found;
:func:`dkn_ros.models.sampling.deformable_weighted_average_blocks` decides. Setting the
environment variable ``DKN_NATIVE_KERNELS=0`` turns it off (for comparisons).
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from pathlib import Path

import torch

from dkn_ros import native

__all__ = ["usable", "weighted_average_blocks"]

SOURCE = Path(__file__).with_name("sampling_cpu.c")
MAX_KERNEL_SIZE, MAX_BLOCK = 7, 8  # the C file's fixed buffers

_I64, _F32, _PTR = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p


@lru_cache(maxsize=1)
def _function():
    """The C function with its argument types, or None without a compiler."""
    library = native.load(SOURCE)
    if library is None:
        return None
    function = library.weighted_average_blocks
    function.argtypes = [_PTR] * 4 + [_I64] * 9 + [_F32, _I64]
    function.restype = None
    return function


def usable(target: torch.Tensor, weights: torch.Tensor, offsets: torch.Tensor) -> bool:
    """Whether :func:`weighted_average_blocks` may stand in for the definition here:
    inference on the CPU (no gradient needed, not tracing, exporting or compiling), a
    float32 target, k <= 7, the C file compiled, and not turned off by
    ``DKN_NATIVE_KERNELS=0``."""
    if not native.ENABLED or target.device.type != "cpu" or target.dtype != torch.float32:
        return False
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling():
        return False
    if torch.is_grad_enabled() and any(t.requires_grad for t in (target, weights, offsets)):
        return False
    if weights.shape[1] > MAX_KERNEL_SIZE**2 * MAX_BLOCK**2:
        return False
    return _function() is not None


def weighted_average_blocks(
    target: torch.Tensor,
    weights: torch.Tensor,
    offsets: torch.Tensor,
    *,
    residual: bool,
    window: int,
    block: int,
) -> torch.Tensor:
    """:func:`dkn_ros.models.sampling.deformable_weighted_average_blocks` in one compiled
    pass (see there for the arguments and shapes, which it has checked), on
    ``torch.get_num_threads()`` of PyTorch's OpenMP threads.

    Args:
        target: (B, C, H, W) float32 on the CPU.
        weights: (B, k^2 block^2, H / block, W / block), any float dtype and layout.
        offsets: (B, 2 k^2 block^2, H / block, W / block), as ``weights``.

    Returns:
        (B, C, H, W) float32.
    """
    function = _function()
    batch, channels, height, width = target.shape
    h, w = weights.shape[-2:]
    kernel_size = int(round((weights.shape[1] // (block * block)) ** 0.5))
    target = target.detach().contiguous()
    # (B, h, w, channels) float32: free for the float32 channels-last heads of the CPU
    # engines, one cast for bfloat16 ones, one copy for (N, C, H, W) ones
    weights = weights.detach().permute(0, 2, 3, 1).to(torch.float32).contiguous()
    offsets = offsets.detach().permute(0, 2, 3, 1).to(torch.float32).contiguous()
    out = torch.empty_like(target, memory_format=torch.contiguous_format)
    pointers = [t.data_ptr() for t in (target, weights, offsets, out)]
    sizes = (batch, channels, height, width, h, w, kernel_size, block, int(bool(residual)))
    function(*pointers, *sizes, float(window // 2), torch.get_num_threads())
    return out
