"""Tests of dkn_ros.processing: units, validity, hole filling, normalisation, sizes,
input checks and the invalid-pixel policies. Pure numpy, no model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from dkn_ros import processing
from dkn_ros.processing import (
    DepthInput,
    bicubic_resize,
    bicubic_upsample_depth,
    denormalise,
    fill_holes,
    finish,
    from_metres,
    infer_scale,
    normalise,
    prepare,
    to_metres,
    valid_mask,
)

H, W = 48, 64


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def color(rng):
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


def depth_mm(rng, shape=(H // 4, W // 4)):
    return rng.integers(500, 5000, shape).astype(np.uint16)


def depth_m(rng, shape=(H // 4, W // 4)):
    return rng.uniform(0.5, 5.0, shape).astype(np.float32)


# ----------------------------------------------------------------------------- resampling


def test_bicubic_resize_is_pil_bicubic_in_float():
    rng = np.random.default_rng(1)
    small = rng.uniform(0.5, 4.0, (6, 8)).astype(np.float32)
    out = bicubic_resize(small, (24, 32))
    reference = np.asarray(
        Image.fromarray(small, mode="F").resize((32, 24), Image.Resampling.BICUBIC)
    )
    assert out.shape == (24, 32) and out.dtype == np.float32
    np.testing.assert_array_equal(out, reference)
    assert out.max() > 1.0  # float mode: no clipping to 0..255 or 0..1
    np.testing.assert_allclose(bicubic_resize(np.full((3, 5), 2.5), (12, 20)), 2.5, atol=1e-6)


def test_bicubic_resize_rejects_non_2d():
    with pytest.raises(ValueError, match=r"2-D array, got shape \(2, 3, 4\)"):
        bicubic_resize(np.zeros((2, 3, 4), np.float32), (4, 6))


# ----------------------------------------------------------------------------- units


def test_uint16_millimetres_round_trip(rng):
    depth = depth_mm(rng)
    depth[0, :3] = 0
    metres = to_metres(depth)
    assert metres.dtype == np.float32
    assert np.isnan(metres[0, :3]).all()
    np.testing.assert_allclose(metres[1], depth[1] / 1000.0, rtol=1e-6)
    back = from_metres(metres, np.uint16)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, depth)


def test_float32_metres_round_trip_with_nan_and_zero_invalid(rng):
    depth = depth_m(rng)
    depth[0, 0] = np.nan
    depth[0, 1] = 0.0
    metres = to_metres(depth)
    assert np.isnan(metres[0, :2]).all()
    back = from_metres(metres, np.float32)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back[1:], depth[1:])
    assert np.isnan(back[0, :2]).all()  # 0 = invalid comes back as NaN (REP 118)


def test_from_metres_rounds_and_clips_millimetres():
    metres = np.array([[1.2344, 1.2346, 70.0, 0.0001, np.nan, -0.2]], np.float32)
    out = from_metres(metres, np.uint16)
    # Valid values never become the invalid 0: they are clipped to 1..65535.
    np.testing.assert_array_equal(out, [[1234, 1235, 65535, 1, 0, 1]])


def test_valid_mask():
    assert valid_mask(np.array([[0, 1, 65535]], np.uint16)).tolist() == [[False, True, True]]
    floats = np.array([[np.nan, 0.0, 0.5, 3.0]], np.float32)
    assert valid_mask(floats).tolist() == [[False, False, True, True]]


# ----------------------------------------------------------------------------- holes, range


def test_fill_holes_keeps_valid_pixels_and_uses_valid_neighbours_only(rng):
    metres = rng.uniform(2.0, 3.0, (20, 30)).astype(np.float32)
    mask = np.ones_like(metres, bool)
    mask[5:12, 8:20] = False  # a hole
    mask[0, 0] = False  # a hole in a corner
    metres[~mask] = 0.0  # what a sensor writes there
    filled = fill_holes(metres, mask)
    assert filled.dtype == np.float32
    np.testing.assert_array_equal(filled[mask], metres[mask])
    assert filled.min() >= 2.0  # no 0 smeared in
    assert np.isin(filled[~mask], metres[mask]).all()  # copies of valid values
    # The nearest valid pixel: just inside the hole's top edge is the value above it.
    assert filled[5, 14] == metres[4, 14]
    assert filled[0, 0] in (metres[0, 1], metres[1, 0])


def test_fill_holes_with_nan_and_no_hole(rng):
    metres = rng.uniform(1.0, 2.0, (8, 8)).astype(np.float32)
    np.testing.assert_array_equal(fill_holes(metres, np.ones((8, 8), bool)), metres)
    metres[3, 3] = np.nan
    filled = fill_holes(metres, valid_mask(metres))
    assert np.isfinite(filled).all()


def test_normalise_uses_the_inputs_own_valid_min_and_max(rng):
    metres = rng.uniform(1.0, 4.0, (10, 10)).astype(np.float32)
    metres[0, 0], metres[9, 9] = 0.8, 4.5
    metres[5, 5] = np.nan
    mask = valid_mask(metres)
    normalised, dmin, dmax = normalise(metres, mask)
    assert (dmin, dmax) == (pytest.approx(0.8), pytest.approx(4.5))
    assert normalised[mask].min() == 0.0 and normalised[mask].max() == pytest.approx(1.0)
    np.testing.assert_allclose(denormalise(normalised, dmin, dmax)[mask], metres[mask], atol=1e-6)


def test_normalise_flat_scene():
    metres = np.full((4, 4), 2.0, np.float32)
    normalised, dmin, dmax = normalise(metres, np.ones((4, 4), bool))
    assert dmin == dmax == 2.0
    np.testing.assert_array_equal(normalised, 0.0)
    np.testing.assert_array_equal(denormalise(normalised + 0.0, dmin, dmax), 2.0)


def test_prepare_normalises_with_input_range_ignoring_invalid(color, rng):
    depth = depth_mm(rng)
    depth[2, 2] = 0
    depth[3, 3], depth[4, 4] = 700, 4200
    depth = np.clip(depth, 700, 4200)
    depth[2, 2] = 0
    _, target, prepared = prepare(color, depth)
    assert prepared.dmin == pytest.approx(0.7) and prepared.dmax == pytest.approx(4.2)
    lr, _, _ = normalise(fill_holes(to_metres(depth), depth > 0), depth > 0)
    np.testing.assert_array_equal(target[0, 0], bicubic_resize(lr, (H, W)))


# ----------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("scale", range(2, 17))
def test_infer_scale_for_every_integer_fraction(scale):
    assert infer_scale((5 * scale, 7 * scale, 3), (5, 7)) == scale


def test_infer_scale_same_size():
    assert infer_scale((480, 640, 3), (480, 640)) == 1


@pytest.mark.parametrize(
    "color_shape, depth_shape, scale",
    [
        ((384, 512), (144, 192), 384 / 144),  # the RGB-D-D phone ToF: 2.67
        ((480, 640), (180, 240), 480 / 180),  # a 240 x 180 ToF behind VGA
        ((1080, 1440), (240, 320), 4.5),
        ((480, 640), (100, 133), np.sqrt(4.8 * 640 / 133)),  # aspect 0.2 % off
    ],
)
def test_infer_scale_any_real_ratio(color_shape, depth_shape, scale):
    assert infer_scale(color_shape, depth_shape) == pytest.approx(scale, rel=1e-9)


@pytest.mark.parametrize(
    "color_shape, depth_shape, message",
    [
        ((48, 64), (12, 32), "aspect ratios differ by more than 1%"),
        ((480, 640), (60, 100), "aspect ratios differ"),
        ((17 * 4, 17 * 5), (4, 5), "factor 17 is larger than 16"),
        ((48, 64), (96, 128), "must not be larger than the colour image"),
        ((48, 64), (48, 65), "must not be larger"),
    ],
)
def test_infer_scale_rejects_other_sizes(color_shape, depth_shape, message):
    with pytest.raises(ValueError, match=message):
        infer_scale(color_shape, depth_shape)


def test_any_ratio_target_and_mask(color, rng):
    depth = depth_m(rng, (15, 20))  # 48 x 64 colour: ratio 3.2
    _, target, prepared = prepare(color, depth)
    assert prepared.scale == pytest.approx(3.2)
    assert target.shape == (1, 1, H, W) and prepared.input_shape == (15, 20)


def test_any_ratio_keeps_invalid_pixels_invalid_by_footprint(color):
    depth = np.full((15, 20), 2.0, np.float32)
    depth[:, :6] = np.nan  # LR columns 0..5 invalid: colour columns j + 0.5 < 6 * 3.2
    depth[:, 6:] = 3.0
    for upsampling in ("bicubic", "nearest"):
        guidance, target, prepared = prepare(color, depth, upsampling=upsampling)
        out = finish(target, prepared, "keep")
        assert np.isnan(out[:, :19]).all() and not np.isnan(out[:, 19:]).any()
        np.testing.assert_allclose(out[:, -16:], 3.0, atol=1e-5)  # only 3.0 was mixed in


def test_nearest_upsampling_copies_each_lr_pixel_over_its_footprint(color, rng):
    depth = depth_m(rng)  # 12 x 16 under 48 x 64: x4
    _, target, prepared = prepare(color, depth, upsampling="nearest")
    lr, _, _ = normalise(fill_holes(to_metres(depth), valid_mask(depth)), valid_mask(depth))
    np.testing.assert_array_equal(target[0, 0], np.repeat(np.repeat(lr, 4, 0), 4, 1))
    with pytest.raises(ValueError, match="upsampling must be one of bicubic, nearest"):
        prepare(color, depth, upsampling="lanczos")


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "depth, message",
    [
        (np.ones((12, 16), np.float64), r"uint16 millimetres .* or float32 metres .*float64"),
        (np.ones((12, 16), np.int32), r"uint16 millimetres .*got dtype int32"),
        (np.ones((12, 16, 2), np.float32), r"2-D \(h, w\) image, got shape \(12, 16, 2\)"),
        (np.ones(12, np.uint16), r"2-D \(h, w\) image, got shape \(12,\)"),
        (np.full((12, 16), np.nan, np.float32), r"no valid pixel: all 192 pixels are NaN or 0"),
        (np.zeros((12, 16), np.uint16), r"no valid pixel: all 192 pixels are 0"),
        (np.zeros((0, 0), np.uint16), r"depth image is empty"),
        (np.full((12, 16), -1.0, np.float32), r"negative values"),
        ([[1.0]], r"numpy array, got list"),
    ],
)
def test_bad_depth(color, depth, message):
    with pytest.raises(ValueError, match=message):
        prepare(color, depth)


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_inf_depth_is_an_error_not_invalid(color, rng, value):
    depth = depth_m(rng)
    depth[3, 4] = value
    with pytest.raises(ValueError, match=r"1 \+-Inf values; \+-Inf is an error, not an invalid"):
        prepare(color, depth)


def test_depth_size_mismatch(color, rng):
    with pytest.raises(ValueError, match=r"depth size 13x24 \(h x w\) under colour 48x64: the "):
        prepare(color, depth_mm(rng, (13, 24)))


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((H, W), np.uint8), r"\(H, W, 3\) uint8 .*got shape \(48, 64\) and dtype uint8"),
        (np.zeros((H, W, 4), np.uint8), r"got shape \(48, 64, 4\)"),
        (np.zeros((H, W, 3), np.float32), r"uint8 .*'rgb' or 'bgr'.*dtype float32"),
        (np.zeros((0, 0, 3), np.uint8), r"colour image is empty"),
    ],
)
def test_bad_color(rng, bad, message):
    with pytest.raises(ValueError, match=message):
        prepare(bad, depth_mm(rng))


def test_bad_color_order(color, rng):
    with pytest.raises(ValueError, match=r"color_order must be 'rgb' or 'bgr', got 'rbg'"):
        prepare(color, depth_mm(rng), color_order="rbg")


def test_bad_invalid_policy(color, rng):
    _, target, prepared = prepare(color, depth_mm(rng))
    with pytest.raises(ValueError, match=r"invalid must be 'keep' or 'fill', got 'drop'"):
        finish(target, prepared, "drop")
    with pytest.raises(ValueError, match=r"output must have shape \(1, 1, 48, 64\)"):
        finish(target[:, :, :-1], prepared)


# ----------------------------------------------------------------------------- guidance


def test_guidance_rgb_and_bgr(color, rng):
    depth = depth_mm(rng)
    guidance, _, _ = prepare(color, depth, color_order="rgb")
    assert guidance.shape == (1, 3, H, W) and guidance.dtype == np.float32
    np.testing.assert_allclose(guidance[0].transpose(1, 2, 0), color / 255.0, atol=1e-7)
    bgr_guidance, _, _ = prepare(color[:, :, ::-1], depth, color_order="bgr")
    np.testing.assert_array_equal(bgr_guidance, guidance)
    swapped, _, _ = prepare(color, depth, color_order="bgr")
    np.testing.assert_array_equal(swapped, guidance[:, ::-1])


def test_non_contiguous_inputs(color, rng):
    depth = depth_mm(rng, (W // 4, H // 4)).T  # a transposed view
    guidance, target, _ = prepare(color[:, ::-1], depth)
    assert guidance.shape == (1, 3, H, W) and target.shape == (1, 1, H, W)


# ----------------------------------------------------------------------------- policies


@pytest.mark.parametrize("make_depth", [depth_mm, depth_m])
def test_keep_and_fill_when_upsampling(color, rng, make_depth):
    depth = make_depth(rng)
    depth[1, 2] = 0  # one invalid LR pixel
    guidance, target, prepared = prepare(color, depth)
    assert isinstance(prepared, DepthInput)
    assert prepared.scale == 4 and prepared.output_shape == (H, W)
    expected_mask = np.ones((H, W), bool)
    expected_mask[4:8, 8:12] = False  # the LR pixel's footprint
    np.testing.assert_array_equal(prepared.output_mask, expected_mask)

    kept = finish(target, prepared, "keep")
    filled = finish(target, prepared, "fill")
    assert kept.dtype == filled.dtype == depth.dtype and kept.shape == (H, W)
    invalid = (kept == 0) if depth.dtype == np.uint16 else np.isnan(kept)
    np.testing.assert_array_equal(invalid, ~expected_mask)
    assert valid_mask(filled).all()
    np.testing.assert_array_equal(filled[expected_mask], kept[expected_mask])


def test_identity_output_is_the_bicubic_upsampling_of_the_filled_depth(color, rng):
    depth = depth_m(rng)
    _, target, prepared = prepare(color, depth)
    out = finish(target, prepared, "fill")
    expected = np.maximum(bicubic_resize(depth, (H, W)), 0.001)  # random depth undershoots
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_finish_keeps_valid_output_positive(color):
    depth = np.full((H // 4, W // 4), 0.002, np.float32)
    depth[:, W // 8 :] = 4.0  # a step: bicubic undershoots below 0 next to it
    _, target, prepared = prepare(color, depth)
    assert bicubic_resize(depth, (H, W)).min() < 0.0
    out = finish(target, prepared, "fill")
    assert out.min() == pytest.approx(0.001) and out.max() > 4.0  # overshoot is kept
    as_millimetres = dataclasses.replace(prepared, dtype=np.dtype(np.uint16))
    assert finish(target, as_millimetres, "fill").min() == 1


def test_bicubic_upsample_depth_baseline(rng):
    depth = depth_mm(rng)
    depth[0, 0] = 0
    out = bicubic_upsample_depth(depth, (H, W))
    assert out.shape == (H, W) and out.dtype == np.uint16
    assert (out[:4, :4] == 0).all() and (out[4:] > 0).all()
    filled = fill_holes(to_metres(depth), depth > 0)
    expected = np.maximum(bicubic_resize(filled, (H, W)), 0.001) * 1000
    np.testing.assert_allclose(out[4:], expected[4:], atol=0.51)


def test_keep_same_size_follows_the_input_mask(color, rng):
    depth = depth_m(rng, (H, W))
    depth[10:20, 5:9] = np.nan
    depth[30, 40] = 0.0
    _, target, prepared = prepare(color, depth)
    assert prepared.scale == 1
    kept = finish(target, prepared, "keep")
    np.testing.assert_array_equal(np.isnan(kept), ~valid_mask(depth))
    np.testing.assert_allclose(kept[valid_mask(depth)], depth[valid_mask(depth)], atol=1e-5)
    filled = finish(target, prepared, "fill")
    assert np.isfinite(filled).all()


def test_module_exports_exist():
    for name in processing.__all__:
        assert hasattr(processing, name), name
