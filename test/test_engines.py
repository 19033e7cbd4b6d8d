"""Engines: ONNX export and ONNX Runtime against PyTorch, the export cache, create_engine,
and BatchNorm folding.

The models get random, non-trivial weights: offset heads scaled so offsets are several
pixels (some beyond the 15 x 15 window, so the clamp matters), weight heads scaled so
the kernel weights spread over (0, 1), and random BatchNorm statistics, so a wrong
grid, padding or BatchNorm mode shows up as a large error.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dkn_ros.engines import ENGINES, TorchEngine, create_engine
from dkn_ros.engines import onnx_engine as onnx_engine_module
from dkn_ros.engines.onnx_engine import OnnxEngine, default_cache_dir, model_cache_key
from dkn_ros.engines.onnx_export import onnx_op_types, onnx_opset
from dkn_ros.engines.optimise import fold_batch_norm, optimise_for_cpu
from dkn_ros.models import build_model

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

SIZES = [(40, 52), (61, 83)]  # (H, W); 61 x 83 is not a multiple of 4


def randomised(
    name: str, seed: int, scale: float, weight_scale: float = 8.0, **config
) -> nn.Module:
    """A model with non-trivial weights (see the module docstring), in eval mode."""
    torch.manual_seed(seed)
    model = build_model(name, **config)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.3, generator=gen)
                module.running_var.uniform_(0.3, 3.0, generator=gen)
                module.weight.uniform_(0.5, 1.5, generator=gen)
                module.bias.normal_(0.0, 0.2, generator=gen)
        for stream in (model.guidance_stream, model.target_stream):
            stream.offset_head.weight.mul_(scale)
            stream.offset_head.bias.normal_(0.0, 1.5, generator=gen)
            stream.weight_head.weight.mul_(weight_scale)
    return model.eval()


def inputs(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    guidance = rng.random((1, 3, height, width), dtype=np.float32)
    # a smooth target with an edge, like normalised depth
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    target = 0.3 + 0.4 * (xx > width / 2) + 0.1 * np.sin(yy / 5) + 0.05 * rng.random(xx.shape)
    return guidance, target.astype(np.float32)[None, None]


def torch_output(model: nn.Module, guidance: np.ndarray, target: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(guidance), torch.from_numpy(target)).numpy()


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx_cache")


@pytest.fixture(scope="module")
def fdkn():
    return randomised("fdkn", seed=1, scale=30.0)


@pytest.fixture(scope="module")
def fdkn_engine(fdkn, cache_dir):
    engine = OnnxEngine(fdkn, cache_dir=cache_dir)
    assert engine.exported
    return engine


@pytest.fixture(scope="module")
def dkn_trained_mode(cache_dir):
    """DKN (shift-and-stitch setting) left in training mode when it is exported: the
    export must still use eval-mode BatchNorm and the single-pass form."""
    model = randomised("dkn", seed=2, scale=60.0, inference="shift_and_stitch")
    model.train()
    engine = OnnxEngine(model, cache_dir=cache_dir)
    assert model.training, "export must restore the model's mode"
    return model.eval(), engine


def test_random_weights_are_not_trivial(fdkn):
    guidance, target = inputs(40, 52)
    with torch.no_grad():
        weights, offsets = fdkn.kernels(torch.from_numpy(guidance), torch.from_numpy(target))
    assert offsets.abs().mean() > 2.0  # several pixels
    assert (offsets.abs() > 7).any()  # some beyond the window: the clamp is exercised
    assert weights.std() > 0.05  # kernels that differ from pixel to pixel
    # the filter changes the target by far more than the 1e-4 tolerance below
    assert np.abs(torch_output(fdkn, guidance, target) - target).mean() > 0.01


@pytest.mark.parametrize("size", SIZES)
def test_fdkn_onnx_matches_torch(fdkn, fdkn_engine, size):
    guidance, target = inputs(*size)
    out = fdkn_engine.run(guidance, target)
    assert out.shape == (1, 1, *size) and out.dtype == np.float32
    assert np.abs(out - torch_output(fdkn, guidance, target)).max() < 1e-4


@pytest.mark.parametrize("size", SIZES)
def test_dkn_onnx_matches_torch(dkn_trained_mode, size):
    model, engine = dkn_trained_mode
    guidance, target = inputs(*size, seed=3)
    out = engine.run(guidance, target)
    assert out.shape == (1, 1, *size)
    assert np.abs(out - torch_output(model, guidance, target)).max() < 1e-4


def test_graph_has_gridsample_opset_and_dynamic_sizes(fdkn_engine, dkn_trained_mode):
    import onnx

    for path in (fdkn_engine.onnx_path, dkn_trained_mode[1].onnx_path):
        ops = onnx_op_types(path)
        assert "GridSample" in ops
        assert "BatchNormalization" not in ops  # eval mode: folded into the convs
        assert onnx_opset(path) >= 17
        graph = onnx.load(str(path)).graph
        assert [i.name for i in graph.input] == ["guidance", "target"]
        assert [o.name for o in graph.output] == ["depth"]
        for value in (*graph.input, *graph.output):
            dims = value.type.tensor_type.shape.dim
            assert dims[2].dim_param and dims[3].dim_param, f"{value.name}: H, W not dynamic"


def test_export_cache_is_reused(fdkn, fdkn_engine, cache_dir, monkeypatch):
    path = fdkn_engine.onnx_path
    assert path.parent == cache_dir
    mtime = path.stat().st_mtime_ns

    def no_export(*args, **kwargs):
        raise AssertionError("the cached graph should have been used")

    monkeypatch.setattr(onnx_engine_module, "export_onnx", no_export)
    again = OnnxEngine(fdkn, cache_dir=cache_dir)
    assert not again.exported
    assert again.onnx_path == path and path.stat().st_mtime_ns == mtime
    guidance, target = inputs(40, 52)
    np.testing.assert_array_equal(again.run(guidance, target), fdkn_engine.run(guidance, target))


def test_cache_key_depends_on_weights_and_opset(fdkn):
    key = model_cache_key(fdkn)
    assert key == model_cache_key(fdkn)
    assert key != model_cache_key(fdkn, opset=19)
    other = build_model("fdkn")
    other.load_state_dict(fdkn.state_dict())
    assert model_cache_key(other) == key
    with torch.no_grad():
        other.target_stream.offset_head.bias[0] += 1e-3
    assert model_cache_key(other) != key


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("DKN_ROS_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "dkn_ros" / "onnx"
    monkeypatch.setenv("DKN_ROS_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine" / "onnx"


def test_onnx_engine_from_path(fdkn_engine):
    engine = OnnxEngine(fdkn_engine.onnx_path, threads=1)
    assert not engine.exported
    guidance, target = inputs(40, 52)
    assert np.abs(engine.run(guidance, target) - fdkn_engine.run(guidance, target)).max() < 1e-5
    with pytest.raises(FileNotFoundError):
        OnnxEngine(fdkn_engine.onnx_path.with_name("missing.onnx"))


def test_create_engine_names_and_describe(fdkn, fdkn_engine, cache_dir):
    with pytest.raises(ValueError, match="unknown engine 'tensorrtx'.*auto, torch, onnx"):
        create_engine("tensorrtx", fdkn)
    assert set(ENGINES) == {"auto", "torch", "onnx"}

    torch_engine = create_engine("torch", fdkn)
    assert isinstance(torch_engine, TorchEngine)
    assert torch_engine.describe() == "torch on cpu"

    onnx = create_engine("onnx", fdkn, cache_dir=cache_dir)
    assert onnx.name == "onnx" and not onnx.exported  # from the cache
    assert onnx.describe().startswith("onnx on cpu (fdkn-")
    assert "threads" in onnx.describe()

    auto = create_engine("auto", fdkn, cache_dir=cache_dir)
    assert auto.name == "onnx"  # the faster engine on CPU (bench/RESULTS.md)
    with pytest.raises(TypeError):
        create_engine("torch", fdkn, cache_dir=cache_dir)
    if not torch.cuda.is_available():  # auto on CUDA is the torch engine
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            create_engine("auto", fdkn, device="cuda")


def test_onnx_engine_rejects_unknown_device(fdkn_engine):
    with pytest.raises(ValueError, match="unknown device"):
        OnnxEngine(fdkn_engine.onnx_path, device="tpu")


@pytest.mark.parametrize("name", ["fdkn", "dkn"])
def test_fold_batch_norm_keeps_outputs(name):
    model = randomised(name, seed=4, scale=30.0)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    folded = fold_batch_norm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 6  # untouched
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])
    guidance, target = inputs(40, 52, seed=5)
    reference = torch_output(model, guidance, target)
    assert np.abs(torch_output(folded, guidance, target) - reference).max() < 1e-5
    # the folded convolutions give the same kernels, not just the same image
    g, t = torch.from_numpy(guidance), torch.from_numpy(target)
    with torch.no_grad():
        if name == "fdkn":
            expected, got = model.kernels(g, t), folded.kernels(g, t)
        else:
            pad = (25, 24, 25, 24)
            padded = F.pad(g, pad, mode="replicate"), F.pad(t, pad, mode="replicate")
            expected, got = model.kernels(*padded, True), folded.kernels(*padded, True)
    for a, b in zip(expected, got, strict=True):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


def test_optimise_for_cpu_keeps_outputs(fdkn):
    optimised = optimise_for_cpu(fdkn)
    guidance, target = inputs(61, 83, seed=6)
    reference = torch_output(fdkn, guidance, target)
    assert np.abs(torch_output(optimised, guidance, target) - reference).max() < 1e-5
