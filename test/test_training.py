"""Tests of training/ (data, train) on real data; fast (tiny models and crops).

Tests that need the shared data skip with the reason from ``training.data.missing_reason``
(set ``DKN_DATA_DIR`` to the folder holding ``rgbdd/`` and ``middlebury30/``).
"""

from __future__ import annotations

import csv
import math
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from dkn_ros.models import load_model
from training import train
from training.data import (
    REPO_ROOT,
    TEST_ONLY_SCENES,
    RGBDImage,
    TrainSet,
    crop_to_multiple,
    data_dir,
    load_middlebury,
    middlebury_pairs,
    missing_reason,
    open_dataset,
    prepare_training_image,
    rgbdd_pairs,
    rmse,
    split_rgbdd,
    synthesize_lr,
)
from training.degrade import Degradation


def need(dataset: str) -> None:
    reason = missing_reason(dataset)
    if reason:
        pytest.skip(reason)


TINY = ["--n1", "8", "--n2", "8", "--crop", "32", "--train-images", "3", "--val-images", "1"]


# --------------------------------------------------------------------------- no data needed


def test_rmse_against_hand_computed_value():
    prediction = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    truth = np.ones((2, 2), dtype=np.float32)
    # errors 0, 1, 2, 3: mean square (0 + 1 + 4 + 9) / 4 = 3.5
    assert rmse(prediction, truth) == pytest.approx(math.sqrt(3.5), abs=1e-12)
    mask = np.array([[True, False], [False, True]])
    # errors 0 and 3: mean square 4.5
    assert rmse(prediction, truth, mask) == pytest.approx(math.sqrt(4.5), abs=1e-12)


def test_masked_l1_ignores_invalid_pixels():
    out = torch.tensor([[[[0.0, 1.0], [0.5, 100.0]]]])
    truth = torch.zeros_like(out)
    mask = torch.tensor([[[[True, True], [True, False]]]])
    assert float(train.masked_l1(out, truth, mask)) == pytest.approx(0.5)


