"""Engines run a model on tensors: one small interface, chosen by name.

An engine takes the model's two inputs as float32 numpy arrays,
``guidance`` (1, C, H, W) in [0, 1] and ``target`` (1, 1, H, W) normalised depth at
guidance resolution, and returns the filtered target (1, 1, H, W) as float32 numpy.
Engines know nothing of what the model means, of depth units or of files.
"""

from __future__ import annotations

from dkn_ros.engines.base import Engine
from dkn_ros.engines.torch_engine import TorchEngine

__all__ = ["ENGINES", "Engine", "TorchEngine", "create_engine"]

ENGINES = ("auto", "torch", "onnx")


def create_engine(name: str, model, device: str = "cpu", **options) -> Engine:
    """An engine by name for a model (an ``nn.Module`` in eval mode).

    Names: ``torch`` (:class:`TorchEngine`), ``onnx`` (``OnnxEngine``: ONNX Runtime,
    the model exported once to a cache file) and ``auto``, the fastest available for
    the device:

    * ``cuda`` / ``cuda:N``: ``torch`` (cuDNN; the TensorRT engine is chosen by name).
    * ``cpu``: ``onnx`` when onnxruntime is importable, else ``torch``. Measured with
      ``bench/latency.py`` (``bench/RESULTS.md``) on a 2-core AVX-512 EPYC: ONNX
      Runtime fuses Conv+BatchNorm+ReLU and runs the convolutions in its blocked NCHWc
      layout; it beat the torch engine for FDKN and DKN at 320 x 240 and 640 x 480,
      e.g. FDKN 640 x 480 at 2 threads 493 vs 1132 ms (one core busy with another
      job: torch's OpenMP suffers most), at 1 thread 369 vs 380 ms; DKN single pass
      640 x 480 at 1 thread 6.8 vs 10.9 s.
      The first use exports the model once (about 10 s) into the cache. If the
      export or the session fails, ``auto`` logs a warning and uses ``torch``.

    ``options`` (``cache_dir``, ``opset``, ``threads``) go to ``OnnxEngine``; ``torch``
    takes none, ``auto`` passes them on only when it picks ``onnx``.
    """
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; known engines: {', '.join(ENGINES)}")
    if name == "torch" or (name == "auto" and not device.startswith("cpu")):
        if options and name == "torch":
            raise TypeError(f"the torch engine takes no options, got {sorted(options)}")
        return TorchEngine(model, device=device)
    try:
        from dkn_ros.engines.onnx_engine import OnnxEngine
    except ImportError as exc:  # onnxruntime (or onnx) not installed
        if name == "onnx":
            raise ImportError(f"the onnx engine needs onnxruntime and onnx: {exc}") from exc
        return TorchEngine(model, device=device)
    if name == "onnx":
        return OnnxEngine(model, device=device, **options)
    try:
        return OnnxEngine(model, device=device, **options)
    except Exception as exc:  # export or session failure: torch still works
        import logging

        logging.getLogger(__name__).warning(
            "auto engine: ONNX Runtime unavailable (%s); using torch", exc
        )
        return TorchEngine(model, device=device)
