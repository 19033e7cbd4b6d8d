"""Engines: ONNX export and ONNX Runtime against PyTorch, the export cache, create_engine
and its fallback order, BatchNorm folding, and the TensorRT engine's CPU-checkable parts
(cache key, supported ONNX ops, FP32 islands). The GPU paths are in test_gpu_engines.py.

The models get random, non-trivial weights: offset heads scaled so offsets are several
pixels (some beyond the 15 x 15 window, so the clamp matters), weight heads scaled so
the kernel weights spread over (0, 1), and random BatchNorm statistics, so a wrong
grid, padding or BatchNorm mode shows up as a large error.
"""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dkn_ros.engines import (
    ENGINES,
    Engine,
    FallbackEngine,
    TorchEngine,
    create_engine,
    plan_engines,
)
from dkn_ros.engines import onnx_engine as onnx_engine_module
from dkn_ros.engines import tensorrt as tensorrt_module
from dkn_ros.engines.onnx_engine import OnnxEngine, default_cache_dir, model_cache_key
from dkn_ros.engines.onnx_export import onnx_op_types, onnx_opset
from dkn_ros.engines.optimise import fold_batch_norm, optimise_for_cpu
from dkn_ros.engines.tensorrt import (
    TENSORRT_OPSETS,
    EngineBuildError,
    GraphNode,
    TensorRTEngine,
    UnsupportedShapeError,
    default_engine_dir,
    engine_cache_key,
    fp16_trunk,
    onnx_graph_nodes,
    profile_accepts,
    tensorrt_import_error,
    unsupported_onnx_ops,
)
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
    with pytest.raises(ValueError, match="unknown engine 'tensorrtx'.*auto, torch, onnx, tensorrt"):
        create_engine("tensorrtx", fdkn)
    assert ENGINES == ("auto", "torch", "onnx", "tensorrt")

    torch_engine = create_engine("torch", fdkn)
    assert isinstance(torch_engine, TorchEngine)
    assert torch_engine.describe() == "torch on cpu"

    onnx = create_engine("onnx", fdkn, cache_dir=cache_dir)
    assert onnx.name == "onnx" and not onnx.exported  # from the cache
    assert onnx.describe().startswith("onnx on cpu (fdkn-")
    assert "threads" in onnx.describe()

    auto = create_engine("auto", fdkn, cache_dir=cache_dir)
    assert auto.describe() == "torch on cpu"  # the faster engine on CPU (bench/RESULTS.md)
    with pytest.raises(TypeError, match="unknown engine options \\['banana'\\]"):
        create_engine("torch", fdkn, banana=1)
    # options an engine does not take are ignored (the node passes the GPU ones always)
    assert create_engine("torch", fdkn, precision="fp16", size=(48, 64)).describe() == (
        "torch on cpu"
    )


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


# ---------------------------------------------------------------------- engine choice and fallbacks

CPU = ("torch", "cpu")  # "the CPU": PyTorch, also for auto (bench/RESULTS.md)
NO_TRT = "TensorRT is not installed (ModuleNotFoundError: No module named 'tensorrt')"


@pytest.mark.parametrize(
    "name, device, cuda, trt_error, expected, n_reasons",
    [
        # a machine with CUDA and TensorRT: every GPU request starts on the GPU
        ("tensorrt", "cuda", True, None, [("tensorrt", "cuda"), ("torch", "cuda"), CPU], 0),
        ("tensorrt", "cpu", True, None, [("tensorrt", "cuda"), ("torch", "cuda"), CPU], 0),
        ("auto", "cuda:1", True, None, [("tensorrt", "cuda:1"), ("torch", "cuda:1"), CPU], 0),
        ("torch", "cuda", True, None, [("torch", "cuda"), CPU], 0),
        ("onnx", "cuda", True, None, [("onnx", "cuda"), ("torch", "cuda"), ("onnx", "cpu")], 0),
        ("auto", "cpu", True, None, [CPU], 0),
        ("torch", "cpu", True, None, [CPU], 0),
        ("onnx", "cpu", True, None, [("onnx", "cpu")], 0),
        # CUDA but no TensorRT: auto means PyTorch CUDA (no warning), tensorrt falls back
        ("auto", "cuda", True, NO_TRT, [("torch", "cuda"), CPU], 0),
        ("tensorrt", "cuda", True, NO_TRT, [("torch", "cuda"), CPU], 1),
        # no CUDA (this machine): every GPU stage goes, with one reason
        ("tensorrt", "cuda", False, NO_TRT, [CPU], 1),
        ("auto", "cuda", False, NO_TRT, [CPU], 1),
        ("torch", "cuda", False, None, [CPU], 1),
        ("onnx", "cuda:0", False, None, [("onnx", "cpu")], 1),
        ("auto", "cpu", False, NO_TRT, [CPU], 0),
    ],
)  # fmt: skip
def test_plan_engines(name, device, cuda, trt_error, expected, n_reasons):
    stages, reasons = plan_engines(
        name, device, cuda=cuda, tensorrt_error=trt_error, onnxruntime=True
    )
    assert stages == expected
    assert len(reasons) == n_reasons
    if not cuda and n_reasons:
        assert reasons[0].startswith("CUDA is not available")
    elif n_reasons:
        assert reasons == [NO_TRT]


