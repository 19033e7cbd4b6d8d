"""TensorRT engine: the exported ONNX graph built into a TensorRT 10 engine, cached on disk.

Build (once per key, see :func:`engine_cache_key`)
    The model is exported with ``onnx_export`` (dynamo exporter, opset 18, one
    ``GridSample``; cached by ``onnx_engine.cached_onnx``) and parsed with TensorRT's
    ``OnnxParser``. Precision ``fp16`` sets ``BuilderFlag.FP16`` and keeps every layer
    outside the convolution trunk in FP32 with per-layer precision constraints
    (``layer.precision`` and ``layer.set_output_type``, honoured under
    ``BuilderFlag.PREFER_PRECISION_CONSTRAINTS``): see :func:`fp16_trunk` for which
    layers may run in FP16. So the sampling grid, the ``GridSample``, the kernel
    normalisation, the weighted sum and the residual add are FP32, and the target that
    the residual adds back is never rounded to FP16. One optimisation profile covers
    the frame sizes from ``min_size`` to ``size`` (H, W) and is tuned for ``size`` (the
    camera's resolution). A timing cache (one file per TensorRT version and GPU) makes
    rebuilds for other sizes or weights faster.

Cache
    Engines are kept in ``$DKN_ROS_CACHE_DIR/tensorrt``, else
    ``$XDG_CACHE_HOME/dkn_ros/tensorrt``, else ``~/.cache/dkn_ros/tensorrt`` (beside the
    ONNX cache), named ``{model}-{precision}-{H}x{W}-{key}.plan``. The key hashes the
    ONNX file's content, the TensorRT version, the GPU's name and compute capability,
    the precision, the profile's shapes and :data:`ENGINE_FORMAT`; any change gives a
    new file, an unchanged key reuses the file across launches. Building logs one line
    beforehand with an estimate of how long it takes (the last build's time on this
    machine, recorded in ``build_times.json``, else a rough default).

Run
    Device buffers for the largest profile shape and pinned host buffers are allocated
    once; a frame is copied host -> pinned -> device on the engine's own CUDA stream
    (``torch.cuda.Stream``), run with ``execute_async_v3`` and copied back. Torch owns
    the CUDA context and the memory (no pycuda). A frame outside the profile raises
    :class:`UnsupportedShapeError`; ``create_engine`` then runs that size on the next
    engine of the fallback chain (see ``dkn_ros.engines``).

Ahead of time (so that the first launch on a robot does not wait for the build)::

    dkn-ros build-engine --model fdkn --scale 8 --size 640x480
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dkn_ros.engines.base import PRECISIONS, Engine, check_gpu_arguments
from dkn_ros.engines.onnx_engine import cached_onnx
from dkn_ros.engines.onnx_export import (
    DEFAULT_OPSET,
    INPUT_NAMES,
    OUTPUT_NAMES,
)
from dkn_ros.engines.onnx_export import (
    guidance_channels as model_guidance_channels,
)
from dkn_ros.native import cache_root

__all__ = [
    "ENGINE_FORMAT",
    "PRECISIONS",
    "TENSORRT_ONNX_OPS",
    "TENSORRT_OPSETS",
    "BuildRequest",
    "EngineBuildError",
    "GraphNode",
    "TensorRTEngine",
    "UnsupportedShapeError",
    "build_serialized_engine",
    "default_engine_dir",
    "engine_cache_key",
    "fp16_trunk",
    "onnx_graph_nodes",
    "profile_accepts",
    "tensorrt_import_error",
    "unsupported_onnx_ops",
]

logger = logging.getLogger(__name__)

ENGINE_FORMAT = 1  # bump when the build settings change for the same key inputs
DEFAULT_SIZE = (480, 640)  # (H, W) the profile is tuned for when none is given
MIN_SIDE = 8  # smallest H and W the profile accepts
WORKSPACE_BYTES = 1 << 30
# Rough first-build estimates (seconds) before this machine has measured one; an H100
# builds FDKN in well under these, a Jetson can take longer.
DEFAULT_BUILD_ESTIMATE_S = {"fdkn": 120.0, "dkn": 300.0}

# ONNX operators that TensorRT 10 imports, i.e. the rows marked "Y" in the ONNX-TensorRT
# support matrix, onnx/onnx-tensorrt docs/operators.md, "TensorRT 10.15 supports
# operators in the inclusive range of opset 9 to opset 24" (release/10.15). Restrictions
# that matter here: GridSample needs a 4-D input (ours is), Resize has no antialiasing.
TENSORRT_ONNX_OPS = frozenset(
    """
    Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh Attention AveragePool
    BatchNormalization BlackmanWindow Cast CastLike Ceil Celu Clip Concat Constant
    ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DeformConv DepthToSpace
    DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor
    Gather GatherElements GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool
    Greater GreaterOrEqual GridSample GroupNormalization GRU HammingWindow HannWindow
    HardSigmoid HardSwish Hardmax Identity If ImageScaler InstanceNormalization IsInf
    IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN LSTM
    LpNormalization LpPool MatMul Max MaxPool Mean MeanVarianceNormalization Min Mish Mod
    Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad ParametricSoftplus Pow PRelu
    QuantizeLinear RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range
    Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean
    ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence
    RMSNormalization RNN RoiAlign RotaryEmbedding Round STFT ScaledTanh Scan Scatter
    ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax
    Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh TensorScatter
    ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
    """.split()
)
# Opsets every TensorRT 10 imports: 10.0 takes 9..20 (10.15: 9..24), so an opset-18
# graph is read by all of them.
TENSORRT_OPSETS = (9, 20)


class UnsupportedShapeError(ValueError):
    """A frame size outside the engine's optimisation profile."""


