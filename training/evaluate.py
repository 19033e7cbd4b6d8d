"""Evaluate trained weights and classic baselines with the data README's protocols.

Datasets and protocols (``../shared/data/README.md``, followed exactly):

* ``middlebury30`` (Lu et al. 2014, 30 pairs, DKN Table 3's "Middlebury" column): crop H
  and W to a multiple of s (from the top-left); LR = PIL bicubic downsampling (float
  ``'F'`` image) of the uint8 depth as float; bicubic upsampling back; RMSE on the
  0..255 scale over all pixels, no border crop; averaged over images. Bicubic must give
  2.28 / 3.98 / 6.37 at x4 / x8 / x16: on the full set the script checks it and fails
  loudly otherwise (it validates the protocol).
* ``nyu_test_samples`` (the NYU v2 test frames shipped with the data, 1000-1002) and
  ``nyu_v2`` (the whole test split, frames 1000-1448, once ``training/prepare_nyu.py``
  has converted the official labeled file):
  per image, the ground truth (metres) is normalised to [0, 1] with its own min and max;
  LR = bicubic down by s, bicubic up; RMSE after cropping 6 pixels from every border,
  de-normalised with (max - min) and reported in cm; averaged over images. Bicubic on
  frame 1000 at x8 gives about 4.3 cm: checked whenever frame 1000 is evaluated at x8.

Rows of the table (one Markdown table per run, columns = the test scales):

* ``bicubic`` and the classic baselines of ``training/baselines.py`` (guided filter,
  joint bilateral filter, fast global smoother), their parameters chosen by a grid
  search on RGB-D-D *training* images at each scale (cached in ``runs/``), never on the
  test set, or given with ``--baseline-params``.
* each weights file twice:
    - ``paper`` protocol, the reproduction row: the network input (the bicubic-upsampled
      LR) is normalised with the ground truth's min and max, as the official DKN code
      does, and the output de-normalised with the same numbers.
    - ``node`` protocol: the real ``dkn_ros.enhancer.Enhancer`` (explicit weights, the
      node's default engine and ``invalid="keep"``) gets the colour image and the LR
      depth as the node would receive it (float32 in the dataset's units, at 1/s of the
      colour size) and does everything itself: normalisation with the LR's own valid
      min and max, hole filling, bicubic upsampling, de-normalisation and the invalid
      mask. A sensor delivers no negative depth, so bicubic's few undershoots below 0
      are clipped to 0, which the node reads as invalid (a handful of pixels on
      Middlebury); the RMSE is then over the pixels the node returns as valid and the
      table marks it.
* the paper's numbers for the same columns: DKN Table 3 (FDKN and DKN, each trained at
  the test scale), Table 9 (DKN trained at one scale, tested at others; NYU only) and
  Table 3's classic rows, which use an older LR protocol (see the notes printed).

Camera benchmark: ``python -m training.evaluate --suite camera [options]`` runs
``training/camera_benchmark.py`` instead (camera LR grids, real pairs and sensor frames,
one table; its options: ``--suite camera --help``).

Examples (every default: ``--help``):

    python -m training.evaluate --model-weights dkn_ros/weights/fdkn_x8.safetensors \
        --dataset middlebury30 --scale 8 --json runs/eval_x8.json --update-card
    python -m training.evaluate --model-weights W4.safetensors W8.safetensors \
        --dataset middlebury30 --scales 4 8 16 --markdown runs/middlebury30.md
    python -m training.evaluate --model-weights dkn_ros/weights/fdkn_x8.safetensors \
        --dataset nyu_test_samples --scales 4 8 16
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch

from dkn_ros.models import card_path, load_model
from dkn_ros.processing import bicubic_resize, depth_span, guidance_from_color, upsample
from training import baselines as bl
from training.data import (
    crop_to_multiple,
    data_dir,
    normalise_depth,
    open_dataset,
    rmse,
    synthesize_lr,
)

DATASETS = ("middlebury30", "nyu_test_samples", "nyu_v2")
NYU_DATASETS = ("nyu_test_samples", "nyu_v2")  # the same protocol
SCALES = (1, 2, 4, 8, 16)  # 1 = same size: the denoising task (needs --noise-std)
NOISE_SEED = 2021  # the noise of test image i: default_rng([NOISE_SEED, i])
NYU_BORDER = 6  # pixels cropped from every border before the NYU RMSE
NYU_TEST_FRAMES = 449  # frames 1000-1448 of the labeled set
PROTOCOLS = {
    "middlebury30": (
        "middlebury30 (Lu et al. 2014, 30 pairs), DKN Table 3 protocol as in the data README: "
        "H, W cropped to a multiple of s; LR = PIL bicubic downsampling of the uint8 depth as "
        "float; bicubic upsampling back; RMSE on the 0..255 scale, no border crop, averaged "
        "over images"
    ),
    "nyu": (
        "NYU v2 test frames (of 1000-1448), DKN Table 3 protocol as in the data README: per "
        "image the ground truth is normalised to [0, 1] by its own min/max; LR = PIL bicubic "
        "down by s, bicubic up; RMSE after cropping 6 px from every border, de-normalised "
        "with (max - min), in cm, averaged over images"
    ),
}
UNITS = {"middlebury30": "RMSE on the 0..255 scale", "nyu": "RMSE in cm"}

# The protocol checks of the data README.
BICUBIC_EXPECTED = {4: 2.28, 8: 3.98, 16: 6.37}  # middlebury30, all 30 images
BICUBIC_TOLERANCE = 0.01
NYU_CHECK = {"frame": "1000", "scale": 8, "cm": 4.3, "tolerance": 0.05}  # "about 4.3 cm"

# DKN Table 3 (each model trained at the test scale on NYU v2).
PAPER = {
    "middlebury30": {
        "fdkn": {4: 1.08, 8: 2.17, 16: 4.50},
        "dkn": {4: 1.23, 8: 2.12, 16: 4.24},
    },
    "nyu": {
        "fdkn": {4: 1.86, 8: 3.58, 16: 6.96},
        "dkn": {4: 1.62, 8: 3.26, 16: 6.51},
    },
}
# Section 4.3: depth denoising on the NYU v2 test split, Gaussian noise of variance 0.005
# on normalised depth (std 0.0707); the paper gives DKN only, and GF / DJF for comparison.
PAPER_DENOISING_NYU = {"noise_std": 0.0707, "dkn": 2.46, "GF [7]": 5.34, "DJF [5]": 2.63}
# DKN Table 9 (NYU v2, cm): trained scale -> test scale -> RMSE.
PAPER_TABLE9_DKN_NYU = {
    4: {4: 1.62, 8: 6.70, 16: 11.24},
    8: {4: 3.93, 8: 3.26, 16: 10.53},
    16: {4: 9.04, 8: 8.61, 16: 6.51},
}
# DKN Table 3's classic rows (numbers taken by the paper from DJF [5] / DJFR [17]); their
# bicubic row does not match PIL-bicubic LR (data README): an older LR protocol.
PAPER_CLASSIC = {
    "middlebury30": {
        "Bicubic": {4: 4.44, 8: 7.58, 16: 11.87},
        "GF [7]": {4: 4.01, 8: 7.22, 16: 11.70},
        "JBU [4]": {4: 2.44, 8: 3.81, 16: 6.13},
        "FBS [15]": {4: 2.58, 8: 4.19, 16: 7.30},
    },
    "nyu": {
        "Bicubic": {4: 8.16, 8: 14.22, 16: 22.32},
        "GF [7]": {4: 7.32, 8: 13.62, 16: 22.03},
        "JBU [4]": {4: 4.07, 8: 8.29, 16: 13.35},
        "FBS [15]": {4: 4.29, 8: 8.94, 16: 14.59},
    },
}
PAPER_PROTOCOL = "network input normalised with the ground truth's min/max (official DKN code)"
NODE_PROTOCOL = (
    "dkn_ros Enhancer (as the node runs it) on the LR depth: normalised with the LR's own "
    "valid min/max, holes filled, invalid='keep'"
)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        "python -m training.evaluate",
        description="Evaluate DKN/FDKN weights and classic baselines with the data README's "
        "protocols (every default is shown).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--model-weights", nargs="*", default=[],
        help="safetensors weights (each with its JSON card); none = baselines only",
    )  # fmt: skip
    parser.add_argument(
        "--suite", default=None, choices=("paper", "camera"),
        help="paper (this evaluation, the default) or camera: the camera benchmark of "
        "training/camera_benchmark.py (its own options: --suite camera --help)",
    )  # fmt: skip
    parser.add_argument("--dataset", default="middlebury30", choices=DATASETS)
    parser.add_argument(
        "--scales", type=int, nargs="+", default=None, choices=SCALES,
        help="test scales, one column each; None = --scale",
    )  # fmt: skip
    parser.add_argument(
        "--scale", type=int, default=8, choices=SCALES, help="one test scale (see --scales)"
    )
    parser.add_argument(
        "--noise-std", type=float, default=0.0,
        help="add Gaussian noise of this std to the normalised LR depth (seeded per image); "
        "with --scales 1 this is the paper's depth denoising (0.0707 = variance 0.005)",
    )  # fmt: skip
    parser.add_argument(
        "--data-dir", default=None,
        help="data directory; None = $DKN_DATA_DIR, else ../shared/data relative to the "
        "repository root",
    )  # fmt: skip
    parser.add_argument(
        "--limit", type=int, default=0,
        help="evaluate only the first N images (0 = all; the Middlebury protocol check and "
        "--update-card need all)",
    )  # fmt: skip
    parser.add_argument(
        "--baselines", nargs="*", default=["gf", "jbf", "fgs"],
        choices=[name for name in bl.BASELINES if name != "bicubic"],
        help="classic baselines beside bicubic (always run)",
    )  # fmt: skip
    parser.add_argument(
        "--baseline-params", nargs="*", default=[], metavar="NAME=V1,V2",
        help="fixed parameters instead of the search, e.g. jbf=21,10,2 gf=4,0.001 "
        "fgs=300,8 (values in the order of the grid's keys; used at every scale)",
    )  # fmt: skip
    parser.add_argument(
        "--jbf-params", default=None, help="d,sigmaColor,sigmaSpace: same as jbf=... in "
        "--baseline-params",
    )  # fmt: skip
    parser.add_argument(
        "--search-images", "--jbf-search-images", type=int, default=bl.DEFAULT_SEARCH_IMAGES,
        help="RGB-D-D training images (evenly spaced) for the baselines' grid search",
    )  # fmt: skip
    parser.add_argument(
        "--baseline-cache", default=str(bl.DEFAULT_CACHE.relative_to(bl.REPO_ROOT)),
        help="JSON file caching the searched parameters ('none' = no cache)",
    )  # fmt: skip
    parser.add_argument(
        "--engine", default="auto", choices=("auto", "torch", "onnx"),
        help="the node protocol's engine (the node's default: auto)",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=2, help="torch and OpenCV threads")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    parser.add_argument(
        "--markdown", default=None, help="also write the table (Markdown) to this file"
    )
    parser.add_argument(
        "--update-card", action="store_true",
        help="write the numbers into each weights' card 'evaluation' field, one entry per "
        "dataset and scale",
    )  # fmt: skip
    parser.add_argument(
        "--no-protocol-check", action="store_true",
        help="skip the bicubic protocol checks (for data that is not the shared datasets)",
    )  # fmt: skip
    return parser


# --------------------------------------------------------------------------- metrics


def nyu_rmse_cm(
    prediction: np.ndarray,
    truth: np.ndarray,
    dmin: float,
    dmax: float,
    border: int = NYU_BORDER,
    mask: np.ndarray | None = None,
) -> float:
    """The NYU metric: RMSE of normalised depth after cropping ``border`` pixels from
    every side, de-normalised with (dmax - dmin) metres and given in cm.

    Args:
        prediction, truth: (H, W) depth normalised to [0, 1] with the truth's dmin, dmax.
        dmin, dmax: the truth's min and max in metres.
        border: pixels cropped from each border (6).
        mask: (H, W) bool, pixels to score (before the crop); None = all.
    """
    window = (slice(border, -border or None), slice(border, -border or None))
    crop_mask = None if mask is None else mask[window]
    return rmse(prediction[window], truth[window], crop_mask) * (dmax - dmin) * 100.0


@dataclass
class TestImage:
    """One test image prepared with its dataset's protocol at one scale."""

    name: str
    rgb: np.ndarray  # (H, W, 3) uint8
    gt: np.ndarray  # (H, W) float32 ground truth in the dataset's units (0..255 or metres)
    lr: np.ndarray  # (H/s, W/s) float32 LR depth, same units: what the node receives
    target: np.ndarray  # (H, W) float32 bicubic-upsampled LR normalised with GT min/max
    lo: float  # the ground truth's min and max (the paper protocol's normalisation)
    hi: float

    @property
    def span(self) -> float:
        return depth_span(self.lo, self.hi)

    def denormalise(self, normalised: np.ndarray) -> np.ndarray:
        """Normalised (GT min/max) -> the dataset's units, float64."""
        return np.asarray(normalised, dtype=np.float64) * self.span + self.lo

    @property
    def up(self) -> np.ndarray:
        """The bicubic-upsampled LR depth in the dataset's units."""
        return self.denormalise(self.target)


