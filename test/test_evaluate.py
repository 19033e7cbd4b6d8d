"""Tests of training/evaluate.py and training/baselines.py.

Most tests build a tiny data directory in the real folder layouts (``middlebury30/``,
``rgbdd/``, ``nyu_test_samples/``) so they run without the shared data; the tests on the
real data skip with the reason from ``training.data.missing_reason`` when it is absent.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dkn_ros.models import ModelCard, build_model, save_model
from training import baselines as bl
from training import evaluate
from training.data import missing_reason, rgbdd_pairs, split_rgbdd


def need(dataset: str) -> None:
    reason = missing_reason(dataset)
    if reason:
        pytest.skip(reason)


def pil_bicubic(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) float -> (H, W) float32 with PIL's bicubic on an 'F' image, written out here
    independently of the code under test. ``size`` is (H, W)."""
    image = Image.fromarray(np.asarray(array, dtype=np.float32), mode="F")
    return np.asarray(image.resize((size[1], size[0]), Image.BICUBIC), dtype=np.float32)


# --------------------------------------------------------------------------- a fake data dir


def scene(height: int, width: int, seed: int, near: float, far: float):
    """Colour and depth with one shared vertical edge off the LR grid, plus a slope."""
    rng = np.random.default_rng(seed)
    edge = int(rng.integers(width // 3, 2 * width // 3)) | 1  # odd: never on the LR grid
    yy, xx = np.mgrid[0:height, 0:width]
    color = np.where((xx < edge)[..., None], (60, 120, 200), (220, 180, 40)).astype(np.float64)
    color += rng.normal(0, 3, color.shape)
    depth = np.where(xx < edge, near, far) + (far - near) * 0.1 * yy / height
    return np.clip(color, 0, 255).astype(np.uint8), depth


def make_data(root: Path, rgbdd: int = 4, middlebury: int = 3, nyu=("1000", "1001")) -> Path:
    for i in range(middlebury):
        rgb, depth = scene(48, 64, i, 60.0, 200.0)
        name = f"Middlebury_{i + 1:02d}"
        (root / "middlebury30" / "RGB").mkdir(parents=True, exist_ok=True)
        (root / "middlebury30" / "Depth").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).save(root / "middlebury30" / "RGB" / f"{name}_output_color.png")
        Image.fromarray(np.round(depth).astype(np.uint8)).save(
            root / "middlebury30" / "Depth" / f"{name}_output_depth.png"
        )
    for i in range(rgbdd):
        rgb, depth = scene(32, 48, 100 + i, 800.0, 2500.0)
        depth = np.round(depth).astype(np.uint16)
        depth[3, 5] = 0  # a hole
        (root / "rgbdd" / "RGB").mkdir(parents=True, exist_ok=True)
        (root / "rgbdd" / "Depth").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).save(root / "rgbdd" / "RGB" / f"scene_{i:03d}_RGB.jpg", quality=95)
        Image.fromarray(depth).save(root / "rgbdd" / "Depth" / f"scene_{i:03d}_HR_gt.png")
    for n, name in enumerate(nyu):
        rgb, depth = scene(48, 64, 200 + n, 1.2, 3.9)
        (root / "nyu_test_samples" / "RGB").mkdir(parents=True, exist_ok=True)
        (root / "nyu_test_samples" / "Depth").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).save(root / "nyu_test_samples" / "RGB" / f"{name}.jpg", quality=95)
        np.save(root / "nyu_test_samples" / "Depth" / f"{name}.npy", depth.astype(np.float32))
    return root


def tiny_weights(path: Path, scale: int, **card_extra) -> Path:
    torch.manual_seed(0)
    card = ModelCard(model="fdkn", config={"n1": 8, "n2": 8}, scale=scale, notes="keep me")
    save_model(build_model("fdkn", n1=8, n2=8), card, path)
    if card_extra:  # keys the ModelCard of this checkout may not know (e.g. "scales")
        data = json.loads(path.with_suffix(".json").read_text())
        path.with_suffix(".json").write_text(json.dumps({**data, **card_extra}))
    return path


def run(argv: list[str]) -> dict:
    return evaluate.main(evaluate.get_args_parser().parse_args([*argv, "--threads", "1"]))


# --------------------------------------------------------------------------- metrics


