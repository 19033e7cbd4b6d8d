"""Tests of the training data: the dataset interface, the NYU converter, the
degradations and the training options that use them (config files, scale sets,
denoising). The converter runs on a small HDF5 file written here in exactly the
official layout; the tests that need the shared data skip with the reason of
``training.data.missing_reason``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dkn_ros.models import load_model
from training import train
from training.data import (
    DATASET_CLASSES,
    RGBDImage,
    crop_to_multiple,
    missing_reason,
    open_dataset,
    prepare_training_image,
    synthesize_lr,
    validation_inputs,
)
from training.data import NYU_LEVELS as LEVELS
from training.data import read_nyu_frame as read_frame
from training.data import read_nyu_index as read_index
from training.degrade import PAPER_DENOISING_NOISE_STD, Degradation
from training.plot import write_curves
from training.prepare_nyu import convert

h5py = pytest.importorskip("h5py", reason="h5py (the 'train' extra) reads the NYU .mat file")


def ramp(height: int = 64, width: int = 96) -> np.ndarray:
    """A smooth normalised depth with an edge, (H, W) float32 in [0, 1]."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    depth = 0.2 + 0.5 * x / width + 0.1 * y / height
    depth[:, width // 2 :] += 0.15
    return (depth / depth.max()).astype(np.float32)


# --------------------------------------------------------------------------- degradations


def test_paper_degradation_is_the_bicubic_protocol():
    depth = ramp()
    degradation = Degradation(scales=(8,))
    assert degradation.deterministic and degradation.align == 8
    _, up = synthesize_lr(depth, 8)
    np.testing.assert_array_equal(degradation.apply(depth, None), up)
    assert Degradation(scales=(2,)).align == 4 and Degradation(scales=(2, 16)).align == 16


def test_scale_set_draws_every_scale_and_is_seeded():
    depth = ramp()
    degradation = Degradation(scales=(2, 4, 8, 16))
    assert not degradation.deterministic
    expected = {s: Degradation(scales=(s,)).apply(depth, None) for s in (2, 4, 8, 16)}
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(40):
        out = degradation.apply(depth, rng)
        match = [s for s, up in expected.items() if np.array_equal(out, up)]
        assert len(match) == 1
        seen.add(match[0])
    assert seen == {2, 4, 8, 16}
    a = degradation.apply(depth, np.random.default_rng(7))
    b = degradation.apply(depth, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)


def test_denoising_noise_has_the_paper_variance():
    depth = np.full((256, 256), 0.5, dtype=np.float32)
    degradation = Degradation(scales=(1,), noise_std=(PAPER_DENOISING_NOISE_STD,) * 2)
    noisy = degradation.apply(depth, np.random.default_rng(1))
    assert noisy.shape == depth.shape
    assert np.var(noisy - depth) == pytest.approx(0.005, rel=0.03)
    assert abs(float(np.mean(noisy - depth))) < 0.002


def test_quantisation_and_holes():
    depth = ramp(64, 64)
    quantised = Degradation(scales=(1,), quantisation=0.05).apply(depth, None)
    np.testing.assert_allclose(quantised / 0.05, np.round(quantised / 0.05), atol=1e-4)
    assert np.abs(quantised - depth).max() <= 0.025 + 1e-6

    holes = Degradation(scales=(1,), holes=0.1)
    out = holes.apply(depth, np.random.default_rng(3))
    changed = out != depth
    # Dropped pixels were refilled with the values of valid neighbours: nothing new.
    assert 0 < changed.sum() <= round(0.1 * depth.size)
    assert np.isin(out[changed], depth[~changed]).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"scales": ()}, "scales"),
        ({"scales": (3, 32)}, "scales"),
        ({"noise_std": (0.2, 0.1)}, "noise_std"),
        ({"holes": 1.0}, "holes"),
        ({"quantisation": -1.0}, "quantisation"),
    ],
)
def test_bad_degradations_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Degradation(**kwargs)
    with pytest.raises(ValueError, match="multiple"):
        Degradation(scales=(8,)).apply(np.zeros((60, 64), np.float32), None)


