"""Tests of training/camera_benchmark.py (``python -m training.evaluate --suite camera``).

The metric and protocol pieces are tested on hand-made arrays; the end-to-end runs use
the real shipped weights through the real Enhancer on one image: on the synthetic scenes
(always there) and on middlebury30 (skipped with the data README's reason when the
shared data is absent).
"""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest

from dkn_ros.models.registry import DEFAULT_WEIGHTS_DIR
from training import baselines as bl
from training import camera_benchmark as cb
from training import evaluate
from training.data import missing_reason


def need(dataset: str) -> None:
    reason = missing_reason(dataset)
    if reason:
        pytest.skip(reason)


def shipped(scale: int):
    """A shipped FDKN upsampling weights file trained for exactly ``scale`` (by its card,
    not its name)."""
    for path in cb.default_weights():
        card = cb.card_of(path)
        if card["model"] == "fdkn" and cb.trained_scales(card) == [float(scale)]:
            return path
    pytest.skip(f"no shipped FDKN x{scale} weights in {DEFAULT_WEIGHTS_DIR}")


# --------------------------------------------------------------------------- edge band


def step(height: int = 12, width: int = 12, near: float = 1.0, far: float = 2.0) -> np.ndarray:
    """A vertical step: columns 0-5 at ``near``, 6-11 at ``far``."""
    depth = np.full((height, width), near)
    depth[:, width // 2 :] = far
    return depth


def test_edge_pixels_are_both_sides_of_a_step():
    edges = cb.edge_pixels(step())
    expected = np.zeros((12, 12), bool)
    expected[:, 5:7] = True  # the last near column and the first far one
    assert np.array_equal(edges, expected)


def test_edge_band_is_three_pixels_either_side():
    band = cb.edge_band(step(), radius=3)
    expected = np.zeros((12, 12), bool)
    expected[:, 2:10] = True  # within 3 px of column 5 or 6
    assert np.array_equal(band, expected)
    # a single edge pixel: the band is the Euclidean disc of radius 3 (29 pixels)
    depth = np.ones((15, 15))
    depth[7, 7] = 3.0
    band = cb.edge_band(depth, radius=3)
    yy, xx = np.mgrid[0:15, 0:15]
    near_centre = np.zeros((15, 15), bool)
    for y, x in [(7, 7), (6, 7), (8, 7), (7, 6), (7, 8)]:  # the spike and its 4 neighbours
        near_centre |= (yy - y) ** 2 + (xx - x) ** 2 <= 9
    assert np.array_equal(band, near_centre)


def test_edge_threshold_is_relative_with_a_floor():
    assert not cb.edge_pixels(step(near=1.0, far=1.04)).any()  # 3.8 % of 1.04 < 5 %
    assert cb.edge_pixels(step(near=1.0, far=1.06)).any()  # 5.7 % > 5 %
    # the same relative jump in disparity (1 / depth) is an edge too
    assert cb.edge_pixels(1.0 / step(near=1.0, far=1.06)).any()
    # a floor in the data's unit: 10 -> 11 is 9 % but only 1 unit
    assert cb.edge_pixels(step(near=10.0, far=11.0)).any()
    assert not cb.edge_pixels(step(near=10.0, far=11.0), floor=2.0).any()
    # invalid (NaN) neighbours never make an edge, and no edge = an empty band
    depth = step()
    depth[:, 6:] = np.nan
    assert not cb.edge_pixels(depth).any() and not cb.edge_band(depth).any()


# --------------------------------------------------------------------------- metrics


def test_region_rmse_and_cell_metrics_by_hand():
    truth = np.array([[1.0, 1.0], [1.0, 1.0]])
    prediction = np.array([[1.0, 2.0], [3.0, 4.0]])
    everything = np.ones((2, 2), bool)
    assert cb.region_rmse(prediction, truth, everything) == pytest.approx(math.sqrt(14 / 4))
    assert cb.region_rmse(prediction, truth, ~everything) is None
    band = np.array([[False, True], [False, False]])
    holes = np.array([[False, False], [True, True]])
    metrics = cb.cell_metrics(prediction, truth, everything, band, holes, factor=100.0)
    assert metrics["overall"] == pytest.approx(100 * math.sqrt(3.5))
    assert metrics["edge"] == pytest.approx(100 * 1.0)
    assert metrics["hole"] == pytest.approx(100 * math.sqrt((4 + 9) / 2))
    assert cb.cell_metrics(prediction, truth, everything, band, None)["hole"] is None
    # a prediction's NaN pixels are not scored
    prediction[1, 1] = np.nan
    metrics = cb.cell_metrics(prediction, truth, everything, band, holes)
    assert metrics["overall"] == pytest.approx(math.sqrt(5 / 3))
    assert metrics["hole"] == pytest.approx(2.0)


def test_scales_are_fractions_and_crop_to_an_exact_lr_grid():
    scale = cb.Scale.parse("2.67")
    assert scale.ratio == Fraction(8, 3) and scale.label == "x2.67" and scale.multiple == 8
    assert scale.lr_shape((384, 512)) == (144, 192)  # the real pairs' ratio
    assert cb.Scale.parse("4.5").ratio == Fraction(9, 2)
    assert cb.Scale.parse("8").label == "x8" and cb.Scale.parse("8").integer
    with pytest.raises(ValueError):
        cb.Scale.parse("0.5")


def test_point_rows_are_the_readme_protocol_and_holes_follow_the_lr():
    rng = np.random.default_rng(0)
    depth = rng.uniform(1000, 3000, (37, 45))  # mm, cropped to 32 x 40 at x8
    depth[20, 12] = np.nan  # the point sample of LR pixel (2, 1): a hole
    frame = cb.Frame("f", rng.integers(0, 255, (37, 45, 3), dtype=np.uint8), depth, True)
    case = cb.make_case(cb.Row("rgbd_sequence", "point", cb.Scale.parse("8")), frame, 0)
    expected = depth[:32, :40][4::8, 4::8]
    assert case.delivered.dtype == np.uint16 and case.delivered.shape == (4, 5)
    np.testing.assert_array_equal(
        case.delivered, np.nan_to_num(np.rint(expected)).astype(np.uint16)
    )
    assert np.isnan(case.lr[2, 1]) and np.isfinite(np.delete(case.lr.ravel(), 2 * 5 + 1)).all()
    holes = np.zeros((32, 40), bool)
    holes[16:24, 8:16] = True
    holes[20, 12] = False  # the ground truth is invalid there: not scored
    assert np.array_equal(case.holes, holes)
    assert not case.scored[20, 12] and case.scored.sum() == 32 * 40 - 1


def test_middlebury_zero_is_a_value_for_the_classic_columns_only():
    depth = np.full((16, 16), 50.0)
    depth[:, :8] = 0.0  # disparity 0: a value on the 0..255 scale
    frame = cb.Frame("m", np.zeros((16, 16, 3), np.uint8), depth)
    case = cb.make_case(cb.Row("middlebury30", "point", cb.Scale.parse("4")), frame, 0)
    assert np.array_equal(case.lr, depth[2::4, 2::4])  # as computed: the protocol
    assert np.isnan(case.delivered[:, :2]).all()  # a node reads <= 0 as invalid
    assert case.holes[:, :8].all() and not case.holes[:, 8:].any()


def test_sensor_frame_conversions():
    counts = np.array([[986, 2047, 600]])
    swapped = ((counts & 0xFF) << 8) | (counts >> 8)  # how PIL reads NYU's PGM
    metres = cb.nyu_raw_to_metres(swapped)
    assert metres[0, 0] == pytest.approx(351.3 / (1092.5 - 986))
    assert np.isnan(metres[0, 1])  # 2047: no return
    assert metres[0, 2] == pytest.approx(351.3 / 492.5)
    mm = np.array([[1234, 0, 9870]], dtype=np.uint16)
    rotated = ((mm.astype(np.uint32) << 3) | (mm.astype(np.uint32) >> 13)) & 0xFFFF
    np.testing.assert_array_equal(cb.sun_to_mm(rotated), mm)


def test_weights_run_near_their_trained_scales():
    net = cb.Network("x2", DEFAULT_WEIGHTS_DIR / "x2.safetensors", [2.0], None)
    runs = {text: net.runs_at(cb.Scale.parse(text), False) for text in SCALES_TEXT}
    assert runs == {"1": False, "2": True, "2.67": True, "4": False, "8": False, "16": False}
    assert net.runs_at(cb.Scale.parse("16"), True)  # --all-cells
    default = cb.Network("default", None, [], None)
    assert all(default.runs_at(cb.Scale.parse(text), False) for text in SCALES_TEXT)


SCALES_TEXT = ("1", "2", "2.67", "4", "8", "16")


def test_suite_camera_dispatches_and_paper_stays():
    assert evaluate.split_suite(["--suite", "camera", "--images", "1"]) == (
        "camera",
        ["--images", "1"],
    )
    assert evaluate.split_suite(["--suite=camera"]) == ("camera", [])
    assert evaluate.split_suite(["--dataset", "middlebury30"]) == (
        "paper",
        ["--dataset", "middlebury30"],
    )


# --------------------------------------------------------------------------- end to end


def check_table(out: dict, rows: list[tuple[str, str, str]], columns: list[str]) -> None:
    assert out["columns"] == columns
    assert [(r["dataset"], r["degradation"], r["label"]) for r in out["rows"]] == rows
    for row in out["rows"]:
        assert len(row["images"]) == 1
        for column in columns:
            cell = row["cells"][column]
            assert cell["status"] == "ok", (column, cell)
            assert math.isfinite(cell["rmse"]) and cell["rmse"] > 0
            assert math.isfinite(cell["edge_rmse"])
        assert row["best"] in columns
        assert math.isfinite(row["default_over_bicubic"])
    for dataset, degradation, label in rows:
        line = f"| {dataset} | {degradation} | {label} | 1 |"
        assert any(t.startswith(line) for t in out["table"].splitlines()), line


def test_end_to_end_on_a_synthetic_scene(tmp_path):
    """Real shipped weights, real Enhancer, one synthetic scene (no shared data needed)."""
    weights = shipped(4)
    out = cb.run(
        ["--datasets", "synthetic", "--grids", "point", "area", "--scales", "4",
         "--images", "1", "--no-baselines", "--model-weights", str(weights),
         "--json", str(tmp_path / "c.json"), "--markdown", str(tmp_path / "c.md")]
    )  # fmt: skip
    columns = ["nearest", "bicubic", weights.stem, "default"]
    check_table(out, [("synthetic", "point", "x4"), ("synthetic", "area", "x4")], columns)
    for row in out["rows"]:
        (used,) = row["default_weights"]  # the default's pick for x4 input
        if used == weights.name:  # the same file: computed once, the same numbers
            assert row["cells"]["default"]["rmse"] == row["cells"][weights.stem]["rmse"]
    assert json.loads((tmp_path / "c.json").read_text())["rows"][0]["unit"] == "mm"
    assert (tmp_path / "c.md").read_text() == out["table"]
    assert "Targets" in out["table"] and "NOT MEASURED" in out["table"]


def test_kinect_row_is_a_todo_until_the_simulation_exists(monkeypatch):
    monkeypatch.delattr(cb.sensors, "simulate", raising=False)
    out = cb.run(
        ["--datasets", "synthetic", "--grids", "kinect_v1", "--images", "1",
         "--no-baselines", "--model-weights"]
    )  # fmt: skip
    (row,) = out["rows"]
    assert row["label"] == "x1" and row["error"].startswith("TODO")
    assert "TODO" in out["table"]
    kinect = [t for t in out["targets"] if "kinect" in t["target"]]
    assert kinect and all(t["result"] == "NOT MEASURED" for t in kinect)


def test_end_to_end_on_middlebury():
    need("middlebury30")
    weights = shipped(8)
    out = cb.run(
        ["--datasets", "middlebury30", "--grids", "point", "--scales", "8", "--images", "1",
         "--no-baselines", "--model-weights", str(weights)]
    )  # fmt: skip
    columns = ["nearest", "bicubic", weights.stem, "default"]
    check_table(out, [("middlebury30", "point", "x8")], columns)
    (row,) = out["rows"]
    # one image: the protocol check needs all 30 and says so
    assert all(v.startswith("none") for v in out["protocol_check"].values())
    # bicubic on the first image by hand: d[4::8, 4::8], PIL bicubic up, 0..255 RMSE
    from PIL import Image

    from training.data import open_dataset

    depth = open_dataset("middlebury30", "test")[0].depth.astype(np.float32)
    h, w = depth.shape
    gt = depth[: h - h % 8, : w - w % 8]
    lr = Image.fromarray(np.ascontiguousarray(gt[4::8, 4::8]), mode="F")
    up = np.asarray(lr.resize((gt.shape[1], gt.shape[0]), Image.BICUBIC), np.float64)
    expected = math.sqrt(np.mean((up - gt) ** 2))
    assert row["cells"]["bicubic"]["rmse"] == pytest.approx(expected, rel=1e-6)


def test_search_images_never_include_the_real_test_scenes():
    need("rgbdd")
    for n in (6, 12, 0):
        names = {p.name for p in bl.tuning_pairs(None, n)}
        assert not names & bl.TEST_ONLY_SCENES