class EngineBuildError(RuntimeError):
    """TensorRT could not parse the graph or build the engine (one-line message)."""


def tensorrt_import_error() -> str | None:
    """None when ``import tensorrt`` works, else why not (one line)."""
    try:
        import tensorrt  # noqa: F401
    except Exception as exc:  # ImportError, or a broken install's OSError
        return f"TensorRT is not installed ({type(exc).__name__}: {exc})"
    return None


def default_engine_dir() -> Path:
    """Where engines are cached by default (see the module docstring)."""
    return cache_root() / "tensorrt"


# --------------------------------------------------------------------------- cache key


def engine_cache_key(
    *,
    onnx_sha256: str,
    tensorrt_version: str,
    gpu_name: str,
    compute_capability: tuple[int, int],
    precision: str,
    min_shape: tuple[int, int],
    opt_shape: tuple[int, int],
    max_shape: tuple[int, int],
) -> str:
    """The name of the engine built from these inputs: 24 hex digits of a SHA-256.

    Every argument changes the key; nothing else does (besides :data:`ENGINE_FORMAT`).
    Shapes are (H, W) of the frames.
    """
    fields = {
        "onnx_sha256": str(onnx_sha256),
        "tensorrt_version": str(tensorrt_version),
        "gpu_name": str(gpu_name),
        "compute_capability": [int(v) for v in compute_capability],
        "precision": str(precision),
        "min_shape": [int(v) for v in min_shape],
        "opt_shape": [int(v) for v in opt_shape],
        "max_shape": [int(v) for v in max_shape],
        "format": ENGINE_FORMAT,
    }
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def profile_accepts(
    shape: tuple[int, int], min_shape: tuple[int, int], max_shape: tuple[int, int]
) -> bool:
    """True when a frame of ``shape`` (H, W) lies in the profile [min_shape, max_shape]."""
    return all(lo <= v <= hi for v, lo, hi in zip(shape, min_shape, max_shape, strict=True))


# --------------------------------------------------------------------------- FP32 islands


