#!/usr/bin/env python3
"""A whole process that enhances N frames: for timing one checkout against another from
outside (wall, CPU and system seconds, peak memory), e.g. with GNU time::

    /usr/bin/time -v python bench/enhance_frames.py --frames 30            # this checkout
    (cd ../old && /usr/bin/time -v python /path/to/bench/enhance_frames.py --frames 30)

Run the two alternately several times and compare medians. The frame is a rendered
Kinect-like 640 x 480 colour image with uint16 depth at 1/8 (``dkn_ros.synthetic``),
enhanced with the shipped ``fdkn_x8`` weights; the package is imported from the current
directory's checkout. It prints the minor page faults per frame: PyTorch's CPU
allocator does not cache, so how often the network's large buffers are faulted back in
depends on glibc's malloc thresholds, which the CPU engines raise unless told not to
(``--no-tune-malloc``: engine option ``tune_malloc=False``; checkouts before that option
never raised them).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--size", default="640x480", help="colour WxH (default 640x480)")
    parser.add_argument("--engine", default="torch", help="torch or onnx (default torch)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--no-tune-malloc", action="store_true", help="leave glibc's malloc thresholds alone"
    )
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path.cwd()))  # the checkout to time
    import torch

    torch.set_num_threads(args.threads)
    from dkn_ros.enhancer import Enhancer
    from dkn_ros.synthetic import KinectDegradation, degrade_depth, render_frame

    width, height = (int(v) for v in args.size.split("x"))
    frame = render_frame(t=0.0, width=width, height=height, seed=0)
    depth = degrade_depth(frame.depth, KinectDegradation(scale=8), seed=0)
    options = {"threads": args.threads} if args.engine == "onnx" else {}
    if args.no_tune_malloc:
        options["tune_malloc"] = False
    enhancer = Enhancer(engine=args.engine, scale=8, engine_options=options)
    enhancer.enhance(frame.color, depth)  # load, export, warm up
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    for _ in range(args.frames):
        enhancer.enhance(frame.color, depth)
    seconds = time.perf_counter() - start
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    print(
        f"{args.frames} frames {args.size} {enhancer.describe()}: "
        f"{seconds / args.frames * 1e3:.1f} ms/frame, {faults / args.frames:.0f} minor faults/frame"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
