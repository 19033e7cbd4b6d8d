#!/usr/bin/env python3
"""The C kernels against PyTorch's tensor operations, frame by frame in one process.

Whole ``Enhancer.enhance`` calls at one size, alternating: one frame with the C kernels
of ``dkn_ros.native`` (FDKN's fused last step, the joint bilateral upsampling), one
with them turned off (``native.ENABLED = False``: the PyTorch definitions, the named
baseline), and so on. Alternating frames see the same load, so on a shared, noisy
machine their ratio is trustworthy where two separate runs are not (``bench/latency.py``
with ``-tensorops`` variants gives the per-process peak memory instead; here both run
in one process, so only the process's peak is printed).

Input: a rendered 640 x 480 frame, uint16 depth point-sampled at 1/8 (a Kinect-like
frame from ``dkn_ros.synthetic``), the shipped weights.

Usage:
    python bench/native_ab.py [--quality fast|full|full-bf16] [--frames 40] [--size 640x480]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def peak_rss_mib() -> float:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", status)[1]) / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quality", default="fast", choices=("fast", "full", "full-bf16"))
    parser.add_argument("--frames", type=int, default=40, help="timed frames of each")
    parser.add_argument("--size", default="640x480", help="WxH")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args(argv)

    import torch

    from dkn_ros import native
    from dkn_ros.enhancer import Enhancer
    from dkn_ros.synthetic import KinectDegradation, degrade_depth, render_frame

    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.split("x"))
    frame = render_frame(t=0.0, width=width, height=height, seed=0)
    depth = degrade_depth(frame.depth, KinectDegradation(scale=8), seed=0)
    if args.quality == "fast":
        enhancer = Enhancer(quality="fast", scale=8)
    else:
        precision = "bf16" if args.quality == "full-bf16" else "fp32"
        enhancer = Enhancer(engine="torch", scale=8, engine_options={"cpu_precision": precision})
    variants = {"C kernels": True, "tensor ops (baseline)": False}
    for enabled in variants.values():  # warm-up: loads, compiles, first-touch
        native.ENABLED = enabled
        for _ in range(3):
            enhancer.enhance(frame.color, depth)
    times = {name: [] for name in variants}
    stages = {name: [] for name in variants}
    for _ in range(args.frames):
        for name, enabled in variants.items():
            native.ENABLED = enabled
            start = time.perf_counter()
            enhancer.enhance(frame.color, depth)
            times[name].append((time.perf_counter() - start) * 1e3)
            stages[name].append(enhancer.last_timings)
    native.ENABLED = True

    print(
        f"# {args.size}, quality {args.quality} ({enhancer.describe()}), {args.threads} "
        f"threads, {args.frames} alternating frames each; load average "
        f"{os.getloadavg()[0]:.2f}; process peak RSS {peak_rss_mib():.0f} MiB"
    )
    print("| variant | median ms | p99 ms | fps | pre / network / post ms | x baseline |")
    print("|---|---:|---:|---:|---|---:|")
    baseline = float(np.median(times["tensor ops (baseline)"]))
    for name in variants:
        median = float(np.median(times[name]))
        parts = " / ".join(
            f"{np.median([getattr(t, f'{k}_ms') for t in stages[name]]):.1f}"
            for k in ("preprocess", "inference", "postprocess")
        )
        print(
            f"| {name} | {median:.1f} | {np.percentile(times[name], 99):.1f} | "
            f"{1e3 / median:.1f} | {parts} | {median / baseline:.2f} |"
        )


if __name__ == "__main__":
    main()
