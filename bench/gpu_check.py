"""Check and time every CUDA path of FDKN and DKN against a CPU float64 reference.

One call on a GPU machine (from the repository root; the package need not be installed,
no ROS is imported)::

    PYTHONPATH=. python3 bench/gpu_check.py --json $OUT/gpu.json

What it does, at 640 x 480 (``--size``) with x8 depth (``--scale``):

* inputs: ``--sets`` synthetic RGB-D frames (``dkn_ros.synthetic``: colour, Kinect-like
  80 x 60 uint16 depth with noise and holes), prepared by the CPU pre-processing;
* reference: the same network in float64 on the CPU, per input set;
* paths (each one a row): PyTorch fp32 with TF32 off (strict), fp32 as PyTorch runs it
  by default (cuDNN may use TF32), channels-last, fp16 with FP32 islands by autocast and
  by casting, CUDA graphs; DKN single pass and shift-and-stitch; GPU pre/post-processing
  against the CPU's; TensorRT fp32 / fp16 when ``import tensorrt`` works; ONNX Runtime's
  CUDA provider when it is there. Rows that cannot run say why;
* check: max |out - ref| / (range of ref) and the RMSE on the same scale, against the
  bound of the row's precision (:data:`BOUNDS`); CUDA graph replay against eager;
* time: CUDA events around each call after a warm-up, ``--runs`` calls cycling over the
  input sets: median and p99 in ms ("gpu": device tensors in and out), and wall-clock
  milliseconds of the whole call with numpy in and out ("host");
* Middlebury: when ``middlebury30`` is in the data folder (``$DKN_DATA_DIR``, else
  ``../shared/data``), the x8 RMSE (0..255, DKN Table 3 protocol as in
  ``training/evaluate.py``) of the shipped weights in fp32 (TF32 off) and fp16; the
  target is |fp16 - fp32| <= 0.02.

FDKN uses ``dkn_ros/weights/fdkn_x8.safetensors``; DKN ``dkn_x8.safetensors`` when it
is shipped, else a randomly initialised DKN (marked in the output): the check is about
the arithmetic, not the weights.

Exit status: 0 when every check passed, 1 when a check failed (an error over its
bound, or a path that raised), 2 when there is no CUDA device (0 with
``--allow-no-cuda``, for CI smoke runs). ``--device cpu`` runs the same logic on the CPU
(fp32 and bfloat16 paths, wall-clock timing) at whatever size is given; the tests use it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import platform
import re
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from dkn_ros import processing  # noqa: E402

# Bounds on (max |out - ref|, RMSE), both divided by the range of the float64 reference.
BOUNDS = {
    "fp32-strict": (1e-4, 1e-5),  # fp32, TF32 off
    "fp32": (1e-2, 1e-3),  # fp32 as PyTorch runs it (cuDNN may use TF32: 10-bit mantissa)
    "bf16": (1e-1, 1e-2),  # CPU mode only
    "fp16": (2e-2, 2e-3),  # FP16 convolutions, FP32 islands
}
GRAPH_TOLERANCE = 1e-5  # |graph replay - eager|, same precision
FRAME_TOLERANCE_MM = 1  # |GPU pre/post - CPU pre/post| on uint16 millimetres
MIDDLEBURY_FP16_TARGET = 0.02  # |RMSE fp16 - RMSE fp32| on the 0..255 scale
TARGET_MS = {"fdkn": 1.0, "dkn": 10.0}  # per frame at 640 x 480 on an H100 (gpu median)


@dataclass
class Row:
    """One path: its errors against the reference and its timings."""

    model: str
    path: str
    precision: str = ""
    status: str = "ok"  # ok, FAIL, skipped
    note: str = ""
    max_rel: float | None = None
    rmse_rel: float | None = None
    bound: tuple[float, float] | None = None
    gpu_ms_median: float | None = None
    gpu_ms_p99: float | None = None
    host_ms_median: float | None = None
    host_ms_p99: float | None = None
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- helpers


def relative_errors(output: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(max |output - reference|, RMSE), each divided by the range of ``reference``."""
    reference = np.asarray(reference, dtype=np.float64)
    diff = np.asarray(output, dtype=np.float64) - reference
    span = float(reference.max() - reference.min()) or 1.0
    return float(np.abs(diff).max()) / span, float(np.sqrt(np.mean(diff * diff))) / span


