"""The ``dkn-ros`` command line: demo, live-demo, enhance, bag, export-onnx, build-engine,
kernel-picture.

Every user error is one line on stderr (``dkn-ros: error: ...``) naming the file and the
problem, with exit code 2; no traceback is a user interface.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import numpy as np

from dkn_ros.demo import SOURCES
from dkn_ros.engines import ENGINES
from dkn_ros.engines.base import PRECISIONS
from dkn_ros.models import MODELS
from dkn_ros.processing import INVALID_POLICIES
from dkn_ros.quality import QUALITIES

__all__ = ["main"]

log = logging.getLogger("dkn_ros")


class UserError(Exception):
    """An error whose message is the whole story for the user."""


# --- demo ------------------------------------------------------------------------------


def run_demo(args: argparse.Namespace) -> int:
    from dkn_ros.demo import compare_with_bicubic, demo_frames, demo_panel, describe_source
    from dkn_ros.enhancer import Enhancer
    from dkn_ros.imageio import write_png

    size = parse_size(args.size) if args.size else None
    try:
        about = describe_source(args.source, size, args.scale)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    enhancer = Enhancer(
        model=args.model,
        engine=args.engine,
        device=args.device,
        quality=args.quality,
        max_rate=args.max_rate,
    )
    out_dir = Path(args.out)
    frames = demo_frames(args.source, args.frames, size, args.scale, seed=args.seed)
    print(f"dkn-ros demo: {len(frames)} frames of {about}; writing to {out_dir}/")
    print(f"{'frame':>5} {'bicubic RMSE':>13} {'ours RMSE':>10} {'time':>8}")
    totals = np.zeros(2)
    for index, frame in enumerate(frames):
        enhanced = enhancer.enhance(frame.color, frame.depth_lr)
        timings = enhancer.last_timings
        if index == 0:
            print(f"      (loaded the model in {timings.load_ms / 1000:.1f} s)")
        bicubic, rmses = compare_with_bicubic(frame.truth_m, frame.depth_lr, enhanced)
        totals += rmses
        path = out_dir / f"frame_{index:03d}.png"
        panel = demo_panel(
            frame.color, frame.depth_lr, bicubic, enhanced, frame.truth_m, rmses,
            args.model.upper(),
        )  # fmt: skip
        write_png(path, panel)
        print(f"{index:>5} {rmses[0]:>10.1f} mm {rmses[1]:>7.1f} mm {timings.total_ms:>5.0f} ms")
    mean = totals / len(frames)
    print(f" mean {mean[0]:>10.1f} mm {mean[1]:>7.1f} mm   ({enhancer.describe()})")
    print(f"pictures: {out_dir}/frame_*.png (colour | input | bicubic | enhanced | error)")
    return 0


def run_live_demo(args: argparse.Namespace) -> int:
    from dkn_ros.ros.live_demo import run_live_demo as live_demo

    if args.bag and not (args.color and args.depth):
        raise UserError(f"{args.bag}: --bag needs --color TOPIC and --depth TOPIC")

    size = parse_size(args.size) if args.size else None
    if not args.bag:
        from dkn_ros.demo import describe_source

        try:
            describe_source(args.source, size, args.scale)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    summary = live_demo(
        frames=args.frames,
        rate_hz=args.rate,
        size=size,
        scale=args.scale,
        source=args.source,
        out_dir=args.out,
        seed=args.seed,
        model=args.model,
        engine=args.engine,
        quality=args.quality,
        max_rate=args.max_rate,
        bag=args.bag,
        bag_topics=(args.color, args.depth, args.info),
    )
    return 0 if summary.received else 1


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


PREVIEW_SUFFIXES = (".png", ".jpg", ".jpeg")


def check_output(path: Path, option: str, suffixes: tuple[str, ...] | None) -> None:
    """Refuse an output that cannot be written, before any work is done.

    ``suffixes``: the extensions a file output may have; None: ``path`` is a folder.
    Missing folders are created when writing, so the nearest existing one must be a
    writable folder.
    """
    if suffixes is None:
        if path.exists() and not path.is_dir():
            raise UserError(f"{path}: {option} must be a folder, but this is a file")
    else:
        if path.is_dir():
            raise UserError(f"{path}: {option} names a folder; give a file name")
        if path.suffix.lower() not in suffixes:
            raise UserError(f"{path}: {option} must end in {' or '.join(suffixes)}")
    existing = path if suffixes is None and path.is_dir() else path.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{path}: cannot write under {existing}, it is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{path}: the folder {existing} is not writable")


def read_depth_for_enhance(path: Path) -> np.ndarray:
    """The depth of ``enhance``: uint16 millimetres or float32 metres. 8-bit images
    are refused: their values are no known unit (disparity, a visualisation)."""
    from dkn_ros.imageio import read_depth

    depth = read_depth(path)
    if depth.dtype == np.uint8:
        raise UserError(
            f"{path}: 8-bit depth (values 0-255) has no depth units; expected a 16-bit PNG "
            "in millimetres (0 = invalid) or float32 metres in .npy or .tiff"
        )
    return depth


def enhance_one(enhancer, color_file: Path, depth_file: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one pair and enhance it: (colour, enhanced depth). Errors name the file."""
    from dkn_ros.imageio import read_color

    color = read_color(color_file)
    depth = read_depth_for_enhance(depth_file)
    try:
        return color, enhancer.enhance(color, depth)
    except ValueError as exc:
        raise UserError(f"{depth_file}: {exc}") from None


