#!/usr/bin/env python3
"""Is ONNX Runtime's static int8 worth shipping on this CPU? A speed probe, not a path
of the package.

FDKN's two streams (the kernel-predicting part, where the arithmetic is) are exported to
ONNX and quantised with ``onnxruntime.quantization.quantize_static`` (QDQ, per-channel
int8 weights, uint8 activations, the 1 x 1 heads left in float32), then timed beside the
float32 graph and beside PyTorch with float32 and bfloat16 streams, all at one size and
thread count in the same run. Calibration data are random inputs: they set the
activation ranges, which change the accuracy, not the speed, so this answers the speed
question only. Measured here (bench/RESULTS.md): int8 is slower than PyTorch's bfloat16
on a CPU with AMX, so the package offers bfloat16 and no int8 path.

    python bench/int8_probe.py [--size 640x480] [--threads 2] [--model fdkn]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dkn_ros.engines.optimise import cpu_computes_bf16, optimise_for_cpu, to_bfloat16  # noqa: E402
from dkn_ros.models import build_model  # noqa: E402
from dkn_ros.models.fdkn import RESAMPLE  # noqa: E402


class Streams(torch.nn.Module):
    """The two streams and their products, at quarter resolution."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, guidance, target):
        w_g, o_g = self.model.guidance_stream(F.pixel_unshuffle(guidance, RESAMPLE))
        w_t, o_t = self.model.target_stream(F.pixel_unshuffle(target, RESAMPLE))
        return (w_g * w_t).float(), (o_g * o_t).float()


def median_ms(run, runs: int) -> float:
    for _ in range(3):
        run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default="fdkn", choices=("fdkn", "fdkn_s"))
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = optimise_for_cpu(build_model(args.model).eval())
    rng = np.random.default_rng(0)
    guidance = rng.random((1, 3, height, width), dtype=np.float32)
    target = rng.random((1, 1, height, width), dtype=np.float32)
    feed = {"guidance": guidance, "target": target}

    class Random(CalibrationDataReader):
        def __init__(self):
            self.left = 4

        def get_next(self):
            if not self.left:
                return None
            self.left -= 1
            return {
                "guidance": rng.random(guidance.shape, dtype=np.float32),
                "target": rng.random(target.shape, dtype=np.float32),
            }

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        fp32_path, int8_path = Path(folder) / "streams.onnx", Path(folder) / "streams_int8.onnx"
        torch.onnx.export(
            Streams(model), (torch.from_numpy(guidance), torch.from_numpy(target)),
            str(fp32_path), input_names=["guidance", "target"], opset_version=17, dynamo=False,
        )  # fmt: skip
        import onnx

        heads = [n.name for n in onnx.load(str(fp32_path)).graph.node if "head" in n.name]
        quantize_static(
            str(fp32_path), str(int8_path), Random(), quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            op_types_to_quantize=["Conv"], nodes_to_exclude=heads, per_channel=True,
        )  # fmt: skip
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        for name, path in (("onnxruntime fp32", fp32_path), ("onnxruntime int8 QDQ", int8_path)):
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            rows.append((name, median_ms(lambda s=session: s.run(None, feed), args.runs)))
            del session
    g, t = torch.from_numpy(guidance), torch.from_numpy(target)
    variants = [("pytorch fp32", Streams(model))]
    if cpu_computes_bf16():
        variants.append(("pytorch bf16", Streams(to_bfloat16(model))))
    for name, module in variants:
        with torch.inference_mode():
            rows.append((name, median_ms(lambda m=module: m(g, t), args.runs)))
    base = rows[0][1]
    print(f"# {args.model} streams at {args.size}, {args.threads} threads, torch "
          f"{torch.__version__}, onnxruntime {ort.__version__}")  # fmt: skip
    print("| streams | median ms | x onnxruntime fp32 |\n|---|---|---|")
    for name, ms in rows:
        print(f"| {name} | {ms:.1f} | {ms / base:.2f} |")


if __name__ == "__main__":
    main()
