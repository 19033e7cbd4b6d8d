"""The camera benchmark: one table of every method on the depth real cameras deliver.

    python -m training.evaluate --suite camera --markdown runs/camera.md --json runs/camera.json
    python -m training.evaluate --suite camera --datasets middlebury30 --grids point \\
        --scales 8 --images 2 --no-baselines             # a quick look

(``python -m training.camera_benchmark ...`` is the same.) The paper's evaluation
(``python -m training.evaluate`` without ``--suite``) stays the reproduction of DKN's
tables; this one asks what a user of the ROS node gets from a real camera.

Rows: dataset x degradation x scale
    Degradations (LR grids of ``training.sensors.downsample(depth, factor, grid,
    phase=(0, 0))``, data README "Camera protocols"):

    ``bicubic``  the paper's protocol (PIL bicubic, anti-aliased);
    ``point``    the ``nearest`` grid at the centre phase: ``d[s//2::s, s//2::s]`` for an
                 integer s (a native low-res sensor, driver decimation);
    ``median``   the median of each s x s block (RealSense decimation filter);
    ``area``     the mean of each block (pixel binning);
    ``real``     rgbdd_real_lr only: the phone's own 144 x 192 depth under the 384 x 512
                 ToF ground truth (ratio 2.67), the only true real pairs;
    ``kinect_v1`` same size (x1): ``training.sensors.simulate(depth_m,
                 load_profile("kinect_v1"), 1.0, rng, rgb=rgb)`` on datasets with metric
                 ground truth (nyu_test_samples, synthetic), seeded per image; scored
                 only where the ground truth is inside the profile's working range
                 (``out_of_range``, 0.5-4.5 m: beyond it the camera returns nothing and
                 no method can know the depth; synthetic's far walls reach 5.2 m).

    Scales: 2, 4, 8, 16 and a non-integer one (default 2.67 = 8/3, the real pairs'
    ratio). A scale is read as a fraction p/q (``2.67`` -> 8/3, ``4.5`` -> 9/2, at most
    16 in the denominator); H and W are first cropped from the top-left to a multiple of
    p so that the LR grid is exactly (H q / p) x (W q / p), keeping the colour aspect.

Datasets and what is scored (errors in each dataset's report unit)
    ``middlebury30``      0..255 units; all pixels (data README protocol).
    ``nyu_test_samples``  cm; all pixels after cropping 6 px from every border.
    ``synthetic``         mm; val split of ``training.data.open_dataset("synthetic",
                          "val")`` (exact metric depth; first 6 scenes by default).
    ``rgbd_sequence``     mm; *self-consistency*: the sensor's own full-resolution depth
                          (with its holes) is the ground truth, the LR is sampled from it;
                          valid ground-truth pixels only. The bicubic grid needs hole-free
                          depth, so these datasets have point / median / area rows.
    ``sensor_frames``     mm; the same self-consistency on one frame each of NYU v2 raw
                          Kinect (11-bit counts, byte-swapped in the file, converted with the
                          NYU toolbox formula z = 351.3 / (1092.5 - raw) m, raw 2047 =
                          invalid; the raw depth is not registered to the colour image),
                          SUN RGB-D (uint16 bits rotated right by 3 = mm) and TUM (uint16 /
                          5000 = m, 0 = hole).
    ``rgbdd_real_lr``     mm; the real LR -> HR pairs, valid ground-truth pixels.

Columns
    ``nearest`` and ``bicubic`` upsampling of the LR depth, the joint bilateral filter,
    guided filter and fast global smoother of ``training/baselines.py`` (on the bicubic
    upsampling; their parameters grid-searched *per degradation* on RGB-D-D training
    images, never on test images, and cached in ``runs/baseline_params.json`` under a key
    with the degradation's name; the ``real`` row uses the parameters of ``area`` x2.67:
    a ToF pixel integrates its footprint), then each weights file of ``--model-weights``
    and ``default``: ``dkn_ros.enhancer.Enhancer(invalid="fill")`` without a weights
    argument, i.e. the shipped weights a user gets for that input.

    Every method sees the same LR depth, the one a camera delivers: the networks get it
    through the real ``Enhancer.enhance`` exactly as the node calls it: colour uint8 and
    the LR depth at LR size, as uint16 millimetres where the sensor's own integer mm
    values are passed on unchanged (point rows and the real row of rgbd_sequence,
    sensor_frames' SUN frame and rgbdd_real_lr), else float32 metres (middlebury30's
    0..255 values are passed as they are, as ``training.evaluate``'s node protocol does)
    with NaN where the LR pixel is invalid (not finite or <= 0). The classic columns get
    the same values back in the dataset's unit with the holes filled by the node's own rule
    (nearest valid LR pixel, ``dkn_ros.processing.fill_holes``) before upsampling; the
    filters run on depth normalised with the LR's valid min/max (they are affine-
    equivariant, so this only fixes their parameters' scale). One exception: on
    middlebury30, where 0 is a value and bicubic LR undershoots below it beside its few 0
    pixels, the classic columns take the LR as computed (the data README protocol,
    exactly), while the Enhancer reads those <= 0 LR pixels as invalid, as any node
    input (about 0.005 % of the pixels at x8).

    ``invalid="fill"``: every output pixel gets a value, so every column is scored on the
    same pixels (the valid ground truth) and the hole metric exists for the networks
    too. (``invalid="keep"`` gives the same values on the pixels it keeps.)

    An explicit weights file runs on the rows whose scale is within a factor 1.5 of a
    scale its card was trained for (``scales`` or ``scale``; denoising = 1): the x2 weights
    at x2 and x2.67, the multi-scale ones everywhere but x1; other cells print ``-`` (run
    them with ``--all-cells``). Where the default picks the same file as a column, the
    output is computed once (same weights, engine and input). A cell that raises (the
    Enhancer may refuse a non-integer ratio) prints ``n/a (reason)`` instead of failing
    the table.

Metrics (per image, then averaged over images; cells read ``overall / edge`` and
``/ h hole`` on rows with holes)
    * overall RMSE over the scored pixels;
    * edge RMSE over the *edge band*: scored pixels within 3 px (Euclidean) of a ground-
      truth depth edge, where an edge pixel is either pixel of a valid 4-neighbour pair
      whose depth jumps by more than max(5 % of the larger of the two, a floor of 2 units
      on middlebury30's 0..255 scale, 10 mm on metric data) (:func:`edge_pixels`); the
      relative jump is the same in depth and in disparity, so one rule fits both;
    * hole RMSE over the scored pixels whose covering LR pixel (the node's nearest-LR-
      pixel rule) is invalid, on rows where the degradation leaves holes (the table shows
      it where they cover at least 0.1 % of the pixels; the JSON always has it).

Checks and targets
    On middlebury30 with all 30 images the bicubic column must reproduce the data
    README (point x8 4.62, median x8 4.38, bicubic x8 3.98, bicubic x4 2.28 and x16 6.37,
    +- 0.01) and on NYU frame 1000 bicubic x8 about 4.3 cm; the run exits with status 1
    after writing its files when one is off. The issue's targets (default column) are
    printed as PASS / MISS lines.

Everything is seeded (kinect_v1 noise: ``default_rng([SEED, crc32(dataset), image])``;
search images: ``training.baselines.SEARCH_NOISE_SEED``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shlex
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from scipy import ndimage

from dkn_ros.processing import bicubic_resize, fill_holes, nearest_resize
from training import baselines as bl
from training import sensors
from training.data import crop_to_multiple, data_dir, load_rgb, missing_reason, open_dataset

DATASETS = (
    "middlebury30",
    "nyu_test_samples",
    "synthetic",
    "rgbd_sequence",
    "sensor_frames",
    "rgbdd_real_lr",
)
GRID_ROWS = ("bicubic", "point", "median", "area")  # rows made with sensors.downsample
DEGRADATIONS = (*GRID_ROWS, "real", "kinect_v1")
GRID_OF = {"bicubic": "bicubic", "point": "nearest", "median": "median", "area": "area"}
SCALES = ("2", "4", "8", "16", "2.67")
DEFAULT_IMAGES = {"synthetic": 6}  # the others: every image
CLASSIC = ("nearest", "bicubic", "jbf", "gf", "fgs")
FILTERS = ("jbf", "gf", "fgs")  # the classic columns with searched parameters
TITLES = {"nearest": "nearest", "bicubic": "bicubic", "jbf": "JBF", "gf": "GF", "fgs": "FGS"}
SEED = 2021
KINECT_PROFILE = "kinect_v1"
REAL_PARAMS_FROM = ("area", "8/3")  # the real row uses the classic parameters of area x2.67
SEARCH_IMAGES = 6  # RGB-D-D training images per degradation search
# Small grids (the camera suite searches ~21 degradations): near-identity to strong.
SEARCH_GRIDS = {
    "gf": {"radius": (1, 2, 4, 8, 16), "eps": (1e-4, 1e-3, 1e-2, 1e-1)},
    "jbf": {
        "d": (5, 11, 21),
        "sigma_color": (5.0, 10.0, 20.0, 40.0),
        "sigma_space": (1.0, 3.0, 8.0),
    },
    "fgs": {"lambda": (0.3, 3.0, 30.0, 300.0), "sigma_color": (2.0, 4.0, 8.0, 16.0)},
}
EDGE_RELATIVE = 0.05  # an edge: a 4-neighbour jump > 5 % of the larger depth ...
EDGE_RADIUS = 3.0  # ... and the band: pixels within 3 px of one
HOLE_SHOWN = 1e-3  # the table shows hole RMSE where holes cover >= 0.1 % of the pixels
# Datasets whose depth 0 is a value, not a hole: middlebury30's 0..255 scale (a few 0
# pixels; bicubic LR undershoots below 0 beside them). A node input reads <= 0 as invalid.
ZERO_IS_A_VALUE = ("middlebury30",)
WEIGHTS_REACH = 1.5  # explicit weights run within this factor of a trained scale

# data README protocol checks (middlebury30, all 30 images; bicubic column)
MIDDLEBURY_CHECK = {
    ("point", "8"): 4.62,
    ("median", "8"): 4.38,
    ("bicubic", "8"): 3.98,
    ("bicubic", "4"): 2.28,
    ("bicubic", "16"): 6.37,
}
MIDDLEBURY_TOLERANCE = 0.01
NYU_CHECK = {"frame": "1000", "scale": "8", "cm": 4.3, "tolerance": 0.05}

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- scales


@dataclass(frozen=True)
class Scale:
    """An upsampling factor p/q (q = 1 for an integer)."""

    ratio: Fraction

    @classmethod
    def parse(cls, text: str | float | Fraction) -> Scale:
        """``"8"`` -> 8, ``"2.67"`` -> 8/3, ``"4.5"`` -> 9/2, ``"8/3"`` -> 8/3 (the closest
        fraction with a denominator of at most 16)."""
        try:
            ratio = Fraction(str(text)).limit_denominator(16)
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"scale {text!r} is not a number") from None
        if ratio < 1:
            raise ValueError(f"scale must be >= 1, got {text!r}")
        return cls(ratio)

    @property
    def factor(self) -> float:
        return float(self.ratio)

    @property
    def integer(self) -> bool:
        return self.ratio.denominator == 1

    @property
    def multiple(self) -> int:
        """H and W are cropped to a multiple of this (p of p/q)."""
        return self.ratio.numerator

    @property
    def key(self) -> str:
        """``8`` or ``8/3``: the scale's exact name (cache keys, JSON)."""
        return str(self.ratio)

    @property
    def label(self) -> str:
        """``x8`` or ``x2.67``."""
        return f"x{self.ratio.numerator}" if self.integer else f"x{self.factor:.2f}"

    def lr_shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        p, q = self.ratio.numerator, self.ratio.denominator
        return shape[0] * q // p, shape[1] * q // p


