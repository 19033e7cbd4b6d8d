"""GPU paths: what can be proven on the CPU here, and the CUDA / TensorRT checks that run
where those exist (skipped elsewhere, with the reason).

On the CPU: the pipeline's torch back-end (``dkn_ros.processing.arrays.TorchArrays``,
on CPU tensors) against its numpy back-end, the FP32 islands of the mixed-precision model (bfloat16,
which CPU autocast supports), ``bench/gpu_check.py``'s check logic in its CPU mode, and
the node started with ``device: cuda`` on a machine without CUDA.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dkn_ros import processing
from dkn_ros.engines import TorchEngine, create_engine
from dkn_ros.engines.tensorrt import tensorrt_import_error
from dkn_ros.engines.torch_cuda import export_for_capture, mixed_precision_model
from dkn_ros.enhancer import Enhancer
from dkn_ros.models import ModelCard, build_model, load_model
from dkn_ros.processing import prepare_depth
from dkn_ros.processing.arrays import NUMPY, TORCH_BICUBIC_ERROR, TorchArrays
from dkn_ros.synthetic import KinectDegradation, degrade_depth, render_frame

REPO = Path(__file__).resolve().parent.parent
WEIGHTS = REPO / "dkn_ros" / "weights" / "fdkn_x8.safetensors"
UPSAMPLING = ModelCard.read(WEIGHTS.with_suffix(".json")).input_upsampling
CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(
    not CUDA, reason=f"needs a CUDA device (torch {torch.__version__}: none available)"
)
needs_tensorrt = pytest.mark.skipif(
    not CUDA or tensorrt_import_error() is not None,
    reason=f"needs CUDA and TensorRT ({tensorrt_import_error() or 'no CUDA device'})",
)


def frame(width: int = 96, height: int = 72, scale: int = 8, seed: int = 0, metres=False):
    """Colour (H, W, 3) uint8 and Kinect-like depth at 1/scale (uint16 mm or float32 m)."""
    rendered = render_frame(t=0.3 * seed, width=width, height=height, seed=seed)
    depth = degrade_depth(rendered.depth, KinectDegradation(scale=scale), seed=seed)
    if metres:
        depth = np.where(depth > 0, depth / 1000.0, np.nan).astype(np.float32)
    return rendered.color, depth


@pytest.fixture(scope="module")
def fdkn():
    model, _ = load_model(WEIGHTS)
    return model


# ---------------------------------------------------------------------- pre-processing


TORCH = TorchArrays("cpu")  # the device back-end, on CPU tensors here


@pytest.mark.parametrize(
    "kind",
    ["uint16_x8", "metres_x4", "same_size", "any_ratio"],
)
def test_prepare_depth_is_prepare_target_without_the_upsampling(kind):
    if kind == "uint16_x8":
        color, depth = frame(scale=8)
    elif kind == "metres_x4":
        color, depth = frame(scale=4, metres=True)
    elif kind == "same_size":
        color, depth = frame(scale=1)
    else:  # 27 x 36 under 72 x 96: ratio 2.67
        color, depth = frame(scale=8)
        depth = processing.nearest_resize(frame(scale=1)[1], (27, 36))
    assert (depth == 0).any() or np.isnan(depth).any()  # holes are exercised
    guidance = processing.guidance_from_color(color)
    depth_in = prepare_depth(depth, color.shape)
    for upsampling in processing.UPSAMPLINGS:
        target, prepared = processing.prepare_target(
            depth, color.shape, upsampling=upsampling, guidance=guidance
        )
        expected = processing.upsample(
            depth_in.normalised, prepared.output_shape, upsampling, guidance
        )
        np.testing.assert_array_equal(expected[None, None], target)
    mask = depth_in.mask
    assert mask.shape == depth_in.normalised.shape == depth.shape and mask.dtype == bool
    for field in ("scale", "dmin", "dmax", "dtype", "input_shape", "output_shape"):
        assert getattr(depth_in, field) == getattr(prepared, field), field
    np.testing.assert_array_equal(depth_in.output_mask, prepared.output_mask)


@pytest.mark.parametrize(
    "depth, match",
    [
        (np.zeros((9, 12), np.uint16), "no valid pixel"),
        (np.ones((10, 24), np.uint16), "aspect ratios differ"),
        (np.ones((9, 12), np.int32), "must be uint16"),
    ],
)
def test_prepare_depth_rejects_what_prepare_target_rejects(depth, match):
    for function in (processing.prepare_target, prepare_depth):
        with pytest.raises(processing.InputError, match=match):
            function(depth, (72, 96, 3))


@pytest.mark.parametrize("order", ["rgb", "bgr"])
def test_guidance_is_bit_identical_on_both_back_ends(order):
    color, _ = frame()
    color = color[:, ::-1]  # non-contiguous, as a message view can be
    expected = processing.guidance_from_color(color, order)
    got = processing.guidance_from_color(color, order, TORCH).numpy()
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("scale", [2, 4, 8, 16])
def test_torch_bicubic_matches_pil_bicubic(scale):
    """torch bicubic with antialias=True is PIL's resampler (a = -0.5, borders
    renormalised); without antialias (a = -0.75, clamped borders) it is 1e-2 off."""
    rng = np.random.default_rng(scale)
    h, w = 96 // scale, 128 // scale
    yy, xx = np.mgrid[0:h, 0:w]
    lr = 0.4 + 0.3 * np.sin(xx / 3.0) + 0.2 * (yy > h / 2) + 0.05 * rng.random((h, w))
    lr = lr.astype(np.float32)
    expected = processing.upsample(lr, (96, 128), "bicubic", arrays=NUMPY)
    np.testing.assert_array_equal(expected, processing.bicubic_resize(lr, (96, 128)))
    got = processing.upsample(torch.from_numpy(lr), (96, 128), "bicubic", arrays=TORCH).numpy()
    assert np.abs(got - expected).max() <= TORCH_BICUBIC_ERROR
    plain = F.interpolate(
        torch.from_numpy(lr)[None, None], size=(96, 128), mode="bicubic", align_corners=False
    )[0, 0].numpy()
    assert np.abs(plain - expected).max() > 100 * TORCH_BICUBIC_ERROR
    same = processing.upsample(torch.from_numpy(lr), (h, w), "bicubic", arrays=TORCH).numpy()
    np.testing.assert_array_equal(same, lr)


@pytest.mark.parametrize("size", [(96, 128), (27, 36), (72, 96)])
def test_nearest_is_the_same_index_for_index(size):
    lr = np.random.default_rng(0).random((27, 36)).astype(np.float32)
    expected = processing.nearest_resize(lr, size)
    np.testing.assert_array_equal(processing.upsample(lr, size, "nearest"), expected)
    got = processing.upsample(torch.from_numpy(lr), size, "nearest", arrays=TORCH)
    np.testing.assert_array_equal(got.numpy(), expected)


# ---------------------------------------------------------------------- post-processing


@pytest.mark.parametrize("metres", [False, True])
@pytest.mark.parametrize("invalid", ["keep", "fill"])
def test_finish_is_bit_identical_on_both_back_ends(metres, invalid):
    color, depth = frame(metres=metres)
    depth_in = prepare_depth(depth, color.shape)
    rng = np.random.default_rng(1)
    # a network output: the target plus a residual, some of it below the range
    output = processing.bicubic_resize(depth_in.normalised, depth_in.output_shape)[None, None]
    output = (output + rng.normal(0, 0.05, output.shape)).astype(np.float32)
    output[0, 0, :3, :3] = -0.5  # below dmin
    output[0, 0, 3, :3] = -1e4  # far below 0 m: the 1 mm floor applies
    output[0, 0, 5, 5] = np.nan  # a broken network's output is invalid under both policies
    expected = processing.finish(output, depth_in, invalid)
    got = processing.finish(torch.from_numpy(output), depth_in, invalid, TORCH)
    assert got.dtype == expected.dtype == depth.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    invalid_px = np.isnan(got) if metres else got == 0
    assert invalid_px[5, 5] and invalid_px.any()
    if invalid == "fill":
        assert invalid_px.sum() == 1
        np.testing.assert_array_equal(got[3, :3], np.float32(0.001) if metres else 1)


def test_both_back_ends_through_the_enhancer_path(fdkn):
    """The whole frame through the torch back-end (CPU tensors, the engine's
    ``run_tensors``) against the Enhancer's numpy path with the same weights: within
    1 mm (only the bicubic/guided float rounding differs)."""
    engine = TorchEngine(fdkn)
    enhancer = Enhancer(engine="torch", scale=8, iterations=2)
    for seed in range(2):
        color, depth = frame(seed=seed)
        depth_in = prepare_depth(depth, color.shape)
        guidance = processing.guidance_from_color(color, "rgb", TORCH)
        target = processing.upsample(
            TORCH.upload(depth_in.normalised), depth_in.output_shape, UPSAMPLING, guidance, TORCH
        )[None, None]
        output = TORCH.run(engine, guidance, TORCH.run(engine, guidance, target))
        result = processing.finish(output, depth_in, "keep", TORCH)
        expected = enhancer.enhance(color, depth)
        assert result.dtype == np.uint16 and result.shape == expected.shape
        np.testing.assert_array_equal(result == 0, expected == 0)
        assert np.abs(result.astype(np.int64) - expected).max() <= 1
    assert enhancer.array_backend == "numpy"  # a CPU engine keeps the host path


# ---------------------------------------------------------------------- mixed precision


@pytest.mark.parametrize("mode", ["cast", "autocast"])
def test_mixed_precision_keeps_fp32_islands(fdkn, mode):
    """bfloat16 on the CPU stands in for fp16: the kernels come back as float32, so the
    weighted average and the residual add run in float32, and the result stays close."""
    before = {k: v.clone() for k, v in fdkn.state_dict().items()}
    mixed = mixed_precision_model(fdkn, torch.bfloat16, mode)
    for key, value in fdkn.state_dict().items():  # the caller's model is untouched
        assert torch.equal(value, before[key]) and value.dtype == before[key].dtype
    stream_dtype = next(mixed.guidance_stream.parameters()).dtype
    assert stream_dtype == (torch.bfloat16 if mode == "cast" else torch.float32)
    color, depth = frame()
    g, t, _ = processing.prepare(color, depth)
    g, t = torch.from_numpy(g), torch.from_numpy(t)
    with torch.no_grad():
        weights, offsets = mixed.kernels(g, t)
        out = mixed(g, t)
        reference = fdkn(g, t)
        plain_low = copy.deepcopy(fdkn).to(torch.bfloat16)(g.bfloat16(), t.bfloat16()).float()
    assert weights.dtype == offsets.dtype == out.dtype == torch.float32
    error = (out - reference).abs()
    assert error.max() < 0.05 and error.pow(2).mean().sqrt() < 2e-3
    # without the islands the target itself is rounded to bfloat16 (8 bits): worse
    plain_error = (plain_low - reference).abs()
    assert plain_error.pow(2).mean().sqrt() > 2 * error.pow(2).mean().sqrt()


def test_mixed_precision_cast_equals_autocast(fdkn):
    color, depth = frame(seed=1)
    g, t, _ = processing.prepare(color, depth)
    g, t = torch.from_numpy(g), torch.from_numpy(t)
    with torch.no_grad():
        cast = mixed_precision_model(fdkn, torch.bfloat16, "cast")(g, t)
        auto = mixed_precision_model(fdkn, torch.bfloat16, "autocast")(g, t)
    assert (cast - auto).abs().max() < 1e-6
    with pytest.raises(ValueError, match="mode must be one of"):
        mixed_precision_model(fdkn, torch.bfloat16, "half")


@pytest.mark.parametrize("name", ["fdkn", "dkn_sas"])
def test_export_for_capture_lifts_host_constants(fdkn, name):
    """The CUDA-graph path captures a torch.export program (the eager model builds a
    small tensor from host data each call, which a capturing stream forbids): same
    output as eager, and the host-made constants are lifted into the program."""
    if name == "fdkn":
        model = mixed_precision_model(fdkn, torch.bfloat16, "cast")
    else:
        torch.manual_seed(0)
        model = build_model("dkn", inference="shift_and_stitch").eval()
    color, depth = frame(width=64, height=48)
    g, t, _ = processing.prepare(color, depth)
    g, t = torch.from_numpy(g), torch.from_numpy(t)
    program = export_for_capture(model, g, t)
    with torch.no_grad():
        np.testing.assert_array_equal(program(g, t).numpy(), model(g, t).numpy())
    targets = [str(node.target) for node in program.graph.nodes]
    assert any("lift_fresh_copy" in target for target in targets)
    assert not any(target.endswith("aten.tensor") or "scalar_tensor" in target
                   for target in targets)  # fmt: skip


# ---------------------------------------------------------------------- bench/gpu_check.py


@pytest.fixture(scope="module")
def gpu_check():
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import gpu_check as module
    finally:
        sys.path.remove(str(REPO / "bench"))
    return module


def test_gpu_check_helpers(gpu_check):
    ref = np.linspace(0.0, 2.0, 101)
    out = ref.copy()
    out[10] += 0.02
    max_rel, rmse_rel = gpu_check.relative_errors(out, ref)
    assert max_rel == pytest.approx(0.01) and rmse_rel == pytest.approx(0.02 / 2 / 101**0.5)
    assert gpu_check.within((1e-3, 1e-4), (1e-3, 1e-4))
    assert not gpu_check.within((1.1e-3, 1e-4), (1e-3, 1e-4))
    assert not gpu_check.within((1e-3, 1e-4), (1e-3, 1e-4), scale=0.5)
    assert gpu_check.percentiles([1.0] * 98 + [5.0, 9.0])[0] == 1.0
    assert gpu_check.percentiles([1.0] * 98 + [5.0, 9.0])[1] > 4.0
    assert gpu_check.parse_size("640x480") == (480, 640)


@pytest.mark.skipif(CUDA, reason="checks the message of a machine without CUDA")
def test_gpu_check_without_cuda(gpu_check, capsys, tmp_path):
    assert gpu_check.main(["--json", str(tmp_path / "x.json")]) == 2
    line = capsys.readouterr().out.strip()
    assert line.startswith("gpu_check: CUDA is not available here") and "\n" not in line
    assert gpu_check.main(["--allow-no-cuda"]) == 0
    assert not (tmp_path / "x.json").exists()


def test_gpu_check_cpu_mode(gpu_check, tmp_path):
    """The script's whole check logic in its CPU mode: references, bounds, pre/post
    comparison, table, JSON, and the Middlebury fp32-vs-low-precision RMSE."""
    from training.data import missing_reason

    middlebury = missing_reason("middlebury30") is None
    out = tmp_path / "cpu.json"
    args = ["--device", "cpu", "--size", "64x48", "--sets", "2", "--runs", "2", "--dkn-runs",
            "1", "--warmup", "1", "--threads", "1", "--json", str(out)]  # fmt: skip
    args += ["--middlebury-limit", "1"] if middlebury else ["--skip-middlebury"]
    assert gpu_check.main(args) == 0
    result = json.loads(out.read_text())
    assert result["passed"] and not result["failures"]
    rows = {(r["model"], r["path"]): r for r in result["rows"]}
    for model in ("fdkn", "dkn"):
        for path in ("torch-fp32", "torch-bf16", "gpu-pre", "gpu-post", "gpu-frame"):
            assert rows[(model, path)]["status"] == "ok", rows[(model, path)]
        assert rows[(model, "torch-fp32")]["max_rel"] < 1e-5
        assert rows[(model, "tensorrt-fp16")]["status"] == "skipped"
    assert rows[("dkn", "sas-torch-fp32")]["max_rel"] < 1e-5  # shift-and-stitch = single pass
    assert rows[("fdkn", "torch-bf16")]["gpu_ms_median"] > 0
    if middlebury:
        fdkn_mb = result["middlebury"]["models"]["fdkn"]
        assert fdkn_mb["status"] == "ok" and abs(fdkn_mb["difference"]) <= 0.02
        assert 0.5 < fdkn_mb["rmse_fp32"] < 20


def test_gpu_check_fails_when_a_bound_is_exceeded(gpu_check, tmp_path, capsys):
    out = tmp_path / "tight.json"
    args = ["--device", "cpu", "--size", "64x48", "--sets", "1", "--runs", "1", "--warmup",
            "0", "--threads", "1", "--models", "fdkn", "--skip-middlebury",
            "--bound-scale", "1e-9", "--json", str(out)]  # fmt: skip
    assert gpu_check.main(args) == 1
    result = json.loads(out.read_text())
    assert not result["passed"]
    assert any("fdkn torch-bf16" in failure for failure in result["failures"])
    assert "FAIL fdkn torch-bf16" in capsys.readouterr().out


# ---------------------------------------------------------------------- the node without CUDA


@pytest.mark.skipif(CUDA, reason="checks the fallback of a machine without CUDA")
def test_node_with_device_cuda_falls_back_with_one_warning():
    """``device: cuda`` here used to stop the node; now it runs on the CPU and says why,
    once."""
    sys.path.insert(0, str(REPO / "test"))
    from ros_helpers import isolate_ros, start_node_process, wait_for

    isolate_ros(offset=7)
    process = start_node_process({"device": "cuda", "engine": "torch"}, name="cuda_fallback")
    try:
        wait_for(lambda: "ready:" in process.log(), 120.0, "the ready line", process=process)
    finally:
        rc = process.stop()
    log = process.log()
    assert rc == 0, log
    warnings = [line for line in log.splitlines() if "[WARN]" in line]
    assert len(warnings) == 1, log
    assert "engine 'torch' on 'cuda': CUDA is not available" in warnings[0]
    assert warnings[0].endswith("using torch on cpu")
    assert "ready: fdkn x8 (fdkn_x8.safetensors), torch on cpu" in log
    assert "[ERROR]" not in log and "Traceback" not in log


# ---------------------------------------------------------------------- CUDA


def cpu_reference(model, color, depth):
    """The network inputs and its float64 output on the CPU (the model is not changed)."""
    guidance, target, _ = processing.prepare(color, depth)
    double = copy.deepcopy(model).double()
    with torch.no_grad():
        g, t = torch.from_numpy(guidance).double(), torch.from_numpy(target).double()
        return guidance, target, double(g, t).numpy()


@needs_cuda
@pytest.mark.parametrize("name", ["fdkn", "dkn"])
def test_torch_cuda_engine_against_cpu_float64(name):
    from dkn_ros.engines.torch_cuda import TorchCudaEngine

    if name == "fdkn":
        model, _ = load_model(WEIGHTS)
    else:
        torch.manual_seed(0)
        model = build_model("dkn").eval()
    color, depth = frame(width=160, height=120)
    guidance, target, reference = cpu_reference(model, color, depth)
    span = reference.max() - reference.min()
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        strict = TorchCudaEngine(model, precision="fp32", cuda_graphs=False)
        assert np.abs(strict.run(guidance, target) - reference).max() / span < 1e-4
    finally:
        torch.backends.cudnn.allow_tf32 = saved
    eager = TorchCudaEngine(model, precision="fp16", cuda_graphs=False)
    graphed = TorchCudaEngine(model, precision="fp16", cuda_graphs=True)
    out = eager.run(guidance, target)
    assert np.abs(out - reference).max() / span < 2e-2
    assert np.sqrt(np.mean((out - reference) ** 2)) / span < 2e-3
    for _ in range(2):  # capture, then replay
        replay = graphed.run(guidance, target)
        assert np.abs(replay - out).max() < 1e-5
    assert len(graphed._graphs) == 1, "the CUDA graph was not captured"
    assert "CUDA graphs" in graphed.describe()


@needs_cuda
def test_dkn_shift_and_stitch_on_cuda_matches_single_pass():
    from dkn_ros.engines.torch_cuda import TorchCudaEngine

    torch.manual_seed(0)
    single = build_model("dkn").eval()
    sas = build_model("dkn", inference="shift_and_stitch").eval()
    sas.load_state_dict(single.state_dict())
    color, depth = frame(width=96, height=72)
    guidance, target, _ = processing.prepare(color, depth)
    a = TorchCudaEngine(single, precision="fp32", cuda_graphs=False).run(guidance, target)
    b = TorchCudaEngine(sas, precision="fp32", cuda_graphs=True).run(guidance, target)
    assert np.abs(a - b).max() < 1e-3


@needs_cuda
def test_enhancer_on_cuda_uses_the_torch_back_end_and_matches_cpu():
    color, depth = frame(width=160, height=120)
    cpu = Enhancer(engine="torch", scale=8).enhance(color, depth)
    gpu_enhancer = Enhancer(engine="torch", device="cuda", scale=8,
                            engine_options={"precision": "fp32"})  # fmt: skip
    gpu_enhancer.enhance(color, depth)
    gpu = gpu_enhancer.enhance(color, depth)
    assert gpu_enhancer.array_backend == "torch"
    assert gpu.dtype == np.uint16
    np.testing.assert_array_equal(gpu == 0, cpu == 0)
    assert np.abs(gpu.astype(np.int64) - cpu).max() <= 3  # TF32 convolutions: a few mm


@needs_cuda
def test_auto_on_cuda_is_a_gpu_engine(fdkn, caplog):
    caplog.set_level("WARNING", logger="dkn_ros.engines")
    engine = create_engine("auto", fdkn, "cuda")
    assert engine.device.startswith("cuda")
    expected = "tensorrt" if tensorrt_import_error() is None else "torch"
    assert engine.name == expected and not caplog.records


# ---------------------------------------------------------------------- TensorRT


@needs_tensorrt
def test_tensorrt_engine_parity_cache_and_profile(fdkn, tmp_path):
    from dkn_ros.engines.tensorrt import TensorRTEngine, UnsupportedShapeError

    color, depth = frame(width=96, height=72)
    guidance, target, reference = cpu_reference(fdkn, color, depth)
    span = reference.max() - reference.min()
    built = TensorRTEngine(fdkn, size=(72, 96), precision="fp16", cache_dir=tmp_path)
    assert built.built and built.engine_path.is_file()
    out = built.run(guidance, target)
    assert np.abs(out - reference).max() / span < 2e-2

    def no_build(request):
        raise AssertionError("the cached engine should have been used")

    again = TensorRTEngine(fdkn, size=(72, 96), precision="fp16", cache_dir=tmp_path,
                           builder=no_build)  # fmt: skip
    assert not again.built and again.engine_path == built.engine_path
    np.testing.assert_array_equal(again.run(guidance, target), out)
    fp32 = TensorRTEngine(fdkn, size=(72, 96), precision="fp32", cache_dir=tmp_path)
    assert fp32.engine_path != built.engine_path
    assert np.abs(fp32.run(guidance, target) - reference).max() / span < 1e-2
    big_color, big_depth = frame(width=128, height=96)
    big_g, big_t, _ = processing.prepare(big_color, big_depth)
    with pytest.raises(UnsupportedShapeError, match="outside the TensorRT engine's profile"):
        built.run(big_g, big_t)


@needs_tensorrt
def test_tensorrt_build_error_and_shape_fallback(fdkn, tmp_path, caplog):
    from dkn_ros.engines.tensorrt import EngineBuildError, TensorRTEngine

    def failing(request):
        raise RuntimeError("out of builder memory")

    with pytest.raises(EngineBuildError, match="TensorRT build failed: out of builder memory"):
        TensorRTEngine(fdkn, size=(72, 96), cache_dir=tmp_path, builder=failing)

    caplog.set_level("WARNING", logger="dkn_ros.engines")

    def make_failing(model, device, options):
        return TensorRTEngine(model, device, size=(72, 96), cache_dir=tmp_path, builder=failing)

    engine = create_engine("tensorrt", fdkn, "cuda", makers={"tensorrt": make_failing})
    assert engine.name == "torch" and engine.device.startswith("cuda")
    assert "tensorrt on cuda failed: TensorRT build failed" in caplog.records[-1].getMessage()

    caplog.clear()
    engine = create_engine("tensorrt", fdkn, "cuda", size=(72, 96), engine_cache_dir=tmp_path)
    color, depth = frame(width=128, height=96)  # larger than the profile
    guidance, target, _ = processing.prepare(color, depth)
    out = engine.run(guidance, target)
    assert out.shape == target.shape
    assert "frames of this size run on torch on cuda" in caplog.records[-1].getMessage()


def test_the_gpu_back_end_is_made_once_per_device():
    """The torch back-end keeps a pinned upload buffer: the Enhancer reuses it frame
    after frame instead of making a new one per call (checked without a GPU: making a
    back-end touches no device)."""

    class GpuEngine:  # what the Enhancer reads of an engine to choose the back-end
        device = "cuda:0"

        def run_tensors(self, guidance, target):
            return target

    enhancer = Enhancer(engine="torch")
    first = enhancer._arrays_for(GpuEngine())
    assert isinstance(first, TorchArrays) and first.device == torch.device("cuda:0")
    assert enhancer._arrays_for(GpuEngine()) is first
    assert enhancer._arrays_for(TorchEngine(build_model("fdkn"))) is NUMPY