def test_validation_inputs_cover_every_scale_and_repeat():
    images = [
        prepare_training_image(
            RGBDImage(f"s{i}", np.zeros((64, 64, 3), np.uint8), ramp(64, 64) * 900 + 100), 16
        )
        for i in range(4)
    ]
    degradation = Degradation(scales=(2, 4, 8, 16), noise_std=(0.01, 0.01))
    first = validation_inputs(images, degradation, seed=0)
    again = validation_inputs(images, degradation, seed=0)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    # Without noise, image i is exactly the bicubic protocol at scales[i].
    clean = validation_inputs(images, Degradation(scales=(2, 4, 8, 16)), seed=0)
    for image, out, scale in zip(images, clean, (2, 4, 8, 16), strict=True):
        np.testing.assert_array_equal(out, synthesize_lr(image.depth, scale)[1])


# --------------------------------------------------------------------------- NYU converter


def write_official_layout(path, frames: int, height: int = 6, width: int = 8):
    """A labeled-file stand-in in the official HDF5 layout (MATLAB v7.3 is HDF5 and
    h5py sees MATLAB's arrays transposed): images (N, 3, W, H) uint8, depths (N, W, H)
    float metres. Frame n's pixel (y, x) has colour (n % 256, y, x) and depth
    1 + n / 1000 + y / 10 + x / 100."""
    n, y, x = np.meshgrid(
        np.arange(frames), np.arange(height), np.arange(width), indexing="ij"
    )  # (N, H, W)
    rgb = np.stack([n % 256, y, x], axis=-1).astype(np.uint8)  # (N, H, W, 3)
    depth = (1.0 + n / 1000 + y / 10 + x / 100).astype(np.float32)
    with h5py.File(path, "w") as handle:
        handle["images"] = rgb.transpose(0, 3, 2, 1)  # (N, 3, W, H)
        handle["depths"] = depth.transpose(0, 2, 1)  # (N, W, H)
        handle["labels"] = np.zeros((frames, width, height), np.uint16)  # also in the file
    return rgb, depth


def test_prepare_nyu_converts_the_official_layout_into_the_standard_split(tmp_path, monkeypatch):
    mat = tmp_path / "nyu_depth_v2_labeled.mat"
    rgb, depth = write_official_layout(mat, frames=1003)
    out = tmp_path / "data" / "nyu_v2"
    entries = convert(mat, out)
    assert [e["index"] for e in entries] == list(range(1003))
    assert [e["split"] for e in entries] == ["train"] * 1000 + ["test"] * 3
    assert read_index(out) == entries
    for n in (0, 999, 1000, 1002):
        entry = entries[n]
        assert entry["min_m"] == pytest.approx(depth[n].min())
        assert entry["max_m"] == pytest.approx(depth[n].max())
        got_rgb, got_depth = read_frame(out, entry)
        np.testing.assert_array_equal(got_rgb, rgb[n])  # (H, W, 3): transposed back
        assert got_depth.dtype == np.float32 and got_depth.shape == (6, 8)
        span = entry["max_m"] - entry["min_m"]
        np.testing.assert_allclose(got_depth, depth[n], atol=span / (2 * LEVELS) + 1e-6)

    # The dataset interface reads it with the standard split (every 20th of 0-999 is val).
    monkeypatch.setenv("DKN_DATA_DIR", str(tmp_path / "data"))
    assert missing_reason("nyu_v2") is None
    test = open_dataset("nyu_v2", "test")
    assert test.names == ["1000", "1001", "1002"] and test.report_unit == "cm"
    val, train_split = open_dataset("nyu_v2", "val"), open_dataset("nyu_v2", "train")
    assert len(val) == 50 and len(train_split) == 950 and val.names[1] == "0020"
    assert not set(val.names) & set(train_split.names)
    sample = test[2]
    np.testing.assert_array_equal(sample.rgb, rgb[1002])
    # A second conversion of the same file leaves the output alone.
    assert convert(mat, out) == entries