def run_enhance(args: argparse.Namespace) -> int:
    """Enhance one pair of files or two folders of pairs (see the README's CLI section:
    outputs are checked before any work, existing outputs are replaced and counted,
    ``--keep-going`` reports bad pairs at the end)."""
    from tqdm import tqdm

    from dkn_ros.imageio import DEPTH_OUTPUT_SUFFIXES, write_depth, write_png
    from dkn_ros.visualise import depth_preview, pad_below, side_by_side

    pairs = expand_inputs(args.color, args.depth)
    out = Path(args.out)
    preview = Path(args.preview) if args.preview else None
    many = Path(args.color).is_dir()
    if many and out.suffix:
        raise UserError(f"{out}: with folders of inputs, --out must be a folder")
    if many and preview is not None and preview.suffix:
        raise UserError(f"{preview}: with folders of inputs, --preview must be a folder")
    check_output(out, "--out", None if many else DEPTH_OUTPUT_SUFFIXES)
    if preview is not None:
        check_output(preview, "--preview", None if many else PREVIEW_SUFFIXES)

    enhancer = enhancer_from_args(args, iterations=args.iterations)
    failures: list[str] = []
    replaced = written = 0
    for color_file, depth_file in tqdm(pairs, disable=not many, unit="image"):
        try:
            color, enhanced = enhance_one(enhancer, color_file, depth_file)
        except (UserError, ValueError, OSError) as exc:
            if not args.keep_going:
                raise
            failures.append(str(exc))
            continue
        suffix = ".npy" if args.npy else ".png"
        targets = [(out / (depth_file.stem + suffix)) if many else out]
        if preview is not None:
            targets.append((preview / f"{depth_file.stem}_preview.png") if many else preview)
        replaced += sum(target.exists() for target in targets)
        write_depth(targets[0], enhanced)
        if preview is not None:
            picture = depth_preview(enhanced)
            write_png(targets[1], side_by_side([pad_below(color, picture.shape[0]), picture]))
        written += 1

    if not many:
        print(f"wrote {out} ({enhancer.describe()})" if written else f"wrote nothing to {out}")
    else:
        images = "image" if written == 1 else "images"
        print(f"wrote {written} depth {images} to {out}/ ({enhancer.describe()})")
    if preview is not None:
        print(f"previews (colour | depth with a scale bar in metres): {preview}")
    if replaced:
        print(f"replaced {replaced} existing file{'s' if replaced != 1 else ''}")
    if failures:
        for failure in failures:
            print(f"dkn-ros: error: {failure}", file=sys.stderr)
        print(
            f"dkn-ros: error: {len(failures)} of {len(pairs)} pairs failed (listed above)",
            file=sys.stderr,
        )
        return 2
    return 0


# --- build-engine ----------------------------------------------------------------------