def test_middlebury_metric_against_hand_computed_value():
    gt = np.array([[10.0, 20.0], [30.0, 40.0]], dtype=np.float32)
    prediction = np.array([[12.0, 20.0], [30.0, 36.0]])
    sample = evaluate.TestImage("x", np.zeros((2, 2, 3), np.uint8), gt, gt, gt, 10.0, 40.0)
    # Errors 2, 0, 0, -4 on the 0..255 scale: mean square (4 + 16) / 4 = 5, no crop.
    assert evaluate.score("middlebury30", prediction, sample) == pytest.approx(math.sqrt(5.0))


def test_nyu_metric_crops_6_px_and_reports_cm():
    truth = np.zeros((14, 14))
    prediction = np.ones((14, 14))  # error 1.0 everywhere in the 6-pixel border...
    prediction[6:8, 6:8] = [[0.1, 0.2], [0.3, 0.4]]  # ...which is cropped away
    # Inside: errors 0.1..0.4, mean square (0.01 + 0.04 + 0.09 + 0.16) / 4 = 0.075;
    # de-normalised with max - min = 3.5 - 1.5 = 2 m: 2 * sqrt(0.075) m = 54.77 cm.
    expected = 2.0 * math.sqrt(0.075) * 100.0
    assert evaluate.nyu_rmse_cm(prediction, truth, 1.5, 3.5) == pytest.approx(expected)
    assert expected == pytest.approx(54.772, abs=1e-3)
    # The same through the evaluation's scorer, with depth in metres.
    gt = (1.5 + 2.0 * truth).astype(np.float32)
    gt[0, 0] = 3.5  # the truth's max (in the border: it does not change the crop)
    sample = evaluate.TestImage("x", np.zeros((14, 14, 3), np.uint8), gt, gt, gt, 1.5, 3.5)
    metres = 1.5 + 2.0 * prediction
    assert evaluate.score("nyu_test_samples", metres, sample) == pytest.approx(expected)
    mask = np.ones((14, 14), bool)
    mask[7, 7] = False  # the 0.4 error is not scored: (0.01 + 0.04 + 0.09) / 3
    assert evaluate.score("nyu_test_samples", metres, sample, mask) == pytest.approx(
        2.0 * math.sqrt(0.14 / 3) * 100.0
    )


# --------------------------------------------------------------------------- baselines


