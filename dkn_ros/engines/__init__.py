"""Engines run a model on tensors: one small interface, chosen by name, with fallbacks.

An engine takes the model's two inputs as float32 numpy arrays,
``guidance`` (1, C, H, W) in [0, 1] and ``target`` (1, 1, H, W) normalised depth at
guidance resolution, and returns the filtered target (1, 1, H, W) as float32 numpy.
GPU engines also offer ``run_tensors`` (device tensors in and out), which the torch
back-end of ``dkn_ros.processing`` uses on a GPU. Engines know nothing of what the
model means, of depth units or of files.

Names (:data:`ENGINES`) and what runs (:func:`plan_engines` gives the order in which
they are tried; the first that can be made is used):

============  =========  =================================================================
name          device     tried in this order
============  =========  =================================================================
``tensorrt``  any        TensorRT on the GPU (``device`` if it is ``cuda[:N]``, else
                         ``cuda``), PyTorch CUDA, then the CPU
``auto``      cuda[:N]   TensorRT if ``import tensorrt`` works, PyTorch CUDA, the CPU
``auto``      cpu        PyTorch (with the C kernels of ``dkn_ros.native``: faster than
                         ONNX Runtime on this project's CPU, idle or with a core busy,
                         and lighter; bench/RESULTS.md)
``torch``     cuda[:N]   PyTorch CUDA, PyTorch CPU
``onnx``      cuda[:N]   ONNX Runtime's CUDA provider, PyTorch CUDA, ONNX Runtime CPU (PyTorch
                         CPU without onnxruntime)
``torch``     cpu        PyTorch CPU only
``onnx``      cpu        ONNX Runtime CPU only (errors are raised, as before)
============  =========  =================================================================

"The CPU" is PyTorch (ONNX Runtime only where ``onnx`` was asked for). Whatever was asked for,
when the first engine of the list cannot be used (no CUDA, no TensorRT, a failed
export or build), one WARNING line names what was asked for, why it is not used and
what runs instead, and the caller keeps going. ``auto`` on a CUDA machine without
TensorRT is not a fallback (PyTorch CUDA is what ``auto`` means there): no warning.

At run time a TensorRT engine refuses sizes outside its optimisation profile; those
sizes (and everything after a TensorRT execution error) run on the next engine of the
list, made when first needed, with one warning per size.

Options (keyword arguments of :func:`create_engine`; each engine takes those it knows
and ignores the others, an unknown name is an error): ``precision`` (``fp16`` or
``fp32``: TensorRT and PyTorch CUDA; default ``fp16``), ``size`` ((H, W) the TensorRT
profile is built for; default 480 x 640), ``cuda_graphs`` (PyTorch CUDA; default True),
``cache_dir`` (ONNX export cache), ``engine_cache_dir`` (TensorRT engine cache),
``opset``, ``threads`` (ONNX Runtime), ``rebuild`` (TensorRT), ``tune_malloc`` (CPU
engines; default True: glibc's malloc thresholds raised process-wide so that the
network's buffers are reused, see ``dkn_ros.engines.torch_engine``), ``cpu_precision``
(PyTorch on the CPU: ``fp32``, default, or ``bf16`` for FDKN's streams where the CPU
computes bfloat16 natively; ONNX Runtime ignores it, so ``dkn_ros.quality`` asks for
``torch`` when it wants bf16).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Mapping

import numpy as np

from dkn_ros.engines.base import Engine
from dkn_ros.engines.torch_engine import TorchEngine

__all__ = [
    "ENGINES",
    "OPTIONS",
    "Engine",
    "FallbackEngine",
    "TorchEngine",
    "create_engine",
    "plan_engines",
]

logger = logging.getLogger(__name__)

ENGINES = ("auto", "torch", "onnx", "tensorrt")
OPTIONS = {
    "tensorrt": ("precision", "size", "engine_cache_dir", "cache_dir", "rebuild", "opset"),
    "torch-cuda": ("precision", "cuda_graphs"),
    "torch-cpu": ("tune_malloc", "cpu_precision"),
    "onnx": ("cache_dir", "opset", "threads", "tune_malloc"),
}
_KNOWN_OPTIONS = {name for names in OPTIONS.values() for name in names}


def plan_engines(
    name: str,
    device: str,
    *,
    cuda: bool,
    tensorrt_error: str | None,
    onnxruntime: bool,
) -> tuple[list[tuple[str, str]], list[str]]:
    """The engines to try for ``name`` on ``device``, in order, on a machine with the
    given capabilities (see the module docstring).

    Args:
        name: a name of :data:`ENGINES`.
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        cuda: True if a CUDA device is usable.
        tensorrt_error: None if ``import tensorrt`` works, else why not.
        onnxruntime: True if onnxruntime (and onnx) can be imported.

    Returns:
        The (engine, device) pairs to try, and the reasons why engines of the nominal
        list were left out (empty when the first engine asked for is tried).
    """
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; known engines: {', '.join(ENGINES)}")
    gpu = device if device.startswith("cuda") else "cuda"
    cpu = ("torch", "cpu")
    if name == "tensorrt":
        nominal = [("tensorrt", gpu), ("torch", gpu), cpu]
    elif device.startswith("cuda"):
        if name == "auto":
            first = [("tensorrt", gpu)] if tensorrt_error is None else []
            nominal = [*first, ("torch", gpu), cpu]
        elif name == "torch":
            nominal = [("torch", gpu), cpu]
        else:  # onnx: ONNX Runtime on the CPU if it is there
            nominal = [("onnx", gpu), ("torch", gpu), ("onnx", "cpu") if onnxruntime else cpu]
    elif name == "auto":
        nominal = [cpu]
    else:
        return [(name, "cpu")], []  # explicit CPU engine: no fallback, errors are raised

    reasons: list[str] = []
    stages = list(nominal)
    if not cuda and any(d != "cpu" for _, d in stages):
        stages = [(n, d) for n, d in stages if d == "cpu"]
        reasons.append(_no_cuda_reason())
    if tensorrt_error is not None and ("tensorrt", gpu) in stages:
        stages.remove(("tensorrt", gpu))
        reasons.append(tensorrt_error)
    return stages, reasons


def _no_cuda_reason() -> str:
    import torch

    build = f"torch {torch.__version__}"
    if torch.version.cuda is None:
        return f"CUDA is not available ({build} is a CPU-only build)"
    return f"CUDA is not available ({build}, no usable GPU or driver)"


def _capabilities() -> dict:
    import torch

    from dkn_ros.engines.tensorrt import tensorrt_import_error

    onnxruntime = all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))
    return {
        "cuda": torch.cuda.is_available(),
        "tensorrt_error": tensorrt_import_error(),
        "onnxruntime": onnxruntime,
    }


def _options_for(kind: str, options: Mapping) -> dict:
    return {key: value for key, value in options.items() if key in OPTIONS[kind]}


def _make_tensorrt(model, device: str, options: Mapping) -> Engine:
    from dkn_ros.engines.tensorrt import TensorRTEngine

    kwargs = _options_for("tensorrt", options)
    kwargs.pop("opset", None)
    if "cache_dir" in kwargs:
        kwargs["onnx_cache_dir"] = kwargs.pop("cache_dir")
    if "engine_cache_dir" in kwargs:
        kwargs["cache_dir"] = kwargs.pop("engine_cache_dir")
    return TensorRTEngine(model, device, **kwargs)


def _make_torch(model, device: str, options: Mapping) -> Engine:
    if device.startswith("cuda"):
        from dkn_ros.engines.torch_cuda import TorchCudaEngine

        return TorchCudaEngine(model, device, **_options_for("torch-cuda", options))
    return TorchEngine(model, device=device, **_options_for("torch-cpu", options))


def _make_onnx(model, device: str, options: Mapping) -> Engine:
    from dkn_ros.engines.onnx_engine import OnnxEngine

    return OnnxEngine(model, device=device, **_options_for("onnx", options))


MAKERS: dict[str, Callable[[object, str, Mapping], Engine]] = {
    "tensorrt": _make_tensorrt,
    "torch": _make_torch,
    "onnx": _make_onnx,
}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def create_engine(
    name: str,
    model,
    device: str = "cpu",
    *,
    makers: Mapping[str, Callable[[object, str, Mapping], Engine]] | None = None,
    capabilities: Mapping | None = None,
    **options,
) -> Engine:
    """An engine by name for a model (an ``nn.Module`` in eval mode), with the fallbacks
    of the module docstring.

    Args:
        name: ``auto``, ``torch``, ``onnx`` or ``tensorrt``.
        model: FDKN or DKN.
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        makers: engine name -> ``maker(model, device, options)``, replacing the default
            makers for those names (a seam: tests inject failing builds with it).
        capabilities: ``cuda``, ``tensorrt_error`` and ``onnxruntime`` as
            :func:`plan_engines` takes them (default: this machine's).
        **options: see the module docstring.

    Raises:
        ValueError: unknown name. TypeError: an unknown option name.
        Whatever the last engine of the list raises when none can be made.
    """
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; known engines: {', '.join(ENGINES)}")
    unknown = sorted(set(options) - _KNOWN_OPTIONS)
    if unknown:
        raise TypeError(f"unknown engine options {unknown}; known: {sorted(_KNOWN_OPTIONS)}")
    caps = dict(capabilities) if capabilities is not None else _capabilities()
    stages, reasons = plan_engines(name, device, **caps)
    build = {**MAKERS, **(makers or {})}
    asked = f"engine {name!r} on {device!r}"

    engine = None
    for index, (stage, stage_device) in enumerate(stages):
        last = index == len(stages) - 1
        try:
            engine = build[stage](model, stage_device, options)
        except Exception as exc:
            if last:
                if reasons:  # say what was skipped before the error propagates
                    logger.warning("%s: %s", asked, "; ".join(reasons))
                raise
            reasons.append(f"{stage} on {stage_device} failed: {_one_line(exc)}")
            continue
        rest = stages[index + 1 :]
        if stage == "tensorrt" and rest:

            def make_fallback(rest=rest):
                return _first_working(rest, model, build, options)

            engine = FallbackEngine(engine, make_fallback)
        break
    if reasons:
        logger.warning("%s: %s; using %s", asked, "; ".join(reasons), engine.describe())
    else:
        logger.info("%s: using %s", asked, engine.describe())
    return engine


def _first_working(stages, model, build, options) -> Engine:
    """The first engine of ``stages`` that can be made (errors of the last propagate)."""
    for index, (stage, stage_device) in enumerate(stages):
        try:
            return build[stage](model, stage_device, options)
        except Exception as exc:
            if index == len(stages) - 1:
                raise
            logger.warning("fallback %s on %s failed: %s", stage, stage_device, _one_line(exc))
    raise RuntimeError("no fallback engine")  # unreachable: stages is never empty


def _invoke(engine: Engine, method: str, guidance, target):
    """``engine.run`` or ``engine.run_tensors``; the latter through the host for an
    engine that only has ``run``."""
    if method == "run" or hasattr(engine, "run_tensors"):
        return getattr(engine, method)(guidance, target)
    import torch

    output = engine.run(guidance.cpu().numpy(), target.cpu().numpy())
    return torch.from_numpy(output).to(target.device)


class FallbackEngine(Engine):
    """A primary engine with a second one, made on first need, for the frames the
    primary cannot take.

    * A size the primary refuses (``UnsupportedShapeError``, a ``ValueError``) runs on
      the fallback from then on; one warning per size.
    * Any other error of the primary (e.g. a failed TensorRT execution) switches every
      later frame to the fallback; one warning.

    Args:
        primary: the engine to use while it works.
        make_fallback: makes the second engine (called at most once).
    """

    def __init__(self, primary: Engine, make_fallback: Callable[[], Engine]):
        self.primary: Engine | None = primary
        self._make_fallback = make_fallback
        self._fallback: Engine | None = None
        self._refused: set[tuple] = set()
        self.name = primary.name
        self.device = primary.device

    @property
    def fallback(self) -> Engine:
        if self._fallback is None:
            self._fallback = self._make_fallback()
        return self._fallback

    def _call(self, method: str, guidance, target):
        from dkn_ros.engines.tensorrt import UnsupportedShapeError

        shape = tuple(target.shape)
        if self.primary is not None and shape not in self._refused:
            try:
                return _invoke(self.primary, method, guidance, target)
            except UnsupportedShapeError as exc:
                self._refused.add(shape)
                logger.warning(
                    "%s: %s; frames of this size run on %s",
                    self.primary.describe(),
                    _one_line(exc),
                    self.fallback.describe(),
                )
            except Exception as exc:
                failed = self.primary.describe()
                self.primary = None
                logger.warning(
                    "%s failed (%s); every frame now runs on %s",
                    failed,
                    _one_line(exc),
                    self.fallback.describe(),
                )
        return _invoke(self.fallback, method, guidance, target)

    def run(self, guidance: np.ndarray, target: np.ndarray) -> np.ndarray:
        return self._call("run", guidance, target)

    def run_tensors(self, guidance, target):
        """Device tensors in and out (through the host if the engine in use has no
        ``run_tensors``)."""
        return self._call("run_tensors", guidance, target)

    def describe(self) -> str:
        if self.primary is None:
            return self.fallback.describe()
        return self.primary.describe()