def run_build_engine(args: argparse.Namespace) -> int:
    from dkn_ros.engines.tensorrt import TensorRTEngine
    from dkn_ros.models.registry import load_weights

    width, height = parse_size(args.size)
    model, _, _ = load_weights(args.model, args.scale, args.weights, exact=args.weights is None)
    try:
        engine = TensorRTEngine(
            model,
            args.device,
            size=(height, width),
            precision=args.precision,
            rebuild=args.rebuild,
        )
    except ImportError as exc:  # no TensorRT here: a user error, one line
        raise UserError(str(exc)) from None
    print(f"{'built' if engine.built else 'cached'}: {engine.engine_path}")
    return 0


# --- export-onnx -----------------------------------------------------------------------


def run_export_onnx(args: argparse.Namespace) -> int:
    from dkn_ros.engines.onnx_export import export_onnx
    from dkn_ros.models.registry import load_weights

    model, card, weights = load_weights(
        args.model, args.scale, args.weights, exact=args.weights is None
    )
    width, height = parse_size(args.size)
    path = export_onnx(model, args.out, opset=args.opset, height=height, width=width)
    print(f"wrote {path} ({card.model} x{card.scale}, opset {args.opset}, from {weights})")
    return 0


# --- bag -------------------------------------------------------------------------------


def run_bag(args: argparse.Namespace) -> int:
    try:
        from dkn_ros.ros.bag import check_request, enhance_bag
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("rosbags"):
            raise
        raise UserError(
            "the bag command reads and writes rosbag2 with the rosbags package, which is not "
            "installed: pip install rosbags"
        ) from None

    request = dict(out_prefix=args.out_prefix, storage=args.storage, version=args.bag_version)
    # The user's errors (bag, topics, output) first: they need no model.
    check_request(args.input, args.output, args.color, args.depth, args.info, **request)
    enhancer = enhancer_from_args(args)
    summary = enhance_bag(
        args.input,
        args.output,
        args.color,
        args.depth,
        args.info,
        enhancer=enhancer,
        slop=args.slop,
        queue_size=args.queue_size,
        progress=not args.no_progress,
        **request,
    )
    print(summary.format())
    return 0


# --- kernel-picture ------------------------------------------------------------------


def run_kernel_picture(args: argparse.Namespace) -> int:
    from dkn_ros.imageio import write_png
    from dkn_ros.kernel_picture import kernel_picture

    try:
        x, y = (int(v) for v in args.pixel.split(","))
    except ValueError:
        raise UserError(
            f"--pixel {args.pixel!r}: expected X,Y in colour pixels, e.g. 320,240"
        ) from None
    kernel, picture = kernel_picture(
        args.color, args.depth, (x, y), model=args.model, weights=args.weights,
        scale=args.scale, downsample=args.downsample, window_size=args.window_size,
    )  # fmt: skip
    write_png(args.output, picture)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(kernel.to_json())
    total = round(kernel.weight_sum, 4) + 0.0  # no "-0.0000"
    print(
        f"wrote {args.output}" + (f" and {args.json}" if args.json else "")
        + f": {kernel.model} kernel of pixel ({x}, {y}), weights sum {total:.4f}, "
        f"output {kernel.output_depth:.4g} {kernel.depth_unit} ({Path(kernel.weights_file).name})"
    )  # fmt: skip
    return 0


# --- argument parsing ------------------------------------------------------------------


def enhancer_from_args(args: argparse.Namespace, **options):
    """The Enhancer of the model and engine arguments and ``--invalid``; ``options`` go
    to ``Enhancer`` as they are."""
    from dkn_ros.enhancer import Enhancer

    return Enhancer(
        model=args.model,
        weights=args.weights,
        scale=args.scale,
        engine=args.engine,
        device=args.device,
        invalid=args.invalid,
        quality=args.quality,
        max_rate=args.max_rate,
        **options,
    )


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
    parser.add_argument("--model", default="fdkn", choices=list(MODELS), help="default: fdkn")
    parser.add_argument(
        "--weights", default=None, help="safetensors file (its .json card beside it); "
        "default: the shipped weights for the model and scale"
    )
    parser.add_argument(
        "--scale", type=int, default=None,
        help="use the shipped weights of this trained scale (1 = same-size) for every input; "
        "default: those of the trained scale closest to each input's size ratio",
    )  # fmt: skip


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine",
        default="auto",
        choices=ENGINES,
        help="default: auto",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    add_quality_arguments(parser, default="full")


