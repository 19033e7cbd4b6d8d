"""The dkn-ros command line, run as users run it: a subprocess, real files, real model."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dkn_ros.models import ModelCard, build_model, save_model
from dkn_ros.models.registry import DEFAULT_WEIGHTS_DIR
from dkn_ros.synthetic import KinectDegradation, degrade_depth, render_frame


def dkn_ros(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dkn_ros.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


def assert_user_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit code 2, one line on stderr naming the problem, no traceback (a folder's
    progress bar may stand before it)."""
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if "image/s]" not in line]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("dkn-ros: error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A small FDKN x4 model (untrained: the CLI's plumbing does not depend on training)."""
    path = tmp_path_factory.mktemp("weights") / "fdkn_x4.safetensors"
    card = ModelCard(model="fdkn", config={"n1": 32, "n2": 32}, task="upsampling", scale=4)
    save_model(build_model("fdkn", n1=32, n2=32), card, path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("images")
    frame = render_frame(0.0, width=64, height=48)
    depth_lr = degrade_depth(frame.depth, KinectDegradation(scale=4))
    paths = {
        "color": folder / "color.png",
        "depth": folder / "depth.png",
        "depth_npy": folder / "depth.npy",
        "odd": folder / "odd.png",
        "wide": folder / "wide.png",
        "text": folder / "notes.png",
    }
    Image.fromarray(frame.color).save(paths["color"])
    Image.fromarray(depth_lr).save(paths["depth"])
    np.save(paths["depth_npy"], depth_lr.astype(np.float32) / 1000.0)
    Image.fromarray(np.full((15, 20), 1000, dtype=np.uint16)).save(paths["odd"])  # x3.2
    Image.fromarray(np.full((12, 24), 1000, dtype=np.uint16)).save(paths["wide"])  # 1:2
    paths["text"].write_text("not an image")
    return paths


def test_enhance_png_and_npy(tmp_path, weights, images):
    out = tmp_path / "out.png"
    result = dkn_ros(
        "enhance", "--color", str(images["color"]), "--depth", str(images["depth"]),
        "--out", str(out), "--weights", str(weights), "--preview", str(tmp_path / "p.png"),
    )
    assert result.returncode == 0, result.stderr
    enhanced = np.asarray(Image.open(out))
    assert enhanced.shape == (48, 64) and enhanced.dtype == np.uint16
    assert (tmp_path / "p.png").is_file()

    out_npy = tmp_path / "out.npy"
    result = dkn_ros(
        "enhance", "--color", str(images["color"]), "--depth", str(images["depth_npy"]),
        "--out", str(out_npy), "--weights", str(weights), "--engine", "torch",
    )
    assert result.returncode == 0, result.stderr
    metres = np.load(out_npy)
    assert metres.shape == (48, 64) and metres.dtype == np.float32
    # The same depth in metres or millimetres gives the same result (to the millimetre).
    valid = enhanced > 0
    assert np.abs(metres[valid] * 1000.0 - enhanced[valid]).max() <= 1.0


def test_enhance_folders(tmp_path, weights, images):
    colors, depths = tmp_path / "c", tmp_path / "d"
    colors.mkdir()
    depths.mkdir()
    for n in range(2):
        (colors / f"{n}.png").write_bytes(images["color"].read_bytes())
        (depths / f"{n}.png").write_bytes(images["depth"].read_bytes())
    result = dkn_ros(
        "enhance", "--color", str(colors), "--depth", str(depths),
        "--out", str(tmp_path / "o"), "--weights", str(weights),
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["0.png", "1.png"]


def test_enhance_bad_inputs(tmp_path, weights, images):
    common = ["--out", str(tmp_path / "o.png"), "--weights", str(weights)]
    color, depth = str(images["color"]), str(images["depth"])
    assert_user_error(
        dkn_ros("enhance", "--color", str(tmp_path / "nope.png"), "--depth", depth, *common),
        "nope.png", "not found",
    )
    assert_user_error(
        dkn_ros("enhance", "--color", str(images["text"]), "--depth", depth, *common),
        "notes.png", "not a readable image",
    )
    assert_user_error(
        dkn_ros("enhance", "--color", color, "--depth", str(images["wide"]), *common),
        "wide.png", "aspect ratios differ",
    )
    assert_user_error(
        dkn_ros(
            "enhance", "--color", color, "--depth", depth, "--out", str(tmp_path / "o.png"),
            "--weights", str(tmp_path / "missing.safetensors"),
        ),
        "missing.safetensors", "not found",
    )
    assert_user_error(
        dkn_ros("enhance", "--color", color, "--depth", depth, "--out", str(tmp_path / "o.jpg"),
                "--weights", str(weights)),
        "o.jpg", ".png",
    )


def test_enhance_accepts_any_ratio(tmp_path, weights, images):
    result = dkn_ros(
        "enhance", "--color", str(images["color"]), "--depth", str(images["odd"]),
        "--out", str(tmp_path / "o.png"), "--weights", str(weights),
    )
    assert result.returncode == 0, result.stderr


def test_a_scale_without_weights_is_one_error_not_a_warning_and_an_error(tmp_path, images):
    """``--scale 3`` used to warn that the x4 weights would be used and then fail."""
    result = dkn_ros(
        "enhance", "--color", str(images["color"]), "--depth", str(images["depth"]),
        "--out", str(tmp_path / "o.png"), "--scale", "3",
    )  # fmt: skip
    assert_user_error(result, "no fdkn weights trained for scale 3", "shipped: denoise, x2")
    assert not (tmp_path / "o.png").exists()


def test_export_onnx(tmp_path, weights):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "m.onnx"
    result = dkn_ros("export-onnx", "--weights", str(weights), "--out", str(out), "--size", "64x48")
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 100_000


def test_bad_size_argument():
    assert_user_error(dkn_ros("demo", "--size", "640by480"), "640by480", "WIDTHxHEIGHT")


@pytest.mark.skipif(
    not (DEFAULT_WEIGHTS_DIR / "fdkn_x8.safetensors").is_file(),
    reason="no shipped FDKN x8 weights in dkn_ros/weights",
)
@pytest.mark.parametrize("source", ["sequence", "synthetic"])
def test_demo_runs_and_reports_rmse(tmp_path, source):
    # Whether the shipped weights beat bicubic upsampling here is the weights' business
    # (training/RESULTS.md); the demo must show both numbers, whichever way they fall.
    result = dkn_ros(
        "demo", "--source", source, "--frames", "1", "--size", "320x240", "--out", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "frame_000.png").is_file()
    mean = next(line for line in result.stdout.splitlines() if line.strip().startswith("mean"))
    bicubic, ours = (float(v) for v in mean.split()[1:5:2])
    assert 0 < bicubic < 1000 and 0 < ours < 1000, result.stdout


# --- rough edges a new user hit (issue 11) -----------------------------------------------


def enhance_args(color, depth, out, weights, *extra) -> list[str]:
    return [
        "enhance", "--color", str(color), "--depth", str(depth), "--out", str(out),
        "--weights", str(weights), *extra,
    ]  # fmt: skip


def test_enhance_refuses_8_bit_depth(tmp_path, weights, images):
    # 8-bit values were taken for metres: a 16-bit PNG of 65535s came out.
    depth8 = tmp_path / "depth8.png"
    Image.fromarray(np.full((12, 16), 120, dtype=np.uint8)).save(depth8)
    result = dkn_ros(*enhance_args(images["color"], depth8, tmp_path / "o.png", weights))
    assert_user_error(result, "depth8.png", "8-bit", "16-bit PNG", "millimetres", "metres")
    assert not (tmp_path / "o.png").exists()


def test_enhance_refuses_lossy_depth(tmp_path, weights, images):
    depth_jpg = tmp_path / "depth.jpg"
    Image.fromarray(np.full((12, 16), 120, dtype=np.uint8)).save(depth_jpg)
    result = dkn_ros(*enhance_args(images["color"], depth_jpg, tmp_path / "o.png", weights))
    assert_user_error(result, "depth.jpg", "JPEG", "lossy")


def test_enhance_huge_image_is_one_line(tmp_path, weights, images):
    """A 15000 x 15000 PNG (a valid file, zlib-streamed row by row) trips PIL's
    decompression-bomb guard; that is a user error, not a traceback."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    side = 15000
    compressor = zlib.compressobj(9)
    row = b"\x00" * (side + 1)  # filter byte + one grey byte per pixel
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    huge = tmp_path / "huge.png"
    huge.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", data)
        + chunk(b"IEND", b"")
    )
    result = dkn_ros(*enhance_args(huge, images["depth"], tmp_path / "o.png", weights))
    assert_user_error(result, "huge.png", "too large")


def test_enhance_three_channel_npy_is_one_line(tmp_path, weights, images):
    depth3 = tmp_path / "depth3.npy"
    np.save(depth3, np.ones((12, 16, 3), dtype=np.float32))
    result = dkn_ros(*enhance_args(images["color"], depth3, tmp_path / "o.npy", weights))
    assert_user_error(result, "depth3.npy", "2-D", "(12, 16, 3)")


def test_enhance_checks_the_output_before_enhancing(tmp_path, images):
    # The weights do not exist either: the output's error comes first, so it was checked
    # before any model was loaded or image enhanced.
    missing = tmp_path / "missing.safetensors"
    color, depth = images["color"], images["depth"]
    assert_user_error(dkn_ros(*enhance_args(color, depth, tmp_path / "o.jpg", missing)),
                      "o.jpg", ".png or .npy")  # fmt: skip
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert_user_error(
        dkn_ros(*enhance_args(color, depth, blocker / "sub" / "o.png", missing)),
        "a_file", "not a folder",
    )
    assert_user_error(
        dkn_ros(*enhance_args(color, depth, tmp_path / "o.png", missing,
                              "--preview", str(tmp_path / "p.tiff"))),
        "p.tiff", "--preview",
    )  # fmt: skip
    assert_user_error(dkn_ros(*enhance_args(color, depth, tmp_path, missing)),
                      str(tmp_path), "folder")  # fmt: skip


def folders_of_pairs(tmp_path: Path, images, bad: int | None = None, count: int = 3):
    """Colour and depth folders of ``count`` pairs; pair ``bad``'s depth is not an image."""
    colors, depths = tmp_path / "c", tmp_path / "d"
    colors.mkdir()
    depths.mkdir()
    for n in range(count):
        (colors / f"{n}.png").write_bytes(images["color"].read_bytes())
        if n == bad:
            (depths / f"{n}.png").write_text("not an image")
        else:
            (depths / f"{n}.png").write_bytes(images["depth"].read_bytes())
    return colors, depths


def test_enhance_folders_write_one_preview_per_output(tmp_path, weights, images):
    colors, depths = folders_of_pairs(tmp_path, images, count=2)
    previews = tmp_path / "previews"
    result = dkn_ros(*enhance_args(colors, depths, tmp_path / "o", weights,
                                   "--preview", str(previews)))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in previews.iterdir()) == ["0_preview.png", "1_preview.png"]
    picture = np.asarray(Image.open(previews / "0_preview.png"))
    assert picture.shape[0] > 48 + 10  # colour | depth, with the scale bar below
    # A preview file name with folders is refused (before any work).
    assert_user_error(
        dkn_ros(*enhance_args(colors, depths, tmp_path / "o", weights,
                              "--preview", str(tmp_path / "p.png"))),
        "p.png", "--preview must be a folder",
    )  # fmt: skip


def test_enhance_preview_of_far_range_depth_uses_many_colours(tmp_path, weights, images):
    """5-40 m with 1.5 % of the pixels at 650 m: the preview's colours span the scene."""
    rng = np.random.default_rng(0)
    depth = np.linspace(5.0, 40.0, 12 * 16, dtype=np.float32).reshape(12, 16)
    depth[rng.random(depth.shape) < 0.015] = 650.0
    far = tmp_path / "far.npy"
    np.save(far, depth)
    preview = tmp_path / "p.png"
    result = dkn_ros(*enhance_args(images["color"], far, tmp_path / "o.npy", weights,
                                   "--preview", str(preview)))  # fmt: skip
    assert result.returncode == 0, result.stderr
    picture = np.asarray(Image.open(preview).convert("RGB"))
    depth_panel = picture[:48, 64 + 4 :]  # colour | gap | depth
    assert len(np.unique(depth_panel.reshape(-1, 3), axis=0)) > 300
    assert picture.shape[0] > 48 + 10  # the scale bar


def test_enhance_bad_pair_stops_the_batch_naming_its_file(tmp_path, weights, images):
    colors, depths = folders_of_pairs(tmp_path, images, bad=1)
    result = dkn_ros(*enhance_args(colors, depths, tmp_path / "o", weights))
    assert_user_error(result, str(depths / "1.png"), "not a readable image")


def test_enhance_keep_going_reports_failures_at_the_end(tmp_path, weights, images):
    colors, depths = folders_of_pairs(tmp_path, images, bad=1)
    result = dkn_ros(*enhance_args(colors, depths, tmp_path / "o", weights, "--keep-going"))
    assert result.returncode == 2, result.stderr
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["0.png", "2.png"]
    lines = [line for line in result.stderr.splitlines() if line.startswith("dkn-ros: error")]
    assert len(lines) == 2, result.stderr
    assert str(depths / "1.png") in lines[0] and "not a readable image" in lines[0]
    assert "1 of 3 pairs failed" in lines[1]
    assert "Traceback" not in result.stderr


def test_enhance_says_how_many_outputs_it_replaced(tmp_path, weights, images):
    colors, depths = folders_of_pairs(tmp_path, images, count=2)
    args = enhance_args(colors, depths, tmp_path / "o", weights)
    first = dkn_ros(*args)
    assert first.returncode == 0, first.stderr
    assert "replaced" not in first.stdout
    second = dkn_ros(*args)
    assert second.returncode == 0, second.stderr
    assert "replaced 2 existing files" in second.stdout


def default_output_folders() -> dict[str, str]:
    """The folders the demos write to when not told (relative to the working directory;
    scripts/demo.sh runs ``dkn-ros live-demo`` from the repository root)."""
    import inspect

    from dkn_ros.cli import build_parser
    from dkn_ros.ros.live_demo import run_live_demo

    parser = build_parser()
    return {
        "dkn-ros demo": parser.parse_args(["demo"]).out,
        "dkn-ros live-demo": parser.parse_args(["live-demo"]).out,
        "run_live_demo()": inspect.signature(run_live_demo).parameters["out_dir"].default,
    }


def test_default_output_folders_are_ignored_by_git():
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        pytest.skip("not a git checkout: nothing to ignore files for")
    folders = default_output_folders()
    assert set(folders.values()) >= {"demo_output", "live_demo_output"}
    # Wherever in the repository the command runs, its default output is ignored.
    for cwd in ("", "test/", "dkn_ros/", "scripts/"):
        for what, folder in folders.items():
            for name in ("frame_000.png", "enhanced_bag/metadata.yaml"):
                path = f"{cwd}{folder}/{name}"
                result = subprocess.run(
                    ["git", "check-ignore", "-q", "--no-index", path], cwd=root
                )
                assert result.returncode == 0, f"{what} writes {path}, not ignored by git"


def test_enhance_warns_about_implausible_depth_units(tmp_path, weights, images):
    """SUN RGB-D style depth (millimetres shifted by 3 bits) is enhanced, with one
    warning line on stderr; plausible depth gets none."""
    plausible = np.asarray(Image.open(images["depth"]))
    shifted = tmp_path / "sun_like.png"
    Image.fromarray((plausible.astype(np.uint16) << 3).astype(np.uint16)).save(shifted)
    result = dkn_ros(*enhance_args(images["color"], shifted, tmp_path / "o.png", weights))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, result.stderr
    assert "implausible for uint16 millimetres" in warnings[0]
    assert "multiples of 8" in warnings[0]
    result = dkn_ros(*enhance_args(images["color"], images["depth"], tmp_path / "o.png", weights))
    assert result.returncode == 0 and "WARNING" not in result.stderr, result.stderr


def test_enhance_quality(tmp_path, weights, images):
    """--quality fast runs the small distilled FDKN of the shipped weights; auto says what
    it chose; an explicit weights file with quality fast is one line, exit 2."""
    common = ["enhance", "--color", str(images["color"]), "--depth", str(images["depth"])]
    result = dkn_ros(*common, "--out", str(tmp_path / "fast.png"), "--quality", "fast")
    assert result.returncode == 0, result.stderr
    assert "fdkn_s x4 (fdkn_s_x4.safetensors)" in result.stdout, result.stdout
    assert "quality fast: fast" in result.stdout
    out = np.asarray(Image.open(tmp_path / "fast.png"))
    assert out.shape == (48, 64) and out.dtype == np.uint16 and (out > 0).any()

    result = dkn_ros(
        *common, "--out", str(tmp_path / "auto.png"), "--quality", "auto", "--max-rate", "1000"
    )
    assert result.returncode == 0, result.stderr
    # Nothing keeps up at 1 kHz: auto runs the fastest candidate it measured. Which one
    # that is at 64x48 depends on the machine's load, so it is read from the warning:
    # "... budget 1 ms; full fp32 6 ms, ..., fast bf16 5 ms -> fast bf16 (none keeps up: ...)"
    said = re.search(r"budget 1 ms; (.+) -> (.+) \(none keeps up: the fastest\)", result.stderr)
    assert said, result.stderr
    latencies = dict(entry.rsplit(" ", 2)[:2] for entry in said[1].split(", "))
    assert "full fp32" in latencies and any(k.startswith("fast") for k in latencies)
    assert int(latencies[said[2]]) == min(int(ms) for ms in latencies.values()), said[0]
    assert f"quality auto: {said[2]}" in result.stdout, result.stdout

    result = dkn_ros(
        *common, "--out", str(tmp_path / "x.png"), "--quality", "fast", "--weights", str(weights)
    )
    assert_user_error(result, "quality 'fast' chooses among the shipped weights")
