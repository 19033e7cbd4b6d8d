"""Export DKN / FDKN to ONNX with dynamic height and width.

The exported graph has two inputs, ``guidance`` (1, C, H, W) and ``target``
(1, 1, H, W), float32, and one output ``depth`` (1, 1, H, W); H and W are dynamic
(symbolic ``height`` / ``width``), any size >= 2. The deformable sampling becomes one
ONNX ``GridSample`` (bilinear, border padding, align_corners=1).

Exporter choice (torch 2.13): the dynamo exporter (``torch.onnx.export(...,
dynamo=True, dynamic_shapes=...)``). The TorchScript exporter (``dynamo=False``) traces
with tensor-valued shapes, and ``deformable_weighted_average`` does Python arithmetic
on them (``int(round(k2 ** 0.5))``), which fails under tracing; it is also deprecated.
The dynamo exporter keeps sizes symbolic (SymInt), so the index arithmetic of the
sampling grid (``arange(h)``, ``2 / (W - 1)``, reshapes) stays dynamic in the graph.

Two details make the export hold for every size:

* FDKN pads H and W to a multiple of 4 behind a Python ``if pad_h or pad_w``. Under
  export that branch is decided once for the example size, so a model exported from
  a 480 x 640 example would reshape a 61 x 83 input wrongly. We export FDKN through
  :class:`_PadToMultiple`, which always pads by ``(-H) % 4`` (zero for multiples of 4,
  which ONNX ``Pad`` handles) and crops back; the model then sees sizes that are
  provably multiples of 4 and its own branch folds away. Replicate padding before the
  model is exactly what ``FDKN.forward`` does, so the result is unchanged.
* The dynamo exporter's native opset is 18; asking for 17 runs the ONNX version
  converter, which fails on ``ReduceMean`` with axes as an input (opset 18 form), and
  the exporter then silently keeps 18. So the default is 18 and anything < 17 is refused.

DKN is exported in its single-pass (dilated) form whatever its ``inference`` setting:
shift-and-stitch (16 passes with strided writes into the output) gives the same
result and is not exportable as one static graph worth having.

BatchNorm is exported in eval mode (the model is switched to eval for the export and
its mode restored afterwards); the exporter's optimiser folds it into the convolutions.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dkn_ros.models.dkn import DKN
from dkn_ros.models.fdkn import FDKN, RESAMPLE

__all__ = [
    "DEFAULT_OPSET",
    "INPUT_NAMES",
    "OUTPUT_NAMES",
    "export_onnx",
    "exportable_module",
    "guidance_channels",
    "onnx_op_types",
    "onnx_opset",
]

DEFAULT_OPSET = 18
MIN_OPSET = 17
INPUT_NAMES = ("guidance", "target")
OUTPUT_NAMES = ("depth",)
MAX_SIDE = 16384  # upper bound given to the exporter for H and W


class _PadToMultiple(nn.Module):
    """FDKN with its pad-to-a-multiple-of-4 written without a Python branch."""

    def __init__(self, model: nn.Module, multiple: int):
        super().__init__()
        self.model = model
        self.multiple = multiple

    def forward(self, guidance: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        height, width = target.shape[-2:]
        pad = (0, (-width) % self.multiple, 0, (-height) % self.multiple)
        guidance = F.pad(guidance, pad, mode="replicate")
        target = F.pad(target, pad, mode="replicate")
        return self.model(guidance, target)[:, :, :height, :width]


class _SinglePass(nn.Module):
    """DKN in its single-pass (dilated) form, whatever its ``inference`` setting."""

    def __init__(self, model: DKN):
        super().__init__()
        self.model = model

    def forward(self, guidance: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.model.forward_single_pass(guidance, target)


def exportable_module(model: nn.Module) -> nn.Module:
    """The module that is actually exported for ``model`` (see the module docstring)."""
    if isinstance(model, FDKN):
        return _PadToMultiple(model, RESAMPLE)
    if isinstance(model, DKN):
        return _SinglePass(model)
    return model


@contextlib.contextmanager
def _quiet_exporter():
    """Silence the exporter's progress prints, warnings and torchvision notices."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch._dynamo", "torch.export")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    opset: int = DEFAULT_OPSET,
    height: int = 480,
    width: int = 640,
) -> Path:
    """Export ``model`` (FDKN or DKN) to ONNX at ``path`` with dynamic H and W.

    Args:
        model: the network; exported in eval mode (its mode is restored afterwards),
            from a CPU copy if it lives on a GPU, float32. DKN is exported single-pass.
        path: the ``.onnx`` file to write (parent folders are created). It is written
            to a temporary name first and renamed, so a reader never sees half a file.
        opset: ONNX opset, >= 17 (18 is the dynamo exporter's native one; see the
            module docstring).
        height, width: the example size used for the export; the graph accepts any size.

    Returns:
        The path written.
    """
    import onnx  # deferred: only export needs it

    if opset < MIN_OPSET:
        raise ValueError(f"opset must be >= {MIN_OPSET} (GridSample needs 16), got {opset}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    if device.type != "cpu":  # export a CPU copy; the caller's model stays where it is
        model = copy.deepcopy(model).cpu()
    channels = guidance_channels(model)
    example = (torch.rand(1, channels, height, width), torch.rand(1, 1, height, width))
    h_dim = torch.export.Dim("height", min=2, max=MAX_SIDE)
    w_dim = torch.export.Dim("width", min=2, max=MAX_SIDE)
    dims = {2: h_dim, 3: w_dim}

    was_training = model.training
    model.eval()
    try:
        with _quiet_exporter(), torch.no_grad():
            program = torch.onnx.export(
                exportable_module(model),
                example,
                input_names=list(INPUT_NAMES),
                output_names=list(OUTPUT_NAMES),
                opset_version=opset,
                dynamo=True,
                dynamic_shapes=(dims, dims),
                external_data=False,
                optimize=True,
                verbose=False,
            )
            program.save(str(tmp))
        onnx.checker.check_model(str(tmp))
        os.replace(tmp, path)
    finally:
        model.train(was_training)
        tmp.unlink(missing_ok=True)
    return path


def guidance_channels(model: nn.Module) -> int:
    """C of the guidance input, read from the first convolution of the guidance stream."""
    stream = getattr(model, "guidance_stream", None)
    convs = [m for m in stream.modules() if isinstance(m, nn.Conv2d)] if stream else []
    first = convs[0] if convs else None
    if first is None:
        return 3
    if isinstance(model, FDKN):
        return first.in_channels // (RESAMPLE * RESAMPLE)
    return first.in_channels


def onnx_op_types(path: str | os.PathLike) -> set[str]:
    """Every op type in the ONNX graph at ``path`` (main graph, subgraphs, functions)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    types: set[str] = set()

    def visit(graph: onnx.GraphProto) -> None:
        for node in graph.node:
            types.add(node.op_type)
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    visit(attr.g)
                for sub in attr.graphs:
                    visit(sub)

    visit(model.graph)
    for function in model.functions:
        for node in function.node:
            types.add(node.op_type)
    return types


def onnx_opset(path: str | os.PathLike) -> int:
    """The default-domain opset of the ONNX model at ``path``."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next(op.version for op in model.opset_import if op.domain in ("", "ai.onnx"))
