"""The ``dkn-ros`` command line: demo, enhance, export-onnx.

Every user error is one line on stderr (``dkn-ros: error: ...``) naming the file and the
problem, with exit code 2; no traceback is a user interface.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

__all__ = ["main"]

log = logging.getLogger("dkn_ros")


class UserError(Exception):
    """An error whose message is the whole story for the user."""


# --- demo ------------------------------------------------------------------------------


def rmse_mm(estimate_mm: np.ndarray, truth_m: np.ndarray, mask: np.ndarray) -> float:
    """Root mean squared error in millimetres over ``mask``."""
    diff = estimate_mm[mask].astype(np.float64) - truth_m[mask].astype(np.float64) * 1000.0
    return float(np.sqrt(np.mean(diff**2)))


def demo_panel(color, depth_lr, bicubic, enhanced, truth_m, rmses, name) -> np.ndarray:
    """colour | input depth | bicubic | enhanced | error map, colour-mapped (H, 5 W, 3)."""
    from dkn_ros.visualise import colorize, label, side_by_side

    height, width = truth_m.shape
    valid = truth_m > 0
    lo, hi = np.percentile(truth_m[valid], [1, 99]) * 1000.0

    def depth_picture(mm: np.ndarray) -> np.ndarray:
        values = np.where(mm > 0, mm.astype(np.float32), np.nan)
        return colorize(values, lo, hi)

    step = height // depth_lr.shape[0]
    nearest = depth_lr.repeat(step, 0).repeat(step, 1)[:height, :width]
    error = np.abs(enhanced.astype(np.float32) - truth_m * 1000.0)
    error[enhanced == 0] = np.nan
    panels = [
        label(color, "COLOUR"),
        label(depth_picture(nearest), f"INPUT X{step}"),
        label(depth_picture(bicubic), f"BICUBIC {rmses[0]:.1f}MM"),
        label(depth_picture(enhanced), f"{name} {rmses[1]:.1f}MM"),
        label(colorize(error, 0.0, 100.0), "ERROR 0-100MM"),
    ]
    return side_by_side(panels)


def run_demo(args: argparse.Namespace) -> int:
    from dkn_ros.enhancer import Enhancer
    from dkn_ros.imageio import write_png
    from dkn_ros.processing import bicubic_upsample_depth
    from dkn_ros.synthetic import KinectDegradation, degrade_depth, generate_sequence

    width, height = parse_size(args.size)
    enhancer = Enhancer(model=args.model, engine=args.engine, device=args.device)
    # Kinect-like noise (std 1.5 mm x z^2), 1 mm steps and 1 % holes. No edge-shadow
    # bands: at 1/8 resolution the generator's two-pixel bands would blank 16 px around
    # every silhouette, far wider than a real sensor's shadows.
    degradation = KinectDegradation(scale=args.scale, hole_fraction=0.01, edge_holes=False)
    out_dir = Path(args.out)
    frames = generate_sequence(num_frames=args.frames, width=width, height=height, seed=args.seed)
    print(
        f"dkn-ros demo: {len(frames)} synthetic {width}x{height} frames, depth degraded "
        f"x{args.scale} (Kinect-like noise, 1 mm steps, holes), writing to {out_dir}/"
    )
    print(f"{'frame':>5} {'bicubic RMSE':>13} {'ours RMSE':>10} {'time':>8}")
    totals = np.zeros(2)
    for index, frame in enumerate(frames):
        depth_lr = degrade_depth(frame.depth, degradation, seed=args.seed + index)
        enhanced = enhancer.enhance(frame.color, depth_lr)
        timings = enhancer.last_timings
        if index == 0:
            print(f"      (loaded the model in {timings.load_ms / 1000:.1f} s)")
        bicubic = bicubic_upsample_depth(depth_lr, (height, width))
        mask = (frame.depth > 0) & (enhanced > 0) & (bicubic > 0)
        rmses = (rmse_mm(bicubic, frame.depth, mask), rmse_mm(enhanced, frame.depth, mask))
        totals += rmses
        path = out_dir / f"frame_{index:03d}.png"
        panel = demo_panel(
            frame.color, depth_lr, bicubic, enhanced, frame.depth, rmses, args.model.upper()
        )
        write_png(path, panel)
        print(f"{index:>5} {rmses[0]:>10.1f} mm {rmses[1]:>7.1f} mm {timings.total_ms:>5.0f} ms")
    mean = totals / len(frames)
    print(f" mean {mean[0]:>10.1f} mm {mean[1]:>7.1f} mm   ({enhancer.describe()})")
    print(f"pictures: {out_dir}/frame_*.png (colour | input | bicubic | enhanced | error)")
    return 0


# --- enhance ---------------------------------------------------------------------------


def expand_inputs(color: str, depth: str) -> list[tuple[Path, Path]]:
    """Pairs of files: two files, or two folders whose files pair up by sorted name."""
    color_path, depth_path = Path(color), Path(depth)
    if color_path.is_dir() != depth_path.is_dir() and color_path.exists() and depth_path.exists():
        raise UserError(f"{color_path} and {depth_path}: give two files or two folders")
    if not color_path.is_dir():
        return [(color_path, depth_path)]
    colors = sorted(p for p in color_path.iterdir() if p.is_file())
    depths = sorted(p for p in depth_path.iterdir() if p.is_file())
    if len(colors) != len(depths) or not colors:
        raise UserError(
            f"{color_path} has {len(colors)} files and {depth_path} has {len(depths)}: "
            "expected the same, non-zero number of colour and depth images"
        )
    return list(zip(colors, depths, strict=True))


def run_enhance(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from dkn_ros.enhancer import Enhancer
    from dkn_ros.imageio import read_color, read_depth, write_depth, write_png

    pairs = expand_inputs(args.color, args.depth)
    out = Path(args.out)
    many = len(pairs) > 1
    if many and out.suffix:
        raise UserError(f"{out}: with folders of inputs, --out must be a folder")
    enhancer = Enhancer(
        model=args.model,
        weights=args.weights,
        scale=args.scale,
        engine=args.engine,
        device=args.device,
        iterations=args.iterations,
        invalid=args.invalid,
        resize=args.resize,
    )
    for color_file, depth_file in tqdm(pairs, disable=not many, unit="image"):
        color = read_color(color_file)
        depth = read_depth(depth_file)
        if depth.dtype == np.uint8:
            depth = depth.astype(np.float32)  # 8-bit disparity-like maps: filtered as values
        try:
            enhanced = enhancer.enhance(color, depth)
        except ValueError as exc:  # the library names its option, the CLI its flag
            message = str(exc).replace("resize=True", "--resize")
            raise UserError(f"{depth_file}: {message}") from None
        target = out / (depth_file.stem + (".npy" if args.npy else ".png")) if many else out
        write_depth(target, enhanced)
        if args.preview and not many:
            from dkn_ros.visualise import colorize, side_by_side

            values = enhanced.astype(np.float32)
            values[values == 0] = np.nan
            lo, hi = np.nanpercentile(values, [1, 99])
            write_png(args.preview, side_by_side([color, colorize(values, lo, hi)]))
    if not many:
        print(f"wrote {out} ({enhancer.describe()})")
    else:
        print(f"wrote {len(pairs)} depth images to {out}/ ({enhancer.describe()})")
    return 0


# --- export-onnx -----------------------------------------------------------------------


def run_export_onnx(args: argparse.Namespace) -> int:
    from dkn_ros.engines.onnx_export import export_onnx
    from dkn_ros.enhancer import resolve_weights
    from dkn_ros.models import load_model

    weights = resolve_weights(args.model, args.scale, args.weights)
    model, card = load_model(weights)
    width, height = parse_size(args.size)
    path = export_onnx(model, args.out, opset=args.opset, height=height, width=width)
    print(f"wrote {path} ({card.model} x{card.scale}, opset {args.opset}, from {weights})")
    return 0


# --- argument parsing ------------------------------------------------------------------


def parse_size(text: str) -> tuple[int, int]:
    """'640x480' -> (640, 480)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"size {text!r}: expected WIDTHxHEIGHT, e.g. 640x480") from None
    if width < 8 or height < 8:
        raise UserError(f"size {text!r}: width and height must be at least 8")
    return width, height


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="fdkn", choices=["fdkn", "dkn"], help="default: fdkn")
    parser.add_argument(
        "--weights", default=None, help="safetensors file (its .json card beside it); "
        "default: the shipped weights for the model and scale"
    )
    parser.add_argument(
        "--scale", type=int, default=None, help="upsampling factor; default: from the sizes"
    )


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine", default="auto", choices=["auto", "torch", "onnx"], help="default: auto"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dkn-ros",
        description="Sharper, denser depth from RGB-D cameras with Deformable Kernel Networks.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="enhance a generated RGB-D sequence and show it against ground truth"
    )
    demo.add_argument("--frames", type=int, default=4, help="number of frames (default: 4)")
    demo.add_argument("--size", default="640x480", help="colour size WxH (default: 640x480)")
    demo.add_argument("--scale", type=int, default=8, help="depth downsampling (default: 8)")
    demo.add_argument("--seed", type=int, default=0, help="scene seed (default: 0)")
    demo.add_argument("--model", default="fdkn", choices=["fdkn", "dkn"], help="default: fdkn")
    demo.add_argument("--out", default="demo_output", help="folder (default: demo_output)")
    add_engine_arguments(demo)
    demo.set_defaults(run=run_demo)

    enhance = commands.add_parser("enhance", help="enhance depth images guided by colour")
    enhance.add_argument("--color", required=True, help="colour image or folder of them")
    enhance.add_argument(
        "--depth", required=True, help="depth image (16-bit PNG mm, 8-bit PNG, .npy) or folder"
    )
    enhance.add_argument("--out", required=True, help="output .png (16-bit mm) / .npy, or folder")
    add_model_arguments(enhance)
    add_engine_arguments(enhance)
    enhance.add_argument("--iterations", type=int, default=1, help="repeat the filter (default 1)")
    enhance.add_argument(
        "--invalid", default="keep", choices=["keep", "fill"],
        help="keep: invalid where no measurement supports a pixel (default); fill: fill all",
    )
    enhance.add_argument(
        "--resize", action="store_true", help="resize depth whose size is not 1/s of the colour"
    )
    enhance.add_argument("--npy", action="store_true", help="with folders: write .npy files")
    enhance.add_argument("--preview", default=None, help="also write colour | result as a PNG")
    enhance.set_defaults(run=run_enhance)

    export = commands.add_parser("export-onnx", help="export a model to ONNX (opset >= 17)")
    add_model_arguments(export)
    export.add_argument("--out", required=True, help="output .onnx file")
    export.add_argument("--opset", type=int, default=18, help="ONNX opset, >= 17 (default: 18)")
    export.add_argument("--size", default="640x480", help="example input size (default 640x480)")
    export.set_defaults(run=run_export_onnx)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="dkn-ros: %(levelname)s: %(message)s",
    )
    try:
        return args.run(args)
    except (UserError, ValueError, FileNotFoundError, OSError, RuntimeError) as exc:
        if args.verbose:
            raise
        print(f"dkn-ros: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dkn-ros: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