# --------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class DatasetInfo:
    """How a dataset is read, fed and scored.

    Attributes:
        unit: the working unit of :attr:`Frame.depth`; report_unit = unit x report_factor.
        metres_per_unit: what one working unit is in metres when fed to the Enhancer
            (middlebury30: 1, its 0..255 values are passed as they are).
        border: pixels cropped from every border before scoring (NYU protocol: 6).
        kind: ``clean`` (exact ground truth: every grid), ``sensor`` (self-consistency on
            a sensor's own depth with holes: no bicubic grid) or ``real``.
        edge_floor: the smallest depth jump that is an edge, in the working unit.
        metric: the ground truth is metric (a camera simulation applies).
    """

    name: str
    unit: str
    report_unit: str
    report_factor: float
    metres_per_unit: float
    border: int
    kind: str
    edge_floor: float
    metric: bool
    description: str


INFO = {
    "middlebury30": DatasetInfo(
        "middlebury30", "0..255", "0..255", 1.0, 1.0, 0, "clean", 2.0, False,
        "30 Middlebury pairs of Lu et al. 2014, uint8 0..255 disparity-like; all pixels",
    ),
    "nyu_test_samples": DatasetInfo(
        "nyu_test_samples", "m", "cm", 100.0, 1.0, 6, "clean", 0.01, True,
        "NYU v2 test frames 1000-1002 (inpainted depth, m); 6 px border cropped",
    ),
    "synthetic": DatasetInfo(
        "synthetic", "m", "mm", 1000.0, 1.0, 0, "clean", 0.01, True,
        "dkn_ros.synthetic val scenes (exact depth, m)",
    ),
    "rgbd_sequence": DatasetInfo(
        "rgbd_sequence", "mm", "mm", 1.0, 0.001, 0, "sensor", 10.0, True,
        "5 Redwood living-room frames (Open3D test data), self-consistency on the "
        "sensor's own depth, valid pixels",
    ),
    "sensor_frames": DatasetInfo(
        "sensor_frames", "m", "mm", 1000.0, 1.0, 0, "sensor", 0.01, True,
        "one raw frame each of NYU v2 Kinect, SUN RGB-D, TUM; self-consistency, valid "
        "pixels",
    ),
    "rgbdd_real_lr": DatasetInfo(
        "rgbdd_real_lr", "mm", "mm", 1.0, 0.001, 0, "real", 10.0, True,
        "RGB-D-D real LR branch: phone ToF 144x192 -> Helios 384x512, valid GT pixels",
    ),
}  # fmt: skip


@dataclass
class Frame:
    """One test image: colour, ground truth (working unit, NaN = invalid) and, for the
    real pairs, the real LR depth."""

    name: str
    rgb: np.ndarray
    depth: np.ndarray  # (H, W) float64
    native_mm: bool = False  # the sensor delivers integer millimetres (uint16)
    lr: np.ndarray | None = None  # (h, w) float64, rgbdd_real_lr only


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def _invalid_to_nan(depth: np.ndarray) -> np.ndarray:
    depth = np.asarray(depth, dtype=np.float64)
    return np.where(np.isfinite(depth) & (depth > 0), depth, np.nan)