def test_plan_engines_without_onnxruntime():
    stages, _ = plan_engines("onnx", "cuda", cuda=False, tensorrt_error=None, onnxruntime=False)
    assert stages == [("torch", "cpu")]
    with pytest.raises(ValueError, match="unknown engine 'cuda'"):
        plan_engines("cuda", "cpu", cuda=True, tensorrt_error=None, onnxruntime=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("name", ["tensorrt", "auto", "torch"])
def test_gpu_request_without_cuda_falls_back_with_one_warning(fdkn, cache_dir, caplog, name):
    """The real absence of CUDA (and TensorRT) here: one warning naming it, and an
    engine that works."""
    caplog.set_level("INFO", logger="dkn_ros.engines")
    engine = create_engine(name, fdkn, "cuda", cache_dir=cache_dir, precision="fp16")
    assert engine.device == "cpu"
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    message = warnings[0].getMessage()
    assert f"engine '{name}' on 'cuda'" in message and "CUDA is not available" in message
    assert message.endswith(f"using {engine.describe()}")
    guidance, target = inputs(40, 52)
    assert np.abs(engine.run(guidance, target) - torch_output(fdkn, guidance, target)).max() < 1e-4


def test_failing_tensorrt_build_falls_back_to_the_next_engine(fdkn, caplog):
    """A build error (injected through the makers seam, as a TensorRT engine whose
    builder fails would raise it) gives one warning and the next engine of the list."""
    made = []

    def failing_tensorrt(model, device, options):
        made.append(("tensorrt", device, dict(options)))
        raise EngineBuildError("TensorRT could not build an engine from fdkn.onnx (fp16)")

    def stand_in_for_cuda(model, device, options):  # a real engine, on the CPU here
        made.append(("torch", device, dict(options)))
        return TorchEngine(model)

    caplog.set_level("WARNING", logger="dkn_ros.engines")
    engine = create_engine(
        "tensorrt",
        fdkn,
        "cuda",
        makers={"tensorrt": failing_tensorrt, "torch": stand_in_for_cuda},
        capabilities={"cuda": True, "tensorrt_error": None, "onnxruntime": True},
        precision="fp16",
        size=(48, 64),
    )
    assert [m[:2] for m in made] == [("tensorrt", "cuda"), ("torch", "cuda")]
    assert made[0][2] == {"precision": "fp16", "size": (48, 64)}
    assert isinstance(engine, TorchEngine)
    (record,) = caplog.records
    assert "tensorrt on cuda failed: TensorRT could not build an engine" in record.getMessage()


def test_last_engine_error_propagates(fdkn):
    def broken(model, device, options):
        raise RuntimeError("no engine today")

    with pytest.raises(RuntimeError, match="no engine today"):
        create_engine(
            "torch",
            fdkn,
            "cuda",
            makers={"torch": broken},
            capabilities={"cuda": True, "tensorrt_error": None, "onnxruntime": True},
        )


class ShapeLimited(Engine):
    """A primary engine with a profile: refuses frames larger than ``limit`` (H, W) as
    TensorRTEngine does, and can be told to fail at execution."""

    name = "limited"

    def __init__(self, model, limit):
        self.inner = TorchEngine(model)
        self.limit = limit
        self.fail = False
        self.calls = 0

    def run(self, guidance, target):
        if not profile_accepts(target.shape[-2:], (8, 8), self.limit):
            raise UnsupportedShapeError(f"frame {target.shape[-2:]} is outside the profile")
        if self.fail:
            raise RuntimeError("TensorRT execute_async_v3 failed")
        self.calls += 1
        return self.inner.run(guidance, target)


def test_fallback_engine_takes_refused_sizes_and_failures(fdkn, caplog):
    caplog.set_level("WARNING", logger="dkn_ros.engines")
    primary = ShapeLimited(fdkn, (44, 56))
    made = []

    def make_fallback():
        made.append(1)
        return TorchEngine(fdkn)

    engine = FallbackEngine(primary, make_fallback)
    small, large = inputs(40, 52), inputs(61, 83)
    np.testing.assert_allclose(engine.run(*small), torch_output(fdkn, *small), atol=1e-5)
    assert primary.calls == 1 and not made  # the fallback is made only when needed
    for _ in range(3):  # one warning for the size, however many frames
        np.testing.assert_allclose(engine.run(*large), torch_output(fdkn, *large), atol=1e-5)
    assert len(made) == 1 and len(caplog.records) == 1
    assert "outside the profile" in caplog.records[0].getMessage()
    engine.run(*small)
    assert primary.calls == 2  # the primary keeps the sizes it takes
    primary.fail = True
    engine.run(*small)
    engine.run(*small)
    assert engine.primary is None and len(caplog.records) == 2
    assert "every frame now runs on torch on cpu" in caplog.records[1].getMessage()
    assert engine.describe() == "torch on cpu" and len(made) == 1


# ---------------------------------------------------------------------- TensorRT pieces (no GPU)

KEY_FIELDS = {
    "onnx_sha256": "ab" * 32,
    "tensorrt_version": "10.3.0",
    "gpu_name": "NVIDIA H100 80GB HBM3",
    "compute_capability": (9, 0),
    "precision": "fp16",
    "min_shape": (8, 8),
    "opt_shape": (480, 640),
    "max_shape": (480, 640),
}
KEY_CHANGES = {
    "onnx_sha256": "ac" * 32,
    "tensorrt_version": "10.3.1",
    "gpu_name": "NVIDIA GeForce RTX 4090",
    "compute_capability": (8, 9),
    "precision": "fp32",
    "min_shape": (16, 16),
    "opt_shape": (240, 320),
    "max_shape": (720, 1280),
}


def test_engine_cache_key_is_stable():
    key = engine_cache_key(**KEY_FIELDS)
    assert len(key) == 24 and int(key, 16) >= 0
    assert engine_cache_key(**dict(reversed(list(KEY_FIELDS.items())))) == key
    same_values = {**KEY_FIELDS, "compute_capability": [9, 0], "min_shape": [8, 8]}
    assert engine_cache_key(**same_values) == key  # lists or tuples: the same key


@pytest.mark.parametrize("field", sorted(KEY_FIELDS))
def test_engine_cache_key_changes_with_each_field(field):
    assert set(KEY_CHANGES) == set(KEY_FIELDS)
    key = engine_cache_key(**KEY_FIELDS)
    assert engine_cache_key(**{**KEY_FIELDS, field: KEY_CHANGES[field]}) != key


def test_engine_cache_key_changes_with_the_format(monkeypatch):
    key = engine_cache_key(**KEY_FIELDS)
    monkeypatch.setattr(tensorrt_module, "ENGINE_FORMAT", tensorrt_module.ENGINE_FORMAT + 1)
    assert engine_cache_key(**KEY_FIELDS) != key


def test_engine_cache_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("DKN_ROS_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_engine_dir() == tmp_path / "dkn_ros" / "tensorrt"
    monkeypatch.setenv("DKN_ROS_CACHE_DIR", str(tmp_path / "mine"))
    assert default_engine_dir() == tmp_path / "mine" / "tensorrt"
    assert default_cache_dir() == tmp_path / "mine" / "onnx"


def test_profile_accepts():
    assert profile_accepts((480, 640), (8, 8), (480, 640))
    assert profile_accepts((8, 8), (8, 8), (480, 640))
    assert not profile_accepts((481, 640), (8, 8), (480, 640))
    assert not profile_accepts((480, 641), (8, 8), (480, 640))
    assert not profile_accepts((7, 100), (8, 8), (480, 640))


def test_fp16_trunk_of_a_small_graph():
    """in -> pad -> conv1 -> relu -> conv2 -> sigmoid -> mul(pad) -> out: only the
    convolutions and what lies between them may run in FP16."""
    nodes = [
        GraphNode("pad", False, ("in",), ("p",)),
        GraphNode("conv1", True, ("p", "w1"), ("c1",)),
        GraphNode("relu", False, ("c1",), ("r",)),
        GraphNode("conv2", True, ("r", "w2"), ("c2",)),
        GraphNode("sigmoid", False, ("c2",), ("s",)),
        GraphNode("shape", False, ("p",), ("hw",)),  # beside the trunk, not in it
        GraphNode("residual", False, ("s", "p"), ("out",)),
    ]
    assert fp16_trunk(nodes) == {"conv1", "relu", "conv2"}
    assert fp16_trunk([n for n in nodes if not n.is_conv]) == set()


def test_onnx_graphs_fit_tensorrt_10(fdkn_engine, dkn_trained_mode):
    """FDKN and DKN (single pass) as exported: every op is one TensorRT 10 imports, the
    opset is one every TensorRT 10 reads, and the FP16 trunk is exactly the
    convolutions and ReLUs (sampling, weighted average and residual add stay FP32)."""
    import onnx

    for path in (fdkn_engine.onnx_path, dkn_trained_mode[1].onnx_path):
        ops = onnx_op_types(path)
        assert "GridSample" in ops and "Conv" in ops
        assert unsupported_onnx_ops(ops) == set(), path.name
        lo, hi = TENSORRT_OPSETS
        assert 17 <= onnx_opset(path) and lo <= onnx_opset(path) <= hi
        nodes = onnx_graph_nodes(path)
        op_of = {node.name: node.op_type for node in onnx.load(str(path)).graph.node}
        trunk = fp16_trunk(nodes)
        assert {op_of[name] for name in trunk} == {"Conv", "Relu"}
        assert sum(op_of[name] == "Conv" for name in trunk) == sum(
            op == "Conv" for op in op_of.values()
        )
        outside = {op_of[n.name] for n in nodes if n.name not in trunk}
        assert {"GridSample", "ReduceMean", "ReduceSum", "Sigmoid", "Pad", "Add"} <= outside
        # the residual add: the last Add, fed by the target itself, is outside the trunk
        last_add = [n for n in nodes if op_of[n.name] == "Add"][-1]
        assert last_add.name not in trunk
    assert unsupported_onnx_ops({"Conv", "Col2Im"}) == {"Col2Im"}


@pytest.mark.skipif(tensorrt_import_error() is None, reason="TensorRT is installed here")
def test_tensorrt_engine_without_tensorrt(fdkn):
    with pytest.raises(ImportError, match="TensorRT is not installed"):
        TensorRTEngine(fdkn)


@pytest.mark.skipif(tensorrt_import_error() is None, reason="TensorRT is installed here")
def test_build_engine_commands_without_tensorrt(capsys):
    """``dkn-ros build-engine``: one line and exit code 2 where TensorRT is missing."""
    from dkn_ros import cli

    missing = "TensorRT is not installed (ModuleNotFoundError: No module named 'tensorrt')"
    assert cli.main(["build-engine", "--size", "64x48", "--scale", "8"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"dkn-ros: error: {missing}"]


def test_first_export_says_so_and_the_next_process_uses_the_cache(tmp_path, caplog):
    """The slow ONNX export is announced (what, that it takes a while, where it is
    cached); a second process (the next run of the CLI or the node) loads the cached
    graph: no export, no line."""
    import subprocess
    import sys

    from dkn_ros.models import ModelCard, load_model, save_model

    weights = tmp_path / "fdkn_x4.safetensors"
    card = ModelCard(model="fdkn", config={"n1": 32, "n2": 32}, task="upsampling", scale=4)
    save_model(build_model("fdkn", n1=32, n2=32), card, weights)
    cache = tmp_path / "cache"
    model, _ = load_model(weights)
    with caplog.at_level(logging.INFO, logger="dkn_ros.engines.onnx_engine"):
        engine = OnnxEngine(model, cache_dir=cache)
    assert engine.exported
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "exporting FDKN to ONNX" in warnings[0] and "the first time" in warnings[0]
    assert str(engine.onnx_path) in warnings[0] and engine.onnx_path.parent == cache
    mtime = engine.onnx_path.stat().st_mtime_ns

    code = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.DEBUG)\n"
        "from dkn_ros.engines.onnx_engine import OnnxEngine\n"
        "from dkn_ros.models import load_model\n"
        "model, _ = load_model(sys.argv[1])\n"
        "engine = OnnxEngine(model, cache_dir=sys.argv[2])\n"
        "print(engine.exported, engine.onnx_path)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(weights), str(cache)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", str(engine.onnx_path)]
    assert "exporting" not in result.stderr and "exported" not in result.stderr
    assert engine.onnx_path.stat().st_mtime_ns == mtime


FAULTS_SCRIPT = """
import resource, sys
import numpy as np, torch
from dkn_ros.engines import create_engine
from dkn_ros.models import build_model
torch.set_num_threads(1)
torch.manual_seed(0)
engine = create_engine("torch", build_model("fdkn").eval(), tune_malloc=sys.argv[1] == "1")
g = np.random.default_rng(0).random((1, 3, 240, 320), dtype=np.float32)
t = g[:, :1].copy()
for _ in range(2):
    engine.run(g, t)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    engine.run(g, t)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / 4)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning: Linux")
def test_cpu_engine_reuses_the_networks_buffers():
    """With its default ``tune_malloc`` the CPU engine's buffers stay mapped between
    frames: an order of magnitude fewer page faults per frame than with glibc's own
    thresholds (measured here: about 340 against 5 000-6 000 at 320 x 240), each in a
    fresh process since the setting is process-wide."""

    def faults(tune: bool) -> float:
        result = subprocess.run(
            [sys.executable, "-c", FAULTS_SCRIPT, "1" if tune else "0"],
            capture_output=True, text=True, timeout=300, check=True,
        )  # fmt: skip
        return float(result.stdout.split()[-1])

    assert faults(True) * 3 < faults(False)