def add_quality_arguments(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--quality", default=default, choices=QUALITIES,
        help="full: FDKN as trained; fast: the small distilled FDKN (bfloat16 on a CPU that "
        "has it); auto: time both on the first frame of each size and keep the best that "
        f"keeps up with --max-rate (default: {default})",
    )  # fmt: skip
    parser.add_argument(
        "--max-rate", type=float, default=None,
        help="Hz, for --quality auto: the frame rate to keep up with (default: 30)",
    )  # fmt: skip


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo camera of ``demo`` and ``live-demo`` (see dkn_ros.demo)."""
    parser.add_argument(
        "--source", default="sequence", choices=SOURCES,
        help="sequence: the bundled Open3D RGB-D frames (Redwood living-room1), depth "
        "point-sampled by --scale, RMSE against the sequence's own full-resolution depth "
        "(default); synthetic: our rendered room with exact ground truth and Kinect-like "
        "degradation",
    )  # fmt: skip
    parser.add_argument(
        "--size", default=None, help="colour size WxH (default: 640x480; with the sequence, "
        "a smaller size is a centre crop)"
    )
    parser.add_argument("--scale", type=int, default=8, help="depth downsampling (default: 8)")
    parser.add_argument("--seed", type=int, default=0, help="synthetic scene seed (default: 0)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dkn-ros",
        description="Sharper, denser depth from RGB-D cameras with Deformable Kernel Networks.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="the live demo's camera without ROS: enhance it in-process and show "
        "it against bicubic upsampling"
    )
    demo.add_argument("--frames", type=int, default=4, help="number of frames (default: 4)")
    add_source_arguments(demo)
    demo.add_argument("--model", default="fdkn", choices=list(MODELS), help="default: fdkn")
    demo.add_argument("--out", default="demo_output", help="folder (default: demo_output)")
    add_engine_arguments(demo)
    demo.set_defaults(run=run_demo)

    live = commands.add_parser(
        "live-demo",
        help="the depth_enhancer node on an RGB-D camera over real ROS 2, recorded to a bag",
    )
    live.add_argument("--frames", type=int, default=8, help="timed frames (default: 8)")
    live.add_argument("--rate", type=float, default=5.0, help="camera rate in Hz (default: 5)")
    add_source_arguments(live)
    live.add_argument("--model", default="fdkn", choices=list(MODELS), help="default: fdkn")
    live.add_argument(
        "--engine",
        default="auto",
        choices=ENGINES,
        help="default: auto",
    )
    add_quality_arguments(live, default="auto")
    live.add_argument(
        "--out", default="live_demo_output", help="folder (default: live_demo_output)"
    )
    live.add_argument("--bag", default=None, help="replay this rosbag2 instead of the "
                      "demo camera (needs --color and --depth; no ground truth)")
    live.add_argument("--color", default="", help="with --bag: colour image topic")
    live.add_argument("--depth", default="", help="with --bag: depth image topic")
    live.add_argument("--info", default=None, help="with --bag: colour camera_info topic")
    live.set_defaults(run=run_live_demo)

    enhance = commands.add_parser("enhance", help="enhance depth images guided by colour")
    enhance.add_argument("--color", required=True, help="colour image or folder of them")
    enhance.add_argument(
        "--depth", required=True, help="depth image or folder: 16-bit PNG/TIFF millimetres "
        "(0 = invalid) or float32 metres in .npy/.tiff; 8-bit and lossy (JPEG) are refused"
    )
    enhance.add_argument(
        "--out", required=True, help="output .png (16-bit mm) / .npy, or folder; existing "
        "files are replaced (and counted)"
    )
    add_model_arguments(enhance)
    add_engine_arguments(enhance)
    enhance.add_argument("--iterations", type=int, default=1, help="repeat the filter (default 1)")
    enhance.add_argument(
        "--invalid", default="keep", choices=INVALID_POLICIES,
        help="keep: invalid where no measurement supports a pixel (default); fill: fill all",
    )
    enhance.add_argument("--npy", action="store_true", help="with folders: write .npy files")
    enhance.add_argument(
        "--preview", default=None, help="also write colour | result with a depth scale bar "
        "as a PNG; with folders, a folder of NAME_preview.png"
    )
    enhance.add_argument(
        "--keep-going", action="store_true", help="with folders: go on past bad pairs, "
        "list them at the end and exit 2"
    )
    enhance.set_defaults(run=run_enhance)

    export = commands.add_parser("export-onnx", help="export a model to ONNX (opset >= 17)")
    add_model_arguments(export)
    export.add_argument("--out", required=True, help="output .onnx file")
    export.add_argument("--opset", type=int, default=18, help="ONNX opset, >= 17 (default: 18)")
    export.add_argument("--size", default="640x480", help="example input size (default 640x480)")
    export.set_defaults(run=run_export_onnx)

    build = commands.add_parser(
        "build-engine",
        help="build the TensorRT engine ahead of time (cached; the node then loads it)",
    )
    add_model_arguments(build)
    build.add_argument("--size", default="640x480", help="camera resolution (default 640x480)")
    build.add_argument("--precision", default="fp16", choices=PRECISIONS)
    build.add_argument("--device", default="cuda", help="cuda or cuda:N (default: cuda)")
    build.add_argument("--rebuild", action="store_true", help="build even if cached")
    build.set_defaults(run=run_build_engine)

    bag = commands.add_parser(
        "bag", help="enhance the depth of a rosbag2 recording (sqlite3 or mcap), bag to bag"
    )
    bag.add_argument("input", metavar="IN", help="input rosbag2 folder")
    bag.add_argument("output", metavar="OUT", help="output rosbag2 folder (must not exist)")
    bag.add_argument(
        "--color", required=True, help="colour topic: sensor_msgs/Image or CompressedImage "
        "(image_transport's compressed: JPEG/PNG); the type is read from the bag"
    )
    bag.add_argument(
        "--depth", required=True, help="depth topic: sensor_msgs/Image or CompressedImage "
        "(compressedDepth: PNG/RVL); the type is read from the bag"
    )
    bag.add_argument(
        "--info", default=None, help="colour sensor_msgs/CameraInfo topic (default: "
        "camera_info beside the colour topic, if the bag has it)"
    )
    bag.add_argument(
        "--out-prefix", default="depth_enhanced",
        help="new topics /PREFIX/image and /PREFIX/camera_info (default: depth_enhanced)",
    )
    add_model_arguments(bag)
    add_engine_arguments(bag)
    bag.add_argument(
        "--invalid", default="keep", choices=INVALID_POLICIES,
        help="keep: invalid where no measurement supports a pixel (default); fill: fill all",
    )
    bag.add_argument(
        "--slop", type=float, default=0.02, help="largest colour/depth stamp difference of a "
        "pair, seconds (default: 0.02)"
    )
    bag.add_argument(
        "--queue-size", type=int, default=50, help="messages kept per stream while pairing "
        "(default: 50)"
    )
    bag.add_argument(
        "--storage", default=None, choices=["sqlite3", "mcap"],
        help="output storage (default: the input's)",
    )
    bag.add_argument(
        "--bag-version", type=int, default=9, choices=[9, 8],
        help="rosbag2 metadata version of the output: 9 (Jazzy, default) or 8 (Iron; for "
        "tools that cannot read version 9)",
    )
    bag.add_argument("--no-progress", action="store_true", help="no progress bar")
    bag.set_defaults(run=run_bag)

    picture = commands.add_parser(
        "kernel-picture",
        help="picture the deformable kernel of one pixel (sampling positions and weights over "
        "the colour and depth, like the paper's Fig. 13)",
    )
    picture.add_argument("--color", required=True, help="colour image")
    picture.add_argument(
        "--depth", required=True, help="depth image at 1/s of the colour size (16-bit PNG mm, "
        "8-bit PNG, .npy), as for enhance; colour size with --downsample"
    )
    picture.add_argument("--pixel", required=True, help="X,Y: the pixel, in colour pixels")
    add_model_arguments(picture)
    picture.add_argument(
        "--downsample", type=int, default=1, help="the depth is full-size (e.g. ground "
        "truth): bicubic-downsample it by this factor first (default: 1, no)"
    )
    picture.add_argument(
        "--window-size", type=int, default=None,
        help="side of the snippets in pixels (default: the kernel's window d + 6)",
    )  # fmt: skip
    picture.add_argument("--output", required=True, help="output PNG")
    picture.add_argument("--json", default=None, help="also write the numbers as JSON")
    picture.set_defaults(run=run_kernel_picture)
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
