#!/usr/bin/env python3
"""Latency of the DKN / FDKN engines on this machine, with classical baselines.

Each (variant, size) runs in its own subprocess, so the peak memory (the process's
RSS high-water mark, ``VmHWM``) belongs to that variant alone. Two numbers are given:
``peak MiB``, the whole process (Python + torch + model + inputs + inference), and
``+MiB``, how much the high-water mark grew during warm-up and the timed runs (the
inference's own working memory, roughly). Models are random-initialised (latency does
not depend on the weights; seed 0), eval mode, float32, ``torch.inference_mode``.
Times are wall-clock per ``Engine.run`` call (numpy in, numpy out). p99 of a handful
of runs is close to the maximum: read it as "worst seen".

Variants (network only: random weights of the model's shape, numpy in and out):
    fdkn-plain        the named baseline: the paper's FDKN as a plain PyTorch module
                      (BatchNorm not folded, NCHW float32, glibc's malloc defaults), the way
                      a straightforward port such as the published reference code runs it
                      (that code itself is not on this machine)
    fdkn-torch        FDKN, PyTorch (TorchEngine)
    fdkn-torch-bf16   FDKN, PyTorch, both streams in bfloat16 (weighted average fp32)
    fdkn_s-torch      the small FDKN (quality 'fast'), PyTorch float32
    fdkn_s-torch-bf16 the small FDKN, bfloat16 streams
    fdkn_s-onnx       the small FDKN, ONNX Runtime
    fdkn-torch-opt    FDKN, PyTorch, engines.optimise: BatchNorm folded into the convs,
                      channels-last weights, glibc malloc thresholds raised
    fdkn-onnx         FDKN, ONNX Runtime (OnnxEngine; exported once, outside the timing)
    dkn-torch         DKN single pass (dilated), PyTorch
    dkn-sas-torch     DKN shift-and-stitch (the paper's 16 passes), PyTorch
    dkn-onnx          DKN single pass, ONNX Runtime
    bicubic-pil       baseline: PIL bicubic upsampling of a float32 'F' image from 1/8 size
    guided-jbu        the camera weights' input step: joint bilateral upsampling from 1/8
                      size under the guidance (dkn_ros.processing.guided, torch threads)
    jbf-cv2           baseline: cv2.ximgproc.jointBilateralFilter on the full-size target
                      (d = 9, sigma colour 0.1, sigma space 3), if importable
    enhance-torch     the whole Enhancer.enhance with the shipped fdkn_x8 weights, PyTorch:
                      uint8 colour + uint16 depth at 1/8 (a rendered Kinect-like frame)
                      in, uint16 out (checks, hole filling, the card's input upsampling,
                      the network, post-processing); its stages are printed under the table
    enhance-onnx      the same with ONNX Runtime
    enhance-full-bf16 the same, PyTorch with bfloat16 streams (quality auto's second choice)
    enhance-fast      the whole Enhancer.enhance with quality 'fast' (fdkn_s_x8, bfloat16
                      streams where the CPU has them), or with --fast-weights FILE

Any variant but fdkn-plain may end in ``-tensorops``: the same with PyTorch tensor
operations instead of the C kernels of ``dkn_ros.native`` (FDKN's last step,
``dkn_ros.models.sampling_cpu``, and the joint bilateral upsampling,
``dkn_ros.processing.guided``). fdkn-plain always runs the tensor operations: it
stands for the reference implementation.

Every row is also given as a ratio to ``--baseline`` (default fdkn-plain), run first at
each size in the same command.

Usage:
    python bench/latency.py --sizes 320x240,640x480 --json out.json
    python bench/latency.py --profile 640x480      # torch.profiler breakdown of FDKN
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

VARIANTS = (
    "fdkn-plain",
    "fdkn-torch",
    "fdkn-torch-bf16",
    "fdkn_s-torch",
    "fdkn_s-torch-bf16",
    "fdkn_s-onnx",
    "fdkn-torch-opt",
    "fdkn-onnx",
    "dkn-torch",
    "dkn-sas-torch",
    "dkn-onnx",
    "bicubic-pil",
    "guided-jbu",
    "jbf-cv2",
    "enhance-torch",
    "enhance-onnx",
    "enhance-full-bf16",
    "enhance-fast",
)
TENSOR_OPS = "-tensorops"  # suffix: without the C kernels of dkn_ros.native
SLOW = ("dkn-torch", "dkn-sas-torch", "dkn-onnx")  # seconds per frame at 640 x 480


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine() -> dict:
    """CPU model, cores, library versions, load."""
    import numpy
    import torch

    info = {
        "cpu": platform.processor() or "unknown",
        "cores": cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "loadavg": os.getloadavg(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        flags = next(
            (ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")),
            "",
        ).split()
        simd = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
        info["simd"] = [f for f in simd if f in flags]
    except OSError:
        pass
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    try:
        import cv2

        info["opencv"] = cv2.__version__
    except ImportError:
        info["opencv"] = None
    return info


def vm_hwm_mib() -> float:
    """RSS high-water mark of this process, MiB (Linux; ru_maxrss elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_model(name: str, **config):
    import torch

    from dkn_ros.models import build_model

    torch.manual_seed(0)  # same weights in every process: the ONNX cache is shared
    return build_model(name, **config).eval()


def make_runner(
    variant: str,
    height: int,
    width: int,
    threads: int,
    cache_dir: str | None,
    fast_weights: str | None = None,
    widths: dict | None = None,
):
    """A function running one frame, and its inputs (already allocated)."""
    import numpy as np

    if variant.startswith("enhance-"):
        kind = variant.split("-", 1)[1]
        return enhance_runner(kind, height, width, threads, cache_dir, fast_weights)
    rng = np.random.default_rng(0)
    guidance = rng.random((1, 3, height, width), dtype=np.float32)
    target = rng.random((1, 1, height, width), dtype=np.float32)

    if variant == "bicubic-pil":
        from PIL import Image

        small = Image.fromarray(rng.random((height // 8, width // 8), dtype=np.float32), mode="F")
        return lambda: np.asarray(small.resize((width, height), Image.BICUBIC))
    if variant == "guided-jbu":
        import torch

        from dkn_ros.processing.guided import joint_bilateral_upsample

        torch.set_num_threads(threads)
        small = rng.random((height // 8, width // 8), dtype=np.float32)
        return lambda: joint_bilateral_upsample(small, guidance)
    if variant == "jbf-cv2":
        import cv2

        cv2.setNumThreads(threads)
        joint = np.ascontiguousarray(guidance[0].transpose(1, 2, 0))
        src = np.ascontiguousarray(target[0, 0])
        return lambda: cv2.ximgproc.jointBilateralFilter(joint, src, 9, 0.1, 3.0)

    import torch

    torch.set_num_threads(threads)
    model_name, _, engine_name = variant.partition("-")
    config = dict(widths or {}) if model_name == "fdkn_s" else {}
    if engine_name.startswith("sas"):
        config["inference"] = "shift_and_stitch"
        engine_name = engine_name.split("-", 1)[1]
    model = make_model(model_name, **config)
    if engine_name == "plain":
        from dkn_ros import native

        native.ENABLED = False  # the reference implementation's tensor operations
        g, t = torch.from_numpy(guidance), torch.from_numpy(target)

        def plain():
            with torch.inference_mode():
                return model(g, t).numpy()

        return plain
    precision = "fp32"
    if engine_name.endswith("-bf16"):
        engine_name, precision = engine_name[: -len("-bf16")], "bf16"
    if engine_name == "torch-opt":
        from dkn_ros.engines.optimise import optimise_for_cpu, tune_glibc_malloc

        model = optimise_for_cpu(model)
        tune_glibc_malloc()
        engine_name = "torch"
    if engine_name == "torch":
        from dkn_ros.engines.torch_engine import TorchEngine

        engine = TorchEngine(model, cpu_precision=precision)
    elif engine_name == "onnx":
        from dkn_ros.engines.onnx_engine import OnnxEngine

        engine = OnnxEngine(model, cache_dir=cache_dir, threads=threads)
    else:
        raise ValueError(f"unknown variant {variant!r}")
    return lambda: engine.run(guidance, target)


def enhance_runner(
    kind: str,
    height: int,
    width: int,
    threads: int,
    cache_dir: str | None,
    fast_weights: str | None = None,
):
    """One whole ``Enhancer.enhance`` call per run; ``run.stages`` collects each call's
    ``Timings``. ``kind``: torch, onnx (full FDKN), full-bf16, fast."""
    import torch

    from dkn_ros.engines.optimise import cpu_computes_bf16
    from dkn_ros.enhancer import Enhancer
    from dkn_ros.synthetic import KinectDegradation, degrade_depth, render_frame

    torch.set_num_threads(threads)
    frame = render_frame(t=0.0, width=width, height=height, seed=0)
    depth = degrade_depth(frame.depth, KinectDegradation(scale=8), seed=0)
    if kind == "onnx":
        enhancer = Enhancer(
            engine="onnx", scale=8, engine_options={"threads": threads, "cache_dir": cache_dir}
        )
    elif kind == "torch":
        enhancer = Enhancer(engine="torch", scale=8)
    elif kind == "full-bf16":
        enhancer = Enhancer(engine="torch", scale=8, engine_options={"cpu_precision": "bf16"})
    elif fast_weights:  # kind == "fast", another width
        precision = "bf16" if cpu_computes_bf16() else "fp32"
        options = {"cpu_precision": precision}
        enhancer = Enhancer(weights=fast_weights, engine="torch", engine_options=options)
    else:
        enhancer = Enhancer(quality="fast", scale=8)

    def run():
        enhancer.enhance(frame.color, depth)
        run.stages.append(enhancer.last_timings)

    run.stages = []
    return run


def worker(args: argparse.Namespace) -> None:
    """Child process: time one variant at one size, print one JSON line."""
    width, height = parse_size(args.size)
    widths = parse_widths(args.widths)
    variant = args.variant
    if variant.endswith(TENSOR_OPS):
        from dkn_ros import native

        native.ENABLED = False
        variant = variant[: -len(TENSOR_OPS)]
    run = make_runner(
        variant, height, width, args.threads, args.cache_dir, args.fast_weights, widths
    )
    before = vm_hwm_mib()
    for _ in range(args.warmup):
        run()
    repeats = args.repeats
    if repeats <= 0:  # adaptive: about `budget` seconds of timed runs, 3..50 of them
        start = time.perf_counter()
        run()
        once = time.perf_counter() - start
        repeats = int(min(50, max(3, args.budget / max(once, 1e-6))))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    peak = vm_hwm_mib()
    result = {"times": times, "peak_mib": peak, "grow_mib": peak - before}
    stages = getattr(run, "stages", [])[-repeats:]
    if stages:
        result["stages_ms"] = {
            name: sorted(getattr(t, f"{name}_ms") for t in stages)[len(stages) // 2]
            for name in ("preprocess", "inference", "postprocess")
        }
    print(json.dumps(result))


def prepare_onnx(variant: str, cache_dir: str | None, widths: dict | None = None) -> None:
    """Export (or find in the cache) the graph of an onnx variant, in its own process."""
    from dkn_ros.engines.onnx_engine import OnnxEngine

    model_name = variant.split("-")[0]
    config = dict(widths or {}) if model_name == "fdkn_s" else {}
    OnnxEngine(make_model(model_name, **config), cache_dir=cache_dir, threads=1)


def parse_widths(text: str | None) -> dict | None:
    """'16,32,32,32' -> {'c1': 16, 'c2': 32, 'n1': 32, 'n2': 32}."""
    if not text:
        return None
    return dict(zip(("c1", "c2", "n1", "n2"), (int(v) for v in text.split(",")), strict=True))


def parse_size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


def percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values), q))


def run_all(args: argparse.Namespace) -> list[dict]:
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if "jbf-cv2" in variants:
        try:
            import cv2

            cv2.ximgproc  # noqa: B018  (contrib module present?)
        except (ImportError, AttributeError):
            print("jbf-cv2: cv2.ximgproc not importable, skipped")
            variants.remove("jbf-cv2")
    if args.baseline in variants:  # the baseline first: the others are given against it
        variants.remove(args.baseline)
        variants.insert(0, args.baseline)
    script = str(Path(__file__).resolve())
    base = [sys.executable, script, "--threads", str(args.threads)]
    if args.cache_dir:
        base += ["--cache-dir", args.cache_dir]
    if args.fast_weights:
        base += ["--fast-weights", args.fast_weights]
    if args.widths:
        base += ["--widths", args.widths]
    for variant in variants:
        if variant.endswith("-onnx") and not variant.startswith("enhance-"):
            subprocess.run(base + ["--prepare", variant], check=True)

    rows = []
    for size in args.sizes.split(","):
        baseline_ms = None
        for variant in variants:
            repeats = args.repeats
            if repeats is None:
                repeats = 3 if variant in SLOW and parse_size(size)[0] > 400 else 0
            warmup = args.warmup if args.warmup is not None else (1 if variant in SLOW else 3)
            cmd = base + [
                "--worker",
                "--variant",
                variant,
                "--size",
                size,
                "--repeats",
                str(repeats),
                "--warmup",
                str(warmup),
                "--budget",
                str(args.budget),
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{variant} {size}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            times_ms = [t * 1000 for t in result["times"]]
            median = percentile(times_ms, 50)
            row = {
                "variant": variant,
                "size": size,
                "runs": len(times_ms),
                "median_ms": median,
                "p99_ms": percentile(times_ms, 99),
                "min_ms": min(times_ms),
                "fps": 1000.0 / median,
                "peak_mib": result["peak_mib"],
                "grow_mib": result["grow_mib"],
            }
            if variant == args.baseline:
                baseline_ms = median
            row["vs_baseline"] = median / baseline_ms if baseline_ms else None
            if "stages_ms" in result:
                row["stages_ms"] = result["stages_ms"]
            rows.append(row)
            print(format_row(row), flush=True)
    return rows


HEADER = (
    f"| {'variant':<24} | {'size':<8} | {'runs':>4} | {'median ms':>9} | {'p99 ms':>8} | "
    f"{'min ms':>8} | {'fps':>6} | {'peak MiB':>8} | {'+MiB':>6} | {'x baseline':>10} |"
)


def format_row(row: dict) -> str:
    ratio = row.get("vs_baseline")
    return (
        f"| {row['variant']:<24} | {row['size']:<8} | {row['runs']:>4} | "
        f"{row['median_ms']:>9.1f} | {row['p99_ms']:>8.1f} | {row['min_ms']:>8.1f} | "
        f"{row['fps']:>6.1f} | {row['peak_mib']:>8.0f} | {row['grow_mib']:>6.0f} | "
        f"{'-' if ratio is None else f'{ratio:.2f}':>10} |"
    )


# ----------------------------------------------------------------------------- profile


def profiled_fdkn(model, guidance, target):
    """FDKN.forward and deformable_weighted_average step by step, each step labelled
    with ``record_function`` (same maths as the package; checked against the model)."""
    import torch
    import torch.nn.functional as F
    from torch.profiler import record_function

    from dkn_ros.models.fdkn import RESAMPLE
    from dkn_ros.models.sampling import normalise_kernel_weights, regular_grid

    def stream(name, module, x):
        with record_function(f"{name}: pixel_unshuffle"):
            x = F.pixel_unshuffle(x, RESAMPLE)
        for index, layer in enumerate(module.features):
            kind = type(layer).__name__
            with record_function(f"{name}: features[{index}] {kind}"):
                x = layer(x)
        with record_function(f"{name}: weight head + sigmoid"):
            w = torch.sigmoid(module.weight_head(x))
        with record_function(f"{name}: offset head"):
            o = module.offset_head(x)
        return w, o

    w_g, o_g = stream("guidance", model.guidance_stream, guidance)
    w_t, o_t = stream("target", model.target_stream, target)
    with record_function("combine streams + pixel_shuffle"):
        weights = F.pixel_shuffle(w_g * w_t, RESAMPLE)
        offsets = F.pixel_shuffle(o_g * o_t, RESAMPLE)
    batch, _, height, width = target.shape
    k2 = weights.shape[1]
    k = int(round(k2**0.5))
    dtype = target.dtype
    with record_function("sampling: build grid"):
        grid_q = regular_grid(k, dtype, target.device).view(2, 1, k2, 1, 1)
        radius = float(model.window // 2)
        rel_x = (grid_q[0] + offsets[:, :k2]).clamp(-radius, radius)
        rel_y = (grid_q[1] + offsets[:, k2:]).clamp(-radius, radius)
        base_y = torch.arange(height, dtype=dtype).view(1, 1, height, 1)
        base_x = torch.arange(width, dtype=dtype).view(1, 1, 1, width)
        grid_x = (base_x + rel_x) * (2.0 / max(width - 1, 1)) - 1.0
        grid_y = (base_y + rel_y) * (2.0 / max(height - 1, 1)) - 1.0
        grid = torch.stack([grid_x, grid_y], dim=-1).reshape(batch, k2 * height, width, 2)
    with record_function("sampling: grid_sample"):
        samples = F.grid_sample(
            target, grid, mode="bilinear", padding_mode="border", align_corners=True
        ).view(batch, -1, k2, height, width)
    with record_function("sampling: normalise + weighted sum"):
        kernel = normalise_kernel_weights(weights, model.residual).unsqueeze(1)
        out = (kernel * samples).sum(dim=2)
        if model.residual:
            out = out + target
    return out


def profile(args: argparse.Namespace) -> None:
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    torch.set_num_threads(args.threads)
    width, height = parse_size(args.profile)
    model = make_model("fdkn")
    guidance = torch.rand(1, 3, height, width)
    target = torch.rand(1, 1, height, width)
    with torch.inference_mode():
        reference = model(guidance, target)
        err = (profiled_fdkn(model, guidance, target) - reference).abs().max().item()
        print(f"profiled forward vs FDKN.forward: max abs difference {err:.2e}")
        for _ in range(2):
            profiled_fdkn(model, guidance, target)
        repeats = max(1, args.repeats or 5)
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(repeats):
                profiled_fdkn(model, guidance, target)
    events = prof.key_averages()
    labelled = [
        e
        for e in events
        if not e.key.startswith(("aten::", "ProfilerStep"))
        and (":" in e.key or e.key.startswith("combine"))
    ]
    total = sum(e.cpu_time_total for e in labelled) / repeats / 1000
    print(
        f"\nFDKN {width}x{height}, {args.threads} threads, {repeats} profiled runs: "
        f"labelled steps sum to {total:.1f} ms per frame"
    )
    print(f"| {'step':<42} | {'ms/frame':>8} | {'share':>6} |")
    print(f"|{'-' * 44}|{'-' * 10}|{'-' * 8}|")
    order = {name: i for i, name in enumerate(e.key for e in labelled)}
    for e in sorted(labelled, key=lambda e: order[e.key]):
        ms = e.cpu_time_total / repeats / 1000
        print(f"| {e.key:<42} | {ms:>8.1f} | {100 * ms / total:>5.1f}% |")
    print("\nTop aten ops by self CPU time:")
    print(events.table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=40))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="320x240,640x480", help="WxH,WxH,...")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed runs per variant (default: about --budget seconds, 3..50; 3 for DKN "
        "at 640x480); 0 = adaptive",
    )
    parser.add_argument("--warmup", type=int, default=None, help="untimed runs (3; 1 for DKN)")
    parser.add_argument("--budget", type=float, default=8.0, help="seconds of timed runs")
    parser.add_argument("--threads", type=int, default=cpu_count(), help="intra-op threads")
    parser.add_argument("--json", help="write machine + rows here")
    parser.add_argument("--cache-dir", help="ONNX export cache (default ~/.cache/dkn_ros/onnx)")
    parser.add_argument("--profile", metavar="WxH", help="profile FDKN (torch) at this size")
    parser.add_argument(
        "--baseline", default="fdkn-plain",
        help="the variant every row is compared with (run first at each size)",
    )  # fmt: skip
    parser.add_argument(
        "--fast-weights", default=None,
        help="enhance-fast with this weights file (e.g. another width) instead of fdkn_s",
    )  # fmt: skip
    parser.add_argument(
        "--widths", default=None,
        help="C1,C2,N1,N2 of the fdkn_s network-only variants (default: fdkn_s's 16,32,32,32)",
    )  # fmt: skip
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--prepare", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--size", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        worker(args)
        return
    if args.prepare:
        prepare_onnx(args.prepare, args.cache_dir, parse_widths(args.widths))
        return
    known = set(VARIANTS) | {v + TENSOR_OPS for v in VARIANTS if v != "fdkn-plain"}
    unknown = sorted({v.strip() for v in args.variants.split(",") if v.strip()} - known)
    if unknown:
        sys.exit(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    info = machine()
    print(
        f"# {info['cpu']}, {info['cores']} cores ({' '.join(info.get('simd', []))}), "
        f"python {info['python']}, torch {info['torch']}, onnxruntime {info['onnxruntime']}, "
        f"opencv {info['opencv']}; {info['date']}; load average {info['loadavg'][0]:.2f}; "
        f"{args.threads} threads"
    )
    if args.profile:
        profile(args)
        return
    print(HEADER)
    print("|" + "|".join("-" * len(c) for c in HEADER.strip("|").split("|")) + "|")
    rows = run_all(args)
    info["loadavg_end"] = os.getloadavg()
    print(f"# load average at the end {info['loadavg_end'][0]:.2f}")
    for row in rows:
        if "stages_ms" in row:
            stages = ", ".join(f"{k} {v:.1f}" for k, v in row["stages_ms"].items())
            print(f"# {row['variant']} {row['size']} stage medians (ms): {stages}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": info, "command": sys.argv, "rows": rows}, indent=2) + "\n"
        )


if __name__ == "__main__":
    main()