@dataclass(frozen=True)
class GraphNode:
    """One operation of a graph, for :func:`fp16_trunk` (an ONNX node or a TensorRT layer).

    Attributes:
        name: unique name.
        is_conv: True for a convolution.
        inputs, outputs: names of the tensors it reads and writes.
    """

    name: str
    is_conv: bool
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def fp16_trunk(nodes: Iterable[GraphNode]) -> set[str]:
    """The names of the nodes that may run in FP16: the convolution trunk.

    A node is in the trunk when it lies on a path from a convolution to a convolution
    (both ends included): the convolutions and what sits between them (ReLU here). The
    layers before the first convolution (input padding, pixel unshuffle) and after the
    1 x 1 heads (sigmoid, stream products, pixel shuffle, the sampling grid, GridSample,
    kernel normalisation, weighted sum, residual add, crop) are outside it and stay FP32.
    """
    nodes = list(nodes)
    producer = {out: node.name for node in nodes for out in node.outputs}
    consumers: dict[str, list[str]] = {}
    for node in nodes:
        for tensor in node.inputs:
            consumers.setdefault(tensor, []).append(node.name)
    by_name = {node.name: node for node in nodes}

    def reach(start: list[str], step: Callable[[GraphNode], Iterable[str]]) -> set[str]:
        seen, todo = set(start), list(start)
        while todo:
            for nxt in step(by_name[todo.pop()]):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    convs = [node.name for node in nodes if node.is_conv]
    below = reach(convs, lambda n: (c for t in n.outputs for c in consumers.get(t, ())))
    above = reach(convs, lambda n: (producer[t] for t in n.inputs if t in producer))
    return below & above


def onnx_graph_nodes(path: str | os.PathLike) -> list[GraphNode]:
    """The main graph of the ONNX file at ``path`` as :class:`GraphNode` s."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return [
        GraphNode(
            node.name or f"#{i}",
            node.op_type == "Conv",
            tuple(t for t in node.input if t),
            tuple(t for t in node.output if t),
        )
        for i, node in enumerate(graph.node)
    ]


def unsupported_onnx_ops(op_types: Iterable[str]) -> set[str]:
    """The op types that TensorRT 10's ONNX parser does not import."""
    return set(op_types) - TENSORRT_ONNX_OPS


def _network_nodes(network, trt) -> list[GraphNode]:
    nodes = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        inputs = [layer.get_input(j) for j in range(layer.num_inputs)]
        outputs = [layer.get_output(j) for j in range(layer.num_outputs)]
        nodes.append(
            GraphNode(
                f"{i}:{layer.name}",
                layer.type == trt.LayerType.CONVOLUTION,
                tuple(t.name for t in inputs if t is not None),
                tuple(t.name for t in outputs if t is not None),
            )
        )
    return nodes


def constrain_fp32_islands(network, trt) -> int:
    """Pin every float layer outside :func:`fp16_trunk` to FP32; returns how many."""
    nodes = _network_nodes(network, trt)
    trunk = fp16_trunk(nodes)
    skip = {trt.LayerType.CONSTANT, trt.LayerType.SHAPE, trt.LayerType.CAST}
    pinned = 0
    for i, node in enumerate(nodes):
        layer = network.get_layer(i)
        if node.name in trunk or layer.type in skip:
            continue
        outputs = [layer.get_output(j) for j in range(layer.num_outputs)]
        if not outputs or any(t is None or t.dtype != trt.float32 for t in outputs):
            continue  # shape arithmetic (int32/int64/bool)
        layer.precision = trt.float32
        for j in range(layer.num_outputs):
            layer.set_output_type(j, trt.float32)
        pinned += 1
    return pinned


# --------------------------------------------------------------------------- build


@dataclass(frozen=True)
class BuildRequest:
    """What :func:`build_serialized_engine` builds.

    Attributes:
        onnx_path: the graph (inputs ``guidance`` (1, C, H, W), ``target`` (1, 1, H, W)).
        precision: ``fp16`` or ``fp32``.
        min_shape, opt_shape, max_shape: (H, W) of the optimisation profile.
        guidance_channels: C.
        timing_cache: file of the timing cache (read if present, written after the build).
    """

    onnx_path: Path
    precision: str
    min_shape: tuple[int, int]
    opt_shape: tuple[int, int]
    max_shape: tuple[int, int]
    guidance_channels: int = 3
    timing_cache: Path | None = None