def test_training_on_prepared_nyu_reports_centimetres(tmp_path, monkeypatch):
    """The paper's data path end to end: official layout -> prepare_nyu -> train.py."""
    mat = tmp_path / "nyu.mat"
    write_official_layout(mat, frames=1001, height=32, width=32)
    convert(mat, tmp_path / "data" / "nyu_v2")
    monkeypatch.setenv("DKN_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "run"
    run([*TINY, "--dataset", "nyu_v2", "--train-images", "3", "--val-images", "2",
         "--out-dir", str(out), "--export", str(out / "m.safetensors")])  # fmt: skip
    _, card = load_model(out / "m.safetensors")
    val = card.evaluation["nyu_v2_val"]
    assert val["unit"] == "cm" and math.isfinite(val["rmse"]) and val["input_rmse"] > 0
    assert "NYU Depth v2" in card.training_data and "NOT on NYU" not in card.notes


def test_prepare_nyu_errors_name_the_file(tmp_path):
    from training import prepare_nyu

    missing = tmp_path / "nope.mat"
    with pytest.raises(SystemExit, match="nope.mat: file not found"):
        prepare_nyu.main([str(missing), "--out", str(tmp_path / "o")])
    wrong = tmp_path / "wrong.mat"
    with h5py.File(wrong, "w") as handle:
        handle["images"] = np.zeros((2, 3, 8, 6), np.uint8)
    with pytest.raises(SystemExit, match="wrong.mat: no depths dataset"):
        convert(wrong, tmp_path / "o")
    text = tmp_path / "text.mat"
    text.write_text("MATLAB 5.0 MAT-file")
    with pytest.raises(SystemExit, match="text.mat: not an HDF5"):
        convert(text, tmp_path / "o")


# --------------------------------------------------------------------------- datasets


def test_open_dataset_names_and_splits():
    assert set(DATASET_CLASSES) == {
        "rgbdd", "middlebury30", "nyu_test_samples", "nyu_v2", "synthetic", "camera_mix"
    }  # fmt: skip
    with pytest.raises(ValueError, match="unknown dataset 'kitti'"):
        open_dataset("kitti")
    with pytest.raises(ValueError, match="no split 'test'"):
        open_dataset("synthetic", "test")
    with pytest.raises(ValueError, match="no split 'test'"):
        open_dataset("camera_mix", "test")


def test_camera_mix_is_rgbdd_plus_synthetic_scenes_and_validates_on_rgbdd():
    reason = missing_reason("rgbdd")
    if reason:
        pytest.skip(reason)
    train, val = open_dataset("camera_mix", "train"), open_dataset("camera_mix", "val")
    rgbdd_train, rgbdd_val = open_dataset("rgbdd", "train"), open_dataset("rgbdd", "val")
    assert train.names[: len(rgbdd_train)] == rgbdd_train.names
    assert train.names[len(rgbdd_train) :] == [f"scene{i:05d}" for i in range(200)]
    assert val.names == rgbdd_val.names and not set(train.names) & set(val.names)
    assert train[len(rgbdd_train)].depth.max() < 20  # a synthetic scene, in metres


def test_synthetic_scenes_are_a_dataset():
    train_set = DATASET_CLASSES["synthetic"].open("train", count=2, width=64, height=48)
    val_set = DATASET_CLASSES["synthetic"].open("val", count=1, width=64, height=48)
    sample = train_set[1]
    assert len(train_set) == 2 and sample.rgb.shape == (48, 64, 3)
    assert sample.depth.shape == (48, 64) and np.isfinite(sample.depth).all()
    assert not set(train_set.names) & set(val_set.names)
    with pytest.raises(IndexError):
        train_set[2]


@pytest.mark.parametrize(
    "name, split, count, unit",
    [("rgbdd", "train", 381, "mm"), ("rgbdd", "val", 21, "mm"),
     ("middlebury30", "test", 30, "0..255"), ("nyu_test_samples", "test", 3, "cm")],
)  # fmt: skip
def test_real_datasets(name, split, count, unit):
    reason = missing_reason(name)
    if reason:
        pytest.skip(reason)
    dataset = open_dataset(name, split)
    assert len(dataset) == count and dataset.report_unit == unit
    sample = dataset[0]
    assert sample.rgb.dtype == np.uint8 and sample.rgb.shape == (*sample.depth.shape, 3)
    assert sample.depth.dtype == np.float32 and (sample.depth > 0).mean() > 0.9
    if name == "nyu_test_samples":
        assert dataset.names[0] == "1000" and 0.3 < float(sample.depth.max()) < 10.0


# --------------------------------------------------------------------------- train options


def run(argv):
    return train.main(train.parse_args(argv))


def test_config_file_sets_defaults_and_the_command_line_wins(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("scale: 1\nnoise_std: [0.0, 0.07]\nresidual: false\niterations: 123\n")
    args = train.parse_args(["--config", str(config), "--iterations", "7"])
    assert (args.scale, args.noise_std, args.residual, args.iterations) == (
        1, [0.0, 0.07], False, 7
    )  # fmt: skip
    config.write_text("scael: 4\n")
    with pytest.raises(SystemExit, match=r"unknown options \['scael'\]"):
        train.parse_args(["--config", str(config)])
    with pytest.raises(SystemExit, match="file not found"):
        train.parse_args(["--config", str(tmp_path / "none.yaml")])


def test_shipped_configs_parse():
    from training.data import REPO_ROOT

    for path in sorted((REPO_ROOT / "training" / "configs").glob("*.yaml")):
        args = train.parse_args(["--config", str(path)])
        degradation = train.degradation_of(args)
        assert args.crop % degradation.align == 0, path.name
    paper = train.parse_args(
        ["--config", str(REPO_ROOT / "training/configs/paper_fdkn_denoise.yaml")]
    )
    assert train.degradation_of(paper) == Degradation(scales=(1,), noise_std=(0.0707, 0.0707))
    assert (paper.iterations, paper.residual, paper.lr, paper.batch_size) == (4000, False, 1e-3, 1)


TINY = ["--n1", "8", "--n2", "8", "--crop", "32", "--train-images", "2", "--val-images", "4",
        "--threads", "1", "--val-every", "0", "--iterations", "3"]  # fmt: skip


def test_scale_set_and_denoising_runs_write_their_cards_and_curves(tmp_path):
    if missing_reason("rgbdd"):
        pytest.skip(missing_reason("rgbdd"))
    multi = tmp_path / "multi"
    run([*TINY, "--scales", "2", "4", "8", "16", "--out-dir", str(multi),
         "--export", str(multi / "m.safetensors")])  # fmt: skip
    _, card = load_model(multi / "m.safetensors")
    assert card.task == "upsampling" and card.scales == [2, 4, 8, 16]
    assert "s drawn from [2, 4, 8, 16]" in card.training_data
    assert card.evaluation["rgbdd_val"]["unit"] == "mm"
    svg = (multi / "curves.svg").read_text()
    assert svg.startswith("<svg") and svg.count("<polyline") == 3

    denoise = tmp_path / "denoise"
    run([*TINY, "--scale", "1", "--noise-std", "0.0707", "--no-residual",
         "--out-dir", str(denoise), "--export", str(denoise / "d.safetensors")])  # fmt: skip
    model, card = load_model(denoise / "d.safetensors")
    assert card.task == "denoising" and card.scale == 1 and not model.residual
    val = card.evaluation["rgbdd_val"]
    # The noisy input's RMSE: std 0.0707 of each image's depth span, in mm.
    assert 10.0 < val["input_rmse"] < 500.0 and math.isfinite(val["rmse"])


def test_curves_of_an_older_log(tmp_path):
    (tmp_path / "log.csv").write_text(
        "iteration,loss,lr,seconds\n" + "".join(f"{i},{1 / i},0.001,{i}\n" for i in range(1, 80))
    )
    (tmp_path / "val.csv").write_text(
        "iteration,val_rmse_mm,bicubic_rmse_mm,seconds\n10,5.0,9.0,1\n20,4.0,9.0,2\n"
    )
    svg = write_curves(tmp_path).read_text()
    assert svg.count("<polyline") == 3 and "mean of 50" in svg
    assert json.dumps(svg)  # plain text


def test_prepare_masks_non_finite_and_zero_depth():
    depth = ramp(16, 16) * 1000
    depth[0, 0], depth[1, 1] = 0.0, np.nan
    image = prepare_training_image(
        RGBDImage("x", np.zeros((18, 17, 3), np.uint8), np.pad(depth, ((0, 2), (0, 1)))), 8
    )
    assert image.depth.shape == (16, 16) and not image.mask[0, 0] and not image.mask[1, 1]
    assert np.isfinite(image.depth).all()
    assert image.dmin == pytest.approx(np.nanmin(np.where(depth > 0, depth, np.nan)))
    assert crop_to_multiple(np.zeros((18, 17)), 8).shape == (16, 16)


# --------------------------------------------------------------------------- camera degradations


def test_degradation_point_grid_with_nearest_upsampling_is_the_camera_protocol():
    depth = np.random.default_rng(0).random((32, 48)).astype(np.float32)
    out = Degradation(scales=(8,), grids=("nearest",), upsampling="nearest").apply(depth, None)
    expected = np.repeat(np.repeat(depth[4::8, 4::8], 8, axis=0), 8, axis=1)
    np.testing.assert_array_equal(out, expected)
    median = Degradation(scales=(4,), grids=("median",), upsampling="nearest").apply(depth, None)
    blocks = depth.reshape(8, 4, 12, 4).transpose(0, 2, 1, 3).reshape(8, 12, 16)
    np.testing.assert_allclose(median[::4, ::4], np.median(blocks, axis=2), rtol=1e-6)


def test_degradation_grid_mix_is_seeded_and_guided_needs_the_colour():
    rng = np.random.default_rng(1)
    depth = rng.random((64, 64)).astype(np.float32)
    rgb = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    mix = Degradation(scales=(8,), grids=("nearest", "median", "area"), upsampling="guided")
    assert not mix.deterministic and "joint bilateral" in mix.describe()
    a = mix.apply(depth, np.random.default_rng(5), rgb)
    b = mix.apply(depth, np.random.default_rng(5), rgb)
    np.testing.assert_array_equal(a, b)
    draws = {mix.apply(depth, np.random.default_rng(seed), rgb).tobytes() for seed in range(8)}
    assert len(draws) > 1  # different grids drawn
    with pytest.raises(ValueError, match="needs the colour image"):
        mix.apply(depth, np.random.default_rng(5))
    with pytest.raises(ValueError, match="grids must be some of"):
        Degradation(grids=("lanczos",))


def test_degradation_camera_profile_same_size():
    rng = np.random.default_rng(2)
    depth = np.full((64, 96), 0.5, np.float32)
    depth[:, 40:] = 0.2  # a nearer surface on the right: shadow bands beside its edge
    rgb = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    kinect = Degradation(scales=(1,), profile="kinect_v1")
    out = kinect.apply(depth, np.random.default_rng(3), rgb)
    assert out.shape == depth.shape and out.dtype == np.float32 and np.isfinite(out).all()
    assert 0 < np.abs(out - depth).mean() < 0.05  # noise and holes, still the same scene
    np.testing.assert_array_equal(out, kinect.apply(depth, np.random.default_rng(3), rgb))
    assert "kinect_v1" in kinect.describe()
    with pytest.raises(ValueError, match="nope"):
        Degradation(profile="nope")