def within(errors: tuple[float, float], bound: tuple[float, float], scale: float = 1.0) -> bool:
    """True when both errors are at most their bound (times ``scale``)."""
    return all(e <= b * scale for e, b in zip(errors, bound, strict=True))


def percentiles(samples_ms: list[float]) -> tuple[float, float]:
    """(median, p99) of a list of milliseconds."""
    values = np.asarray(samples_ms, dtype=np.float64)
    return float(np.median(values)), float(np.percentile(values, 99))


def parse_size(text: str) -> tuple[int, int]:
    """'640x480' (W x H) -> (480, 640) (H, W)."""
    match = re.fullmatch(r"(\d+)x(\d+)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, got {text!r}")
    return int(match.group(2)), int(match.group(1))


def machine(device: torch.device) -> dict:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_runtime": torch.version.cuda,
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            gpu=props.name,
            compute_capability=f"{props.major}.{props.minor}",
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            cudnn=torch.backends.cudnn.version(),
        )
    for module in ("onnxruntime", "tensorrt"):
        try:
            info[module] = __import__(module).__version__
        except Exception as exc:  # not installed
            info[module] = f"not importable ({type(exc).__name__})"
    return info


@contextlib.contextmanager
def tf32(enabled: bool):
    """Allow or forbid TF32 in cuDNN convolutions and matmuls inside the block."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = enabled
    torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


# --------------------------------------------------------------------------- inputs


@dataclass
class InputSet:
    color: np.ndarray  # (H, W, 3) uint8
    depth_lr: np.ndarray  # (h, w) uint16 mm
    guidance: np.ndarray  # (1, 3, H, W) float32
    target: np.ndarray  # (1, 1, H, W) float32
    prepared: processing.DepthInput
    reference: dict = field(default_factory=dict)  # model name -> (1, 1, H, W) float64


def make_inputs(size: tuple[int, int], scale: int, sets: int) -> list[InputSet]:
    """Synthetic frames, degraded like a Kinect and prepared by the CPU pipeline."""
    from dkn_ros.synthetic import KinectDegradation, degrade_depth, render_frame

    height, width = size
    out = []
    for i in range(sets):
        frame = render_frame(t=0.7 * i, width=width, height=height, seed=i)
        depth = degrade_depth(frame.depth, KinectDegradation(scale=scale), seed=i)
        guidance, target, prepared = processing.prepare(frame.color, depth)
        out.append(InputSet(frame.color, depth, guidance, target, prepared))
    return out


def reference_output(model: torch.nn.Module, inputs: InputSet) -> np.ndarray:
    """The network in float64 on the CPU."""
    import copy

    double = copy.deepcopy(model).cpu().double().eval()
    with torch.no_grad():
        g = torch.from_numpy(inputs.guidance).double()
        t = torch.from_numpy(inputs.target).double()
        return double(g, t).numpy()


# --------------------------------------------------------------------------- timing


def time_calls(
    call: Callable[[int], object], device: torch.device, runs: int, warmup: int
) -> list[float]:
    """Milliseconds of ``call(i)`` for i in 0..runs-1 after ``warmup`` calls: CUDA events
    on a GPU (device time of the queued work), wall clock on the CPU."""
    for i in range(warmup):
        call(i)
    if device.type != "cuda":
        times = []
        for i in range(runs):
            start = time.perf_counter()
            call(i)
            times.append((time.perf_counter() - start) * 1e3)
        return times
    torch.cuda.synchronize(device)
    events = [
        (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
        for _ in range(runs)
    ]
    for i, (start, end) in enumerate(events):
        start.record()
        call(i)
        end.record()
    torch.cuda.synchronize(device)
    return [start.elapsed_time(end) for start, end in events]


def wall_calls(call: Callable[[int], object], runs: int, warmup: int) -> list[float]:
    """Wall-clock milliseconds of ``call(i)`` (which must return with its work done)."""
    for i in range(warmup):
        call(i)
    times = []
    for i in range(runs):
        start = time.perf_counter()
        call(i)
        times.append((time.perf_counter() - start) * 1e3)
    return times


# --------------------------------------------------------------------------- paths


class CpuMixed:
    """CPU mode's stand-in for the GPU engines: the same FP32-island model in bfloat16
    (or fp32), with ``run`` and ``run_tensors``."""

    name = "torch"

    def __init__(self, model: torch.nn.Module, precision: str):
        from dkn_ros.engines.optimise import fold_batch_norm
        from dkn_ros.engines.torch_cuda import mixed_precision_model

        self.device = "cpu"
        self.precision = precision
        if precision == "bf16":
            self.model = mixed_precision_model(model, torch.bfloat16, "cast")
        else:
            self.model = fold_batch_norm(model)

    def run_tensors(self, guidance: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model(guidance, target)

    def run(self, guidance: np.ndarray, target: np.ndarray) -> np.ndarray:
        return self.run_tensors(torch.from_numpy(guidance), torch.from_numpy(target)).numpy()

    def describe(self) -> str:
        return f"torch on cpu ({self.precision})"


@dataclass
class PathSpec:
    name: str
    precision: str  # a key of BOUNDS
    make: Callable[[], object]  # -> an engine with run() and run_tensors()
    strict: bool = False  # TF32 off while it runs
    note: str = ""


def torch_paths(model_name: str, models: dict, device: torch.device) -> list[PathSpec]:
    """The PyTorch paths of one model on ``device`` (see the module docstring)."""
    if device.type != "cuda":
        specs = []
        for variant, model in models.items():
            prefix = "" if variant == "single" else "sas-"
            specs += [
                PathSpec(f"{prefix}torch-fp32", "fp32", lambda m=model: CpuMixed(m, "fp32")),
                PathSpec(f"{prefix}torch-bf16", "bf16", lambda m=model: CpuMixed(m, "bf16")),
            ]
        return specs

    from dkn_ros.engines.torch_cuda import TorchCudaEngine

    dev = str(device)

    def engine(model, **kwargs):
        return lambda: TorchCudaEngine(model, dev, **kwargs)

    single = models["single"]
    specs = [
        PathSpec("torch-fp32-strict", "fp32-strict",
                 engine(single, precision="fp32", channels_last=False, cuda_graphs=False),
                 strict=True, note="TF32 off, eager, NCHW"),
        PathSpec("torch-fp32", "fp32",
                 engine(single, precision="fp32", channels_last=False, cuda_graphs=False),
                 note="eager, NCHW"),
        PathSpec("torch-fp32-cl", "fp32",
                 engine(single, precision="fp32", channels_last=True, cuda_graphs=False),
                 note="eager, channels-last"),
        PathSpec("torch-fp32-graph", "fp32",
                 engine(single, precision="fp32", channels_last=True, cuda_graphs=True),
                 note="CUDA graph, channels-last"),
        PathSpec("torch-fp16-autocast", "fp16",
                 engine(single, precision="fp16", channels_last=False, cuda_graphs=False,
                        mixed="autocast"),
                 note="autocast around the streams, eager, NCHW"),
        PathSpec("torch-fp16", "fp16",
                 engine(single, precision="fp16", channels_last=True, cuda_graphs=False),
                 note="cast streams, eager, channels-last"),
        PathSpec("torch-fp16-graph", "fp16",
                 engine(single, precision="fp16", channels_last=True, cuda_graphs=True),
                 note="cast streams, CUDA graph, channels-last (the node's default)"),
    ]  # fmt: skip
    if "sas" in models:
        sas = models["sas"]
        specs += [
            PathSpec("sas-torch-fp32", "fp32",
                     engine(sas, precision="fp32", channels_last=True, cuda_graphs=False),
                     note="shift-and-stitch, eager"),
            PathSpec("sas-torch-fp16", "fp16",
                     engine(sas, precision="fp16", channels_last=True, cuda_graphs=False),
                     note="shift-and-stitch, eager"),
            PathSpec("sas-torch-fp16-graph", "fp16",
                     engine(sas, precision="fp16", channels_last=True, cuda_graphs=True),
                     note="shift-and-stitch, CUDA graph"),
        ]  # fmt: skip
    return specs


def optional_paths(
    model_name: str, model: torch.nn.Module, device: torch.device, size: tuple[int, int]
) -> tuple[list[PathSpec], list[Row]]:
    """TensorRT and ONNX Runtime CUDA paths, or rows saying why they are skipped."""
    specs: list[PathSpec] = []
    skipped: list[Row] = []
    if device.type != "cuda":
        for path in ("tensorrt-fp32", "tensorrt-fp16", "onnxruntime-cuda"):
            skipped.append(Row(model_name, path, status="skipped", note="needs CUDA"))
        return specs, skipped

    from dkn_ros.engines.tensorrt import tensorrt_import_error

    reason = tensorrt_import_error()
    for precision in ("fp32", "fp16"):
        if reason:
            skipped.append(Row(model_name, f"tensorrt-{precision}", precision, "skipped", reason))
            continue

        def make(precision=precision):
            from dkn_ros.engines.tensorrt import TensorRTEngine

            return TensorRTEngine(model, str(device), size=size, precision=precision)

        specs.append(PathSpec(f"tensorrt-{precision}", precision, make, note="TensorRT"))

    try:
        import onnxruntime

        providers = onnxruntime.get_available_providers()
    except Exception as exc:
        providers, why = [], f"onnxruntime not importable ({type(exc).__name__})"
    else:
        why = f"onnxruntime {onnxruntime.__version__} has no CUDAExecutionProvider ({providers})"
    if "CUDAExecutionProvider" in providers:

        def make_ort():
            from dkn_ros.engines.onnx_engine import OnnxEngine

            return OnnxEngine(model, device=str(device))

        specs.append(PathSpec("onnxruntime-cuda", "fp32", make_ort, note="ONNX Runtime CUDA"))
    else:
        skipped.append(Row(model_name, "onnxruntime-cuda", "fp32", "skipped", why))
    return specs, skipped


def run_path(
    spec: PathSpec,
    model_name: str,
    inputs: list[InputSet],
    device: torch.device,
    args: argparse.Namespace,
    runs: int,
    warmup: int,
) -> tuple[Row, object]:
    """Check and time one path; returns its row and its engine (None if it failed)."""
    row = Row(model_name, spec.name, spec.precision, note=spec.note, bound=BOUNDS[spec.precision])
    strict = tf32(False) if (spec.strict and device.type == "cuda") else contextlib.nullcontext()
    try:
        with strict:
            engine = spec.make()
            row.note = "; ".join(filter(None, [spec.note, engine.describe()]))
            worst = (0.0, 0.0)
            for item in inputs:
                out = engine.run(item.guidance, item.target)
                errors = relative_errors(out, item.reference[model_name])
                worst = (max(worst[0], errors[0]), max(worst[1], errors[1]))
            row.max_rel, row.rmse_rel = worst
            if not within(worst, row.bound, args.bound_scale):
                row.status = "FAIL"
            on_device = [
                (
                    torch.from_numpy(item.guidance).to(device),
                    torch.from_numpy(item.target).to(device),
                )
                for item in inputs
            ]

            def device_call(i):
                g, t = on_device[i % len(on_device)]
                return engine.run_tensors(g, t)

            def host_call(i):
                item = inputs[i % len(inputs)]
                return engine.run(item.guidance, item.target)

            row.gpu_ms_median, row.gpu_ms_p99 = percentiles(
                time_calls(device_call, device, runs, warmup)
            )
            host_runs = max(3, runs // 4)
            row.host_ms_median, row.host_ms_p99 = percentiles(
                wall_calls(host_call, host_runs, min(warmup, 3))
            )
        return row, engine
    except Exception as exc:
        row.status = "FAIL"
        row.note = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        if args.verbose:
            traceback.print_exc()
        return row, None


def graph_vs_eager(
    model_name: str, graph_engine, eager_engine, inputs: list[InputSet], path: str
) -> Row:
    """CUDA graph replay against the eager run of the same configuration."""
    row = Row(model_name, path, "fp16", note="max |graph - eager| (absolute)")
    row.bound = (GRAPH_TOLERANCE, GRAPH_TOLERANCE)
    worst = 0.0
    for item in inputs:
        a = graph_engine.run(item.guidance, item.target)
        b = eager_engine.run(item.guidance, item.target)
        worst = max(worst, float(np.abs(a - b).max()))
    row.max_rel = row.rmse_rel = worst
    if worst > GRAPH_TOLERANCE:
        row.status = "FAIL"
    captured = len(getattr(graph_engine, "_graphs", {}))
    row.extra["graphs_captured"] = captured
    if captured == 0:
        row.status = "FAIL"
        row.note += "; no graph was captured (see the warning above)"
    return row


def frame_check(
    model_name: str, engine, inputs: list[InputSet], device: torch.device, runs: int, warmup: int
) -> list[Row]:
    """GPU pre/post-processing against the CPU's, with the same engine; and the time
    of a whole frame (uint8 colour + uint16 depth in, uint16 out) both ways."""
    from dkn_ros.processing.arrays import TORCH_BICUBIC_ERROR, TorchArrays

    arrays = TorchArrays(device)
    pre = Row(
        model_name, "gpu-pre", note="|GPU - CPU| of guidance (exact) and target (bicubic, guided)"
    )
    pre.bound = (TORCH_BICUBIC_ERROR, TORCH_BICUBIC_ERROR)
    post = Row(model_name, "gpu-post", note="|GPU - CPU| post-processing, uint16 mm")
    post.bound = (FRAME_TOLERANCE_MM, FRAME_TOLERANCE_MM)
    whole = Row(model_name, "gpu-frame", note="whole frame GPU pre/post vs CPU pre/post, mm")
    whole.bound = (FRAME_TOLERANCE_MM, FRAME_TOLERANCE_MM)
    worst_g = worst_t = worst_post = worst_frame = 0.0

    def device_target(item, g, mode):
        depth_in = processing.prepare_depth(item.depth_lr, item.color.shape)
        lr = arrays.upload(depth_in.normalised)
        return processing.upsample(lr, depth_in.output_shape, mode, g, arrays), depth_in

    for item in inputs:
        g = processing.guidance_from_color(item.color, "rgb", arrays)
        guided, depth_in = device_target(item, g, "guided")  # the camera weights' input
        expected = processing.upsample(
            depth_in.normalised, depth_in.output_shape, "guided", item.guidance
        )
        worst_t = max(worst_t, float(np.abs(guided.cpu().numpy() - expected).max()))
        t, depth_in = device_target(item, g, "bicubic")
        t = t[None, None]
        worst_g = max(worst_g, float(np.abs(g.cpu().numpy() - item.guidance).max()))
        worst_t = max(worst_t, float(np.abs(t.cpu().numpy() - item.target).max()))
        out = arrays.run(engine, g, t)
        gpu = processing.finish(out, depth_in, "keep", arrays).astype(np.int64)
        cpu = processing.finish(out.cpu().numpy(), item.prepared, "keep").astype(np.int64)
        worst_post = max(worst_post, float(np.abs(gpu - cpu).max()))
        cpu_frame = processing.finish(
            engine.run(item.guidance, item.target), item.prepared, "keep"
        ).astype(np.int64)
        worst_frame = max(worst_frame, float(np.abs(gpu - cpu_frame).max()))
    pre.max_rel, pre.rmse_rel = worst_t, worst_g
    pre.note += f" (guidance max {worst_g:.1e}, target max {worst_t:.1e})"
    pre.status = "ok" if worst_g == 0.0 and worst_t <= TORCH_BICUBIC_ERROR else "FAIL"
    post.max_rel = post.rmse_rel = worst_post
    post.status = "ok" if worst_post <= FRAME_TOLERANCE_MM else "FAIL"
    whole.max_rel = whole.rmse_rel = worst_frame
    whole.status = "ok" if worst_frame <= FRAME_TOLERANCE_MM else "FAIL"

    def gpu_frame(i):
        item = inputs[i % len(inputs)]
        g = processing.guidance_from_color(item.color, "rgb", arrays)
        t, depth_in = device_target(item, g, "bicubic")
        return processing.finish(arrays.run(engine, g, t[None, None]), depth_in, "keep", arrays)

    def cpu_frame(i):
        item = inputs[i % len(inputs)]
        guidance, target, depth_in = processing.prepare(item.color, item.depth_lr)
        return processing.finish(engine.run(guidance, target), depth_in, "keep")

    whole.host_ms_median, whole.host_ms_p99 = percentiles(wall_calls(gpu_frame, runs, warmup))
    post.host_ms_median, post.host_ms_p99 = percentiles(wall_calls(cpu_frame, runs, warmup))
    post.note += "; host ms = whole frame with CPU pre/post, for comparison"
    whole.note += "; host ms = whole frame with GPU pre/post"
    return [pre, post, whole]


# --------------------------------------------------------------------------- models


def load_models(model_name: str, seed: int = 0) -> tuple[dict, str]:
    """{'single': model[, 'sas': the same weights, shift-and-stitch]} and a note on the
    weights."""
    from dkn_ros.models import build_model, load_model

    path = ROOT / "dkn_ros" / "weights" / f"{model_name}_x8.safetensors"
    if path.is_file():
        model, _ = load_model(path)
        note = f"weights {path.name}"
    else:
        torch.manual_seed(seed)
        model = build_model(model_name).eval()
        note = f"random weights ({path.name} not shipped)"
    models = {"single": model}
    if model_name == "dkn":
        sas = build_model("dkn", inference="shift_and_stitch").eval()
        sas.load_state_dict(model.state_dict())
        models["sas"] = sas
    return models, note


# --------------------------------------------------------------------------- middlebury


def middlebury(args: argparse.Namespace, device: torch.device) -> dict:
    """FP16 vs FP32 x8 RMSE of the shipped weights on middlebury30 (see the docstring)."""
    try:
        from training.data import (
            crop_to_multiple,
            data_dir,
            load_middlebury,
            middlebury_pairs,
            missing_reason,
            rmse,
            synthesize_lr,
        )
    except Exception as exc:
        return {"status": "skipped", "reason": f"training.data not importable: {exc}"}
    root = data_dir(args.data_dir)
    reason = missing_reason("middlebury30", root)
    if reason:
        return {"status": "skipped", "reason": reason}
    pairs = middlebury_pairs(root)
    if args.middlebury_limit:
        pairs = pairs[: args.middlebury_limit]
    scale = 8
    results: dict = {
        "dataset": "middlebury30",
        "images": len(pairs),
        "scale": scale,
        "protocol": "DKN Table 3 as training/evaluate.py (paper protocol: normalised with "
        "the ground truth's min and max); RMSE on the 0..255 scale, mean over images",
        "target": f"|fp16 - fp32| <= {MIDDLEBURY_FP16_TARGET}",
        "models": {},
    }
    low = "bf16" if device.type != "cuda" else "fp16"
    for model_name in ("fdkn", "fdkn_s", "dkn"):
        path = ROOT / "dkn_ros" / "weights" / f"{model_name}_x8.safetensors"
        if not path.is_file():
            results["models"][model_name] = {"status": "skipped", "reason": f"{path.name} absent"}
            continue
        models, _ = load_models(model_name)
        model = models["single"]
        if device.type == "cuda":
            from dkn_ros.engines.torch_cuda import TorchCudaEngine

            fp32 = TorchCudaEngine(model, str(device), precision="fp32", cuda_graphs=False)
            fp16 = TorchCudaEngine(model, str(device), precision="fp16", cuda_graphs=False)
        else:
            fp32, fp16 = CpuMixed(model, "fp32"), CpuMixed(model, "bf16")
        scores: dict[str, list[float]] = {"fp32": [], low: []}
        for pair in pairs:
            rgb, depth = load_middlebury(pair)
            rgb = crop_to_multiple(rgb, scale)
            gt = crop_to_multiple(depth, scale).astype(np.float32)
            _, up = synthesize_lr(gt, scale)
            lo, hi = float(gt.min()), float(gt.max())
            span = hi - lo if hi > lo else 1.0
            guidance = processing.guidance_from_color(rgb)
            target = ((up - lo) / span).astype(np.float32)[None, None]
            with tf32(False) if device.type == "cuda" else contextlib.nullcontext():
                out32 = fp32.run(guidance, target)[0, 0].astype(np.float64) * span + lo
            out16 = fp16.run(guidance, target)[0, 0].astype(np.float64) * span + lo
            scores["fp32"].append(rmse(out32, gt))
            scores[low].append(rmse(out16, gt))
        mean32, mean16 = float(np.mean(scores["fp32"])), float(np.mean(scores[low]))
        diff = mean16 - mean32
        results["models"][model_name] = {
            "rmse_fp32": mean32,
            f"rmse_{low}": mean16,
            "difference": diff,
            "status": "ok" if abs(diff) <= MIDDLEBURY_FP16_TARGET else "FAIL",
            "per_image_fp32": scores["fp32"],
            f"per_image_{low}": scores[low],
        }
    states = [m["status"] for m in results["models"].values()]
    results["status"] = "FAIL" if "FAIL" in states else "ok"
    return results


# --------------------------------------------------------------------------- output


def _fmt(value: float | None, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return spec.format(value)


def table(rows: list[Row]) -> str:
    head = (
        "| model | path | status | max rel | rmse rel | bound (max, rmse) | gpu ms median | "
        "gpu ms p99 | host ms median | host ms p99 | note |"
    )
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        bound = "-" if r.bound is None else f"{r.bound[0]:.0e}, {r.bound[1]:.0e}"
        lines.append(
            f"| {r.model} | {r.path} | {r.status} | {_fmt(r.max_rel, '{:.2e}')} | "
            f"{_fmt(r.rmse_rel, '{:.2e}')} | {bound} | {_fmt(r.gpu_ms_median, '{:.3f}')} | "
            f"{_fmt(r.gpu_ms_p99, '{:.3f}')} | {_fmt(r.host_ms_median, '{:.2f}')} | "
            f"{_fmt(r.host_ms_p99, '{:.2f}')} | {r.note} |"
        )
    return "\n".join(lines)


def targets(rows: list[Row], size: tuple[int, int]) -> dict:
    """Fastest passing GPU median per model against :data:`TARGET_MS` (640 x 480)."""
    out = {}
    for model_name, target in TARGET_MS.items():
        timed = [
            r
            for r in rows
            if r.model == model_name and r.status == "ok" and r.gpu_ms_median is not None
            and not r.path.endswith("-strict")
        ]  # fmt: skip
        if not timed:
            continue
        best = min(timed, key=lambda r: r.gpu_ms_median)
        out[model_name] = {
            "path": best.path,
            "gpu_ms_median": best.gpu_ms_median,
            "target_ms": target,
            "size": f"{size[1]}x{size[0]}",
            "met": best.gpu_ms_median <= target,
        }
    return out


# --------------------------------------------------------------------------- main


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        "bench/gpu_check.py",
        description="Check and time the CUDA paths of FDKN/DKN against a CPU float64 "
        "reference (every default is shown).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    parser.add_argument("--size", type=parse_size, default="640x480", help="WIDTHxHEIGHT")
    parser.add_argument("--scale", type=int, default=8, help="depth is 1/scale of the colour")
    parser.add_argument("--sets", type=int, default=3, help="input sets (synthetic frames)")
    parser.add_argument("--runs", type=int, default=200, help="timed FDKN calls per path")
    parser.add_argument("--dkn-runs", type=int, default=30, help="timed DKN calls per path")
    parser.add_argument("--warmup", type=int, default=10, help="untimed calls first")
    parser.add_argument("--models", default="fdkn,fdkn_s,dkn", help="comma-separated")
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (test mode)")
    parser.add_argument("--allow-no-cuda", action="store_true", help="exit 0 without CUDA")
    parser.add_argument("--data-dir", default=None, help="None: $DKN_DATA_DIR or ../shared/data")
    parser.add_argument("--middlebury-limit", type=int, default=0, help="0 = all 30 images")
    parser.add_argument("--skip-middlebury", action="store_true")
    parser.add_argument("--bound-scale", type=float, default=1.0, help="multiply every bound")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's)")
    parser.add_argument("--verbose", action="store_true", help="tracebacks of failing paths")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(
            f"gpu_check: CUDA is not available here (torch {torch.__version__}, "
            f"CUDA runtime {torch.version.cuda}); nothing to check"
            + ("" if args.allow_no_cuda else " (exit 2; --allow-no-cuda exits 0)")
        )
        return 0 if args.allow_no_cuda else 2
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    info = machine(device)
    print(f"# gpu_check on {info.get('gpu', 'cpu')}, torch {info['torch']}, "
          f"CUDA {info['cuda_runtime']}, {args.size[1]}x{args.size[0]}, x{args.scale}")  # fmt: skip

    inputs = make_inputs(args.size, args.scale, args.sets)
    rows: list[Row] = []
    notes: dict[str, str] = {}
    for model_name in [m.strip() for m in args.models.split(",") if m.strip()]:
        models, notes[model_name] = load_models(model_name)
        for item in inputs:
            item.reference[model_name] = reference_output(models["single"], item)
        runs = args.runs if model_name.startswith("fdkn") else args.dkn_runs
        engines = {}
        for spec in torch_paths(model_name, models, device):
            row, engine = run_path(spec, model_name, inputs, device, args, runs, args.warmup)
            row.extra["weights"] = notes[model_name]
            rows.append(row)
            engines[spec.name] = engine
            print(f"  {model_name} {row.path}: {row.status} {row.note}", flush=True)
        if device.type == "cuda":
            for graph, eager in (("torch-fp16-graph", "torch-fp16"),
                                 ("sas-torch-fp16-graph", "sas-torch-fp16")):  # fmt: skip
                if engines.get(graph) is not None and engines.get(eager) is not None:
                    name = graph.replace("-graph", "-graph-vs-eager")
                    rows.append(graph_vs_eager(model_name, engines[graph], engines[eager],
                                               inputs, name))  # fmt: skip
        frame_engine = engines.get("torch-fp16-graph") or engines.get("torch-bf16")
        if frame_engine is not None:
            rows += frame_check(model_name, frame_engine, inputs, device,
                                max(3, runs // 4), min(args.warmup, 3))  # fmt: skip
        specs, skipped = optional_paths(model_name, models["single"], device, args.size)
        rows += skipped
        for spec in specs:
            row, _ = run_path(spec, model_name, inputs, device, args, runs, args.warmup)
            rows.append(row)
            print(f"  {model_name} {row.path}: {row.status} {row.note}", flush=True)
        del engines
        if device.type == "cuda":
            torch.cuda.empty_cache()

    mb = {"status": "skipped", "reason": "--skip-middlebury"}
    if not args.skip_middlebury:
        try:
            mb = middlebury(args, device)
        except Exception as exc:
            mb = {"status": "FAIL", "reason": f"{type(exc).__name__}: {exc}"}
            if args.verbose:
                traceback.print_exc()

    failures = [f"{r.model} {r.path}: {r.note}" for r in rows if r.status == "FAIL"]
    if mb.get("status") == "FAIL":
        failures.append(f"middlebury: {mb}")
    summary = targets(rows, args.size)
    print()
    print(table(rows))
    print()
    for model_name, result in summary.items():
        verdict = "met" if result["met"] else "NOT met"
        print(f"{model_name}: fastest {result['path']} {result['gpu_ms_median']:.3f} ms "
              f"(target {result['target_ms']} ms at {result['size']}): {verdict}")  # fmt: skip
    if mb.get("status") == "skipped":
        print(f"middlebury: skipped ({mb['reason']})")
    else:
        for model_name, result in mb.get("models", {}).items():
            if result.get("status") == "skipped":
                print(f"middlebury {model_name}: skipped ({result['reason']})")
                continue
            low = "rmse_fp16" if "rmse_fp16" in result else "rmse_bf16"
            print(f"middlebury x8 {model_name}: fp32 {result['rmse_fp32']:.4f}, "
                  f"{low[5:]} {result[low]:.4f}, difference {result['difference']:+.4f} "
                  f"(target |d| <= {MIDDLEBURY_FP16_TARGET}): {result['status']}")  # fmt: skip
    elapsed = time.perf_counter() - started
    print(f"{len(failures)} failure(s); {elapsed:.0f} s")
    for failure in failures:
        print(f"FAIL {failure}")
    result = {
        "command": " ".join(["bench/gpu_check.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": info,
        "settings": {
            "size": f"{args.size[1]}x{args.size[0]}",
            "scale": args.scale,
            "sets": args.sets,
            "runs": args.runs,
            "dkn_runs": args.dkn_runs,
            "warmup": args.warmup,
            "device": str(device),
            "bounds": BOUNDS,
            "bound_scale": args.bound_scale,
        },
        "weights": notes,
        "rows": [asdict(r) for r in rows],
        "targets": summary,
        "middlebury": mb,
        "failures": failures,
        "passed": not failures,
        "seconds": round(elapsed, 1),
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