def family(dataset: str) -> str:
    """``middlebury30`` or ``nyu`` (every NYU dataset has the NYU protocol)."""
    return "nyu" if dataset in NYU_DATASETS else dataset


@dataclass(frozen=True)
class Item:
    """One test image: its name and how to load it (RGB uint8, depth)."""

    name: str
    load: Callable[[], tuple[np.ndarray, np.ndarray]]


def dataset_items(dataset: str, root) -> list[Item]:
    """The test images of ``dataset`` (its ``test`` split through the dataset interface,
    ``training.data.open_dataset``): ``middlebury30``, ``nyu_test_samples`` (the NYU
    frames shipped with the data) or ``nyu_v2`` (the test split, frames 1000-1448, of
    NYU v2 converted by ``training/prepare_nyu.py``)."""
    test = open_dataset(dataset, "test", root)

    def load(i: int) -> tuple[np.ndarray, np.ndarray]:
        sample = test[i]
        return sample.rgb, sample.depth

    return [Item(name, partial(load, i)) for i, name in enumerate(test.names)]


def load_sample(
    dataset: str, item: Item, scale: int, noise_std: float = 0.0, index: int = 0
) -> TestImage:
    """Load one image and synthesise its LR input with the dataset's protocol; with
    ``noise_std``, Gaussian noise of that std (on the GT-normalised scale, drawn from
    ``default_rng([NOISE_SEED, index])``) is added to the LR depth before upsampling."""
    rgb, depth = item.load()
    if dataset == "middlebury30":
        gt = crop_to_multiple(depth, scale).astype(np.float32)
        lr, up = synthesize_lr(gt, scale)
        lo, hi = float(gt.min()), float(gt.max())
        span = hi - lo if hi > lo else 1.0
        target = ((up.astype(np.float64) - lo) / span).astype(np.float32)
    else:  # NYU: normalise the ground truth first, then synthesise (data README)
        gt = crop_to_multiple(np.asarray(depth, dtype=np.float32), scale)
        normalised, lo, hi = normalise_depth(gt)
        lr_n, target = synthesize_lr(normalised, scale)
        span = hi - lo if hi > lo else 1.0
        lr = (lr_n.astype(np.float64) * span + lo).astype(np.float32)
    if noise_std > 0:
        rng = np.random.default_rng([NOISE_SEED, index])
        lr_n = (lr.astype(np.float64) - lo) / span + rng.standard_normal(lr.shape) * noise_std
        lr = (lr_n * span + lo).astype(np.float32)
        lr_n = lr_n.astype(np.float32)
        target = lr_n if scale == 1 else bicubic_resize(lr_n, gt.shape)
    rgb = np.ascontiguousarray(crop_to_multiple(rgb, scale))
    return TestImage(item.name, rgb, gt, lr, target, lo, hi)


