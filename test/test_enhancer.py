"""Tests of dkn_ros.enhancer.Enhancer with real (untrained) FDKN networks.

Nothing is trained: an FDKN is built with ``build_model`` and saved with a card into a
temporary directory. With its weight and offset heads zeroed, FDKN in residual mode is
the identity filter (constant weights have zero mean), so the enhanced depth must be
the bicubic upsampling of the input: an end-to-end check of units, hole filling,
normalisation and de-normalisation.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from dkn_ros import processing
from dkn_ros.engines import create_engine
from dkn_ros.enhancer import Enhancer, Timings
from dkn_ros.models import ModelCard, build_model, load_model, save_model
from dkn_ros.models.registry import (
    DEFAULT_WEIGHTS_DIR,
    load_weights,
    resolve_weights,
    shipped_weights,
    weights_name,
)

H, W = 48, 64
CONFIG = {"n1": 32, "n2": 32}  # small and fast; the card records it


def make_enhancer(**kwargs) -> Enhancer:
    """An Enhancer on the torch engine: deterministic and with no export step (``auto``
    may pick ONNX Runtime, which exports the model first)."""
    kwargs.setdefault("engine", "torch")
    return Enhancer(**kwargs)


def save_fdkn(path, *, scale=4, identity=False, task="upsampling", seed=0):
    torch.manual_seed(seed)
    model = build_model("fdkn", residual=task == "upsampling", **CONFIG)
    if identity:
        with torch.no_grad():
            for stream in (model.guidance_stream, model.target_stream):
                for head in (stream.weight_head, stream.offset_head):
                    head.weight.zero_()
                    head.bias.zero_()
    card = ModelCard(
        model="fdkn",
        config={**CONFIG, "residual": task == "upsampling"},
        task=task,
        scale=scale,
        notes="untrained, for tests",
    )
    save_model(model, card, path)
    return path


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    """fdkn_x4 (random) and fdkn_denoise (random) as a shipped-weights directory."""
    directory = tmp_path_factory.mktemp("weights")
    save_fdkn(directory / "fdkn_x4.safetensors", scale=4)
    save_fdkn(directory / "fdkn_denoise.safetensors", scale=1, task="denoising", seed=1)
    return directory


@pytest.fixture(scope="module")
def identity_weights(tmp_path_factory):
    return save_fdkn(tmp_path_factory.mktemp("identity") / "fdkn_id.safetensors", identity=True)


@pytest.fixture(scope="module")
def random_weights(weights_dir):
    return weights_dir / "fdkn_x4.safetensors"


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def color(rng):
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


def smooth_depth_m(shape):
    """A smooth scene in metres, 1..3 m: a tilted plane with a bump."""
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    y, x = y / shape[0], x / shape[1]
    return (1.5 + x + 0.5 * y + 0.3 * np.sin(3 * x) * np.cos(2 * y)).astype(np.float32)


# ----------------------------------------------------------------------------- basics


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
@pytest.mark.parametrize("depth_shape, scale", [((H // 4, W // 4), 4), ((H, W), 1)])
def test_output_shape_dtype_and_units(weights_dir, color, dtype, depth_shape, scale):
    metres = smooth_depth_m(depth_shape)
    depth = np.rint(metres * 1000).astype(np.uint16) if dtype == np.uint16 else metres
    enhancer = make_enhancer(weights_dir=weights_dir)
    out = enhancer.enhance(color, depth)
    assert out.shape == (H, W) and out.dtype == dtype
    assert enhancer.last_scale == scale
    assert enhancer.last_weights.name == weights_name("fdkn", scale)
    # Units are kept: the output lies near the input's range (mm or m).
    unit = 1000 if dtype == np.uint16 else 1.0
    assert 0.5 * unit < out.min() and out.max() < 4 * unit
    assert np.median(out) == pytest.approx(np.median(depth), rel=0.2)


def test_diagnostics(weights_dir, color):
    enhancer = make_enhancer(weights_dir=weights_dir)
    assert enhancer.engine_description is None and enhancer.last_scale is None
    enhancer.enhance(color, smooth_depth_m((H // 4, W // 4)))
    assert enhancer.engine_description == "torch on cpu"
    timings = enhancer.last_timings
    assert isinstance(timings, Timings)
    assert timings.preprocess_ms > 0 and timings.inference_ms > 0 and timings.postprocess_ms > 0
    assert timings.total_ms == pytest.approx(
        timings.preprocess_ms + timings.inference_ms + timings.postprocess_ms
    )
    assert enhancer.last_card.scale == 4 and "Enhancer(model='fdkn'" in repr(enhancer)
    assert enhancer.describe() == "fdkn x4 (fdkn_x4.safetensors), torch on cpu"
    enhancer.enhance(color, smooth_depth_m((H, W)))
    assert enhancer.describe() == "fdkn denoise (fdkn_denoise.safetensors), torch on cpu"
    assert make_enhancer(weights_dir=weights_dir).describe().startswith("fdkn, weights not loaded")


def test_invalid_pixels_kept_invalid_under_keep(random_weights, color, rng):
    depth = np.rint(smooth_depth_m((H // 4, W // 4)) * 1000).astype(np.uint16)
    depth[2:4, 5:8] = 0
    kept = make_enhancer(weights=random_weights).enhance(color, depth)
    expected_invalid = np.zeros((H, W), bool)
    expected_invalid[8:16, 20:32] = True
    np.testing.assert_array_equal(kept == 0, expected_invalid)
    filled = make_enhancer(weights=random_weights, invalid="fill").enhance(color, depth)
    assert (filled > 0).all()
    np.testing.assert_array_equal(filled[~expected_invalid], kept[~expected_invalid])

    depth_f = smooth_depth_m((H, W))
    depth_f[10:20, 30:40] = np.nan
    out = make_enhancer(weights=random_weights).enhance(color, depth_f)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(depth_f))


# ----------------------------------------------------------------------------- identity


def test_identity_filter_gives_bicubic_upsampling_float32(identity_weights, color):
    depth = smooth_depth_m((H // 4, W // 4))
    out = make_enhancer(weights=identity_weights).enhance(color, depth)
    expected = processing.bicubic_resize(depth, (H, W))
    np.testing.assert_allclose(out, expected, atol=1e-3)
    assert out.min() < depth.min()  # bicubic extrapolates the slope at the border


def test_identity_filter_gives_bicubic_upsampling_uint16_with_holes(identity_weights, color):
    depth = np.rint(smooth_depth_m((H // 8, W // 8)) * 1000).astype(np.uint16)
    depth[2, 3] = 0
    out = make_enhancer(weights=identity_weights, invalid="fill").enhance(color, depth)
    filled = processing.fill_holes(processing.to_metres(depth), depth > 0)
    expected = processing.bicubic_resize(filled, (H, W)) * 1000
    np.testing.assert_allclose(out.astype(np.float64), expected, atol=1.0)  # 1 mm: rounding


def test_identity_filter_same_size_returns_the_input(identity_weights, color):
    depth = smooth_depth_m((H, W))
    depth[5, 5] = np.nan
    out = make_enhancer(weights=identity_weights, iterations=3).enhance(color, depth)
    np.testing.assert_allclose(out, depth, atol=1e-5, equal_nan=True)


# ----------------------------------------------------------------------------- iterations


def test_iterations_feed_the_output_back(random_weights, color):
    depth = smooth_depth_m((H // 4, W // 4))
    guidance, target, prepared = processing.prepare(color, depth)
    model, _ = load_model(random_weights)
    engine = create_engine("torch", model)
    twice = engine.run(guidance, engine.run(guidance, target))
    expected = processing.finish(twice, prepared, "keep")
    out = make_enhancer(weights=random_weights, iterations=2).enhance(color, depth)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    once = make_enhancer(weights=random_weights).enhance(color, depth)
    assert np.abs(out - once).max() > 1e-4


def test_multi_channel_target_is_filtered_per_channel(weights_dir, color, rng):
    channels = np.stack(
        [smooth_depth_m((H, W)), rng.uniform(0.2, 0.8, (H, W)).astype(np.float32)], axis=2
    )
    enhancer = make_enhancer(weights_dir=weights_dir, iterations=2)
    out = enhancer.enhance(color, channels)
    assert out.shape == (H, W, 2) and out.dtype == np.float32
    for c in range(2):
        single = enhancer.enhance(color, np.ascontiguousarray(channels[:, :, c]))
        np.testing.assert_allclose(out[:, :, c], single, atol=1e-6)
    one = enhancer.enhance(color, channels[:, :, :1])
    assert one.shape == (H, W, 1)


def test_bgr_input_equals_rgb_input_swapped(random_weights, color):
    depth = smooth_depth_m((H // 4, W // 4))
    rgb = make_enhancer(weights=random_weights).enhance(color, depth)
    bgr = make_enhancer(weights=random_weights, color_order="bgr").enhance(color[:, :, ::-1], depth)
    np.testing.assert_array_equal(bgr, rgb)
    swapped = make_enhancer(weights=random_weights, color_order="bgr").enhance(color, depth)
    assert np.abs(swapped - rgb).max() > 0  # the guidance does matter


# ----------------------------------------------------------------------------- weights


def test_no_weights_shipped_names_the_directory_and_files(tmp_path, color):
    enhancer = make_enhancer(weights_dir=tmp_path)  # lazy: nothing loaded yet
    with pytest.raises(FileNotFoundError) as error:
        enhancer.enhance(color, smooth_depth_m((H // 8, W // 8)))
    message = str(error.value)
    assert str(tmp_path) in message and "fdkn_x8.safetensors" in message
    assert "fdkn_denoise.safetensors" in message and "weights=PATH" in message
    with pytest.raises(FileNotFoundError, match="fdkn_x4.safetensors"):
        make_enhancer(weights_dir=tmp_path, scale=4)  # a fixed scale loads at once


def test_the_package_weights_are_the_default():
    package = Path(__file__).resolve().parent.parent / "dkn_ros" / "weights"
    assert DEFAULT_WEIGHTS_DIR == package
    assert make_enhancer().weights_dir == package


def test_a_pinned_scale_that_is_not_shipped_is_one_clear_error(weights_dir):
    """``scale`` pins the weights: a scale without weights is refused at once (it used
    to warn that x4 would be used and then fail on the input)."""
    with pytest.raises(ValueError) as error:
        make_enhancer(weights_dir=weights_dir, scale=3)
    assert str(error.value) == (
        f"no fdkn weights trained for scale 3 in {weights_dir} (shipped: denoise, x4); "
        "choose one of those, or leave the scale unset to pick the weights from each "
        "input's size ratio"
    )


def test_missing_explicit_weights_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothere\.safetensors: weights file not found"):
        make_enhancer(weights=tmp_path / "nothere.safetensors")


def test_closest_shipped_scale_said_once_per_scale(weights_dir, color, caplog):
    enhancer = make_enhancer(weights_dir=weights_dir)
    with caplog.at_level(logging.INFO, logger="dkn_ros.models.registry"):
        enhancer.enhance(color, smooth_depth_m((H // 8, W // 8)))
        enhancer.enhance(color, smooth_depth_m((H // 8, W // 8)))
        enhancer.enhance(color, smooth_depth_m((H // 2, W // 2)))
    assert enhancer.last_scale == 2
    assert enhancer.last_weights.name == "fdkn_x4.safetensors"  # 2 is as close to 1 as to 4
    lines = [r.getMessage() for r in caplog.records if r.name == "dkn_ros.models.registry"]
    assert len(lines) == 2, lines  # once for x8, once for x2; no warning: a normal case
    assert all(r.levelno == logging.INFO for r in caplog.records)
    assert lines[0].startswith("x8: no fdkn weights trained for this scale")
    assert lines[0].endswith("using those of the closest trained scale, fdkn_x4.safetensors")
    assert enhancer.loaded_weights == (weights_dir / "fdkn_x4.safetensors",)  # cached


def test_explicit_weights_warn_once_per_scale_they_were_not_trained_for(tmp_path, color, caplog):
    single = save_fdkn(tmp_path / "x4.safetensors", scale=4)
    multi = save_fdkn(tmp_path / "multi.safetensors", scale=8)
    card = ModelCard.read(multi.with_suffix(".json"))
    card.scales = [2, 4, 8, 16]
    card.write(multi.with_suffix(".json"))
    with caplog.at_level(logging.WARNING, logger="dkn_ros.enhancer"):
        for weights in (single, multi):
            enhancer = make_enhancer(weights=weights)
            for depth_shape in [(H // 4, W // 4), (H // 2, W // 2), (H // 2, W // 2)]:
                enhancer.enhance(color, smooth_depth_m(depth_shape))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    # Only the x4 weights at x2, once; the scale-set weights cover x2 and x4.
    assert warnings == [
        "x4.safetensors was trained for upsampling (scale 4) but the input has scale 2; "
        "using it anyway"
    ]


def test_fixed_scale_pins_the_weights_for_every_input(weights_dir, color):
    enhancer = make_enhancer(weights_dir=weights_dir, scale=4)
    assert enhancer.engine_description == "torch on cpu"  # loaded at once
    pinned = enhancer.loaded_weights
    assert enhancer.enhance(color, smooth_depth_m((H // 8, W // 8))).shape == (H, W)
    assert enhancer.last_scale == 8 and enhancer.loaded_weights == pinned


def test_any_ratio_uses_the_closest_trained_scale(weights_dir, color):
    enhancer = make_enhancer(weights_dir=weights_dir)
    depth = smooth_depth_m((15, 20))  # 48 x 64 colour: ratio 3.2, closest trained x4
    out = enhancer.enhance(color, depth)
    assert out.shape == (H, W) and np.isfinite(out).all()
    assert enhancer.last_scale == pytest.approx(3.2)
    assert enhancer.last_weights.name.endswith("_x4.safetensors")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"model": "unet"}, "unknown model 'unet'; known models: fdkn, fdkn_s, dkn"),
        ({"engine": "tensorflow"}, "unknown engine 'tensorflow'"),
        ({"invalid": "zero"}, "invalid must be 'keep' or 'fill', got 'zero'"),
        ({"color_order": "gbr"}, "color_order must be 'rgb' or 'bgr', got 'gbr'"),
        ({"iterations": 0}, "iterations must be an integer >= 1, got 0"),
        ({"scale": 17}, r"scale must be None \(automatic\), 1 \(same size\) or an integer"),
    ],
)
def test_bad_arguments(kwargs, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        make_enhancer(weights_dir=tmp_path, **kwargs)


def test_resolve_weights(weights_dir, tmp_path, caplog):
    assert resolve_weights("fdkn", 4, weights_dir=weights_dir).name == "fdkn_x4.safetensors"
    assert resolve_weights("fdkn", 1, weights_dir=weights_dir).name == "fdkn_denoise.safetensors"
    with caplog.at_level(logging.INFO, logger="dkn_ros.models.registry"):
        assert resolve_weights("fdkn", 16, weights_dir=weights_dir).name == "fdkn_x4.safetensors"
    assert "closest trained scale, fdkn_x4.safetensors" in caplog.text
    with pytest.raises(ValueError, match=r"no fdkn weights trained for scale 16 .*shipped"):
        resolve_weights("fdkn", 16, weights_dir=weights_dir, exact=True)
    assert list(shipped_weights("fdkn", weights_dir)) == [1, 4]
    (weights_dir / "fdkn_paper_x8.json").write_text("{}")  # other names are not shipped scales
    assert list(shipped_weights("fdkn", weights_dir)) == [1, 4]
    model, card, path = load_weights("fdkn", 4, weights_dir=weights_dir)
    assert path.name == "fdkn_x4.safetensors" and card.trained_scales == (4,)
    assert not model.training
    with pytest.raises(ValueError, match=r"several fdkn weights are shipped .*give the scale"):
        resolve_weights("fdkn", None, weights_dir=weights_dir)
    explicit = weights_dir / "fdkn_x4.safetensors"
    assert resolve_weights("dkn", None, explicit) == explicit
    with pytest.raises(FileNotFoundError, match=r"no weights for model 'dkn' in .*dkn_x2"):
        resolve_weights("dkn", 2, weights_dir=weights_dir)
