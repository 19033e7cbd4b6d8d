"""bfloat16 against float32 for the same weights (issue "Camera rate on a CPU"): FDKN's
streams in bfloat16 may cost at most 0.05 RMSE (0..255 units) on middlebury30 x8, on
the camera benchmark's bicubic and point-sampled rows, for the full and the small FDKN.
The rows are the benchmark's own (training.camera_benchmark); needs the data directory
and a CPU that computes bfloat16 natively, else skipped with the reason."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dkn_ros.engines.optimise import cpu_computes_bf16, to_bfloat16
from dkn_ros.engines.torch_engine import TorchEngine
from dkn_ros.models import build_model
from dkn_ros.models.registry import DEFAULT_WEIGHTS_DIR
from training.data import data_dir

PARITY_RMSE = 0.05  # the bound, 0..255 units
needs_bf16 = pytest.mark.skipif(
    not cpu_computes_bf16(), reason="this CPU has no native bfloat16 (AVX-512 BF16 or AMX)"
)


@needs_bf16
def test_bf16_engine_is_close_to_fp32_on_random_input():
    torch.manual_seed(0)
    model = build_model("fdkn_s").eval()
    rng = np.random.default_rng(0)
    guidance = rng.random((1, 3, 64, 96), dtype=np.float32)
    target = rng.random((1, 1, 64, 96), dtype=np.float32)
    fp32 = TorchEngine(model).run(guidance, target)
    bf16_engine = TorchEngine(model, cpu_precision="bf16")
    bf16 = bf16_engine.run(guidance, target)
    assert bf16.dtype == np.float32 and bf16.shape == fp32.shape
    assert bf16_engine.describe() == "torch on cpu (bf16)"
    assert 0 < np.abs(bf16 - fp32).max() < 0.05  # it does change, a little


def test_bf16_is_refused_where_it_cannot_run():
    with pytest.raises(ValueError, match="cpu_precision must be one of"):
        TorchEngine(build_model("fdkn_s"), cpu_precision="fp16")
    with pytest.raises(ValueError, match="bf16 is offered for FDKN only"):
        to_bfloat16(build_model("dkn"))


@needs_bf16
def test_bf16_keeps_the_weighted_average_in_float32():
    model = to_bfloat16(build_model("fdkn_s").eval())
    assert model.guidance_stream.features[0].weight.dtype == torch.bfloat16
    assert model.target_stream.offset_head.weight.dtype == torch.bfloat16
    with torch.inference_mode():
        weights, offsets = model.kernels(torch.rand(1, 3, 32, 32), torch.rand(1, 1, 32, 32))
    assert weights.dtype == offsets.dtype == torch.float32
    assert weights.is_contiguous() and offsets.is_contiguous()


@needs_bf16
@pytest.mark.parametrize("weights", ["fdkn_x8", "fdkn_s_x8"])
def test_bf16_parity_on_middlebury30_x8(weights):
    from training.camera_benchmark import dataset_missing, run

    missing = dataset_missing("middlebury30", data_dir(None))
    if missing:
        pytest.skip(f"middlebury30 is not available: {missing}")
    path = DEFAULT_WEIGHTS_DIR / f"{weights}.safetensors"
    if not path.is_file():
        pytest.skip(f"{path} is not shipped")
    out = run(["--datasets", "middlebury30", "--grids", "bicubic", "point", "--scales", "8",
               "--model-weights", str(path), "--bf16", "--no-baselines",
               "--engine", "torch"])  # fmt: skip
    rows = {row["degradation"]: row["cells"] for row in out["rows"]}
    assert set(rows) == {"bicubic", "point"}
    for degradation, cells in rows.items():
        fp32, bf16 = cells[weights]["rmse"], cells[f"{weights} bf16"]["rmse"]
        assert abs(bf16 - fp32) <= PARITY_RMSE, (degradation, fp32, bf16)