def edge_case(scale: int = 8):
    rgb, depth = scene(64, 64, 7, 0.2, 0.9)
    depth = depth.astype(np.float32)
    lr = pil_bicubic(depth, (64 // scale, 64 // scale))
    return rgb, pil_bicubic(lr, (64, 64)), depth


EASY = {
    "gf": {"radius": 4, "eps": 1e-2},
    "jbf": {"d": 15, "sigma_color": 10.0, "sigma_space": 4.0},
    "fgs": {"lambda": 30.0, "sigma_color": 4.0},
}


@pytest.mark.parametrize("name", sorted(EASY))
def test_each_baseline_improves_on_bicubic_at_an_edge(name):
    rgb, up, depth = edge_case()
    bicubic = np.sqrt(np.mean((up - depth) ** 2))
    out = bl.BASELINES[name](rgb, up, EASY[name])
    assert out.shape == up.shape and out.dtype == np.float32
    assert np.sqrt(np.mean((out - depth) ** 2)) < 0.8 * bicubic
    np.testing.assert_array_equal(bl.bicubic(rgb, up), up)


@pytest.mark.parametrize("name", sorted(EASY))
def test_baselines_are_affine_equivariant_in_depth(name):
    """Why tuning on normalised depth carries over to any unit: f(a d + b) = a f(d) + b."""
    rgb, up, _ = edge_case()
    a, b = 2500.0, 700.0
    scaled = bl.BASELINES[name](rgb, (a * up + b).astype(np.float32), EASY[name])
    np.testing.assert_allclose(scaled, a * bl.BASELINES[name](rgb, up, EASY[name]) + b, rtol=1e-4)


def test_parse_params():
    assert bl.parse_params("jbf", "21,10,2") == {"d": 21, "sigma_color": 10, "sigma_space": 2}
    with pytest.raises(ValueError, match="expected 2 comma-separated values"):
        bl.parse_params("gf", "1,2,3")


def test_search_touches_rgbdd_training_images_only_and_is_cached(tmp_path, monkeypatch):
    root = make_data(tmp_path / "data", rgbdd=22, middlebury=0, nyu=())
    train, val = split_rgbdd(rgbdd_pairs(root))
    assert len(val) == 2 and len(train) == 20
    loaded: list[str] = []
    original = bl.load_rgbdd

    def recording(pair):
        loaded.append(pair.name)
        return original(pair)

    monkeypatch.setattr(bl, "load_rgbdd", recording)
    pairs = bl.tuning_pairs(root, 6)
    assert len(pairs) == 6 and {p.name for p in pairs} <= {p.name for p in train}
    cache = tmp_path / "cache.json"
    found = bl.tuned_params(["gf", "jbf", "fgs"], 4, pairs, cache)
    assert sorted(loaded) == sorted(p.name for p in pairs)  # each loaded once, nothing else
    assert not {p.name for p in val} & set(loaded)
    for name, result in found.items():
        assert result.params.keys() == bl.BASELINES[name].grid.keys()
        assert result.score_mm <= result.bicubic_mm and not result.cached
        assert len(result.images) == 6 and result.scale == 4
    loaded.clear()
    again = bl.tuned_params(["gf", "jbf", "fgs"], 4, pairs, cache)
    assert loaded == [] and all(r.cached for r in again.values())
    assert {n: r.params for n, r in again.items()} == {n: r.params for n, r in found.items()}
    bl.tuned_params(["gf"], 8, pairs, cache)  # another scale: searched again
    assert len(loaded) == 6


def test_the_search_is_the_best_point_of_its_grid():
    rgb, up, depth = edge_case(4)
    image = bl.SearchImage("x", rgb, depth, np.ones(depth.shape, bool), 0.0, 1000.0, up=up)
    grid = {"radius": (1, 4), "eps": (1e-4, 1e-1)}
    result = bl.search("gf", [image], 4, grid)
    scores = {
        (r, e): np.sqrt(np.mean((bl.guided_filter(rgb, up, {"radius": r, "eps": e}) - depth) ** 2))
        for r in grid["radius"]
        for e in grid["eps"]
    }
    best = min(scores, key=scores.get)
    assert (result.params["radius"], result.params["eps"]) == best
    assert result.score_mm == pytest.approx(scores[best] * 1000.0, rel=1e-9)


# --------------------------------------------------------------------------- end to end


def test_evaluate_end_to_end_on_a_fake_data_dir(tmp_path, monkeypatch):
    root = make_data(tmp_path / "data")
    w4 = tiny_weights(tmp_path / "tiny_x4.safetensors", 4)
    multi = tiny_weights(tmp_path / "tiny_multi.safetensors", 8, scales=[4, 8])
    searched: list[str] = []
    original = bl.load_rgbdd
    monkeypatch.setattr(bl, "load_rgbdd", lambda p: (searched.append(p.name), original(p))[1])
    out, md = tmp_path / "eval.json", tmp_path / "table.md"
    argv = ["--data-dir", str(root), "--model-weights", str(w4), str(multi),
            "--scales", "4", "8", "--engine", "torch", "--search-images", "3",
            "--baseline-cache", str(tmp_path / "cache.json"), "--no-protocol-check",
            "--json", str(out), "--markdown", str(md), "--update-card"]  # fmt: skip
    results = run(argv)

    # The search saw RGB-D-D training images only.
    train, _ = split_rgbdd(rgbdd_pairs(root))
    assert searched and set(searched) <= {p.name for p in train}

    # Bicubic per image, recomputed here with PIL: Middlebury, no crop, 0..255 scale.
    for s in (4, 8):
        expected = []
        for i in range(3):
            depth = np.asarray(
                Image.open(root / f"middlebury30/Depth/Middlebury_{i + 1:02d}_output_depth.png"),
                dtype=np.float32,
            )
            gt = depth[: 48 - 48 % s, : 64 - 64 % s]
            up = pil_bicubic(pil_bicubic(gt, (gt.shape[0] // s, gt.shape[1] // s)), gt.shape)
            expected.append(np.sqrt(np.mean((up.astype(np.float64) - gt) ** 2)))
        np.testing.assert_allclose(results["per_image"][f"x{s}"]["bicubic"], expected, atol=1e-4)
        base = results["baselines"][f"x{s}"]
        assert base["bicubic"]["rmse"] == pytest.approx(np.mean(expected), abs=1e-4)
        for name in ("gf", "jbf", "fgs"):
            assert np.isfinite(base[name]["rmse"]) and "RGB-D-D" in base[name]["chosen_by"]

    first, second = results["models"]
    assert first["trained_scales"] == [4] and second["trained_scales"] == [4, 8]
    assert first["results"]["x4"]["paper"] == 1.08  # FDKN, Table 3, Middlebury x4
    assert first["results"]["x8"]["paper"] is None  # trained x4, tested x8: not in the paper
    for entry in (first, second):
        for c in ("x4", "x8"):
            res = entry["results"][c]
            assert np.isfinite([res["rmse_paper_protocol"], res["rmse_node_protocol"]]).all()
            assert res["node_valid_fraction"] == 1.0

    table = md.read_text()
    assert table == results["table"]
    assert "| method | trained for | protocol | x4 | x8 |" in table
    assert "| `tiny_x4.safetensors` (FDKN) | x4 | paper (GT min/max) |" in table
    assert "| `tiny_multi.safetensors` (FDKN) | x4/8 | node (dkn_ros Enhancer) |" in table
    assert "| FDKN, paper | each test scale | DKN Table 3 (NYU v2-trained) | 1.08 | 2.17 |" in table
    assert json.loads(out.read_text())["per_image"] == results["per_image"]

    card = json.loads(w4.with_suffix(".json").read_text())
    assert set(card["evaluation"]) == {"middlebury30_x4", "middlebury30_x8"}
    entry = card["evaluation"]["middlebury30_x8"]
    assert entry["rmse_node_protocol"] == round(first["results"]["x8"]["rmse_node_protocol"], 4)
    assert entry["images"] == 3 and entry["command"].startswith("python -m training.evaluate")
    assert card["notes"] == "keep me"
    assert json.loads(multi.with_suffix(".json").read_text())["scales"] == [4, 8]  # kept


def test_evaluate_nyu_on_a_fake_data_dir(tmp_path):
    root = make_data(tmp_path / "data", rgbdd=0, middlebury=0)
    w = tiny_weights(tmp_path / "tiny_x8.safetensors", 8)
    argv = ["--data-dir", str(root), "--dataset", "nyu_test_samples", "--model-weights", str(w),
            "--scale", "8", "--baselines", "--engine", "torch", "--no-protocol-check"]  # fmt: skip
    results = run(argv)
    assert results["images"] == 2 and results["unit"] == "RMSE in cm"
    # Bicubic recomputed here: normalise, PIL down/up, crop 6 px, de-normalise, cm.
    expected = []
    for name in ("1000", "1001"):
        gt = np.load(root / f"nyu_test_samples/Depth/{name}.npy").astype(np.float64)
        lo, hi = gt.min(), gt.max()
        norm = ((gt - lo) / (hi - lo)).astype(np.float32)
        up = pil_bicubic(pil_bicubic(norm, (6, 8)), (48, 64)).astype(np.float64)
        error = (up - norm)[6:-6, 6:-6]
        expected.append(np.sqrt(np.mean(error**2)) * (hi - lo) * 100)
    np.testing.assert_allclose(results["per_image"]["x8"]["bicubic"], expected, rtol=1e-5)
    assert results["models"][0]["results"]["x8"]["paper"] == 3.58  # FDKN, Table 3, NYU x8
    assert "| DKN, paper | x8 | DKN Table 9 | 3.26 |" not in results["table"]  # single scale


def test_denoising_evaluation_adds_seeded_noise_and_shows_the_paper(tmp_path):
    root = make_data(tmp_path / "data", rgbdd=3, middlebury=0)
    w = tiny_weights(tmp_path / "tiny_denoise.safetensors", 1)
    argv = ["--data-dir", str(root), "--dataset", "nyu_test_samples", "--model-weights", str(w),
            "--scales", "1", "--noise-std", "0.0707", "--baselines", "gf", "--search-images",
            "3", "--baseline-cache", "none", "--engine", "torch"]  # fmt: skip
    results = run(argv)
    # The noisy input's error, recomputed: std 0.0707 of the normalised depth, 6 px crop.
    expected = []
    for index, name in enumerate(("1000", "1001")):
        gt = np.load(root / f"nyu_test_samples/Depth/{name}.npy").astype(np.float64)
        lo, hi = gt.min(), gt.max()
        noise = np.random.default_rng([evaluate.NOISE_SEED, index]).standard_normal(gt.shape)
        error = (noise * 0.0707)[6:-6, 6:-6]
        expected.append(np.sqrt(np.mean(error**2)) * (hi - lo) * 100)
    np.testing.assert_allclose(results["per_image"]["x1"]["bicubic"], expected, rtol=1e-4)
    assert results["baselines"]["x1"]["gf"]["rmse"] < np.mean(expected)  # it does denoise
    assert results["protocol_check"]["x1"].startswith("none (noisy input")
    assert "| DKN, paper | denoising | section 4.3 (NYU v2, variance 0.005) | 2.46 |" in (
        results["table"]
    )
    assert run(argv)["per_image"] == results["per_image"]  # the same noise every run
    with pytest.raises(SystemExit, match="needs --noise-std"):
        run(["--data-dir", str(root), "--dataset", "nyu_test_samples", "--scales", "1"])


def test_nyu_v2_test_split_gets_the_nyu_protocol(tmp_path, monkeypatch):
    """``nyu_v2`` (NYU converted by prepare_nyu.py) is read through the dataset interface's
    test split and scored exactly as ``nyu_test_samples``."""
    root = make_data(tmp_path / "data", rgbdd=0, middlebury=0)
    folder = root / "nyu_test_samples"
    frames = {
        n: (np.asarray(Image.open(folder / f"RGB/{n}.jpg")), np.load(folder / f"Depth/{n}.npy"))
        for n in ("1000", "1001")
    }

    class Split:  # what training.data.open_dataset("nyu_v2", "test") gives
        names = list(frames)

        def __getitem__(self, i):
            rgb, depth = frames[self.names[i]]
            return type("Sample", (), {"rgb": rgb, "depth": depth})

    opened = []
    real_open = evaluate.open_dataset

    def fake(name, split, root=None):  # nyu_v2 only; the shipped samples stay real
        if name != "nyu_v2":
            return real_open(name, split, root)
        opened.append((name, split))
        return Split()

    monkeypatch.setattr(evaluate, "open_dataset", fake)
    argv = ["--data-dir", str(root), "--baselines", "--scales", "4", "8", "--no-protocol-check"]
    v2 = run([*argv, "--dataset", "nyu_v2"])
    samples = run([*argv, "--dataset", "nyu_test_samples"])
    assert opened == [("nyu_v2", "test")]
    assert v2["per_image"] == samples["per_image"] and v2["unit"] == "RMSE in cm"
    assert "| DKN, paper | x8 | DKN Table 9 | 3.93 | 3.26 |" in v2["table"]


def test_protocol_checks_fail_on_data_that_is_not_the_benchmark(tmp_path):
    root = make_data(tmp_path / "data", rgbdd=0)
    base = ["--data-dir", str(root), "--baselines", "--scale", "8"]
    with pytest.raises(SystemExit, match="PROTOCOL CHECK FAILED: bicubic .* on 3 images at x8"):
        run(base)
    with pytest.raises(SystemExit, match="PROTOCOL CHECK FAILED: bicubic .* on frame 1000"):
        run([*base, "--dataset", "nyu_test_samples"])
    # With --limit the Middlebury check (all images) does not run; NYU's (one frame) does.
    assert "needs all images" in run([*base, "--limit", "2"])["protocol_check"]["x8"]
    with pytest.raises(SystemExit, match="whole dataset"):
        run([*base, "--limit", "2", "--update-card"])


# --------------------------------------------------------------------------- real data


def test_real_middlebury_bicubic_reproduces_the_data_readme():
    need("middlebury30")
    results = run(["--scales", "4", "8", "16", "--baselines"])
    assert results["images"] == 30
    for s, expected in {4: 2.28, 8: 3.98, 16: 6.37}.items():
        assert results["baselines"][f"x{s}"]["bicubic"]["rmse"] == pytest.approx(expected, abs=0.01)
        assert results["protocol_check"][f"x{s}"].startswith("passed")


def test_real_nyu_frame_1000_bicubic_is_about_4_3_cm():
    need("nyu_test_samples")
    results = run(["--dataset", "nyu_test_samples", "--limit", "1", "--baselines"])
    assert results["image_names"] == ["1000"]
    assert results["per_image"]["x8"]["bicubic"][0] == pytest.approx(4.3, abs=0.05)
    assert results["protocol_check"]["x8"].startswith("passed")


def test_real_two_middlebury_images_with_a_model(tmp_path):
    need("middlebury30")
    w = tiny_weights(tmp_path / "tiny.safetensors", 8)
    argv = ["--model-weights", str(w), "--limit", "2", "--jbf-params", "9,20,8",
            "--baselines", "jbf", "--engine", "torch"]  # fmt: skip
    results = run(argv)
    assert results["images"] == 2 and results["scales"] == [8]
    assert results["per_image"]["x8"]["bicubic"][0] == pytest.approx(6.005, abs=1e-3)
    jbf = results["baselines"]["x8"]["jbf"]
    assert jbf["params"] == {"d": 9, "sigma_color": 20, "sigma_space": 8}
    assert jbf["chosen_by"] == "given with --baseline-params"
    (entry,) = results["models"]
    assert entry["results"]["x8"]["paper"] == 2.17
