"""Small C kernels for the CPU, compiled on first use, and the package's cache folder.

Some steps of a frame are a short loop per pixel that PyTorch can only write as many
full-size tensor operations (FDKN's last step, the products of its heads and the
deformable weighted average: about 25 passes over 9 x H x W floats; the joint bilateral
upsampling: about 60 over H x W). Their C versions sit beside the Python modules that
call them (``dkn_ros/models/sampling_cpu.c``, ``dkn_ros/processing/guided.c``); the
PyTorch definitions they are tested against stay what runs everywhere else.
:func:`load` compiles one with the system's C compiler (``$CC``, else ``cc``) into the
cache folder, once per source, compiler, CPU and OpenMP runtime, and loads it with
ctypes; without a compiler it says why once and returns None, and the caller runs its
PyTorch definition instead. The environment variable ``DKN_NATIVE_KERNELS=0`` (or
:data:`ENABLED` set to False) turns them all off, for comparisons.

The kernels' ``#pragma omp parallel`` regions run on PyTorch's own OpenMP threads: the
library is linked against the OpenMP runtime PyTorch has loaded (a second runtime
beside it would spin-wait against PyTorch's threads for the same cores). Where none is
loaded the kernels run on one thread.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shlex
import subprocess
import tempfile
import threading
from functools import cache
from pathlib import Path

__all__ = ["ENABLED", "cache_root", "function", "load", "loaded_openmp"]

logger = logging.getLogger(__name__)

ENABLED = os.environ.get("DKN_NATIVE_KERNELS", "1") != "0"
FLAGS = ("-O3", "-march=native", "-ffast-math", "-fPIC")

_loaded: dict[Path, ctypes.CDLL | None] = {}
_lock = threading.Lock()


def cache_root() -> Path:
    """The package's cache folder: ``$DKN_ROS_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/dkn_ros``, else ``~/.cache/dkn_ros``. Exported graphs live in its
    ``onnx/`` subfolder, TensorRT engines in ``tensorrt/``, compiled kernels in
    ``native/``."""
    if os.environ.get("DKN_ROS_CACHE_DIR"):
        return Path(os.environ["DKN_ROS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dkn_ros"


def _cpu_flags() -> str:
    """The CPU's feature flags (``-march=native`` compiles for them)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def loaded_openmp() -> str | None:
    """The path of the OpenMP runtime (``libgomp``) loaded in this process, e.g.
    PyTorch's own copy, or None."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1]
                if "/libgomp" in path and ".so" in path:
                    return path
    except OSError:
        pass
    return None


def _compile(source: Path) -> Path:
    """The shared library of ``source`` in the cache, compiled if it is not there yet
    (named by a digest of the source, the compiler command, the CPU's flags and the
    OpenMP runtime it is linked against)."""
    compiler = shlex.split(os.environ.get("CC", "cc"))
    openmp = loaded_openmp()
    digest = hashlib.sha256(source.read_bytes())
    digest.update(" ".join([*compiler, *FLAGS, _cpu_flags(), str(openmp)]).encode())
    folder = cache_root() / "native"
    library = folder / f"{source.stem}-{digest.hexdigest()[:16]}.so"
    if library.is_file():
        return library
    folder.mkdir(parents=True, exist_ok=True)
    # compiled under temporary names and renamed: processes starting together never
    # load a half-written library
    handle, partial = tempfile.mkstemp(dir=folder, suffix=".so.partial")
    os.close(handle)
    objects = partial[: -len(".so.partial")] + ".o"
    if openmp:  # compiled with OpenMP, linked against the runtime that is loaded
        steps = [
            [*compiler, *FLAGS, "-fopenmp", "-c", "-o", objects, str(source)],
            [*compiler, "-shared", "-o", partial, objects, openmp,
             f"-Wl,-rpath,{os.path.dirname(openmp)}", "-lm"],
        ]  # fmt: skip
    else:
        steps = [[*compiler, *FLAGS, "-shared", "-o", partial, str(source), "-lm"]]
    try:
        for command in steps:
            done = subprocess.run(command, capture_output=True, text=True, timeout=120)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}")
        os.replace(partial, library)
    finally:
        for path in (partial, objects):
            if os.path.exists(path):
                os.unlink(path)
    return library


def load(source: Path) -> ctypes.CDLL | None:
    """The compiled library of the C file ``source`` (compiled on first use, see the
    module docstring), or None, said once in the log, when it cannot be compiled or
    loaded here."""
    with _lock:
        if source not in _loaded:
            try:
                _loaded[source] = ctypes.CDLL(str(_compile(source)))
            except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                reason = " ".join(str(exc).split())[:300]
                logger.warning(
                    "could not compile %s (%s): the slower PyTorch version runs instead",
                    source.name, reason,
                )  # fmt: skip
                _loaded[source] = None
        return _loaded[source]


@cache
def function(source: Path, name: str, argtypes: tuple, restype=None):
    """The C function ``name`` of ``source`` (:func:`load`) with its ctypes argument and
    result types set, or None where the library cannot be compiled or loaded here."""
    library = load(source)
    if library is None:
        return None
    compiled = getattr(library, name)
    compiled.argtypes = list(argtypes)
    compiled.restype = restype
    return compiled
