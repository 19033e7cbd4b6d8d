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
import time

import numpy as np
from latency import enhance_runner, vm_hwm_mib  # bench/latency.py: the same whole frames

KINDS = {"fast": "fast", "full": "torch", "full-bf16": "full-bf16"}  # -> enhance_runner's


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quality", default="fast", choices=("fast", "full", "full-bf16"))
    parser.add_argument("--frames", type=int, default=40, help="timed frames of each")
    parser.add_argument("--size", default="640x480", help="WxH")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args(argv)

    from dkn_ros import native

    width, height = (int(v) for v in args.size.split("x"))
    run = enhance_runner(KINDS[args.quality], height, width, args.threads, None)
    variants = {"C kernels": True, "tensor ops (baseline)": False}
    for enabled in variants.values():  # warm-up: loads, compiles, first-touch
        native.ENABLED = enabled
        for _ in range(3):
            run()
    times = {name: [] for name in variants}
    stages = {name: [] for name in variants}
    for _ in range(args.frames):
        for name, enabled in variants.items():
            native.ENABLED = enabled
            start = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - start) * 1e3)
            stages[name].append(run.stages[-1])
    native.ENABLED = True

    print(
        f"# {args.size}, quality {args.quality} (bench/latency.py's enhance-"
        f"{KINDS[args.quality]}), {args.threads} threads, {args.frames} alternating frames "
        f"each; load average {os.getloadavg()[0]:.2f}; process peak RSS {vm_hwm_mib():.0f} MiB"
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
