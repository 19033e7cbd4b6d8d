"""Inference-only rewrites of a model that keep its outputs (to float rounding), and
process settings that make CPU inference faster. Measured in ``bench/RESULTS.md``.

``fold_batch_norm`` folds every eval-mode BatchNorm into the convolution that feeds it:
for y = gamma (conv(x) - mean) / sqrt(var + eps) + beta the folded convolution has
weight W * s and bias (b - mean) * s + beta with s = gamma / sqrt(var + eps), per
output channel. The BatchNorm is replaced by ``nn.Identity`` so the model's own
``forward`` (and DKN's dilated ``F.conv2d`` on ``layer.weight``) is unchanged.

Pairs are found structurally: in an ``nn.Sequential`` a ``Conv2d`` directly followed by
a ``BatchNorm2d`` (FDKN's streams), and in any module the children ``convN`` /
``bnN`` with the same suffix N (DKN's streams, whose forward applies ``bnN`` to the
output of ``convN``).
"""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import sys

import torch
from torch import nn

__all__ = [
    "CPU_PRECISIONS",
    "ShrinkAfterPeak",
    "cpu_computes_bf16",
    "fold_batch_norm",
    "fold_conv_bn",
    "optimise_for_cpu",
    "release_free_memory",
    "to_bfloat16",
    "tune_glibc_malloc",
]

CPU_PRECISIONS = ("fp32", "bf16")  # what the PyTorch CPU engine computes FDKN's streams in


@torch.no_grad()
def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold ``bn`` (eval-mode statistics) into ``conv`` in place."""
    if conv.out_channels != bn.num_features:
        raise ValueError(f"cannot fold {bn} into {conv}: channel counts differ")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(f"cannot fold {bn}: it tracks no running statistics")
    scale = torch.rsqrt(bn.running_var.double() + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.double()
    shift = -bn.running_mean.double() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.double()
    weight = conv.weight.double() * scale.view(-1, *([1] * (conv.weight.dim() - 1)))
    bias = conv.bias.double() * scale + shift if conv.bias is not None else shift
    conv.weight.copy_(weight.to(conv.weight.dtype))
    if conv.bias is None:
        conv.bias = nn.Parameter(bias.to(conv.weight.dtype), requires_grad=False)
    else:
        conv.bias.copy_(bias.to(conv.bias.dtype))


def _fold_in(module: nn.Module) -> int:
    """Fold the pairs directly inside ``module``; the number folded."""
    folded = 0
    if isinstance(module, nn.Sequential):
        names = list(module._modules)
        for first, second in zip(names, names[1:], strict=False):
            conv, bn = module._modules[first], module._modules[second]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                fold_conv_bn(conv, bn)
                module._modules[second] = nn.Identity()
                folded += 1
    for name, bn in list(module.named_children()):
        if not (name.startswith("bn") and isinstance(bn, nn.BatchNorm2d)):
            continue
        conv = getattr(module, "conv" + name[2:], None)
        if isinstance(conv, nn.Conv2d):
            fold_conv_bn(conv, bn)
            setattr(module, name, nn.Identity())
            folded += 1
    return folded


def fold_batch_norm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with each BatchNorm folded into its convolution.

    The input model is not modified. BatchNorms that follow no convolution (by the
    rules of the module docstring) are left as they are.
    """
    model = copy.deepcopy(model).eval()
    for module in list(model.modules()):
        _fold_in(module)
    return model


def optimise_for_cpu(model: nn.Module, channels_last: bool = True) -> nn.Module:
    """An eval-mode copy of ``model`` for CPU inference: BatchNorm folded, and weights in
    channels-last (NHWC) layout, which oneDNN's convolutions prefer (no reorders).

    The output is the same to float rounding (max abs difference ~1e-6 on FDKN).
    """
    model = fold_batch_norm(model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def cpu_computes_bf16() -> bool:
    """True when oneDNN has native bfloat16 arithmetic on this CPU (AVX-512 BF16 or AMX):
    there the bfloat16 streams of FDKN are 2 to 3 times faster than float32; elsewhere
    bfloat16 is emulated and slower, so it is not offered."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def to_bfloat16(model: nn.Module) -> nn.Module:
    """A copy of an FDKN whose two streams (convolutions and the 1 x 1 heads) hold
    bfloat16 weights: the streams then compute in bfloat16 and
    :meth:`~dkn_ros.models.fdkn.FDKN.kernels` hands float32 weights and offsets to the
    deformable weighted average and the residual add, which stay float32. The accuracy
    cost is checked against float32 in ``test/test_precision.py`` (at most 0.05 RMSE on
    middlebury30 x8).

    Raises:
        ValueError: ``model`` is not an FDKN (DKN has no bfloat16 path).
    """
    from dkn_ros.models.fdkn import FDKN

    if not isinstance(model, FDKN):
        raise ValueError(f"bf16 is offered for FDKN only, not {type(model).__name__}")
    model = copy.deepcopy(model).eval()
    model.guidance_stream.to(torch.bfloat16)
    model.target_stream.to(torch.bfloat16)
    return model


_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune_glibc_malloc(mmap_threshold: int = 32 << 20, trim_threshold: int = 1 << 30) -> bool:
    """Keep large tensors on glibc's heap instead of fresh ``mmap`` pages (process-wide).

    PyTorch's CPU allocator does not cache: every temporary of the deformable weighted
    average (9 x H x W floats, 11 MB at 640 x 480) is a new ``mmap``, zero-filled page
    by page on first touch, and unmapped again. Raising glibc's mmap threshold (its
    maximum is 32 MiB on 64-bit) and trim threshold lets freed blocks be reused: FDKN at
    640 x 480 on one core goes from about 390 to 320 ms. The cost is that the process
    keeps its peak heap mapped. Same effect as the environment variables
    ``MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824``.

    Returns:
        True if both settings were applied (glibc on Linux), False otherwise.
    """
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok_mmap = mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)) == 1
    ok_trim = mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)) == 1
    return ok_mmap and ok_trim


def _libc():
    """glibc through ctypes, or None (not Linux, not glibc)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


def release_free_memory() -> bool:
    """Give the free memory of every glibc heap back to the kernel (``malloc_trim(0)``),
    whatever the trim threshold; True if glibc did. About 15 ms after a 1920 x 1080 frame.
    """
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0))


class ShrinkAfterPeak:
    """Says when an engine should let go of the buffers of a larger frame.

    With :func:`tune_glibc_malloc` (and ONNX Runtime's arena) the buffers of the largest
    frame stay mapped for reuse: right while frames keep their size, but one large frame
    (a 1920 x 1080 one among 640 x 480 ones) would hold its 1.3 GB for ever. ``update``
    returns True for the first frame smaller than the largest since the last release:
    the engine then releases its free memory once (:func:`release_free_memory`, ONNX
    Runtime's arena shrinkage) and frames of a steady size pay nothing.
    """

    def __init__(self) -> None:
        self.peak = 0

    def update(self, pixels: int) -> bool:
        """Record a frame of ``pixels`` pixels; True when it is smaller than the peak."""
        shrink = pixels < self.peak
        self.peak = pixels if shrink else max(self.peak, pixels)
        return shrink