def nyu_raw_to_metres(raw: np.ndarray) -> np.ndarray:
    """NYU v2 raw Kinect depth as PIL reads the toolbox's PGM (byte-swapped 11-bit
    counts) -> metres with NaN = invalid: the NYU toolbox's ``swapbytes`` and
    ``depth_rel2depth_abs``, z = 351.3 / (1092.5 - raw); raw 2047 (no return) and z
    outside (0, 10] m are invalid."""
    raw = np.asarray(raw).astype(np.int64) & 0xFFFF
    counts = ((raw & 0xFF) << 8) | (raw >> 8)
    with np.errstate(divide="ignore"):
        metres = 351.3 / (1092.5 - counts.astype(np.float64))
    valid = (counts < 2047) & (metres > 0) & (metres <= 10.0)
    return np.where(valid, metres, np.nan)


def sun_to_mm(raw: np.ndarray) -> np.ndarray:
    """SUN RGB-D depth PNG -> millimetres (uint16 bits rotated right by 3; 0 = hole)."""
    raw = np.asarray(raw).astype(np.uint32) & 0xFFFF
    return (((raw >> 3) | (raw << 13)) & 0xFFFF).astype(np.float64)


def load_frames(name: str, root: Path) -> list[Frame]:
    """Every test image of a dataset (in a fixed order)."""
    if name in ("middlebury30", "nyu_test_samples", "synthetic"):
        split = "val" if name == "synthetic" else "test"
        dataset = open_dataset(name, split, root)

        def load(i: int) -> Frame:
            sample = dataset[i]
            depth = np.asarray(sample.depth, dtype=np.float64)
            if name != "middlebury30":  # middlebury30's 0..255 has a few 0 pixels: scored
                depth = _invalid_to_nan(depth)
            return Frame(sample.name, sample.rgb, depth)

        return [_Lazy(n, load, i) for i, n in enumerate(dataset.names)]  # type: ignore[misc]
    folder = root / name
    if name == "rgbd_sequence":
        pairs = [line.split() for line in (folder / "rgbd.match").read_text().splitlines()]
        frames = []
        for depth_file, color_file in (p for p in pairs if len(p) == 2):
            depth = _invalid_to_nan(_png(folder / depth_file))
            frames.append(Frame(Path(depth_file).stem, load_rgb(folder / color_file), depth, True))
        return frames
    if name == "sensor_frames":
        nyu = nyu_raw_to_metres(_png(folder / "NYU_depth.pgm"))
        sun = _invalid_to_nan(sun_to_mm(_png(folder / "SUN_depth.png"))) / 1000.0
        tum = _invalid_to_nan(_png(folder / "TUM_depth.png")) / 5000.0
        return [
            Frame("NYU", load_rgb(folder / "NYU_color.ppm"), nyu),
            Frame("SUN", load_rgb(folder / "SUN_color.jpg"), sun, True),
            Frame("TUM", load_rgb(folder / "TUM_color.png"), tum),
        ]
    if name == "rgbdd_real_lr":
        frames = []
        for path in sorted((folder / "Depth").glob("*_HR_gt.png")):
            scene = path.name[: -len("_HR_gt.png")]
            lr = _invalid_to_nan(_png(folder / "DepthLR" / f"{scene}_LR_fill_depth.png"))
            rgb = load_rgb(folder / "RGB" / f"{scene}_RGB.jpg")
            frames.append(Frame(scene, rgb, _invalid_to_nan(_png(path)), True, lr))
        return frames
    raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")


class _Lazy:
    """A frame loaded on first use (the datasets of ``open_dataset`` read on demand)."""

    def __init__(self, name: str, load: Callable[[int], Frame], index: int):
        self.name, self._load, self._index, self._frame = name, load, index, None

    def get(self) -> Frame:
        if self._frame is None:
            self._frame = self._load(self._index)
        return self._frame


def _frame(item) -> Frame:
    return item.get() if isinstance(item, _Lazy) else item


def dataset_missing(name: str, root: Path) -> str | None:
    """None when the dataset can be read, else why not."""
    if name == "synthetic":
        return None
    reason = missing_reason(name, root)
    if reason:
        return reason
    needed = {
        "rgbd_sequence": ("rgbd.match",),
        "sensor_frames": ("NYU_depth.pgm", "SUN_depth.png", "TUM_depth.png"),
        "rgbdd_real_lr": ("Depth", "DepthLR", "RGB"),
    }.get(name, ())
    absent = [item for item in needed if not (root / name / item).exists()]
    return f"{root / name}: missing {', '.join(absent)}" if absent else None


# --------------------------------------------------------------------------- metrics


def edge_pixels(
    depth: np.ndarray, relative: float = EDGE_RELATIVE, floor: float = 0.0
) -> np.ndarray:
    """(H, W) bool: both pixels of every 4-neighbour pair, both valid (finite), whose
    depths a, b differ by more than ``max(relative * max(|a|, |b|), floor)``."""
    d = np.asarray(depth, dtype=np.float64)
    edges = np.zeros(d.shape, dtype=bool)
    for axis in (0, 1):
        a = d[:-1, :] if axis == 0 else d[:, :-1]
        b = d[1:, :] if axis == 0 else d[:, 1:]
        with np.errstate(invalid="ignore"):
            jump = np.abs(a - b) > np.maximum(relative * np.maximum(np.abs(a), np.abs(b)), floor)
        jump &= np.isfinite(a) & np.isfinite(b)
        if axis == 0:
            edges[:-1, :] |= jump
            edges[1:, :] |= jump
        else:
            edges[:, :-1] |= jump
            edges[:, 1:] |= jump
    return edges


def edge_band(
    depth: np.ndarray,
    radius: float = EDGE_RADIUS,
    relative: float = EDGE_RELATIVE,
    floor: float = 0.0,
) -> np.ndarray:
    """(H, W) bool: pixels within ``radius`` px (Euclidean, edge pixels included) of an
    :func:`edge_pixels` pixel; all False when the image has no edge."""
    edges = edge_pixels(depth, relative, floor)
    if not edges.any():
        return edges
    return ndimage.distance_transform_edt(~edges) <= radius


