"""ONNX Runtime engine: the exported graph in an ``InferenceSession`` on CPU.

Given a torch model, the engine exports it once (see ``onnx_export``) into a cache
folder and loads it from there afterwards. The cache file is named by a hash of
everything that decides the graph: the model class and its settings, every tensor of
the state dict (names, shapes, dtypes, values), the opset, the torch version and the
source of the model and export code. The folder is, in order of preference, the
``cache_dir`` argument, ``$DKN_ROS_CACHE_DIR/onnx``, ``$XDG_CACHE_HOME/dkn_ros/onnx``,
``~/.cache/dkn_ros/onnx``. An export takes 10-30 s on a CPU, so it is announced with a
warning (what is exported and where it is cached) before it starts; later runs, in any
process, load the cached graph silently.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dkn_ros.engines import onnx_export
from dkn_ros.engines.base import Engine
from dkn_ros.engines.onnx_export import DEFAULT_OPSET, INPUT_NAMES, export_onnx
from dkn_ros.engines.optimise import ShrinkAfterPeak, release_free_memory, tune_glibc_malloc
from dkn_ros.native import cache_root

__all__ = [
    "OnnxEngine",
    "cached_onnx",
    "cpu_count",
    "default_cache_dir",
    "model_cache_key",
]

CACHE_FORMAT = 1  # bump when the exported graph changes for the same model

logger = logging.getLogger(__name__)


def cpu_count() -> int:
    """Cores this process may run on (respects affinity masks and cgroup cpusets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_cache_dir() -> Path:
    """Where exported graphs are kept by default (see the module docstring)."""
    return cache_root() / "onnx"


def model_cache_key(model: nn.Module, opset: int = DEFAULT_OPSET) -> str:
    """A hex digest naming the ONNX export of ``model`` at ``opset``."""
    digest = hashlib.sha256()
    settings = {
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "config": {
            key: getattr(model, key)
            for key in ("kernel_size", "window", "residual")
            if hasattr(model, key)
        },
        "opset": opset,
        "torch": torch.__version__,
        "format": CACHE_FORMAT,
    }
    digest.update(json.dumps(settings, sort_keys=True).encode())
    from dkn_ros.models import sampling

    for module in (inspect.getmodule(type(model)), sampling, onnx_export):
        try:
            digest.update(inspect.getsource(module).encode())
        except (OSError, TypeError):  # no source (frozen or interactive): weights still count
            pass
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}".encode())
        if tensor.numel():
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:24]


def cached_onnx(
    model: nn.Module,
    cache_dir: str | os.PathLike | None = None,
    opset: int = DEFAULT_OPSET,
) -> tuple[Path, bool]:
    """The cached ONNX export of ``model``, exported now if it is not in the cache.

    Returns:
        The graph's path (``{cache_dir}/{model class}-{model_cache_key}.onnx``) and True
        if it was exported by this call, False if it came from the cache.
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    model_name = type(model).__name__.lower()
    path = folder / f"{model_name}-{model_cache_key(model, opset)}.onnx"
    if path.is_file():
        return path, False
    logger.warning(
        "exporting %s to ONNX for ONNX Runtime: once per weights and version, this takes "
        "10-30 s the first time; cached as %s",
        type(model).__name__,
        path,
    )
    start = time.perf_counter()
    export_onnx(model, path, opset=opset)
    logger.info("exported %s in %.1f s", path.name, time.perf_counter() - start)
    return path, True


class OnnxEngine(Engine):
    """ONNX Runtime on CPU (graph optimisations on, one intra-op thread per core).

    Args:
        model_or_path: an FDKN / DKN ``nn.Module`` (exported and cached, see the module
            docstring) or the path of an ``.onnx`` file with inputs ``guidance`` and
            ``target``.
        device: ``cpu``; ``cuda``/``cuda:N`` only if this onnxruntime has the CUDA
            execution provider.
        cache_dir: folder for exported graphs (default :func:`default_cache_dir`).
        opset: ONNX opset of the export.
        threads: intra-op threads (default: the cores this process may use).
        tune_malloc: on the CPU, raise glibc's malloc thresholds (process-wide, see
            ``dkn_ros.engines.torch_engine``); False leaves them alone.

    Attributes:
        onnx_path: the graph that was loaded.
        exported: True if this engine exported the graph, False if it came from the
            cache or was given.
    """

    name = "onnx"

    def __init__(
        self,
        model_or_path: nn.Module | str | os.PathLike,
        device: str = "cpu",
        *,
        cache_dir: str | os.PathLike | None = None,
        opset: int = DEFAULT_OPSET,
        threads: int | None = None,
        tune_malloc: bool = True,
    ):
        import onnxruntime as ort

        if device == "cpu" and tune_malloc:
            tune_glibc_malloc()
        self.device = device
        self.exported = False
        if isinstance(model_or_path, nn.Module):
            path, self.exported = cached_onnx(model_or_path, cache_dir, opset)
        else:
            path = Path(model_or_path)
            if not path.is_file():
                raise FileNotFoundError(f"{path}: ONNX file not found")
        self.onnx_path = path

        if device == "cpu":
            providers = ["CPUExecutionProvider"]
        elif device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise RuntimeError(
                    f"device {device!r} asked for, but onnxruntime has no CUDAExecutionProvider"
                )
            index = int(device.partition(":")[2] or 0)
            providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        else:
            raise ValueError(f"unknown device {device!r}; use 'cpu' or 'cuda[:N]'")

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.threads = threads or cpu_count()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        self._ort = ort
        self._sizes = ShrinkAfterPeak()
        names = [i.name for i in self.session.get_inputs()]
        if names != list(INPUT_NAMES):
            raise ValueError(f"{path}: expected inputs {list(INPUT_NAMES)}, got {names}")

    def run(self, guidance: np.ndarray, target: np.ndarray) -> np.ndarray:
        feeds = {
            "guidance": np.ascontiguousarray(guidance, dtype=np.float32),
            "target": np.ascontiguousarray(target, dtype=np.float32),
        }
        if not self._sizes.update(int(target.shape[-2]) * int(target.shape[-1])):
            return self.session.run(None, feeds)[0]
        # Smaller than an earlier frame: free what that frame's size left behind, once
        # (ONNX Runtime's arena keeps its peak otherwise; see ShrinkAfterPeak).
        options = self._ort.RunOptions()
        options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        output = self.session.run(None, feeds, options)[0]
        release_free_memory()
        return output

    def describe(self) -> str:
        return f"onnx on {self.device} ({self.onnx_path.name}, {self.threads} threads)"
