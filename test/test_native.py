"""The C kernels compiled on first use (dkn_ros.native: the deformable weighted average
and the joint bilateral upsampling): cached, on PyTorch's OpenMP runtime, and a clear
fallback without a compiler. Each case runs in its own process
(a process compiles and loads a kernel once)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROGRAM = """
import logging, sys
import torch
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
from dkn_ros import native
from dkn_ros.models import FDKN, sampling_cpu
from dkn_ros.processing import guided

torch.manual_seed(0)
model = FDKN().eval()
target, image = torch.rand(1, 1, 16, 24), torch.rand(1, 3, 16, 24)
depth = torch.rand(2, 3)
with torch.no_grad():
    got = model(image, target)
    got_up = guided.joint_bilateral_upsample(depth, image)
    native.ENABLED = False
    expected = model(image, target)
    expected_up = guided.joint_bilateral_upsample(depth, image)
print("usable", sampling_cpu._function() is not None, guided._compiled() is not None)
close = [torch.allclose(got, expected, atol=1e-5), torch.allclose(got_up, expected_up, atol=1e-5)]
print("equal", *close)
print("openmp", native.loaded_openmp())
"""

KERNELS = ("sampling_cpu", "guided")


def run(tmp_path, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "DKN_ROS_CACHE_DIR": str(tmp_path / "cache"), **env}
    environment.pop("DKN_NATIVE_KERNELS", None)
    return subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, env=environment,
        timeout=300,
    )  # fmt: skip


def test_kernel_is_compiled_once_and_reused(tmp_path):
    first = run(tmp_path)
    if "could not compile" in first.stderr:
        pytest.skip(f"no working C compiler here: {first.stderr.strip()[-300:]}")
    assert first.returncode == 0, first.stderr
    assert "usable True True" in first.stdout and "equal True True" in first.stdout, first.stdout
    libraries = sorted((tmp_path / "cache" / "native").glob("*.so"))
    assert [path.name.rsplit("-", 1)[0] for path in libraries] == sorted(KERNELS), libraries
    built = [path.stat().st_mtime_ns for path in libraries]
    second = run(tmp_path)
    assert second.returncode == 0 and "equal True True" in second.stdout, second.stderr
    assert [path.stat().st_mtime_ns for path in libraries] == built  # not rebuilt
    assert not list((tmp_path / "cache" / "native").glob("*.partial"))


def test_kernel_joins_pytorchs_openmp_runtime(tmp_path):
    """Linked against the libgomp PyTorch loaded, so its parallel regions use PyTorch's
    threads (no second runtime spinning against them)."""
    result = run(tmp_path)
    if "could not compile" in result.stderr:
        pytest.skip(f"no working C compiler here: {result.stderr.strip()[-300:]}")
    openmp = result.stdout.split("openmp ", 1)[1].strip()
    if openmp == "None":
        pytest.skip("this PyTorch build loads no libgomp")
    (library,) = (tmp_path / "cache" / "native").glob("sampling_cpu-*.so")
    ldd = subprocess.run(["ldd", str(library)], capture_output=True, text=True)
    if ldd.returncode != 0:
        pytest.skip("ldd is not available")
    assert openmp in ldd.stdout, ldd.stdout


def test_without_a_compiler_the_tensor_operations_run(tmp_path):
    result = run(tmp_path, CC=str(tmp_path / "no-such-compiler"))
    assert result.returncode == 0, result.stderr
    assert "usable False False" in result.stdout, result.stdout
    assert "equal True True" in result.stdout, result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == len(KERNELS), result.stderr  # once for each kernel
    for kernel, warning in zip(KERNELS, warnings, strict=True):
        assert f"could not compile {kernel}.c" in warning
        assert "the slower PyTorch version runs instead" in warning