def build_serialized_engine(request: BuildRequest) -> bytes:
    """Build the engine described by ``request`` with the TensorRT 10 Python API.

    Raises:
        EngineBuildError: the parser or the builder failed (their messages, one line).
    """
    import tensorrt as trt

    trt_logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(trt_logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse(request.onnx_path.read_bytes(), str(request.onnx_path)):
        errors = "; ".join(str(parser.get_error(i).desc()) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT could not parse {request.onnx_path.name}: {errors}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if request.precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
        config.set_flag(trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
        pinned = constrain_fp32_islands(network, trt)
        logger.debug("TensorRT: %d layers pinned to FP32", pinned)
    elif request.precision != "fp32":
        raise ValueError(f"precision must be one of {PRECISIONS}, got {request.precision!r}")

    profile = builder.create_optimization_profile()
    channels = {"guidance": request.guidance_channels, "target": 1}
    sizes = (request.min_shape, request.opt_shape, request.max_shape)
    for name in INPUT_NAMES:
        profile.set_shape(name, *[(1, channels[name], *size) for size in sizes])
    config.add_optimization_profile(profile)

    cache_bytes = b""
    if request.timing_cache is not None and request.timing_cache.is_file():
        cache_bytes = request.timing_cache.read_bytes()
    timing_cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(timing_cache, False)  # ignore_mismatch=False: same GPU only

    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineBuildError(
            f"TensorRT could not build an engine from {request.onnx_path.name} "
            f"({request.precision}); see TensorRT's messages above"
        )
    if request.timing_cache is not None:
        _write_atomically(request.timing_cache, bytes(config.get_timing_cache().serialize()))
    return bytes(plan)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


# --------------------------------------------------------------------------- engine


class TensorRTEngine(Engine):
    """FDKN / DKN as a TensorRT engine on one GPU (see the module docstring).

    Args:
        model_or_onnx: the network (exported once, cached) or an ``.onnx`` file with
            inputs ``guidance`` / ``target`` and output ``depth``.
        device: ``cuda`` or ``cuda:N``.
        size: (H, W) the profile is tuned for and its largest frame; the camera's
            resolution (default 480 x 640).
        min_size: (H, W) of the smallest frame the profile accepts.
        precision: ``fp16`` (FP32 islands, see :func:`fp16_trunk`) or ``fp32``.
        cache_dir: engine cache folder (default :func:`default_engine_dir`).
        onnx_cache_dir: ONNX cache folder (default ``onnx_engine.default_cache_dir``).
        rebuild: build even when the cache holds an engine for the key.
        builder: builds a :class:`BuildRequest` into a serialized engine (default
            :func:`build_serialized_engine`); a seam for tests.
        guidance_channels: C when ``model_or_onnx`` is a file (read from the model
            otherwise).

    Attributes:
        engine_path: the cached engine file. built: True if this instance built it.
        key: the cache key (:func:`engine_cache_key`).

    Raises:
        ImportError: TensorRT is not installed. RuntimeError: no CUDA device.
        EngineBuildError: the build failed.
    """

    name = "tensorrt"

    def __init__(
        self,
        model_or_onnx: nn.Module | str | os.PathLike,
        device: str = "cuda",
        *,
        size: tuple[int, int] | None = None,
        min_size: tuple[int, int] = (MIN_SIDE, MIN_SIDE),
        precision: str = "fp16",
        cache_dir: str | os.PathLike | None = None,
        onnx_cache_dir: str | os.PathLike | None = None,
        rebuild: bool = False,
        builder: Callable[[BuildRequest], bytes] | None = None,
        guidance_channels: int | None = None,
    ):
        reason = tensorrt_import_error()
        if reason:
            raise ImportError(reason)
        import tensorrt as trt

        check_gpu_arguments("tensorrt", device, precision)
        self._trt = trt
        self.device = device
        self._torch_device = torch.device(device)
        index = self._torch_device.index or 0
        self.precision = precision
        self.max_shape = tuple(int(v) for v in (size or DEFAULT_SIZE))
        self.min_shape = tuple(
            min(int(a), int(b)) for a, b in zip(min_size, self.max_shape, strict=True)
        )

        if isinstance(model_or_onnx, nn.Module):
            model_name = type(model_or_onnx).__name__.lower()
            channels = model_guidance_channels(model_or_onnx)
            onnx_path, _ = cached_onnx(model_or_onnx, onnx_cache_dir, DEFAULT_OPSET)
        else:
            onnx_path = Path(model_or_onnx)
            if not onnx_path.is_file():
                raise FileNotFoundError(f"{onnx_path}: ONNX file not found")
            model_name = _slug(onnx_path.stem.split("-")[0]) or "model"
            channels = guidance_channels or 3
        self.onnx_path = onnx_path
        self.model_name = model_name
        self.guidance_channels = channels

        gpu_name = torch.cuda.get_device_name(index)
        capability = torch.cuda.get_device_capability(index)
        self.key = engine_cache_key(
            onnx_sha256=file_sha256(onnx_path),
            tensorrt_version=trt.__version__,
            gpu_name=gpu_name,
            compute_capability=capability,
            precision=precision,
            min_shape=self.min_shape,
            opt_shape=self.max_shape,
            max_shape=self.max_shape,
        )
        folder = Path(cache_dir) if cache_dir is not None else default_engine_dir()
        height, width = self.max_shape
        self.engine_path = folder / f"{model_name}-{precision}-{height}x{width}-{self.key}.plan"
        sm = f"sm{capability[0]}{capability[1]}"
        timing = folder / f"timing-{_slug(trt.__version__)}-{_slug(gpu_name)}-{sm}.cache"
        request = BuildRequest(
            onnx_path, precision, self.min_shape, self.max_shape, self.max_shape, channels, timing
        )

        with torch.cuda.device(index):
            self.built = False
            plan = None
            if self.engine_path.is_file() and not rebuild:
                plan = self.engine_path.read_bytes()
                self._engine = self._deserialize(plan)
                if self._engine is None:
                    logger.warning("%s could not be loaded; rebuilding it", self.engine_path)
            if plan is None or self._engine is None:
                plan = self._build(builder or build_serialized_engine, request, folder)
                self._engine = self._deserialize(plan)
                if self._engine is None:
                    raise EngineBuildError(
                        f"TensorRT could not load the engine it just built ({self.engine_path})"
                    )
            self._allocate()

    # ------------------------------------------------------------------ build and load

    def _build(self, builder, request: BuildRequest, folder: Path) -> bytes:
        estimate = _build_estimate(folder, self.model_name)
        height, width = self.max_shape
        logger.warning(
            "building the TensorRT engine for %s %s at %dx%d (W x H) on %s: about %s, once "
            "(cached as %s)",
            self.model_name,
            self.precision,
            width,
            height,
            torch.cuda.get_device_name(self._torch_device.index or 0),
            _duration_text(estimate),
            self.engine_path,
        )
        start = time.perf_counter()
        try:
            plan = builder(request)
        except EngineBuildError:
            raise
        except Exception as exc:
            raise EngineBuildError(f"TensorRT build failed: {' '.join(str(exc).split())}") from exc
        if not plan:
            raise EngineBuildError("TensorRT build returned no engine")
        elapsed = time.perf_counter() - start
        _write_atomically(self.engine_path, bytes(plan))
        _record_build_time(folder, self.model_name, elapsed)
        logger.info("TensorRT engine built in %.0f s: %s", elapsed, self.engine_path)
        self.built = True
        return bytes(plan)

    def _deserialize(self, plan: bytes):
        trt = self._trt
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        return self._runtime.deserialize_cuda_engine(plan)

    def _allocate(self) -> None:
        trt = self._trt
        engine = self._engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if sorted(inputs) != sorted(INPUT_NAMES) or outputs != list(OUTPUT_NAMES):
            raise EngineBuildError(
                f"{self.engine_path.name}: expected inputs {list(INPUT_NAMES)} and outputs "
                f"{list(OUTPUT_NAMES)}, got {inputs} and {outputs}"
            )
        self._context = engine.create_execution_context()
        if self._context is None:
            raise EngineBuildError("TensorRT could not create an execution context (GPU memory?)")
        self.stream = torch.cuda.Stream(self._torch_device)
        height, width = self.max_shape
        channels = {"guidance": self.guidance_channels, "target": 1, "depth": 1}
        self._device_buffers = {}
        self._host_buffers = {}
        for name in names:
            numel = channels[name] * height * width
            self._device_buffers[name] = torch.empty(
                numel, dtype=torch.float32, device=self._torch_device
            )
            self._host_buffers[name] = torch.empty(numel, dtype=torch.float32, pin_memory=True)
            self._context.set_tensor_address(name, self._device_buffers[name].data_ptr())
        self._shape: tuple[int, int] | None = None

    # ------------------------------------------------------------------ run

    def _set_shape(self, shape: tuple[int, int]) -> None:
        if not profile_accepts(shape, self.min_shape, self.max_shape):
            (h0, w0), (h1, w1) = self.min_shape, self.max_shape
            raise UnsupportedShapeError(
                f"frame {shape[0]}x{shape[1]} (H x W) is outside the TensorRT engine's profile "
                f"{h0}x{w0}..{h1}x{w1}"
            )
        if shape != self._shape:
            height, width = shape
            context = self._context
            ok = context.set_input_shape("guidance", (1, self.guidance_channels, height, width))
            ok = ok and context.set_input_shape("target", (1, 1, height, width))
            if not ok:
                raise UnsupportedShapeError(f"TensorRT refused the input shape {height}x{width}")
            self._shape = shape

    def _check(self, guidance_shape: tuple, target_shape: tuple) -> tuple[int, int]:
        height, width = target_shape[-2:]
        expected_g = (1, self.guidance_channels, height, width)
        if tuple(guidance_shape) != expected_g or tuple(target_shape) != (1, 1, height, width):
            raise ValueError(
                f"expected guidance {expected_g} and target (1, 1, {height}, {width}), got "
                f"{tuple(guidance_shape)} and {tuple(target_shape)}"
            )
        return int(height), int(width)

    def _enqueue(self) -> None:
        if not self._context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")

    def run(self, guidance: np.ndarray, target: np.ndarray) -> np.ndarray:
        shape = self._check(guidance.shape, target.shape)
        self._set_shape(shape)
        arrays = {"guidance": guidance, "target": target}
        with torch.cuda.stream(self.stream):
            for name, array in arrays.items():
                host = self._host_buffers[name][: array.size]
                np.copyto(host.numpy().reshape(array.shape), array, casting="same_kind")
                self._device_buffers[name][: array.size].copy_(host, non_blocking=True)
            self._enqueue()
            numel = shape[0] * shape[1]
            out = self._host_buffers["depth"][:numel]
            out.copy_(self._device_buffers["depth"][:numel], non_blocking=True)
        self.stream.synchronize()
        return out.numpy().reshape(1, 1, *shape).copy()

    def run_tensors(self, guidance: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The same on device tensors: float32 on this engine's device, (1, C, H, W) and
        (1, 1, H, W); returns a new (1, 1, H, W) tensor on the device. The work is queued
        on :attr:`stream` and ordered with the caller's current stream both ways."""
        shape = self._check(guidance.shape, target.shape)
        self._set_shape(shape)
        current = torch.cuda.current_stream(self._torch_device)
        self.stream.wait_stream(current)
        with torch.cuda.stream(self.stream):
            for name, tensor in (("guidance", guidance), ("target", target)):
                self._device_buffers[name][: tensor.numel()].copy_(tensor.reshape(-1))
            self._enqueue()
        current.wait_stream(self.stream)
        numel = shape[0] * shape[1]
        return self._device_buffers["depth"][:numel].view(1, 1, *shape).clone()

    def describe(self) -> str:
        height, width = self.max_shape
        return (
            f"tensorrt on {self.device} ({self.precision}, profile up to {width}x{height}, "
            f"{self.engine_path.name})"
        )


def _build_times_path(folder: Path) -> Path:
    return folder / "build_times.json"


def _build_estimate(folder: Path, model_name: str) -> float:
    try:
        times = json.loads(_build_times_path(folder).read_text())
        return float(times[model_name])
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_BUILD_ESTIMATE_S.get(model_name, 300.0)


def _record_build_time(folder: Path, model_name: str, seconds: float) -> None:
    path = _build_times_path(folder)
    try:
        times = json.loads(path.read_text())
        if not isinstance(times, dict):
            times = {}
    except (OSError, ValueError):
        times = {}
    times[model_name] = round(seconds, 1)
    try:
        _write_atomically(path, (json.dumps(times, indent=2) + "\n").encode())
    except OSError:  # a read-only cache still works, only the estimate is lost
        pass


def _duration_text(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    return f"{seconds / 60:.0f} min"
