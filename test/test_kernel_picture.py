"""The kernel of one pixel (dkn_ros.kernel_picture) and ``dkn-ros kernel-picture``.

The numbers are checked against things computed here independently: the positions
against p + clamp(q + dq) from the raw offsets, the output against a hand-written
bilinear weighted average and against the model's (and the Enhancer's) own output.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from dkn_ros import cli
from dkn_ros.enhancer import Enhancer
from dkn_ros.kernel_picture import _weight_colour, pixel_kernel, render
from dkn_ros.models import ModelCard, build_model, save_model


def bilinear(image: np.ndarray, x: float, y: float) -> float:
    """Bilinear interpolation with pixel centres at integer coordinates; outside the
    image the border pixel repeats."""
    h, w = image.shape
    x, y = min(max(x, 0.0), w - 1.0), min(max(y, 0.0), h - 1.0)
    x0, y0 = int(math.floor(x)), int(math.floor(y))
    x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
    ax, ay = x - x0, y - y0
    top = (1 - ax) * image[y0, x0] + ax * image[y0, x1]
    bottom = (1 - ax) * image[y1, x0] + ax * image[y1, x1]
    return float((1 - ay) * top + ay * bottom)


def inputs(height: int = 40, width: int = 44, seed: int = 0):
    rng = np.random.default_rng(seed)
    guidance = rng.random((1, 3, height, width), dtype=np.float32)
    yy, xx = np.mgrid[0:height, 0:width]
    target = (0.3 + 0.4 * (xx > width // 2) + 0.05 * np.sin(yy / 3.0)).astype(np.float32)
    return guidance, target[None, None]


def tiny(name: str, **config) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(name, n1=8, n2=8, **config).eval()
    with torch.no_grad():  # offsets of several pixels, so the window clamp matters
        model.guidance_stream.offset_head.bias.fill_(2.5)
        model.target_stream.offset_head.bias.fill_(2.0)
    return model


@pytest.mark.parametrize(
    "name, config, pixel",
    [
        ("fdkn", {"window": 7}, (21, 17)),
        ("fdkn", {"window": 7}, (0, 39)),  # a corner: positions clamped to the image
        ("fdkn", {"residual": False, "kernel_size": 5}, (30, 5)),
        ("dkn", {"window": 7}, (13, 22)),
        ("dkn", {"residual": False}, (43, 0)),
    ],
)
def test_pixel_kernel_matches_the_model(name, config, pixel):
    model = tiny(name, **config)
    guidance, target = inputs()
    x, y = pixel
    kernel = pixel_kernel(model, guidance, target, x, y)
    k2 = model.kernel_size**2
    r = model.window // 2
    assert len(kernel.positions) == len(kernel.weights) == k2

    # The normalisation rule: residual weights add up to 0, eq. 7 weights to 1.
    assert kernel.weight_sum == pytest.approx(0.0 if model.residual else 1.0, abs=1e-6)
    raw = np.array(kernel.raw_weights)
    expected = raw - raw.mean() if model.residual else raw / np.abs(raw).sum()
    np.testing.assert_allclose(kernel.weights, expected, atol=1e-7)

    # Positions: p + clamp(q + dq, -r, r), then clamped to the image (the border repeats).
    h, w = target.shape[-2:]
    some_clamped = False
    for (qx, qy), (dx, dy), (px, py) in zip(
        kernel.grid, kernel.offsets, kernel.positions, strict=True
    ):
        rx, ry = min(max(qx + dx, -r), r), min(max(qy + dy, -r), r)
        some_clamped |= abs(qx + dx) > r or abs(qy + dy) > r
        assert px == pytest.approx(min(max(x + rx, 0), w - 1), abs=1e-6)
        assert py == pytest.approx(min(max(y + ry, 0), h - 1), abs=1e-6)
        assert abs(px - x) <= r + 1e-9 and abs(py - y) <= r + 1e-9
    if config.get("window") == 7:
        assert some_clamped, "the test should exercise the window clamp"

    # The output by hand from positions and weights equals the model's own at p.
    samples = [bilinear(target[0, 0], px, py) for px, py in kernel.positions]
    np.testing.assert_allclose(kernel.samples, samples, atol=1e-6)
    by_hand = (target[0, 0, y, x] if model.residual else 0.0) + float(
        np.dot(kernel.weights, samples)
    )
    with torch.no_grad():
        full = model(torch.from_numpy(guidance), torch.from_numpy(target))[0, 0, y, x].item()
    assert kernel.output == pytest.approx(by_hand, abs=1e-6)
    assert kernel.output == pytest.approx(full, abs=1e-5)


def test_render_draws_both_snippets_and_a_caption():
    model = tiny("fdkn")
    guidance, target = inputs()
    kernel = pixel_kernel(model, guidance, target, 20, 20)
    color = (guidance[0].transpose(1, 2, 0) * 255).astype(np.uint8)
    picture = render(color, target[0, 0], kernel, window_size=21, title="test")
    zoom = 440 // 21
    assert picture.dtype == np.uint8 and picture.ndim == 3
    assert picture.shape[1] >= 2 * 21 * zoom and picture.shape[0] > 21 * zoom + 60
    # The strongest positive (red) and negative (blue) weights are drawn as dots of
    # their colour (a residual kernel has both signs).
    weights = np.array(kernel.weights)
    peak = np.abs(weights).max()
    for w in (weights.max(), weights.min()):
        colour = _weight_colour(w / peak)
        assert (picture == colour).all(axis=2).sum() > 20, (w, colour)


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def files(tmp_path):
    """A 64 x 48 colour image, its 16 x 12 depth (16-bit mm, x4) and tiny x4 weights."""
    rng = np.random.default_rng(1)
    color = np.zeros((48, 64, 3), dtype=np.uint8)
    color[:, 30:] = (200, 80, 40)
    color += rng.integers(0, 20, color.shape, dtype=np.uint8)
    depth = np.full((12, 16), 1500, dtype=np.uint16)
    depth[:, 8:] = 900
    depth[2, 3] = 0  # a hole, handled as the node does
    Image.fromarray(color).save(tmp_path / "rgb.png")
    Image.fromarray(depth).save(tmp_path / "depth.png")
    torch.manual_seed(0)
    weights = tmp_path / "tiny_x4.safetensors"
    save_model(
        build_model("fdkn", n1=8, n2=8),
        ModelCard(model="fdkn", config={"n1": 8, "n2": 8}, scale=4),
        weights,
    )
    return tmp_path, color, depth, weights


def test_cli_writes_png_and_json_of_the_node_kernel(files, capsys):
    folder, color, depth, weights = files
    out, js = folder / "kernel.png", folder / "kernel.json"
    argv = ["kernel-picture", "--color", str(folder / "rgb.png"), "--depth",
            str(folder / "depth.png"), "--pixel", "31,20", "--weights", str(weights),
            "--output", str(out), "--json", str(js)]  # fmt: skip
    assert cli.main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    with Image.open(out) as picture:
        assert picture.mode == "RGB" and picture.width > 400
    data = json.loads(js.read_text())
    assert data["pixel"] == [31, 20] and data["scale"] == 4 and data["model"] == "fdkn"
    assert len(data["positions"]) == len(data["weights"]) == 9
    assert data["weight_sum"] == pytest.approx(0.0, abs=1e-6)
    assert data["depth_unit"] == "mm"
    # The kernel's output is the node's value at that pixel (uint16 mm, rounded).
    node = Enhancer(weights=weights, engine="torch").enhance(color, depth)
    assert data["output_depth"] == pytest.approx(float(node[20, 31]), abs=0.51)


@pytest.mark.parametrize(
    "pixel, needle",
    [("64,10", "outside the 64x48 colour image"), ("3;4", "expected X,Y")],
)
def test_cli_errors_are_one_line_with_exit_code_2(files, capsys, pixel, needle):
    folder, _, _, weights = files
    argv = ["kernel-picture", "--color", str(folder / "rgb.png"), "--depth",
            str(folder / "depth.png"), "--pixel", pixel, "--weights", str(weights),
            "--output", str(folder / "k.png")]  # fmt: skip
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dkn-ros: error: ") and needle in err
    assert not (folder / "k.png").exists()


def test_cli_names_a_missing_depth_file(files, capsys):
    folder, _, _, weights = files
    missing = folder / "nope.png"
    argv = ["kernel-picture", "--color", str(folder / "rgb.png"), "--depth", str(missing),
            "--pixel", "1,1", "--weights", str(weights),
            "--output", str(folder / "k.png")]  # fmt: skip
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{missing}: file not found" in err