def score(dataset: str, prediction: np.ndarray, sample: TestImage, mask=None) -> float:
    """The dataset's metric of a prediction in the dataset's units (NaN = invalid is
    allowed only where ``mask`` is False)."""
    if dataset == "middlebury30":
        return rmse(prediction, sample.gt, mask)
    normalised = (np.asarray(prediction, dtype=np.float64) - sample.lo) / sample.span
    truth = (sample.gt.astype(np.float64) - sample.lo) / sample.span
    return nyu_rmse_cm(normalised, truth, sample.lo, sample.hi, NYU_BORDER, mask)


# --------------------------------------------------------------------------- models


@torch.no_grad()
def run_model(model: torch.nn.Module, rgb: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The network on (H, W, 3) uint8 guidance and an (H, W) normalised target ->
    (H, W) normalised output, float64."""
    guidance = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255.0
    out = model(guidance, torch.from_numpy(np.ascontiguousarray(target))[None, None])
    return out[0, 0].numpy().astype(np.float64)


def paper_target(sample: TestImage, weights: Weights) -> np.ndarray:
    """The network input of the paper protocol for these weights: the LR normalised with
    the ground truth's min and max, upsampled as the weights were trained to see it
    (the card's ``input_upsampling``; bicubic for the paper's weights, i.e.
    ``sample.target``)."""
    if weights.upsampling == "bicubic":
        return sample.target
    lr = ((sample.lr.astype(np.float64) - sample.lo) / sample.span).astype(np.float32)
    guidance = guidance_from_color(sample.rgb)
    return upsample(lr, sample.gt.shape, weights.upsampling, guidance)


def node_input(sample: TestImage) -> np.ndarray:
    """The LR depth as the node receives it: float32, nothing below 0 (a sensor's 0 =
    invalid)."""
    return np.maximum(sample.lr, np.float32(0.0)).astype(np.float32)


def trained_scales(weights: Path) -> list[int]:
    """The scales a weights file was trained for: the card's ``scales`` list when it has
    one (a multi-scale model), else its ``scale``."""
    data = json.loads(card_path(weights).read_text())
    scales = data.get("scales") or [data.get("scale")]
    return [int(s) for s in scales if s is not None]


def trained_text(scales: list[int]) -> str:
    if not scales:
        return "?"
    if len(scales) == 1:
        return f"x{scales[0]}"
    return "x" + "/".join(str(s) for s in sorted(scales))


def paper_number(dataset: str, model: str, trained: list[int], test: int):
    """(number, source) from the paper for a model trained at ``trained`` tested at
    ``test``, or (None, reason)."""
    paper = PAPER[family(dataset)]
    if trained == [test] and test in paper.get(model, {}):
        return paper[model][test], "Table 3"
    if family(dataset) == "nyu" and model == "dkn" and len(trained) == 1:
        value = PAPER_TABLE9_DKN_NYU.get(trained[0], {}).get(test)
        if value is not None:
            return value, "Table 9"
    return None, "not in the paper"


# --------------------------------------------------------------------------- main


@dataclass
class Weights:
    path: Path
    model: torch.nn.Module
    name: str  # the card's model name
    trained: list[int]
    enhancer: object
    upsampling: str = "bicubic"  # the card's input_upsampling


def baseline_settings(args: argparse.Namespace, scales: list[int], root) -> dict:
    """scale -> baseline name -> (params, text saying where they come from, search
    result or None)."""
    given = {}
    for item in [*args.baseline_params, *([f"jbf={args.jbf_params}"] if args.jbf_params else [])]:
        name, _, values = item.partition("=")
        if name not in bl.BASELINES or name == "bicubic":
            raise SystemExit(f"--baseline-params {item!r}: unknown baseline {name!r}")
        given[name] = bl.parse_params(name, values)
    settings: dict[int, dict] = {}
    to_search = [name for name in args.baselines if name not in given]
    pairs = bl.tuning_pairs(root, args.search_images) if to_search else []
    cache = None if args.baseline_cache.lower() == "none" else Path(args.baseline_cache)
    for s in scales:
        settings[s] = {}
        for name in args.baselines:
            if name in given:
                settings[s][name] = (given[name], "given with --baseline-params", None)
        if to_search:
            start = time.perf_counter()
            found = bl.tuned_params(to_search, s, pairs, cache, args.noise_std)
            for name, result in found.items():
                settings[s][name] = (result.params, result.describe(), result)
            if not all(r.cached for r in found.values()):
                print(
                    f"x{s}: baseline parameters searched on {len(pairs)} RGB-D-D training "
                    f"images in {time.perf_counter() - start:.0f} s",
                    file=sys.stderr,
                )
    return settings


def evaluate_scale(
    dataset: str,
    s: int,
    items: list[Item],
    params: dict[str, dict],
    models: list[Weights],
    noise_std: float = 0.0,
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Every row at one test scale: (row -> RMSE per image, weights -> fraction of pixels
    the node returned as valid). Rows: ``bicubic``, each baseline of ``params`` (name ->
    parameters), ``<weights>:paper`` and ``<weights>:node``."""
    rows: dict[str, list[float]] = {"bicubic": [], **{name: [] for name in params}}
    for w in models:
        rows[f"{w.path}:paper"], rows[f"{w.path}:node"] = [], []
    counts = {str(w.path): [0, 0] for w in models}
    for index, item in enumerate(items):
        sample = load_sample(dataset, item, s, noise_std, index)
        rows["bicubic"].append(score(dataset, sample.up, sample))
        for name, values in params.items():
            # Tuned and applied on normalised depth (affine-equivariant, see baselines.py).
            out = bl.BASELINES[name](sample.rgb, sample.target, values)
            rows[name].append(score(dataset, sample.denormalise(out), sample))
        for w in models:
            out = sample.denormalise(run_model(w.model, sample.rgb, paper_target(sample, w)))
            rows[f"{w.path}:paper"].append(score(dataset, out, sample))
            node = w.enhancer.enhance(sample.rgb, node_input(sample))
            valid = np.isfinite(node)
            rows[f"{w.path}:node"].append(score(dataset, node, sample, valid))
            counts[str(w.path)][0] += int(valid.sum())
            counts[str(w.path)][1] += valid.size
    return rows, {key: valid / total for key, (valid, total) in counts.items()}


def main(args: argparse.Namespace) -> dict:
    command = getattr(args, "command", None) or shlex.join(
        ["python", "-m", "training.evaluate", *canonical_argv(args)]
    )
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    dataset = args.dataset
    scales = list(dict.fromkeys(args.scales or [args.scale]))
    if 1 in scales and not args.noise_std > 0:
        raise SystemExit("--scales 1 (same size) needs --noise-std > 0: the denoising task")
    root = data_dir(args.data_dir)
    items = dataset_items(dataset, root)
    full = not args.limit or args.limit >= len(items)
    if not full:
        items = items[: args.limit]
    if args.update_card and not full:
        raise SystemExit("--update-card needs the whole dataset (drop --limit)")
    settings = baseline_settings(args, scales, root)

    from dkn_ros.enhancer import Enhancer

    models = []
    for path in map(Path, args.model_weights):
        model, card = load_model(path)
        enhancer = Enhancer(weights=path, engine=args.engine, invalid="keep")
        models.append(
            Weights(path, model, card.model, trained_scales(path), enhancer, card.input_upsampling)
        )

    per_image: dict[str, dict[str, list[float]]] = {}
    valid_fraction: dict[str, dict[str, float]] = {}
    checks: dict[str, str] = {}
    started = time.perf_counter()
    # Explicit weights at another scale than their card's make the Enhancer warn: expected.
    enhancer_log = logging.getLogger("dkn_ros.enhancer")
    quiet = logging.Filter("nothing")  # passes only records of a logger named "nothing"
    enhancer_log.addFilter(quiet)
    try:
        for s in scales:
            params = {name: settings[s][name][0] for name in args.baselines}
            rows, fractions = evaluate_scale(dataset, s, items, params, models, args.noise_std)
            per_image[f"x{s}"], valid_fraction[f"x{s}"] = rows, fractions
            print(
                f"x{s}: {len(items)} images done ({time.perf_counter() - started:.0f} s so far)",
                file=sys.stderr,
            )
            checks[f"x{s}"] = protocol_check(args, dataset, s, full, items, rows["bicubic"])
    finally:
        enhancer_log.removeFilter(quiet)
    mean = {
        scale: {key: float(np.mean(values)) for key, values in rows.items()}
        for scale, rows in per_image.items()
    }
    results = {
        "dataset": dataset,
        "protocol": PROTOCOLS[family(dataset)]
        + (
            f"; then Gaussian noise of std {args.noise_std:g} added to the GT-normalised LR "
            "depth (seeded per image; scale 1 = same size, the denoising task)"
            if args.noise_std
            else ""
        ),
        "noise_std": args.noise_std,
        "unit": UNITS[family(dataset)],
        "command": command,
        "images": len(items),
        "image_names": [p.name for p in items],
        "scales": scales,
        "protocol_check": checks,
        "baselines": {
            f"x{s}": {
                "bicubic": {"rmse": mean[f"x{s}"]["bicubic"]},
                **{
                    name: {
                        "rmse": mean[f"x{s}"][name],
                        "params": settings[s][name][0],
                        "chosen_by": settings[s][name][1],
                    }
                    for name in args.baselines
                },
            }
            for s in scales
        },
        "models": [
            {
                "weights": str(w.path),
                "model": w.name,
                "trained_scales": w.trained,
                "node_engine": w.enhancer.engine_description,
                "results": {
                    f"x{s}": {
                        "rmse_paper_protocol": mean[f"x{s}"][f"{w.path}:paper"],
                        "rmse_node_protocol": mean[f"x{s}"][f"{w.path}:node"],
                        "node_valid_fraction": valid_fraction[f"x{s}"][str(w.path)],
                        "paper": paper_number(dataset, w.name, w.trained, s)[0],
                        "paper_source": paper_number(dataset, w.name, w.trained, s)[1],
                    }
                    for s in scales
                },
            }
            for w in models
        ],
        "per_image": {
            scale: {key: [round(v, 4) for v in values] for key, values in rows.items()}
            for scale, rows in per_image.items()
        },
    }
    results["table"] = format_table(results, args.baselines)
    print()
    print(results["table"])
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(results["table"])
        print(f"wrote {args.markdown}")
    if args.update_card:
        for entry in results["models"]:
            update_card(Path(entry["weights"]), entry, results)
    return results


def protocol_check(args, dataset: str, s: int, full: bool, items, bicubic: list[float]) -> str:
    """Check bicubic against the data README; raise SystemExit when it is off."""
    if args.no_protocol_check:
        return "skipped (--no-protocol-check)"
    if args.noise_std:
        return "none (noisy input: the reference values are for bicubic LR)"
    if dataset == "middlebury30":
        if s not in BICUBIC_EXPECTED:
            return f"none (no reference value at x{s})"
        if not full:
            return "none (needs all images; --limit given)"
        value, expected, tolerance = float(np.mean(bicubic)), BICUBIC_EXPECTED[s], BICUBIC_TOLERANCE
        what = f"bicubic {value:.3f} on {len(items)} images at x{s}"
    else:
        names = [p.name for p in items]
        if s != NYU_CHECK["scale"] or NYU_CHECK["frame"] not in names:
            return f"none (needs frame {NYU_CHECK['frame']} at x{NYU_CHECK['scale']})"
        value = bicubic[names.index(NYU_CHECK["frame"])]
        expected, tolerance = NYU_CHECK["cm"], NYU_CHECK["tolerance"]
        what = f"bicubic {value:.3f} cm on frame {NYU_CHECK['frame']} at x{s}"
    if abs(value - expected) > tolerance:
        raise SystemExit(
            f"PROTOCOL CHECK FAILED: {what}, expected {expected} +- {tolerance} (data README); "
            "the resampler or the protocol is off"
        )
    return f"passed: {what}, expected {expected} +- {tolerance}"


# --------------------------------------------------------------------------- output


def _cell(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_table(results: dict, names: list[str]) -> str:
    """The run's results as one Markdown table with notes (paste-able as it is)."""
    dataset, scales = results["dataset"], results["scales"]
    columns = [f"x{s}" for s in scales]
    lines = [
        f"**{dataset}**, {results['images']} images, {results['unit']} (lower is better). "
        f"Protocol: {results['protocol']}.",
        "",
        "| method | trained for | protocol | " + " | ".join(columns) + " |",
        "|---|---|---|" + "---:|" * len(columns),
    ]

    def row(method: str, trained: str, protocol: str, cells: list[str]) -> None:
        lines.append(f"| {method} | {trained} | {protocol} | " + " | ".join(cells) + " |")

    base = results["baselines"]
    bicubic = [_cell(base[c]["bicubic"]["rmse"]) for c in columns]
    if results["noise_std"]:
        row("input (noisy; bicubic-upsampled when s > 1)", "-", "data README protocol + noise",
            bicubic)  # fmt: skip
    else:
        row("bicubic", "-", "data README protocol", bicubic)
    for name in names:
        row(
            bl.BASELINES[name].title,
            "-",
            "parameters tuned on RGB-D-D training images (notes)",
            [_cell(base[c][name]["rmse"]) for c in columns],
        )
    marked = False
    for entry in results["models"]:
        label = f"`{Path(entry['weights']).name}` ({entry['model'].upper()})"
        trained = trained_text(entry["trained_scales"])
        res = entry["results"]
        row(label, trained, "paper (GT min/max)",
            [_cell(res[c]["rmse_paper_protocol"]) for c in columns])  # fmt: skip
        cells = []
        for c in columns:
            text = _cell(res[c]["rmse_node_protocol"])
            if res[c]["node_valid_fraction"] < 1.0:
                text, marked = text + "*", True
            cells.append(text)
        row(label, trained, "node (dkn_ros Enhancer)", cells)
    paper = PAPER[family(dataset)]
    for model in ("fdkn", "dkn"):
        row(f"{model.upper()}, paper", "each test scale", "DKN Table 3 (NYU v2-trained)",
            [_cell(paper[model].get(s)) for s in scales])  # fmt: skip
    if (
        family(dataset) == "nyu"
        and 1 in scales
        and (results["noise_std"] == PAPER_DENOISING_NYU["noise_std"])
    ):
        for method in ("dkn", "GF [7]", "DJF [5]"):
            name = "DKN" if method == "dkn" else method
            cells = [_cell(PAPER_DENOISING_NYU[method] if s == 1 else None) for s in scales]
            row(f"{name}, paper", "denoising", "section 4.3 (NYU v2, variance 0.005)", cells)
    if family(dataset) == "nyu" and (len(scales) > 1 or any(
        e["model"] == "dkn" for e in results["models"]
    )):  # fmt: skip
        for trained, values in PAPER_TABLE9_DKN_NYU.items():
            row("DKN, paper", f"x{trained}", "DKN Table 9", [_cell(values.get(s)) for s in scales])
    for method, values in PAPER_CLASSIC[family(dataset)].items():
        row(f"{method}, paper", "-", "DKN Table 3, older LR protocol (notes)",
            [_cell(values.get(s)) for s in scales])  # fmt: skip

    lines += ["", "Notes:", ""]
    lines.append(
        "- *paper (GT min/max)*: " + PAPER_PROTOCOL + ". *node*: " + NODE_PROTOCOL
        + f"; engine {', '.join(sorted({str(e['node_engine']) for e in results['models']}))}."
        if results["models"] else "- No weights given: baselines only."
    )  # fmt: skip
    if marked:
        fractions = [
            f"{Path(e['weights']).name} {c} {100 * e['results'][c]['node_valid_fraction']:.3f} %"
            for e in results["models"]
            for c in columns
            if e["results"][c]["node_valid_fraction"] < 1.0
        ]
        lines.append(
            "- \\* over the pixels the node returns as valid (bicubic LR undershoots below 0 "
            "read as invalid): " + "; ".join(fractions) + "."
        )
    for name in names:
        chosen = []
        for c in columns:
            entry = base[c][name]
            chosen.append(
                f"{c}: {bl.BASELINES[name].describe(entry['params'])} ({entry['chosen_by']})"
            )
        lines.append(f"- {bl.BASELINES[name].title}: " + "; ".join(chosen) + ".")
    lines.append(
        "- Paper rows: DKN Table 3 / Table 9, models trained on 1000 NYU v2 images. Table 3's "
        "classic rows are the paper's numbers from DJF/DJFR with an older LR protocol: its "
        "Bicubic row does not match PIL-bicubic LR (on middlebury30 the data README finds "
        "4.39 / 7.74 / 11.98 with nearest-downsampled LR), so compare them with each other, "
        "not with the rows above. GF [7] is the same method as our guided filter; JBU and "
        "FBS differ from our JBF (on the bicubic-upsampled depth) and FGS."
    )
    if family(dataset) == "nyu" and results["images"] < NYU_TEST_FRAMES:
        lines.append(
            f"- NYU: {results['images']} of the {NYU_TEST_FRAMES} test frames (the paper "
            "averages all of them); with few frames the numbers are indicative only."
        )
    lines.append(
        "- Protocol check: "
        + "; ".join(f"{c} {text}" for c, text in results["protocol_check"].items())
        + "."
    )
    lines.append(f"- Command: `{results['command']}`")
    return "\n".join(lines) + "\n"


def update_card(weights: Path, entry: dict, results: dict) -> None:
    """Write this run's numbers into the card beside ``weights`` (one entry per dataset
    and scale), keeping every other key of the card as it is."""
    path = card_path(weights)
    card = json.loads(path.read_text())
    evaluation = card.setdefault("evaluation", {})
    for s in results["scales"]:
        c = f"x{s}"
        res = entry["results"][c]
        base = results["baselines"][c]
        evaluation[f"{results['dataset']}_{c}"] = {
            "protocol": results["protocol"],
            "unit": results["unit"],
            "rmse_paper_protocol": round(res["rmse_paper_protocol"], 4),
            "paper_protocol": PAPER_PROTOCOL,
            "rmse_node_protocol": round(res["rmse_node_protocol"], 4),
            "node_protocol": NODE_PROTOCOL,
            "node_valid_fraction": round(res["node_valid_fraction"], 6),
            "bicubic": round(base["bicubic"]["rmse"], 4),
            "baselines": {
                name: {"rmse": round(value["rmse"], 4), "params": value["params"]}
                for name, value in base.items()
                if name != "bicubic"
            },
            "paper": res["paper"],
            "paper_source": res["paper_source"],
            "images": results["images"],
            "command": results["command"],
        }
    path.write_text(json.dumps(card, indent=2) + "\n")
    print(f"updated {path}")


def canonical_argv(args: argparse.Namespace) -> list[str]:
    """The options of ``args`` as a command line (when the exact one is not known)."""
    argv: list[str] = []
    for action in get_args_parser()._actions:
        if not action.option_strings or action.dest == "help":
            continue
        value = getattr(args, action.dest, None)
        if isinstance(action, argparse._StoreTrueAction):
            if value:
                argv.append(action.option_strings[0])
        elif isinstance(value, list):
            if value:
                argv += [action.option_strings[0], *map(str, value)]
        elif value is not None:
            argv += [action.option_strings[0], str(value)]
    return argv


def split_suite(argv: list[str]) -> tuple[str, list[str]]:
    """(suite, the other arguments): ``--suite camera`` / ``--suite=camera`` anywhere."""
    suite, rest, i = "paper", [], 0
    while i < len(argv):
        if argv[i] == "--suite" and i + 1 < len(argv):
            suite, i = argv[i + 1], i + 2
            continue
        if argv[i].startswith("--suite="):
            suite = argv[i].split("=", 1)[1]
        else:
            rest.append(argv[i])
        i += 1
    return suite, rest


def cli(argv: list[str] | None = None):
    """``python -m training.evaluate``: the paper evaluation, or with ``--suite camera``
    the camera benchmark (``training.camera_benchmark``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    suite, rest = split_suite(argv)
    if suite == "camera":
        from training import camera_benchmark

        return camera_benchmark.run(rest)
    parsed = get_args_parser().parse_args(argv)
    parsed.command = shlex.join(["python", "-m", "training.evaluate", *argv])
    return main(parsed)


if __name__ == "__main__":
    cli()