def region_rmse(prediction: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float | None:
    """RMSE over the True pixels of ``mask`` (float64), None when there are none."""
    if not mask.any():
        return None
    diff = np.asarray(prediction, np.float64)[mask] - np.asarray(truth, np.float64)[mask]
    return float(np.sqrt(np.mean(diff * diff)))


def cell_metrics(
    prediction: np.ndarray,
    truth: np.ndarray,
    scored: np.ndarray,
    band: np.ndarray,
    holes: np.ndarray | None,
    factor: float = 1.0,
) -> dict[str, float | None]:
    """``overall``, ``edge`` and ``hole`` RMSE of one prediction, in the report unit
    (working unit x ``factor``); a prediction's non-finite pixels are not scored (the
    Enhancer with ``invalid="fill"`` returns none)."""
    scored = scored & np.isfinite(prediction)
    out = {
        "overall": region_rmse(prediction, truth, scored),
        "edge": region_rmse(prediction, truth, scored & band),
        "hole": None if holes is None else region_rmse(prediction, truth, scored & holes),
    }
    return {k: None if v is None else v * factor for k, v in out.items()}


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class Row:
    dataset: str
    degradation: str  # one of DEGRADATIONS
    scale: Scale

    @property
    def key(self) -> str:
        return f"{self.dataset} {self.degradation} {self.scale.label}"


def build_rows(
    datasets: Sequence[str], degradations: Sequence[str], scales: Sequence[Scale]
) -> list[Row]:
    rows = []
    for name in datasets:
        info = INFO[name]
        for degradation in degradations:
            if degradation == "real":
                if info.kind == "real":
                    rows.append(Row(name, "real", Scale(Fraction(384, 144))))
            elif degradation == "kinect_v1":
                if info.kind == "clean" and info.metric:
                    rows.append(Row(name, "kinect_v1", Scale(Fraction(1))))
            elif info.kind == "clean" or (info.kind == "sensor" and degradation != "bicubic"):
                rows.extend(Row(name, degradation, s) for s in scales)
    return rows


def kinect_available() -> str | None:
    """None when ``training.sensors`` has ``load_profile`` and ``simulate`` and the
    kinect_v1 profile loads, else why not (the row is then a TODO)."""
    if not (hasattr(sensors, "simulate") and hasattr(sensors, "load_profile")):
        return (
            "TODO: training.sensors.load_profile / simulate not available yet (being "
            "written); the kinect_v1 x1 row is built by kinect_input() once they exist"
        )
    try:
        sensors.load_profile(KINECT_PROFILE)
    except (ValueError, OSError) as exc:
        return f"TODO: the {KINECT_PROFILE} profile does not load: {exc}"
    return None


def kinect_input(depth_m: np.ndarray, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same-size depth (metres, NaN = invalid) a Kinect v1 would deliver for
    ground truth ``depth_m``: ``training.sensors.simulate`` with the kinect_v1 profile."""
    profile = sensors.load_profile(KINECT_PROFILE)
    out = sensors.simulate(np.asarray(depth_m, np.float32), profile, 1.0, rng, rgb=rgb)
    if isinstance(out, tuple):
        out = out[0]
    out = np.asarray(out, dtype=np.float64)
    if out.shape != depth_m.shape:
        raise ValueError(f"simulate at factor 1 gave {out.shape}, expected {depth_m.shape}")
    return _invalid_to_nan(out)


def kinect_range() -> tuple[float, float] | None:
    """(min_m, max_m) of the kinect_v1 profile's ``out_of_range`` effect, if it has one:
    the working range outside which the camera returns nothing."""
    profile = sensors.load_profile(KINECT_PROFILE)
    for effect in profile.effects:
        if effect.name == "out_of_range":
            params = dict(effect.params)
            return float(params["min_m"]), float(params["max_m"])
    return None


@dataclass
class Case:
    """One image of one row, ready for every column."""

    name: str
    rgb: np.ndarray  # (H, W, 3) uint8
    gt: np.ndarray  # (H, W) float64 working unit, NaN = invalid
    lr: np.ndarray  # (h, w) float64 working unit, the classic columns' input, NaN = invalid
    delivered: np.ndarray  # what the Enhancer gets: uint16 mm or float32 metres
    scored: np.ndarray  # (H, W) bool
    band: np.ndarray  # (H, W) bool
    holes: np.ndarray | None  # (H, W) bool, None when the LR has no hole

    @property
    def lr_valid(self) -> np.ndarray:
        return np.isfinite(self.lr)

    def filled(self) -> np.ndarray:
        """The LR with its holes filled by the node's rule (nearest valid LR pixel)."""
        valid = self.lr_valid
        return fill_holes(np.where(valid, self.lr, 0.0).astype(np.float32), valid)


def deliver(lr: np.ndarray, info: DatasetInfo, as_mm: bool) -> np.ndarray:
    """The LR depth as a camera delivers it: uint16 mm (0 = invalid) when ``as_mm``, else
    float32 metres with NaN = invalid (not finite or <= 0)."""
    valid = np.isfinite(lr) & (lr > 0)
    metres = np.where(valid, lr * info.metres_per_unit, np.nan)
    if as_mm:
        mm = np.clip(np.rint(np.where(valid, metres, 0.0) * 1000.0), 1, 65535).astype(np.uint16)
        mm[~valid] = 0
        return mm
    return metres.astype(np.float32)


def received(depth: np.ndarray, info: DatasetInfo) -> np.ndarray:
    """Enhancer input or output (uint16 mm / float32 m) -> working unit, NaN = invalid."""
    if depth.dtype == np.uint16:
        metres = np.where(depth > 0, depth.astype(np.float64) / 1000.0, np.nan)
    else:
        metres = _invalid_to_nan(depth)
    return metres / info.metres_per_unit


def make_case(row: Row, frame: Frame, index: int) -> Case:
    """Degrade one frame for one row (see the module docstring)."""
    info = INFO[row.dataset]
    if row.degradation == "real":
        gt, rgb, lr = frame.depth, frame.rgb, frame.lr
        if lr is None:
            raise ValueError(f"{frame.name}: no real LR depth")
    else:
        gt = np.ascontiguousarray(crop_to_multiple(frame.depth, row.scale.multiple))
        rgb = np.ascontiguousarray(crop_to_multiple(frame.rgb, row.scale.multiple))
        if row.degradation == "kinect_v1":
            rng = np.random.default_rng([SEED, zlib.crc32(row.dataset.encode()), index])
            lr = kinect_input(gt * info.metres_per_unit, rgb, rng) / info.metres_per_unit
        else:
            lr = sensors.downsample(gt, row.scale.factor, GRID_OF[row.degradation])
            expected = row.scale.lr_shape(gt.shape)
            if lr.shape != expected:
                raise AssertionError(f"LR {lr.shape} != {expected}")
            lr = np.asarray(lr, dtype=np.float64)
    as_mm = frame.native_mm and row.degradation in ("point", "real")
    delivered = deliver(lr, info, as_mm)
    camera_lr = received(delivered, info)  # what the camera delivered, NaN = invalid
    if not np.isfinite(camera_lr).any():
        raise ValueError(f"{frame.name}: no valid LR pixel")
    # The classic columns see the same values; on middlebury30 (0 is a value there, not a
    # hole) the LR as computed, so that they are the data README protocol exactly.
    classic_lr = lr if row.dataset in ZERO_IS_A_VALUE else camera_lr
    scored = np.isfinite(gt)
    if row.degradation == "kinect_v1" and kinect_range() is not None:
        low, high = kinect_range()  # the camera cannot see there: nobody is scored on it
        with np.errstate(invalid="ignore"):
            metres = gt * info.metres_per_unit
            scored &= (metres >= low) & (metres <= high)
    if info.border:
        inner = np.zeros_like(scored)
        b = info.border
        inner[b:-b, b:-b] = True
        scored &= inner
    band = edge_band(gt, floor=info.edge_floor) & scored
    invalid_lr = ~np.isfinite(camera_lr)
    holes = None
    if invalid_lr.any():
        holes = (
            nearest_resize(invalid_lr, gt.shape) if lr.shape != gt.shape else invalid_lr
        ) & scored
    return Case(frame.name, rgb, gt, classic_lr, delivered, scored, band, holes)


# --------------------------------------------------------------------------- columns


@dataclass
class Network:
    """One network column: an Enhancer as a user makes it."""

    label: str
    weights: Path | None  # None = the default (shipped weights for the input)
    trained: list[float]
    enhancer: object
    model: str = ""
    precision: str = "fp32"  # bf16: the streams in bfloat16 (PyTorch on the CPU)

    def runs_at(self, scale: Scale, all_cells: bool) -> bool:
        if self.weights is None or all_cells or not self.trained:
            return True
        reach = math.log(WEIGHTS_REACH) + 1e-9
        return any(abs(math.log(scale.factor / t)) <= reach for t in self.trained)


def card_of(path: Path) -> dict:
    from dkn_ros.models import card_path

    return json.loads(card_path(path).read_text())


def trained_scales(card: dict) -> list[float]:
    if card.get("task") == "denoising":
        return [1.0]
    scales = card.get("scales") or [card.get("scale")]
    return [float(s) for s in scales if s is not None]


def default_weights() -> list[Path]:
    """Every shipped weights file whose card is an fdkn/fdkn_s/dkn upsampling or denoising
    model."""
    from dkn_ros.models.registry import DEFAULT_WEIGHTS_DIR

    found = []
    for path in sorted(DEFAULT_WEIGHTS_DIR.glob("*.safetensors")):
        try:
            card = card_of(path)
        except (OSError, json.JSONDecodeError):
            continue
        if card.get("model") in ("fdkn", "fdkn_s", "dkn") and card.get("task") in (
            "upsampling",
            "denoising",
        ):
            found.append(path)
    return found


def make_networks(
    paths: Sequence[Path], engine: str, default: bool = True, bf16: bool = False
) -> list[Network]:
    """One column per weights file (and ``default``); with ``bf16`` a second column per
    FDKN file, ``NAME bf16``: the same weights with bfloat16 streams (PyTorch)."""
    from dkn_ros.enhancer import Enhancer

    networks = []
    for path in paths:
        card = card_of(path)
        enhancer = Enhancer(weights=path, engine=engine, invalid="fill")
        networks.append(Network(path.stem, path, trained_scales(card), enhancer, card["model"]))
        if bf16 and card["model"] in ("fdkn", "fdkn_s"):
            options = {"cpu_precision": "bf16"}
            enhancer = Enhancer(
                weights=path, engine="torch", invalid="fill", engine_options=options
            )
            networks.append(
                Network(f"{path.stem} bf16", path, trained_scales(card), enhancer, card["model"],
                        "bf16")
            )  # fmt: skip
    if default:
        networks.append(Network("default", None, [], Enhancer(engine=engine, invalid="fill")))
    return networks


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    text = text.split("; pass resize")[0]
    return f"{type(exc).__name__}: {text[:110]}{'...' if len(text) > 110 else ''}"


def run_networks(case: Case, networks: Sequence[Network], scale: Scale, all_cells: bool):
    """column -> (prediction in the working unit | None, status, note)."""
    out: dict[str, tuple[np.ndarray | None, str, str]] = {}
    by_weights: dict[Path, np.ndarray] = {}
    order = sorted(networks, key=lambda n: n.weights is not None)  # default first
    for net in order:
        if not net.runs_at(scale, all_cells):
            out[net.label] = (None, "skipped", f"trained for {_trained_text(net.trained)}")
            continue
        key = (net.weights.resolve(), net.precision) if net.weights is not None else None
        if key is not None and key in by_weights:
            out[net.label] = (by_weights[key], "ok", "same weights as default")
            continue
        try:
            result = net.enhancer.enhance(case.rgb, case.delivered)
        except Exception as exc:  # noqa: BLE001 - one cell, reported as n/a
            out[net.label] = (None, "n/a", _reason(exc))
            continue
        note = ""
        if net.weights is None:
            used = getattr(net.enhancer, "last_weights", None)
            note = Path(used).name if used is not None else ""
            if used is not None:
                by_weights[Path(used).resolve(), net.precision] = result
        out[net.label] = (result, "ok", note)
    return out


def _trained_text(scales: Sequence[float]) -> str:
    if not scales:
        return "?"
    return "x" + "/".join(f"{s:g}" for s in sorted(scales))


def classic_outputs(case: Case, params: dict[str, dict] | None) -> dict[str, np.ndarray]:
    """nearest, bicubic and (with ``params``) the three filters, in the working unit."""
    filled = case.filled().astype(np.float64)
    shape = case.gt.shape
    same = filled.shape == shape
    up = filled if same else bicubic_resize(filled, shape).astype(np.float64)
    out = {
        "nearest": filled if same else nearest_resize(filled, shape),
        "bicubic": up,
    }
    if params:
        valid = case.lr[case.lr_valid]
        lo, hi = float(valid.min()), float(valid.max())
        span = hi - lo if hi > lo else 1.0
        normalised = ((up - lo) / span).astype(np.float32)
        for name in FILTERS:
            if name in params:
                result = bl.BASELINES[name](case.rgb, normalised, params[name])
                out[name] = np.asarray(result, np.float64) * span + lo
    return out


# --------------------------------------------------------------------------- parameter search


def _search_key(row: Row) -> tuple[str, Scale] | None:
    """(degradation, scale) whose classic parameters a row uses; None = no search."""
    if row.degradation == "real":
        grid, ratio = REAL_PARAMS_FROM
        return grid, Scale.parse(ratio)
    return row.degradation, row.scale


def _search_input(degradation: str, scale: Scale) -> Callable:
    """make_input for ``training.baselines.tuned_params``: the degradation applied to a
    prepared (normalised, hole-filled) RGB-D-D training image, on its normalised scale."""

    def grid_input(image, rng):
        lr = sensors.downsample(image.depth, scale.factor, GRID_OF[degradation])
        return bicubic_resize(lr, image.depth.shape)

    def kinect(image, rng):
        span = image.dmax - image.dmin if image.dmax > image.dmin else 1.0
        metres = (image.depth.astype(np.float64) * span + image.dmin) / 1000.0
        noisy = kinect_input(metres, image.rgb, rng)
        valid = np.isfinite(noisy)
        if not valid.any():
            return image.depth
        normalised = (noisy * 1000.0 - image.dmin) / span
        return fill_holes(np.where(valid, normalised, 0.0).astype(np.float32), valid)

    return kinect if degradation == "kinect_v1" else grid_input


class ClassicParams:
    """The searched parameters per (degradation, scale), searched lazily and cached."""

    def __init__(self, root: Path, cache: Path | None, n_images: int, enabled: bool):
        self.root, self.cache, self.n_images, self.enabled = root, cache, n_images, enabled
        self.found: dict[str, dict[str, bl.SearchResult]] = {}
        self.failed: dict[str, str] = {}
        self._pairs = None

    def pairs(self):
        if self._pairs is None:
            self._pairs = bl.tuning_pairs(self.root, self.n_images)
            leaked = {p.name for p in self._pairs} & bl.TEST_ONLY_SCENES
            if leaked:
                raise AssertionError(f"test-only scenes among the search images: {leaked}")
        return self._pairs

    def for_row(self, row: Row) -> tuple[dict[str, dict] | None, str]:
        """(name -> parameters, key) or (None, why not)."""
        if not self.enabled:
            return None, "--no-baselines"
        degradation, scale = _search_key(row)
        key = f"camera {degradation} x{scale.key}"
        if key in self.failed:
            return None, self.failed[key]
        if key not in self.found:
            if degradation == "kinect_v1" and kinect_available():
                self.failed[key] = kinect_available() or ""
                return None, self.failed[key]
            start = time.perf_counter()
            try:
                found = bl.tuned_params(
                    list(FILTERS), scale.factor, self.pairs(), self.cache,
                    degradation=key, make_input=_search_input(degradation, scale),
                    multiple=scale.multiple, grids=SEARCH_GRIDS,
                )  # fmt: skip
            except FileNotFoundError as exc:
                self.failed[key] = f"no RGB-D-D training images to search on ({exc})"
                return None, self.failed[key]
            if not all(r.cached for r in found.values()):
                print(
                    f"{key}: classic parameters searched on {len(self.pairs())} RGB-D-D "
                    f"training images in {time.perf_counter() - start:.0f} s",
                    file=sys.stderr,
                )
            self.found[key] = found
        return {name: r.params for name, r in self.found[key].items()}, key


# --------------------------------------------------------------------------- the run


@dataclass
class RowResult:
    row: Row
    images: list[str] = field(default_factory=list)
    per_image: dict[str, list[dict]] = field(default_factory=dict)  # column -> metrics
    status: dict[str, tuple[str, str]] = field(default_factory=dict)  # column -> (status, note)
    params_key: str = ""
    default_weights: set[str] = field(default_factory=set)
    edge_fraction: list[float] = field(default_factory=list)
    hole_fraction: list[float] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""
    full: bool = True  # every image of the dataset (not cut by --images)

    def mean(self, column: str, metric: str = "overall") -> float | None:
        values = [m[metric] for m in self.per_image.get(column, []) if m[metric] is not None]
        if self.status.get(column, ("ok",))[0] != "ok" or not values:
            return None
        if len(self.per_image[column]) != len(self.images) and metric == "overall":
            return None
        return float(np.mean(values))


def evaluate_row(
    row: Row,
    frames: list,
    networks: Sequence[Network],
    classic: ClassicParams,
    all_cells: bool,
) -> RowResult:
    result = RowResult(row)
    start = time.perf_counter()
    info = INFO[row.dataset]
    if row.degradation == "kinect_v1" and kinect_available():
        result.error = kinect_available() or ""
        result.seconds = time.perf_counter() - start
        return result
    params, key = classic.for_row(row)
    result.params_key = key
    for index, item in enumerate(frames):
        frame = _frame(item)
        try:
            case = make_case(row, frame, index)
        except ValueError as exc:
            result.error = f"{frame.name}: {_reason(exc)}"
            break
        result.images.append(case.name)
        n_scored = max(int(case.scored.sum()), 1)
        result.edge_fraction.append(float(case.band.sum()) / n_scored)
        result.hole_fraction.append(
            0.0 if case.holes is None else float(case.holes.sum()) / n_scored
        )
        predictions: dict[str, np.ndarray | None] = {}
        for name, prediction in classic_outputs(case, params).items():
            predictions[name] = prediction
            result.status.setdefault(name, ("ok", ""))
        for name in FILTERS:
            if params is None or name not in params:
                result.status[name] = ("n/a", key or "no parameters")
        for label, (prediction, status, note) in run_networks(
            case, networks, row.scale, all_cells
        ).items():
            if prediction is not None:
                prediction = received(prediction, info)
            predictions[label] = prediction
            old = result.status.get(label)
            if status != "ok" or old is None or old[0] == "ok":
                result.status[label] = (status, note if status != "ok" else "")
            if label == "default" and status == "ok" and note:
                result.default_weights.add(note)
        for column, prediction in predictions.items():
            if prediction is None:
                continue
            metrics = cell_metrics(
                prediction, case.gt, case.scored, case.band, case.holes, info.report_factor
            )
            result.per_image.setdefault(column, []).append(metrics)
    result.seconds = time.perf_counter() - start
    return result


def columns_of(networks: Sequence[Network], baselines: bool) -> list[str]:
    classic = list(CLASSIC) if baselines else ["nearest", "bicubic"]
    return classic + [n.label for n in networks]


def best_column(result: RowResult, columns: Sequence[str]) -> str | None:
    values = {c: result.mean(c) for c in columns}
    values = {c: v for c, v in values.items() if v is not None}
    return min(values, key=values.get) if values else None


def ratio(result: RowResult, a: str, b: str) -> float | None:
    va, vb = result.mean(a), result.mean(b)
    return None if va is None or not vb else va / vb


# --------------------------------------------------------------------------- checks, targets


def protocol_checks(results: list[RowResult], sizes: dict[str, int]) -> dict[str, str]:
    """The data README's bicubic numbers; 'FAILED ...' entries make the run exit 1."""
    checks = {}
    for r in results:
        row = r.row
        if row.dataset == "middlebury30" and (row.degradation, row.scale.key) in MIDDLEBURY_CHECK:
            expected = MIDDLEBURY_CHECK[(row.degradation, row.scale.key)]
            name = f"middlebury30 {row.degradation} {row.scale.label} bicubic"
            if len(r.images) < 30 or sizes.get("middlebury30", 0) < 30:
                checks[name] = f"none (needs all 30 images, {len(r.images)} given)"
                continue
            value = r.mean("bicubic")
            ok = value is not None and abs(value - expected) <= MIDDLEBURY_TOLERANCE
            checks[name] = (
                f"{'passed' if ok else 'FAILED'}: {value:.3f}, expected {expected} +- "
                f"{MIDDLEBURY_TOLERANCE} (data README)"
            )
        if (
            row.dataset == "nyu_test_samples"
            and row.degradation == "bicubic"
            and row.scale.key == NYU_CHECK["scale"]
            and NYU_CHECK["frame"] in r.images
        ):
            value = r.per_image["bicubic"][r.images.index(NYU_CHECK["frame"])]["overall"]
            ok = abs(value - NYU_CHECK["cm"]) <= NYU_CHECK["tolerance"]
            checks[f"nyu frame {NYU_CHECK['frame']} bicubic x8 bicubic"] = (
                f"{'passed' if ok else 'FAILED'}: {value:.3f} cm, expected about "
                f"{NYU_CHECK['cm']} +- {NYU_CHECK['tolerance']} (data README)"
            )
    return checks


def _find(results, dataset, degradation, scale_key):
    for r in results:
        if (r.row.dataset, r.row.degradation, r.row.scale.key) == (dataset, degradation, scale_key):
            return r
    return None


def targets(results: list[RowResult], columns: Sequence[str], ours: str = "default") -> list[dict]:
    """The issue's targets, each PASS / MISS / NOT MEASURED, for column ``ours``."""
    lines = []

    def add(name: str, row: RowResult | None, check) -> None:
        if row is None:
            lines.append({"target": name, "result": "NOT MEASURED", "detail": "row not run"})
            return
        value = row.mean(ours)
        if value is None:
            status = row.status.get(ours, ("n/a", row.error or "no value"))
            detail = row.error or f"{ours} {status[0]} ({status[1]})"
            lines.append({"target": name, "result": "NOT MEASURED", "detail": detail})
            return
        ok, detail = check(row, value)
        small = "" if row.full else " (a subset of the images: indicative)"
        lines.append({"target": name, "result": "PASS" if ok else "MISS", "detail": detail + small})

    def absolute(limit):
        return lambda row, v: (v <= limit, f"{ours} {v:.3f} vs <= {limit}")

    def relative(column, factor):
        def check(row, v):
            base = row.mean(column)
            if base is None:
                return False, f"{column} not measured"
            return v <= factor * base, (
                f"{ours} {v:.3f} vs {factor} x {column} {base:.3f} = {factor * base:.3f} "
                f"(ratio {v / base:.3f})"
            )

        return check

    add("middlebury30 x8 point <= 3.7", _find(results, "middlebury30", "point", "8"),
        absolute(3.7))  # fmt: skip
    add("middlebury30 x8 median <= 3.5", _find(results, "middlebury30", "median", "8"),
        absolute(3.5))  # fmt: skip
    add("middlebury30 x8 bicubic protocol <= 2.55",
        _find(results, "middlebury30", "bicubic", "8"), absolute(2.55))  # fmt: skip
    add("rgbdd_real_lr <= 0.85 x bicubic", _find(results, "rgbdd_real_lr", "real", "8/3"),
        relative("bicubic", 0.85))  # fmt: skip
    add("rgbd_sequence x8 point <= 0.8 x bicubic",
        _find(results, "rgbd_sequence", "point", "8"), relative("bicubic", 0.8))  # fmt: skip
    kinect = [r for r in results if r.row.degradation == "kinect_v1"]
    if not kinect:
        lines.append(
            {
                "target": "x1 kinect_v1 <= 0.7 x nearest-filled input, better than best classic",
                "result": "NOT MEASURED",
                "detail": "no kinect_v1 row run",
            }
        )
    classic = [c for c in columns if c in CLASSIC]
    for r in kinect:

        def check(row, v, classic=classic):
            base = row.mean("nearest")
            best = {c: row.mean(c) for c in classic if row.mean(c) is not None}
            if base is None or not best:
                return False, "nearest-filled input not measured"
            name = min(best, key=best.get)
            ok = v <= 0.7 * base and v < best[name]
            return ok, (
                f"{ours} {v:.3f} vs 0.7 x nearest-filled input {0.7 * base:.3f} "
                f"(ratio {v / base:.3f}); best classic {TITLES[name]} {best[name]:.3f}"
            )

        add(f"{r.row.dataset} x1 kinect_v1 <= 0.7 x nearest-filled input, better than best "
            "classic", r, check)  # fmt: skip
    return lines


# --------------------------------------------------------------------------- output


def _num(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.{digits}f}"


def cell_text(result: RowResult, column: str) -> str:
    status, note = result.status.get(column, ("n/a", result.error or "not run"))
    if status == "skipped":
        return "-"
    if status != "ok":
        return f"n/a ({note})"
    overall = result.mean(column)
    if overall is None:
        return f"n/a ({result.error or 'no value'})"
    text = f"{_num(overall)} / {_num(result.mean(column, 'edge'))}"
    if result.hole_fraction and float(np.mean(result.hole_fraction)) >= HOLE_SHOWN:
        text += f" / h {_num(result.mean(column, 'hole'))}"
    return text


def row_summary(result: RowResult, columns: Sequence[str]) -> dict:
    best = best_column(result, columns)
    return {
        "best": best,
        "default_over_bicubic": ratio(result, "default", "bicubic"),
    }


def format_table(results: list[RowResult], columns: Sequence[str], meta: dict) -> str:
    header = ["dataset", "degradation", "scale", "n", *[TITLES.get(c, c) for c in columns],
              "best", "default / bicubic"]  # fmt: skip
    lines = [
        "**Camera benchmark** (RMSE, lower is better; cell = overall / edge band, and "
        "`/ h` hole regions on rows with LR holes; units per dataset: middlebury30 0..255, "
        "nyu_test_samples cm, the others mm).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * 4 + "---:|" * len(columns) + "---|---:|",
    ]
    for r in results:
        summary = row_summary(r, columns)
        best = summary["best"]
        cells = [cell_text(r, c) for c in columns]
        if best is not None:
            cells[list(columns).index(best)] = f"**{cells[list(columns).index(best)]}**"
        ratio_text = (
            "-" if summary["default_over_bicubic"] is None
            else f"{summary['default_over_bicubic']:.3f}"
        )  # fmt: skip
        if r.error and not r.images:
            cells = [f"n/a ({r.error})"] + ["" for _ in columns[1:]]
        lines.append(
            f"| {r.row.dataset} | {r.row.degradation} | {r.row.scale.label} | {len(r.images)} | "
            + " | ".join(cells)
            + f" | {TITLES.get(best, best) if best else '-'} | {ratio_text} |"
        )
    lines += ["", "Targets (column `default`, what a user gets):", ""]
    for t in meta["targets"]:
        lines.append(f"- **{t['result']}** {t['target']}: {t['detail']}")
    lines += ["", "Protocol check: " + (
        "; ".join(f"{k}: {v}" for k, v in meta["protocol_check"].items()) or "none run"
    ) + ".", "", "Notes:", ""]  # fmt: skip
    lines += [f"- {note}" for note in meta["notes"]]
    lines.append(f"- Command: `{meta['command']}` ({meta['seconds']:.0f} s).")
    return "\n".join(lines) + "\n"


def _trained_on_real_scenes(path: Path) -> bool:
    """The card says 384 RGB-D-D training pairs: the split before the rgbdd_real_lr test
    scenes were taken out (381 since)."""
    try:
        return "384 training pairs" in str(card_of(path).get("training_data", ""))
    except (OSError, json.JSONDecodeError):
        return False


def _describe(name: str, result: bl.SearchResult) -> str:
    return ", ".join(f"{key}={result.params[key]:g}" for key in result.grid)


def notes_for(results, networks, classic: ClassicParams, skipped: dict[str, str]) -> list[str]:
    notes = [
        "Rows: LR grids of training.sensors.downsample (phase 0): bicubic = the paper's "
        "protocol; point = d[s//2::s, s//2::s]; median / area = s x s blocks. H, W cropped "
        "to a multiple of p for a scale p/q (x2.67 = 8/3). rgbd_sequence / sensor_frames: "
        "self-consistency against the sensor's own depth, valid pixels only. real = "
        "rgbdd_real_lr's phone LR depth.",
        "Networks: the real dkn_ros Enhancer (engine auto, invalid='fill'), colour uint8 + the "
        "LR depth as delivered (uint16 mm for a sensor's own integer mm on point / real rows, "
        "else float32 metres with NaN holes); every column scored on the same valid ground-"
        "truth pixels. `-` = weights not run at this scale (more than x1.5 from their "
        "trained scales; --all-cells runs them).",
        f"Edge band: pixels within {EDGE_RADIUS:g} px of a ground-truth 4-neighbour jump > "
        f"max({100 * EDGE_RELATIVE:g} % of the larger depth, 2 units on 0..255 / 10 mm). "
        "Holes: pixels whose covering LR pixel is invalid. Metrics are averaged over images "
        "(edge / hole over the images that have such pixels).",
    ]
    used = sorted({w for r in results for w in r.default_weights})
    if used:
        notes.append("default = dkn_ros.enhancer.Enhancer() (shipped weights): used " +
                     ", ".join(used) + ".")  # fmt: skip
    if classic.found:
        parts = []
        for key, found in sorted(classic.found.items()):
            chosen = ", ".join(f"{TITLES[n]} {_describe(n, r)}" for n, r in found.items())
            parts.append(f"{key}: {chosen}")
        n_images = len(next(iter(classic.found.values()))["gf"].images)
        notes.append(
            f"JBF / GF / FGS parameters: grid search per degradation on {n_images} RGB-D-D "
            "training images (never the rgbdd_real_lr test scenes), cached in runs/; the real "
            "row uses area x2.67's. Chosen: " + "; ".join(parts) + "."
        )
    for key, why in classic.failed.items():
        notes.append(f"{key}: classic filters not run ({why}).")
    for name, why in skipped.items():
        notes.append(f"{name}: skipped ({why}).")
    if any(r.row.dataset == "rgbdd_real_lr" for r in results):
        from dkn_ros.models.registry import DEFAULT_WEIGHTS_DIR

        paths = [n.weights for n in networks if n.weights is not None]
        paths += sorted(DEFAULT_WEIGHTS_DIR.glob("*.safetensors"))  # what default may use
        seen = sorted({p.name for p in paths if _trained_on_real_scenes(p)})
        if seen:
            notes.append(
                "rgbdd_real_lr: " + ", ".join(seen) + " (cards: 384 RGB-D-D training "
                "pairs) were trained before training/data.py took the three test scenes out "
                "of the split, with 20200509113453 and 20200509114515 among their ground "
                "truths: their real-row numbers have seen them. The classic filters were "
                "never tuned on them."
            )
    if any(r.row.dataset == "sensor_frames" for r in results):
        notes.append(
            "sensor_frames: NYU raw depth (toolbox formula) is in the IR camera's frame, not "
            "registered to the colour image; SUN and TUM are registered."
        )
    kinect = kinect_available()
    if kinect and any(r.row.degradation == "kinect_v1" for r in results):
        notes.append(f"kinect_v1 rows: {kinect}.")
    return notes


# --------------------------------------------------------------------------- main


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        "python -m training.evaluate --suite camera",
        description="The camera benchmark (see training/camera_benchmark.py): every method "
        "on the LR depth cameras deliver, one table.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument(
        "--grids", nargs="+", default=list(DEGRADATIONS), choices=[*DEGRADATIONS, "nearest"],
        help="degradations (rows); nearest = point; real and kinect_v1 apply to the "
        "datasets that have them",
    )  # fmt: skip
    parser.add_argument(
        "--scales", nargs="+", default=list(SCALES),
        help="scales of the grid rows; a non-integer is read as a fraction (2.67 = 8/3)",
    )  # fmt: skip
    parser.add_argument(
        "--images", type=int, default=0,
        help="the first N images of each dataset (0 = every image; synthetic: "
        f"{DEFAULT_IMAGES['synthetic']})",
    )  # fmt: skip
    parser.add_argument(
        "--model-weights", nargs="*", default=None,
        help="weights files, one column each (default: every shipped fdkn/dkn upsampling or "
        "denoising file); the column 'default' (Enhancer() without weights) is always there",
    )  # fmt: skip
    parser.add_argument(
        "--no-baselines", action="store_true",
        help="no JBF / GF / FGS (no parameter search); nearest and bicubic stay",
    )  # fmt: skip
    parser.add_argument("--all-cells", action="store_true",
                        help="run every weights file at every scale")  # fmt: skip
    parser.add_argument(
        "--search-images", type=int, default=SEARCH_IMAGES,
        help="RGB-D-D training images per degradation for the classic parameter search",
    )  # fmt: skip
    parser.add_argument(
        "--baseline-cache", default=str(bl.DEFAULT_CACHE.relative_to(bl.REPO_ROOT)),
        help="JSON file caching the searched parameters ('none' = no cache)",
    )  # fmt: skip
    parser.add_argument("--engine", default="auto", choices=("auto", "torch", "onnx"))
    parser.add_argument(
        "--bf16", action="store_true",
        help="also a 'NAME bf16' column per FDKN weights file: bfloat16 streams (PyTorch, a "
        "CPU with native bfloat16)",
    )  # fmt: skip
    parser.add_argument("--data-dir", default=None, help="None = $DKN_DATA_DIR or ../shared/data")
    parser.add_argument("--threads", type=int, default=2, help="torch and OpenCV threads")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    parser.add_argument("--markdown", default=None, help="write the table to this file")
    return parser


def _column_notes(networks: Sequence[Network]) -> dict[str, str]:
    notes = {
        "nearest": "nearest upsampling of the hole-filled LR",
        "bicubic": "PIL bicubic upsampling of the hole-filled LR",
        "jbf": bl.BASELINES["jbf"].title, "gf": bl.BASELINES["gf"].title,
        "fgs": bl.BASELINES["fgs"].title,
    }  # fmt: skip
    for n in networks:
        notes[n.label] = (
            "dkn_ros.enhancer.Enhancer(invalid='fill'): the shipped weights for the input"
            if n.weights is None
            else f"Enhancer(weights={n.weights}, invalid='fill'), {n.model} trained for "
            f"{_trained_text(n.trained)}"
        )
    return notes


def main(args: argparse.Namespace, command: str | None = None) -> dict:
    started = time.perf_counter()
    command = command or shlex.join(["python", "-m", "training.evaluate", "--suite", "camera"])
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    cv2.setNumThreads(args.threads)
    root = data_dir(args.data_dir)
    scales = list(dict.fromkeys(Scale.parse(text) for text in args.scales))
    degradations = list(dict.fromkeys("point" if g == "nearest" else g for g in args.grids))
    skipped: dict[str, str] = {}
    datasets = []
    for name in dict.fromkeys(args.datasets):
        reason = dataset_missing(name, root)
        if reason:
            skipped[name] = reason
        else:
            datasets.append(name)
    rows = build_rows(datasets, degradations, scales)
    if not rows:
        raise SystemExit(
            "no rows to run: "
            + (
                "; ".join(f"{k}: {v}" for k, v in skipped.items())
                or "no dataset has these degradations"
            )  # fmt: skip
        )
    weights = default_weights() if args.model_weights is None else [
        Path(p) for p in args.model_weights
    ]  # fmt: skip
    networks = make_networks(weights, args.engine, bf16=args.bf16)
    cache = None if args.baseline_cache.lower() == "none" else Path(args.baseline_cache)
    classic = ClassicParams(root, cache, args.search_images, not args.no_baselines)
    columns = columns_of(networks, not args.no_baselines)

    enhancer_log = logging.getLogger("dkn_ros.enhancer")
    quiet = logging.Filter("nothing")  # explicit weights at another scale warn: expected
    enhancer_log.addFilter(quiet)
    results: list[RowResult] = []
    sizes: dict[str, int] = {}
    try:
        for name in datasets:
            frames = load_frames(name, root)
            limit = args.images or DEFAULT_IMAGES.get(name, 0)
            full = not limit or limit >= len(frames)
            sizes[name] = len(frames)
            if not full:
                frames = frames[:limit]
            for row in (r for r in rows if r.dataset == name):
                result = evaluate_row(row, frames, networks, classic, args.all_cells)
                result.full = full
                results.append(result)
                print(
                    f"{row.key}: {len(result.images)} images, {result.seconds:.0f} s "
                    f"({time.perf_counter() - started:.0f} s so far)"
                    + (f" [{result.error}]" if result.error else ""),
                    file=sys.stderr,
                )
    finally:
        enhancer_log.removeFilter(quiet)

    seconds = time.perf_counter() - started
    meta = {
        "command": command,
        "seconds": seconds,
        "protocol_check": protocol_checks(results, sizes),
        "targets": targets(results, columns),
        "notes": notes_for(results, networks, classic, skipped),
    }
    table = format_table(results, columns, meta)
    out = {
        **meta,
        "columns": columns,
        "column_notes": _column_notes(networks),
        "units": {name: INFO[name].report_unit for name in datasets},
        "datasets": {name: INFO[name].description for name in datasets},
        "skipped": skipped,
        "seed": SEED,
        "rows": [_row_json(r, columns) for r in results],
        "baseline_params": {
            key: {name: {"params": r.params, "chosen_by": r.describe()} for name, r in f.items()}
            for key, f in classic.found.items()
        },
        "table": table,
    }
    print()
    print(table)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(table)
        print(f"wrote {args.markdown}")
    failed = [k for k, v in meta["protocol_check"].items() if v.startswith("FAILED")]
    if failed:
        raise SystemExit(f"PROTOCOL CHECK FAILED: {', '.join(failed)} (see the table notes)")
    return out


def _row_json(r: RowResult, columns: Sequence[str]) -> dict:
    summary = row_summary(r, columns)
    return {
        "dataset": r.row.dataset,
        "degradation": r.row.degradation,
        "scale": r.row.scale.key,
        "label": r.row.scale.label,
        "unit": INFO[r.row.dataset].report_unit,
        "images": r.images,
        "all_images": r.full,
        "seconds": round(r.seconds, 1),
        "error": r.error,
        "classic_params": r.params_key,
        "default_weights": sorted(r.default_weights),
        "edge_band_fraction": float(np.mean(r.edge_fraction)) if r.edge_fraction else None,
        "hole_fraction": float(np.mean(r.hole_fraction)) if r.hole_fraction else None,
        "best": summary["best"],
        "default_over_bicubic": summary["default_over_bicubic"],
        "cells": {
            c: {
                "status": r.status.get(c, ("n/a", r.error or "not run"))[0],
                "note": r.status.get(c, ("", ""))[1],
                "rmse": r.mean(c),
                "edge_rmse": r.mean(c, "edge"),
                "hole_rmse": r.mean(c, "hole"),
                "per_image": [
                    {k: None if v is None else round(v, 4) for k, v in m.items()}
                    for m in r.per_image.get(c, [])
                ],
            }
            for c in columns
        },
    }


def run(argv: Sequence[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = get_args_parser().parse_args(argv)
    return main(args, shlex.join(["python", "-m", "training.evaluate", "--suite", "camera", *argv]))


if __name__ == "__main__":
    run()