def test_data_dir_setting(monkeypatch, tmp_path):
    monkeypatch.delenv("DKN_DATA_DIR", raising=False)
    assert data_dir() == (REPO_ROOT / ".." / "shared" / "data").resolve()
    monkeypatch.setenv("DKN_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path.resolve()
    reason = missing_reason("rgbdd")
    assert reason is not None and "DKN_DATA_DIR" in reason and str(tmp_path) in reason


def test_lr_schedule_is_scaled_with_iterations():
    args = train.get_args_parser().parse_args([])
    assert (args.iterations, args.lr, args.lr_gamma, args.batch_size) == (40000, 1e-3, 0.2, 1)
    assert "default: 40000" in train.get_args_parser().format_help()


# --------------------------------------------------------------------------- data


def test_lr_synthesis_and_bicubic_protocol_on_a_middlebury_image():
    need("middlebury30")
    pair = middlebury_pairs()[0]
    rgb, depth = load_middlebury(pair)
    assert depth.dtype == np.uint8 and rgb.shape == (*depth.shape, 3)
    gt = crop_to_multiple(depth, 8).astype(np.float32)
    assert gt.shape == (368, 424)  # 370 x 427 cropped to multiples of 8
    lr, up = synthesize_lr(gt, 8)
    assert lr.shape == (46, 53) and up.shape == gt.shape
    assert lr.dtype == np.float32 and up.dtype == np.float32
    # Bicubic x8 on Middlebury_01 with the README protocol (the 30-image mean is 3.98).
    assert rmse(up, gt) == pytest.approx(6.00498, abs=1e-3)
    with pytest.raises(ValueError, match="multiple"):
        synthesize_lr(depth.astype(np.float32), 8)


def test_rgbdd_split_is_deterministic_and_disjoint():
    need("rgbdd")
    train_pairs, val_pairs = split_rgbdd(rgbdd_pairs())
    assert len(train_pairs) + len(val_pairs) == 405 - 3  # the test-only scenes are out
    assert len(val_pairs) == 21
    assert not {p.name for p in train_pairs} & {p.name for p in val_pairs}
    kept = sorted(p.name for p in rgbdd_pairs() if p.name not in TEST_ONLY_SCENES)
    assert val_pairs[0].name == kept[0]


def test_rgbdd_real_lr_scenes_are_in_no_training_or_validation_split():
    need("rgbdd")
    assert len(TEST_ONLY_SCENES) == 3
    for split in ("train", "val", "all"):
        names = open_dataset("rgbdd", split).names
        assert not [n for n in names if n in TEST_ONLY_SCENES], split
    assert any(p.name in TEST_ONLY_SCENES for p in rgbdd_pairs())  # they exist


def test_training_crops(tmp_path):
    need("rgbdd")
    samples = [open_dataset("rgbdd", "train")[i] for i in range(2)]
    dataset = TrainSet(samples, Degradation(scales=(8,)), crop=64)
    guidance, target, truth, mask = dataset.sample(np.random.default_rng(1), 3)
    assert guidance.shape == (3, 3, 64, 64) and guidance.dtype == torch.float32
    assert target.shape == truth.shape == mask.shape == (3, 1, 64, 64)
    assert mask.dtype == torch.bool
    assert 0.0 <= float(guidance.min()) and float(guidance.max()) <= 1.0
    assert 0.0 <= float(truth.min()) and float(truth.max()) <= 1.0
    # The same seed gives the same batch.
    again = dataset.sample(np.random.default_rng(1), 3)
    first = (guidance, target, truth, mask)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    with pytest.raises(ValueError, match="multiple"):
        TrainSet(samples, Degradation(scales=(8,)), crop=60)


def test_holes_are_masked_filled_and_excluded_from_normalisation(tmp_path, monkeypatch):
    need("rgbdd")
    source = rgbdd_pairs()[5]  # not a test-only scene
    root = tmp_path / "data" / "rgbdd"
    (root / "Depth").mkdir(parents=True)
    (root / "RGB").mkdir()
    depth = np.array(Image.open(source.depth), dtype=np.uint16)
    depth[100:140, 200:260] = 0  # a real-looking hole
    Image.fromarray(depth).save(root / "Depth" / source.depth.name)
    shutil.copy(source.rgb, root / "RGB" / source.rgb.name)
    monkeypatch.setenv("DKN_DATA_DIR", str(tmp_path / "data"))
    (sample,) = open_dataset("rgbdd", "all")
    assert isinstance(sample, RGBDImage) and sample.depth.dtype == np.float32
    prepared = prepare_training_image(sample, 8)
    hole = np.zeros(depth.shape, bool)
    hole[100:140, 200:260] = True
    np.testing.assert_array_equal(prepared.mask, depth > 0)
    assert not prepared.mask[hole].any()
    valid = depth[depth > 0].astype(np.float64)
    assert (prepared.dmin, prepared.dmax) == (valid.min(), valid.max())
    # Valid pixels span exactly [0, 1]; filled pixels are copies of valid values.
    assert prepared.depth[prepared.mask].min() == 0.0
    assert prepared.depth[prepared.mask].max() == 1.0
    assert np.isin(prepared.depth[hole], prepared.depth[prepared.mask]).all()
    assert np.isfinite(Degradation(scales=(8,)).apply(prepared.depth, None)).all()


# --------------------------------------------------------------------------- train.py


def run_train(argv):
    return train.main(train.get_args_parser().parse_args(argv))


def test_train_stop_resume_is_exact_and_card_has_command(tmp_path):
    need("rgbdd")
    common = [*TINY, "--iterations", "6", "--threads", "1", "--seed", "3", "--val-every", "0"]
    a, b = tmp_path / "a", tmp_path / "b"
    first = run_train([*common, "--out-dir", str(a), "--stop-at", "3", "--save-every", "2"])
    assert first["stopped"] and first["iteration"] == 3
    resumed = run_train(
        [*common, "--out-dir", str(a), "--resume", "auto", "--export", str(a / "m.safetensors")]
    )
    assert not resumed["stopped"] and resumed["iteration"] == 6
    straight = run_train([*common, "--out-dir", str(b)])
    assert straight["iteration"] == 6

    state_a = torch.load(a / "checkpoint.pt", weights_only=True)
    state_b = torch.load(b / "checkpoint.pt", weights_only=True)
    assert state_a["model"].keys() == state_b["model"].keys()
    for key in state_a["model"]:
        assert torch.equal(state_a["model"][key], state_b["model"][key]), key
    assert state_a["scheduler"] == state_b["scheduler"]

    rows_a = list(csv.DictReader(open(a / "log.csv")))
    rows_b = list(csv.DictReader(open(b / "log.csv")))
    assert [r["iteration"] for r in rows_a] == [str(i) for i in range(1, 7)]
    assert [r["loss"] for r in rows_a] == [r["loss"] for r in rows_b]
    # lr 1e-3 divided by 5 every iterations / 4 (= 1 here)
    assert [float(r["lr"]) for r in rows_a[:3]] == pytest.approx([1e-3, 2e-4, 4e-5])

    model, card = load_model(a / "m.safetensors")
    assert card.model == "fdkn" and card.task == "upsampling" and card.scale == 8
    assert card.iterations == 6
    assert card.config == {  # every setting, so the card alone rebuilds the network
        "kernel_size": 3, "window": 15, "residual": True, "n1": 8, "n2": 8,
        "guidance_channels": 3, "c1": 32, "c2": 64,
    }  # fmt: skip
    assert card.command.startswith("python -m training.train")
    assert "--iterations 6" in card.command and "--stop-at 3" in card.command
    assert "NYU" in card.notes and "RGB-D-D" in card.training_data
    assert "rgbdd_val" in card.evaluation
    for key, value in model.state_dict().items():
        assert torch.equal(value, state_b["model"][key]), key


def test_sigterm_saves_a_checkpoint_and_resume_is_exact(tmp_path):
    """The real stop path: SIGTERM to a running ``python -m training.train``."""
    need("rgbdd")
    common = [*TINY, "--threads", "1", "--seed", "5", "--val-every", "0", "--lr-step", "4"]
    run_dir = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "training.train", *common, "--iterations", "100000",
         "--save-every", "100000", "--out-dir", str(run_dir)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    log = run_dir / "log.csv"
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and process.poll() is None:
        if log.is_file() and len(log.read_text().splitlines()) > 3:  # header + 3 rows
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "stopped at iteration" in output
    stopped_at = torch.load(run_dir / "checkpoint.pt", weights_only=True)["iteration"]
    assert stopped_at >= 3
    rows = list(csv.DictReader(open(log)))
    assert [int(r["iteration"]) for r in rows] == list(range(1, stopped_at + 1))

    total = stopped_at + 2
    run_train([*common, "--iterations", str(total), "--out-dir", str(run_dir), "--resume", "auto"])
    straight = tmp_path / "straight"
    run_train([*common, "--iterations", str(total), "--out-dir", str(straight)])
    state_a = torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"]
    state_b = torch.load(straight / "checkpoint.pt", weights_only=True)["model"]
    for key in state_b:
        assert torch.equal(state_a[key], state_b[key]), key
