"""Hostile weights files and cards: every one is refused with one line naming the file
and the field (or tensor), by ``ModelCard.read`` / ``load_model`` and by ``dkn-ros
enhance --weights`` (exit 2, no traceback). Real files, the real CLI and a real model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from dkn_ros import cli
from dkn_ros.models import ModelCard, build_model, load_model, save_model
from dkn_ros.models.registry import DEFAULT_WEIGHTS_DIR
from dkn_ros.synthetic import KinectDegradation, degrade_depth, render_frame

REPO = Path(__file__).resolve().parents[1]
BASE_CARD = {"model": "fdkn", "config": {"n1": 8, "n2": 8}, "task": "upsampling", "scale": 4}

#: case: (the change to the base card, the field the error must name)
HOSTILE_CARDS = {
    "model {}": ({"model": {}}, "'model'"),
    "model unet": ({"model": "unet"}, "'model'"),
    "config a list": ({"config": [8, 8]}, "'config'"),
    "scale '8'": ({"scale": "8"}, "'scale'"),
    "scale 100000": ({"scale": 100000}, "'scale'"),
    "scale true": ({"scale": True}, "'scale'"),
    "scale 0": ({"scale": 0}, "'scale'"),
    "scales with a string": ({"scales": [4, "8"]}, "'scales'"),
    "scales 64": ({"scales": [64]}, "'scales'"),
    "task superres": ({"task": "superres"}, "'task'"),
    "input_upsampling area": ({"input_upsampling": "area"}, "'input_upsampling'"),
    "iterations -1": ({"iterations": -1}, "'iterations'"),
    "n1 '128'": ({"config": {"n1": "128", "n2": 8}}, "'config.n1'"),
    "n1 100000": ({"config": {"n1": 100000, "n2": 8}}, "'config.n1'"),
    "kernel_size 4": ({"config": {"kernel_size": 4}}, "'config.kernel_size'"),
    "residual 'yes'": ({"config": {"residual": "yes"}}, "'config.residual'"),
    "window 1000": ({"config": {"window": 1000}}, "'config.window'"),
    "unknown config key": ({"config": {"layers": 3}}, "'config.layers'"),
    "inference on fdkn": ({"config": {"inference": "single_pass"}}, "'config.inference'"),
    "dkn inference bad": ({"model": "dkn", "config": {"inference": "fast"}},
                          "'config.inference'"),
}  # fmt: skip


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "fdkn_small_x4.safetensors"
    save_model(build_model("fdkn", n1=8, n2=8), ModelCard(**BASE_CARD), path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("images")
    frame = render_frame(0.0, width=64, height=48)
    Image.fromarray(frame.color).save(folder / "color.png")
    Image.fromarray(degrade_depth(frame.depth, KinectDegradation(scale=4))).save(
        folder / "depth.png"
    )
    return folder / "color.png", folder / "depth.png"


def hostile(weights: Path, tmp_path: Path, change: dict) -> Path:
    """A copy of the good weights with the card changed."""
    path = tmp_path / weights.name
    path.write_bytes(weights.read_bytes())
    path.with_suffix(".json").write_text(json.dumps({**BASE_CARD, **change}))
    return path


def test_shipped_cards_are_valid():
    cards = sorted(DEFAULT_WEIGHTS_DIR.glob("*.json"))
    assert len(cards) >= 10
    for path in cards:
        ModelCard.read(path)


@pytest.mark.parametrize("case", list(HOSTILE_CARDS))
def test_hostile_card_is_one_error_naming_file_and_field(tmp_path, weights, images, capsys, case):
    change, field = HOSTILE_CARDS[case]
    path = hostile(weights, tmp_path, change)
    with pytest.raises(ValueError) as caught:
        ModelCard.read(path.with_suffix(".json"))
    message = str(caught.value)
    assert str(path.with_suffix(".json")) in message and field in message, message
    assert "\n" not in message

    color, depth = images
    argv = ["enhance", "--color", str(color), "--depth", str(depth),
            "--out", str(tmp_path / "out.png"), "--weights", str(path)]  # fmt: skip
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dkn-ros: error: "), err
    assert field in err[0] and path.with_suffix(".json").name in err[0], err[0]
    assert not (tmp_path / "out.png").exists()


def nan_weights(weights: Path, tmp_path: Path) -> Path:
    """The good weights with one NaN in one tensor, the card unchanged."""
    model, card = load_model(weights)
    with torch.no_grad():
        model.target_stream.weight_head.bias[3] = float("nan")
    path = tmp_path / "fdkn_nan_x4.safetensors"
    save_model(model, card, path)
    return path


def test_nan_weights_are_refused_at_load(tmp_path, weights):
    path = nan_weights(weights, tmp_path)
    with pytest.raises(ValueError) as caught:
        load_model(path)
    message = str(caught.value)
    assert str(path) in message and "target_stream.weight_head.bias" in message, message
    assert "1 non-finite values (NaN or Inf)" in message


@pytest.mark.parametrize("kind", ["nan weights", "scale 100000"])
def test_cli_refuses_broken_weights_with_one_line(tmp_path, weights, images, kind):
    """As a user runs it: a subprocess, exit 2, one line, no traceback (the scale 100000
    card used to reach a 7 TiB allocation or a traceback)."""
    if kind == "nan weights":
        path, fragment = nan_weights(weights, tmp_path), "non-finite"
    else:
        path, fragment = hostile(weights, tmp_path, {"scale": 100000}), "'scale'"
    color, depth = images
    result = subprocess.run(
        [sys.executable, "-m", "dkn_ros.cli", "enhance", "--color", str(color),
         "--depth", str(depth), "--out", str(tmp_path / "out.png"), "--weights", str(path)],
        cwd=REPO, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("dkn-ros: error: ") and path.stem in lines[0], lines[0]
    assert fragment in lines[0], lines[0]
