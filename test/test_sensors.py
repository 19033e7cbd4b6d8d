"""training/sensors.py: LR grids, sensor effects, camera profiles and simulate()."""

import json
import time

import numpy as np
import pytest
import yaml

from training import sensors
from training.sensors import (
    PROFILE_DIR,
    PROFILES,
    CameraProfile,
    depth_noise,
    downsample,
    dropout,
    flying_pixels,
    load_profile,
    lr_size,
    misregister,
    out_of_range,
    pseudo_metres,
    quantise_depth,
    quantise_disparity,
    shadow_holes,
    simulate,
)

F, B = 580.0, 0.075  # Kinect v1: f b = 43.5 px m


def rng(seed=0):
    return np.random.default_rng(seed)


def plane(z, shape=(64, 80)):
    return np.full(shape, z, dtype=np.float32)


def step(z_left, z_right, shape=(48, 128), edge=64):
    """Depth z_left in columns < edge, z_right from column edge on."""
    depth = np.full(shape, z_left, dtype=np.float32)
    depth[:, edge:] = z_right
    return depth


def scene(shape=(96, 128)):
    """A 2.5 m wall with a 1.2 m box and a slanted strip: edges, slopes, all in range."""
    depth = np.full(shape, 2.5, dtype=np.float32)
    h, w = shape
    depth[h // 4 : 3 * h // 4, w // 4 : w // 2] = 1.2
    depth[:, 3 * w // 4 :] = np.linspace(1.5, 3.0, w - 3 * w // 4, dtype=np.float32)[None]
    return depth


def same_nan(a, b):
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_array_equal(a[~np.isnan(a)], b[~np.isnan(b)])


# --- downsample -------------------------------------------------------------------------


@pytest.mark.parametrize("s", [2, 3, 4, 8])
def test_downsample_nearest_integer_factor_is_the_block_centre(s):
    depth = rng().uniform(0.5, 4.0, (48, 72)).astype(np.float32)
    np.testing.assert_array_equal(downsample(depth, s, "nearest"), depth[s // 2 :: s, s // 2 :: s])


@pytest.mark.parametrize("grid, reduce", [("median", np.median), ("area", np.mean)])
def test_downsample_median_and_area_are_block_median_and_mean(grid, reduce):
    depth = rng(1).uniform(0.5, 4.0, (24, 32)).astype(np.float32)
    blocks = depth.reshape(6, 4, 8, 4).transpose(0, 2, 1, 3).reshape(6, 8, 16)
    out = downsample(depth, 4, grid)
    assert out.dtype == np.float32 and out.shape == (6, 8)
    np.testing.assert_allclose(out, reduce(blocks, axis=-1), rtol=1e-6)


def test_downsample_ignores_invalid_pixels_of_a_footprint():
    depth = plane(2.0, (8, 8))
    depth[:2, :2] = np.nan  # the whole first 2 x 2 footprint
    depth[2, 2] = np.nan
    out = downsample(depth, 2, "area")
    assert np.isnan(out[0, 0]) and out[1, 1] == 2.0 and np.isfinite(out).sum() == 15


@pytest.mark.parametrize("grid", sensors.GRIDS)
def test_downsample_non_integer_factor_gives_the_real_lr_size(grid):
    depth = rng().uniform(0.5, 4.0, (384, 512)).astype(np.float32)
    out = downsample(depth, 512 / 192, grid)
    assert out.shape == (144, 192) == lr_size((384, 512), 2.67)
    assert out.dtype == np.float32
    assert 0.5 <= out.min() and out.max() <= 4.0 + 1e-3


def test_downsample_phase_moves_the_samples():
    columns = np.tile(np.arange(32, dtype=np.float32), (32, 1))
    assert downsample(columns, 8, "nearest")[0].tolist() == [4, 12, 20, 28]
    assert downsample(columns, 8, "nearest", phase=(0, -0.4))[0].tolist() == [0.0, 8, 16, 24]
    assert downsample(columns, 8, "nearest", phase=(0, 0.25))[0].tolist() == [6, 14, 22, 30]


# --- depth noise ------------------------------------------------------------------------


@pytest.mark.parametrize("z", [1.0, 3.0])
def test_structured_light_noise_std_grows_with_z_squared(z):
    k = 2.85e-3
    noisy = depth_noise(plane(z, (400, 400)), rng(), k_per_m=k)
    assert noisy.dtype == np.float32 and noisy.shape == (400, 400)
    assert abs(noisy.mean() - z) < 0.01 * k * z**2 * 10  # unbiased, metres in metres out
    assert noisy.std() == pytest.approx(k * z**2, rel=0.1)


def test_tof_noise_is_constant_plus_relative():
    noisy = depth_noise(plane(2.0, (400, 400)), rng(), "tof", sigma_m=0.004, relative=0.003)
    assert noisy.std() == pytest.approx(0.004 + 0.003 * 2.0, rel=0.1)
    # the kind's defaults: 5 mm + 0.2 % of z, no z^2 term
    noisy = depth_noise(plane(4.0, (400, 400)), rng(), "tof")
    assert noisy.std() == pytest.approx(0.005 + 0.002 * 4.0, rel=0.1)


def test_depth_noise_is_seeded_and_keeps_holes():
    depth = plane(2.0)
    depth[0, 0] = np.nan
    a, b = depth_noise(depth, rng(1)), depth_noise(depth, rng(1))
    same_nan(a, b)
    assert not np.array_equal(a, depth_noise(depth, rng(2)), equal_nan=True)
    assert np.isnan(a[0, 0]) and np.isfinite(a).sum() == depth.size - 1
    with pytest.raises(ValueError, match="unknown noise kind"):
        depth_noise(depth, rng(), "lidar")


# --- quantisation -----------------------------------------------------------------------


def test_disparity_quantisation_levels_are_f_b_over_disparity_steps():
    ramp = np.linspace(1.9, 2.1, 2000, dtype=np.float32)[None]
    out = quantise_disparity(ramp, F, B, step_px=1 / 8)
    assert out.dtype == np.float32 and out.shape == ramp.shape
    levels = np.unique(out)
    steps = np.round(F * B / levels.astype(np.float64) * 8)  # disparity in 1/8 px
    np.testing.assert_allclose(F * B / (steps / 8), levels, rtol=1e-6)
    assert np.all(np.diff(steps) == -1)  # consecutive disparity steps, no level skipped
    spacing = np.diff(levels.astype(np.float64))
    # spacing at z: z^2 step / (f b), 11.5 mm at 2 m
    middle = (levels[1:] + levels[:-1]) / 2
    np.testing.assert_allclose(spacing, middle**2 * 0.125 / (F * B), rtol=0.01)
    assert (np.abs(out - ramp) <= 0.55 * ramp.astype(np.float64) ** 2 * 0.125 / (F * B)).all()


def test_disparity_quantisation_keeps_exact_levels_and_holes():
    z = np.array([[F * B / (174 / 8), np.nan, 1.0]], dtype=np.float32)  # 174 steps: 2 m
    out = quantise_disparity(z, F, B)
    assert out[0, 0] == pytest.approx(2.0, abs=1e-6) and np.isnan(out[0, 1])
    assert out[0, 2] == pytest.approx(F * B / (np.round(F * B * 8) / 8), rel=1e-6)


def test_quantise_depth_rounds_to_the_output_unit():
    out = quantise_depth(np.array([[1.23449, 1.2346, 0.0004, np.nan]], dtype=np.float32))
    np.testing.assert_allclose(out[0, :2], [1.234, 1.235], atol=1e-6)
    assert np.isnan(out[0, 2:]).all()  # rounds to 0 mm: invalid


def test_out_of_range_cuts_both_ends():
    out = out_of_range(np.array([[0.3, 0.5, 2.0, 4.5, 4.6, np.nan]], dtype=np.float32), 0.5, 4.5)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(out[0]), [True, False, False, False, True, True])
    np.testing.assert_array_equal(out[0, 1:4], np.float32([0.5, 2.0, 4.5]))


# --- shadow holes -----------------------------------------------------------------------


def test_shadow_band_width_and_side_projector_on_the_right():
    z_near, z_far, edge = 1.0, 2.0, 64
    depth = step(z_far, z_near, edge=edge)  # near object on the right
    out = shadow_holes(depth, F, B, side="right")
    assert out.dtype == np.float32 and out.shape == depth.shape
    width = F * B * (1 / z_near - 1 / z_far)  # 21.75 px
    holes = np.isnan(out)
    assert (holes == holes[0]).all()  # every row the same
    columns = np.flatnonzero(holes[0])
    assert abs(columns.size - width) <= 1
    # a contiguous band on the far (background) side, left of the near object
    assert columns.max() == edge - 1 and np.all(np.diff(columns) == 1)
    same_nan(out[~holes], depth[~holes])  # values untouched, metres


def test_shadow_band_projector_on_the_left_is_right_of_the_near_object():
    z_near, z_far, edge = 1.5, 3.0, 40
    depth = step(z_near, z_far, edge=edge)  # near object on the left
    columns = np.flatnonzero(np.isnan(shadow_holes(depth, F, B, side="left")[0]))
    assert abs(columns.size - F * B * (1 / z_near - 1 / z_far)) <= 1  # 14.5 px
    assert columns.min() == edge and np.all(np.diff(columns) == 1)
    # the projector on the right casts no shadow on this side
    assert not np.isnan(shadow_holes(depth, F, B, side="right")).any()


def test_shadow_holes_flat_scene_has_none_and_border_band_is_f_b_over_z():
    depth = plane(2.0, (8, 100))
    assert not np.isnan(shadow_holes(depth, F, B)).any()
    holes = np.isnan(shadow_holes(depth, F, B, border=True))
    assert np.flatnonzero(holes[0]).tolist() == list(range(22))  # u - 21.75 < 0
    holes = np.isnan(shadow_holes(depth, F, B, side="left", border=True))
    assert np.flatnonzero(holes[0]).tolist() == list(range(78, 100))


def test_shadow_holes_is_fast_on_vga():
    depth = np.full((480, 640), 3.0, dtype=np.float32)
    depth[100:300, 200:400] = 1.0
    depth[np.random.default_rng(0).random(depth.shape) < 0.01] = np.nan
    best = min(_timed(lambda: shadow_holes(depth, F, B)) for _ in range(3))
    assert best < 0.05


def _timed(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


# --- dropout ----------------------------------------------------------------------------


def test_dropout_drops_exactly_the_fraction_of_valid_pixels_in_blobs():
    depth = plane(2.0, (100, 120))
    depth[:10] = np.nan
    out = dropout(depth, rng(), 0.1)
    assert out.dtype == np.float32 and out.shape == depth.shape
    new = np.isnan(out) & ~np.isnan(depth)
    assert new.sum() == round(0.1 * 90 * 120) and np.isnan(out[:10]).all()
    assert (out[~np.isnan(out)] == 2.0).all()
    # blobs, not salt: most dropped pixels have a dropped 4-neighbour
    neighbours = np.zeros_like(new)
    neighbours[1:] |= new[:-1]
    neighbours[:-1] |= new[1:]
    assert (new & neighbours).sum() > 0.8 * new.sum()


def test_dropout_is_seeded():
    depth = plane(2.0)
    same_nan(dropout(depth, rng(3), 0.05), dropout(depth, rng(3), 0.05))
    assert not np.array_equal(
        np.isnan(dropout(depth, rng(3), 0.05)), np.isnan(dropout(depth, rng(4), 0.05))
    )


def test_dropout_prefers_dark_pixels_and_grazing_surfaces():
    depth = plane(2.0, (100, 120))
    rgb = np.full((100, 120, 3), 255, dtype=np.uint8)
    rgb[:, :60] = 0  # left half black
    out = dropout(depth, rng(), 0.1, rgb, dark_bias=5.0)
    assert np.isnan(out[:, :60]).sum() > 0.95 * np.isnan(out).sum()
    without = dropout(depth, rng(), 0.1, rgb)  # no bias: no preference
    assert 0.2 < np.isnan(without[:, :60]).sum() / np.isnan(without).sum() < 0.8
    # right half: a floor seen at ~80 deg (tan = f dz/du / z ~ 5.7)
    slanted = depth.copy()
    slanted[:, 60:] = 2.0 + np.arange(60, dtype=np.float32) * (5.7 * 2.0 / F)
    out = dropout(slanted, rng(), 0.1, grazing_bias=5.0, focal_px=F)
    assert np.isnan(out[:, 60:]).sum() > 0.9 * np.isnan(out).sum()
    with pytest.raises(ValueError, match="focal_px"):
        dropout(depth, rng(), 0.1, grazing_bias=1.0)
    with pytest.raises(ValueError, match="rgb"):
        dropout(depth, rng(), 0.1, rgb[:50], dark_bias=1.0)


# --- flying pixels ----------------------------------------------------------------------


def test_flying_pixels_lie_between_foreground_and_background_at_edges_only():
    depth = step(1.0, 3.0, shape=(64, 64), edge=32)
    out = flying_pixels(depth, rng(), 1.0)
    assert out.dtype == np.float32 and out.shape == depth.shape
    changed = out != depth
    assert np.flatnonzero(changed.any(axis=0)).tolist() == [31, 32]  # the two edge columns
    assert changed.sum() == 2 * 64  # probability 1: every edge pixel
    assert ((out[changed] > 1.0) & (out[changed] < 3.0)).all()
    assert 1.6 < out[changed].mean() < 2.4  # w ~ U(0, 1): mean halfway
    np.testing.assert_array_equal(flying_pixels(depth, rng(), 0.0), depth)
    half = flying_pixels(depth, rng(), 0.5) != depth
    assert 0.35 < half.sum() / (2 * 64) < 0.65


def test_flying_pixels_are_seeded_and_ignore_holes():
    depth = step(1.0, 3.0, shape=(32, 32), edge=16)
    depth[:, 17] = np.nan
    a = flying_pixels(depth, rng(5), 0.5)
    same_nan(a, flying_pixels(depth, rng(5), 0.5))
    assert not np.array_equal(a, flying_pixels(depth, rng(6), 0.5), equal_nan=True)
    same_nan(np.where(np.isnan(depth), np.nan, a), a)  # holes stay holes, none made


# --- misregistration --------------------------------------------------------------------


def test_misregister_shift_moves_an_edge_by_one_pixel():
    depth = np.full((40, 50), 2.0, dtype=np.float32)
    depth[20:] = 1.0  # horizontal edge between rows 19 and 20
    out = misregister(depth, rng(), shift=(1, 0), scale=1.0)
    assert out.dtype == np.float32 and out.shape == depth.shape
    assert np.isnan(out[0]).all()  # from outside the image
    np.testing.assert_array_equal(out[1:], depth[:-1])  # edge now between rows 20 and 21
    out = misregister(step(2.0, 1.0, shape=(10, 50), edge=25), rng(), shift=(0, 1), scale=1.0)
    assert out[0, 25] == 2.0 and out[0, 26] == 1.0 and np.isnan(out[:, 0]).all()


def test_misregister_draws_are_seeded_and_bounded():
    depth = np.tile(np.linspace(1.0, 3.0, 60, dtype=np.float32), (40, 1))  # x ramp
    a = misregister(depth, rng(7), max_shift_px=2.0, max_scale_error=0.0)
    same_nan(a, misregister(depth, rng(7), max_shift_px=2.0, max_scale_error=0.0))
    assert not np.array_equal(a, misregister(depth, rng(8), 2.0, 0.0), equal_nan=True)
    dx_pixels = (a[20, 30] - depth[20, 30]) / (depth[0, 1] - depth[0, 0])
    assert abs(dx_pixels) <= 2  # a nearest shift of at most 2 px
    assert np.array_equal(misregister(depth, rng(), 0.0, 0.0), depth)


def test_misregister_linear_interpolates_but_never_mixes_valid_and_nan():
    depth = np.tile(np.arange(10, dtype=np.float32) + 1.0, (6, 1))
    depth[:, 5] = np.nan
    out = misregister(depth, rng(), shift=(0, 0.25), scale=1.0, interpolation="linear")
    # output column x samples x - 0.25: bilinear between columns x - 1 and x
    np.testing.assert_allclose(out[0, [2, 4, 7]], [2.75, 4.75, 7.75])
    # where a neighbour is the hole: the nearest input value, never a blend with it
    assert np.isnan(out[0, 5]) and out[0, 6] == 7.0 and out[0, 0] == 1.0
    nearest = misregister(depth, rng(), shift=(0, 0.25), scale=1.0)
    assert set(nearest[np.isfinite(nearest)].tolist()) <= set(depth[np.isfinite(depth)].tolist())


def test_misregister_scale_is_about_the_centre():
    depth = np.tile(np.arange(101, dtype=np.float32) + 1.0, (3, 1))
    out = misregister(depth, rng(), shift=(0, 0), scale=1.02)
    assert out[1, 50] == 51.0  # the centre stays
    # content 49 px from the centre is now 50 px from it: it grew by 2 %
    assert out[1, 100] == 100.0 and out[1, 0] == 2.0


# --- pseudo metres ----------------------------------------------------------------------


def test_pseudo_metres_maps_disparity_like_values_to_a_metric_range():
    d = np.array([[1.0, 0.0, 0.5, np.nan]], dtype=np.float32)
    out = pseudo_metres(d, 0.6, 4.0)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, :3], [0.6, 4.0, 1 / (0.25 + 0.5 * (1 / 0.6 - 0.25))])
    assert np.isnan(out[0, 3])
    np.testing.assert_allclose(pseudo_metres(d, 1.0, 3.0, kind="depth")[0, :3], [3.0, 1.0, 2.0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pseudo_metres(d * 255, 0.6, 4.0)


# --- profiles ---------------------------------------------------------------------------


def test_shipped_profiles_are_all_listed_and_load():
    assert sorted(p.stem for p in PROFILE_DIR.glob("*.yaml")) == sorted(PROFILES)
    for name in PROFILES:
        profile = load_profile(name)
        assert profile.name == name and isinstance(profile, CameraProfile)
        assert load_profile(PROFILE_DIR / f"{name}.yaml") == profile
        line = profile.describe()
        assert name in line and "\n" not in line and profile.grid[0] in line


def test_profile_to_dict_round_trips_through_json_and_yaml(tmp_path):
    for name in PROFILES:
        profile = load_profile(name)
        data = json.loads(json.dumps(profile.to_dict()))
        assert CameraProfile.from_dict(data) == profile
        path = tmp_path / "copy.yaml"
        path.write_text(yaml.safe_dump(profile.to_dict()))
        assert load_profile(path) == profile
    kinect = load_profile("kinect_v1").to_dict()
    assert kinect["grid"] == "nearest" and kinect["baseline_m"] == 0.075
    assert {"depth_noise": {"kind": "structured_light", "k_per_m": [0.0014, 0.00285]}} in kinect[
        "effects"
    ]


def _write(tmp_path, text, name="bad.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, problem",
    [
        ("grid: nearest\neffects: [blur]\n", "unknown effect 'blur'"),
        ("grid: cubic\n", "grid must be"),
        ("grid: nearest\neffects: [{dropout: {fractoin: 0.1}}]\n", "unknown parameter 'fractoin'"),
        ("grid: nearest\neffects: [{dropout: {}}]\n", "missing parameter"),
        ("grid: nearest\neffects: [{dropout: {fraction: [0.2, 0.1]}}]\n", "low > high"),
        ("grid: nearest\neffects: [{dropout: {fraction: [0.1, x]}}]\n", "range"),
        ("grid: nearest\neffects: [depth_noise, {dropout: {fraction: 0.1}}]\n", "hr, then lr"),
        ("grid: nearest\neffects: [shadow_holes]\n", "needs focal_px"),
        ("grid: bicubic\neffects: [{dropout: {fraction: 0.1}}]\n", "bicubic"),
        ("grid: nearest\ncolour: true\n", "unknown key"),
        ("effects: []\n", "needs at least"),
        ("grid: [nearest\n", "not valid YAML"),
        ("- grid\n", "mapping"),
    ],
)
def test_bad_profile_files_give_a_value_error_naming_the_file(tmp_path, text, problem):
    path = _write(tmp_path, text)
    with pytest.raises(ValueError) as error:
        load_profile(path)
    assert str(path) in str(error.value) and problem in str(error.value)


def test_missing_profiles_are_value_errors_that_name_them(tmp_path):
    with pytest.raises(ValueError, match="unknown camera profile 'kinect_v9'.*kinect_v1"):
        load_profile("kinect_v9")
    with pytest.raises(ValueError, match="absent.yaml"):
        load_profile(tmp_path / "absent.yaml")


# --- simulate ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROFILES)
@pytest.mark.parametrize("factor", [1, 2, 2.67])
def test_simulate_gives_the_lr_shape_in_metres(name, factor):
    depth = scene()
    out = simulate(depth, load_profile(name), factor, rng(), rgb=np.zeros((96, 128, 3), np.uint8))
    assert out.shape == lr_size(depth.shape, factor) and out.dtype == np.float32
    valid = out[np.isfinite(out)]
    assert valid.size > 0.5 * out.size
    assert 1.0 < valid.min() and valid.max() < 3.3  # metres in, metres out
    assert np.nanmedian(out) == pytest.approx(2.5, abs=0.05)


def test_simulate_kinect_has_shadow_holes_and_paper_bicubic_has_none():
    depth = scene()
    kinect = simulate(depth, load_profile("kinect_v1"), 2, rng())
    assert np.isnan(kinect).any()
    # the shadow band left of the box (box columns 32..63 at 1.2 m before a 2.5 m wall):
    # f b (1/1.2 - 1/2.5) = 21.7 HR px at f = 580 / 640 * 128 = 116 px -> 4.3 px, 2 LR px
    rows = slice(15, 33)
    assert np.isnan(kinect[rows, 14:16]).mean() > 0.9
    paper = simulate(depth, load_profile("paper_bicubic"), 2, rng())
    assert not np.isnan(paper).any()
    np.testing.assert_array_equal(paper, downsample(depth, 2, "bicubic"))


def test_simulate_is_seeded():
    profile, depth = load_profile("tof_lowres"), scene()
    a = simulate(depth, profile, 4, rng(11))
    same_nan(a, simulate(depth, profile, 4, rng(11)))
    assert not np.array_equal(a, simulate(depth, profile, 4, rng(12)), equal_nan=True)


def test_simulate_scales_the_focal_for_geometry_and_quantises_at_the_sensor():
    profile = CameraProfile.from_dict(
        {
            "name": "test",
            "grid": "nearest",
            "focal_px": F,
            "width_px": 640,
            "baseline_m": B,
            "effects": [{"shadow_holes": {"side": "right"}}, "quantise_disparity"],
        }
    )
    depth = step(2.0, 1.0, shape=(8, 320), edge=160)
    out = simulate(depth, profile, 1, rng())
    # image 320 px wide: focal 290 px, band 290 * 0.075 * 0.5 = 10.9 px
    assert abs(np.isnan(out[0]).sum() - F / 2 * B * 0.5) <= 1
    ramp = np.tile(np.linspace(1.0, 3.0, 300, dtype=np.float32), (8, 1))  # f = 271.875 px
    for factor in (1, 2):
        lr = simulate(ramp, profile, factor, rng())
        steps = F * B / lr.astype(np.float64) * 8  # the sensor's own f = 580 at 640
        np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
    explicit = simulate(depth, profile, 1, rng(), focal_px=F)  # 580 px on this image
    assert abs(np.isnan(explicit[0]).sum() - F * B * 0.5) <= 1


def test_simulate_kinect_noise_matches_the_profile_on_a_plane():
    out = simulate(plane(2.0, (240, 320)), load_profile("kinect_v1"), 1, rng())
    valid = out[np.isfinite(out)]
    assert valid.size > 0.9 * out.size  # only dropout and misregistration borders
    # noise k z^2 with k in [1.4e-3, 2.85e-3] /m at 2 m: 5.6 .. 11.4 mm, plus quantisation
    assert 0.005 < valid.std() < 0.013
    assert abs(valid.mean() - 2.0) < 0.003


def test_simulate_rejects_infinite_depth():
    depth = plane(2.0)
    depth[0, 0] = np.inf
    with pytest.raises(ValueError, match="Inf"):
        simulate(depth, load_profile("paper_bicubic"), 2, rng())
