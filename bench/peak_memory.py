#!/usr/bin/env python3
"""Memory after one large frame: does the process keep its peak?

    python bench/peak_memory.py [--engine onnx] [--big 1920x1080]

Enhances 640 x 480 frames, then one large frame, then 640 x 480 frames again, and prints
the resident memory (VmRSS), milliseconds and minor page faults per frame at each stage.
The CPU engines keep a frame's buffers for reuse (glibc thresholds, ONNX Runtime's
arena) and give them back on the first frame smaller than an earlier one
(``dkn_ros.engines.optimise.ShrinkAfterPeak``). Frames are rendered by
``dkn_ros.synthetic`` with uint16 depth at 1/8; the package is imported from the
current directory's checkout.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path


def rss_mb() -> float:
    """Resident memory of this process, MB (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", default="onnx", help="onnx or torch (default onnx)")
    parser.add_argument("--big", default="1920x1080", help="the large frame, WxH")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path.cwd()))  # the checkout to measure
    from dkn_ros.enhancer import Enhancer
    from dkn_ros.synthetic import KinectDegradation, degrade_depth, render_frame

    def frame(width: int, height: int):
        rendered = render_frame(0.0, width=width, height=height)
        return rendered.color, degrade_depth(rendered.depth, KinectDegradation(scale=8))

    enhancer = Enhancer(engine=args.engine)

    def run(pair, n: int, label: str) -> None:
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        tick = time.perf_counter()
        for _ in range(n):
            enhancer.enhance(*pair)
        ms = (time.perf_counter() - tick) / n * 1e3
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / n
        print(f"{label:<24} {ms:7.0f} ms/frame {faults:7.0f} faults/frame  RSS {rss_mb():5.0f} MB")

    small = frame(640, 480)
    width, height = (int(v) for v in args.big.split("x"))
    run(small, 3, "640x480 warm-up")
    run(small, 5, "640x480")
    run(frame(width, height), 1, f"{args.big} (one frame)")
    run(small, 1, "640x480, first after")
    run(small, 3, "640x480, next 3")
    run(small, 5, "640x480, then 5")
    print(enhancer.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
