"""Classic guided depth upsampling baselines and their parameter search.

Every baseline is a plain function ``(rgb, up, params) -> float32 (H, W)``:

    rgb     (H, W, 3) uint8 RGB guidance
    up      (H, W) float32 depth, the LR depth bicubic-upsampled to the colour size
    params  dict of the baseline's parameters (see ``BASELINES[name].grid``)

* ``bicubic``: ``up`` itself (no parameters).
* ``gf``: He et al.'s guided filter (``cv2.ximgproc.guidedFilter``) with the colour image
  as float32 RGB in [0, 1], so ``eps`` is on that scale; ``radius`` in pixels.
* ``jbf``: the joint bilateral filter (``cv2.ximgproc.jointBilateralFilter``) with the
  colour image as float32 on the 0..255 scale: ``d`` (neighbourhood diameter, pixels),
  ``sigma_color`` (0..255 colour units), ``sigma_space`` (pixels).
* ``fgs``: the fast global smoother (``cv2.ximgproc.fastGlobalSmootherFilter``, Min et
  al. 2014) guided by the uint8 colour image: ``lambda`` (smoothness) and
  ``sigma_color`` (0..255 colour units); OpenCV's defaults for the rest
  (``lambda_attenuation`` 0.25, 3 iterations).

Depth scale: the four filters take their weights from the colour image only and their
weights add up to one, so they are affine-equivariant in the depth,
``f(a * up + b) = a * f(up) + b`` (tested). Their parameters are therefore tuned and
applied on depth normalised to [0, 1] (per image, as the networks see it) and the result
is de-normalised; neither the depth's units (mm for RGB-D-D, 0..255 for Middlebury,
metres for NYU) nor the normalisation changes what they output.

Parameter search (:func:`search`): one generic grid search per baseline and scale, on
RGB-D-D *training* images only (``split_rgbdd(...)[0]``, evenly spaced; never the
held-out validation images, never Middlebury or NYU), prepared as for training
(:func:`prepare_search_images`: crop to a multiple of s, holes filled with the nearest
valid value, normalised with the valid min/max, LR = PIL bicubic down by s and up, plus
Gaussian noise for the denoising evaluation). The score is the mean over images of the
RMSE in millimetres over valid pixels. Results are cached in a small JSON file
(:data:`DEFAULT_CACHE`, under the git-ignored ``runs/``) keyed by baseline, scale, noise,
grid and image names (and the degradation's name when a caller such as
``training/camera_benchmark.py`` gives its own input degradation), so a second run does
not search again.

Test-only scenes: the three ``rgbdd_real_lr`` scenes (:data:`TEST_ONLY_SCENES`, the only
real low-res -> high-res pairs; their ground truth also sits in ``rgbdd/``, two of them
in its training split) are never search images (:func:`tuning_pairs`).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from training.data import (
    REPO_ROOT,
    TEST_ONLY_SCENES,
    RGBDFiles,
    RGBDImage,
    TrainingImage,
    load_rgbdd,
    prepare_training_image,
    rgbdd_pairs,
    rmse,
    split_rgbdd,
)
from training.degrade import Degradation

__all__ = [
    "BASELINES",
    "DEFAULT_CACHE",
    "Baseline",
    "SearchImage",
    "SearchResult",
    "TEST_ONLY_SCENES",
    "bicubic",
    "fast_global_smoother",
    "guided_filter",
    "joint_bilateral",
    "parse_params",
    "prepare_search_images",
    "search",
    "tuned_params",
    "tuning_pairs",
]

DEFAULT_CACHE = REPO_ROOT / "runs" / "baseline_params.json"
DEFAULT_SEARCH_IMAGES = 12
SEARCH_NOISE_SEED = 12345  # noise of search image i: default_rng([SEARCH_NOISE_SEED, i])

# --------------------------------------------------------------------------- filters


def _check(rgb: np.ndarray, up: np.ndarray) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    if up.shape != rgb.shape[:2]:
        raise ValueError(f"depth {up.shape} and colour {rgb.shape[:2]} differ in size")


def bicubic(rgb: np.ndarray, up: np.ndarray, params: dict | None = None) -> np.ndarray:
    """The bicubic-upsampled depth itself (a float32 copy); ``rgb`` is not used."""
    _check(rgb, up)
    return np.array(up, dtype=np.float32)


def guided_filter(rgb: np.ndarray, up: np.ndarray, params: dict) -> np.ndarray:
    """He et al.'s guided filter of ``up`` under ``rgb`` (float32 RGB in [0, 1]).

    params: ``radius`` (pixels), ``eps`` (regularisation, on the [0, 1] colour scale)."""
    _check(rgb, up)
    guide = rgb.astype(np.float32) * np.float32(1.0 / 255.0)
    return cv2.ximgproc.guidedFilter(
        guide, np.ascontiguousarray(up, dtype=np.float32), int(params["radius"]),
        float(params["eps"]),
    )  # fmt: skip


def joint_bilateral(rgb: np.ndarray, up: np.ndarray, params: dict) -> np.ndarray:
    """OpenCV's joint bilateral filter of ``up`` with ``rgb`` (0..255) as the joint image.

    params: ``d`` (diameter, pixels), ``sigma_color`` (0..255), ``sigma_space`` (pixels)."""
    _check(rgb, up)
    return cv2.ximgproc.jointBilateralFilter(
        np.ascontiguousarray(rgb, dtype=np.float32),
        np.ascontiguousarray(up, dtype=np.float32),
        int(params["d"]),
        float(params["sigma_color"]),
        float(params["sigma_space"]),
    )


def fast_global_smoother(rgb: np.ndarray, up: np.ndarray, params: dict) -> np.ndarray:
    """OpenCV's fast global smoother of ``up`` guided by ``rgb`` (uint8).

    params: ``lambda`` (smoothness weight), ``sigma_color`` (0..255)."""
    _check(rgb, up)
    return cv2.ximgproc.fastGlobalSmootherFilter(
        np.ascontiguousarray(rgb), np.ascontiguousarray(up, dtype=np.float32),
        float(params["lambda"]), float(params["sigma_color"]),
    )  # fmt: skip


@dataclass(frozen=True)
class Baseline:
    """A baseline: its function, its parameter grid and how to print it."""

    name: str
    title: str
    function: Callable[[np.ndarray, np.ndarray, dict], np.ndarray]
    grid: dict[str, tuple] = field(default_factory=dict)

    def __call__(self, rgb: np.ndarray, up: np.ndarray, params: dict) -> np.ndarray:
        return self.function(rgb, up, params)

    @property
    def size(self) -> int:
        """Points of the grid."""
        return int(np.prod([len(v) for v in self.grid.values()])) if self.grid else 1

    def points(self) -> list[dict]:
        """Every parameter combination of the grid."""
        keys = list(self.grid)
        combos = itertools.product(*self.grid.values())
        return [dict(zip(keys, values, strict=True)) for values in combos]

    def describe(self, params: dict) -> str:
        """``radius=8, eps=0.001``."""
        return ", ".join(f"{key}={params[key]:g}" for key in self.grid)


# Grids: ~25-36 points each, spanning near-identity (small radius / lambda / sigma) to
# strong smoothing; each search takes seconds (GF, FGS) to about a minute (JBF) per scale
# on 12 images of 384 x 512 on one core.
BASELINES: dict[str, Baseline] = {
    "bicubic": Baseline("bicubic", "bicubic", bicubic),
    "gf": Baseline(
        "gf", "guided filter (OpenCV)", guided_filter,
        {"radius": (1, 2, 4, 8, 16), "eps": (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)},
    ),
    "jbf": Baseline(
        "jbf", "joint bilateral filter (OpenCV)", joint_bilateral,
        {"d": (5, 11, 21), "sigma_color": (2.5, 5.0, 10.0, 20.0),
         "sigma_space": (1.0, 3.0, 8.0)},
    ),
    "fgs": Baseline(
        "fgs", "fast global smoother (OpenCV)", fast_global_smoother,
        {"lambda": (0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0),
         "sigma_color": (1.0, 2.0, 4.0, 8.0)},
    ),
}  # fmt: skip


def parse_params(name: str, text: str) -> dict:
    """``"8,0.001"`` -> ``{"radius": 8, "eps": 0.001}`` in the order of the grid's keys."""
    baseline = BASELINES[name]
    values = [v for v in text.split(",") if v.strip()]
    if len(values) != len(baseline.grid):
        raise ValueError(
            f"{name} parameters {text!r}: expected {len(baseline.grid)} comma-separated "
            f"values ({','.join(baseline.grid)})"
        )
    try:
        return {key: float(v) for key, v in zip(baseline.grid, values, strict=True)}
    except ValueError:
        raise ValueError(f"{name} parameters {text!r}: not numbers") from None


# --------------------------------------------------------------------------- search


@dataclass
class SearchResult:
    """The chosen parameters of one baseline at one scale and how they were chosen."""

    baseline: str
    scale: int
    params: dict
    score_mm: float  # mean RMSE (mm, valid pixels) of the chosen parameters
    bicubic_mm: float  # bicubic's mean RMSE on the same images
    images: list[str]
    grid: dict
    seconds: float
    cached: bool = False
    degradation: str = ""  # the input degradation's name when not the paper's bicubic

    def describe(self) -> str:
        where = "cached search" if self.cached else "grid search"
        what = self.degradation or f"x{self.scale}"
        return (
            f"{where} on {len(self.images)} RGB-D-D training images at {what}, "
            f"{_grid_size(self.grid)}-point grid: {self.score_mm:.2f} mm "
            f"(bicubic {self.bicubic_mm:.2f} mm), {self.seconds:.0f} s"
        )


def _grid_size(grid: dict) -> int:
    return int(np.prod([len(v) for v in grid.values()])) if grid else 1


def tuning_pairs(root=None, n_images: int = DEFAULT_SEARCH_IMAGES) -> list[RGBDFiles]:
    """``n_images`` RGB-D-D *training* pairs, evenly spaced over the sorted training split
    (the validation pairs, every 20th, are never among them, nor the test-only
    :data:`TEST_ONLY_SCENES`)."""
    train, _ = split_rgbdd(rgbdd_pairs(root))  # never holds a TEST_ONLY_SCENES pair
    if n_images <= 0 or n_images >= len(train):
        return train
    index = np.linspace(0, len(train) - 1, n_images).round().astype(int)
    return [train[i] for i in index]


@dataclass
class SearchImage(TrainingImage):
    """One RGB-D-D training image prepared as for training (``training.data.TrainingImage``:
    normalised ground truth, mask, min and max in mm) with the baselines' input."""

    up: np.ndarray  # (H, W) float32 normalised LR, bicubic down by s and up (+ noise)


def prepare_search_images(
    pairs: Sequence[RGBDFiles],
    scale: int,
    noise_std: float = 0.0,
    make_input: Callable[[TrainingImage, np.random.Generator], np.ndarray] | None = None,
    multiple: int | None = None,
) -> list[SearchImage]:
    """Load RGB-D-D pairs and prepare them as for training
    (``training.data.prepare_training_image``: crop, fill holes, normalise with the
    valid min/max) with the input degraded as in training and evaluation: bicubic down
    by s and up, with Gaussian noise of std ``noise_std`` on the normalised LR (seeded
    per image) when it is not 0.

    ``make_input`` replaces that degradation: ``make_input(prepared, rng)`` -> the
    (H, W) float32 input on the prepared image's normalised scale (hole-free), with the
    image cropped to a multiple of ``multiple`` (default: the scale's training
    alignment) and ``rng`` seeded per image."""
    degradation = None
    if make_input is None:
        degradation = Degradation(scales=(scale,), noise_std=(noise_std, noise_std))
        multiple = degradation.align
    elif multiple is None:
        multiple = Degradation(scales=(scale,)).align
    images = []
    for i, pair in enumerate(pairs):
        rgb, depth = load_rgbdd(pair)
        image = prepare_training_image(
            RGBDImage(pair.name, rgb, depth.astype(np.float32)), multiple
        )
        rng = np.random.default_rng([SEARCH_NOISE_SEED, i])
        if degradation is not None:
            up = degradation.apply(image.depth, rng)
        else:
            up = np.asarray(make_input(image, rng), dtype=np.float32)
            if up.shape != image.depth.shape or not np.isfinite(up).all():
                raise ValueError(
                    f"{pair.name}: make_input must give finite {image.depth.shape} depth, "
                    f"got {up.shape}"
                )
        images.append(SearchImage(**vars(image), up=up))
    return images


def _score_mm(prediction: np.ndarray, image: SearchImage) -> float:
    return rmse(prediction, image.depth, image.mask) * (image.dmax - image.dmin)


def search(
    name: str,
    images: Sequence[SearchImage],
    scale: int,
    grid: dict[str, tuple] | None = None,
) -> SearchResult:
    """Grid search: the parameters of ``name`` that minimise the mean RMSE in mm
    (valid pixels) over ``images`` (prepared RGB-D-D training images at ``scale``)."""
    baseline = BASELINES[name]
    if grid is not None:
        baseline = Baseline(baseline.name, baseline.title, baseline.function, grid)
    start = time.perf_counter()
    bicubic_mm = float(np.mean([_score_mm(image.up, image) for image in images]))
    best, best_score = {}, bicubic_mm
    if baseline.grid:
        best_score = float("inf")
        for params in baseline.points():
            score = float(
                np.mean([_score_mm(baseline(im.rgb, im.up, params), im) for im in images])
            )
            if score < best_score:
                best, best_score = params, score
    return SearchResult(
        baseline=name,
        scale=scale,
        params=best,
        score_mm=best_score,
        bicubic_mm=bicubic_mm,
        images=[image.name for image in images],
        grid={key: list(values) for key, values in baseline.grid.items()},
        seconds=time.perf_counter() - start,
    )


def _cache_key(
    name: str,
    scale: int,
    grid: dict,
    images: list[str],
    noise_std: float,
    degradation: str | None = None,
) -> str:
    key = {"baseline": name, "scale": scale, "grid": grid, "images": images}
    if noise_std:
        key["noise_std"] = noise_std
    if degradation:
        key["degradation"] = degradation
    return json.dumps(key, sort_keys=True)


def tuned_params(
    names: Sequence[str],
    scale: int,
    pairs: Sequence[RGBDFiles],
    cache: str | Path | None = DEFAULT_CACHE,
    noise_std: float = 0.0,
    *,
    degradation: str | None = None,
    make_input: Callable[[TrainingImage, np.random.Generator], np.ndarray] | None = None,
    multiple: int | None = None,
    grids: dict[str, dict] | None = None,
) -> dict[str, SearchResult]:
    """The chosen parameters of each baseline in ``names`` at ``scale`` (and input noise
    ``noise_std``, see :func:`prepare_search_images`), searched on ``pairs`` (RGB-D-D
    training pairs, see :func:`tuning_pairs`) or read from ``cache`` (a JSON file; None =
    no cache). The images are loaded only when a search is needed.

    A caller with its own input degradation gives its name ``degradation`` (part of the
    cache key), ``make_input`` and ``multiple`` (see :func:`prepare_search_images`);
    ``grids`` (baseline name -> grid) replaces the default grids."""
    if make_input is not None and not degradation:
        raise ValueError("make_input needs a degradation name (the cache key)")
    results: dict[str, SearchResult] = {}
    stored = {}
    cache = Path(cache) if cache is not None else None
    if cache is not None and cache.is_file():
        try:
            stored = {entry["key"]: entry for entry in json.loads(cache.read_text())}
        except (json.JSONDecodeError, KeyError, TypeError):
            stored = {}  # a damaged cache is only a cache: search again
    names_of_images = [pair.name for pair in pairs]
    images: list[SearchImage] | None = None
    for name in names:
        chosen = (grids or {}).get(name, BASELINES[name].grid)
        grid = {key: list(values) for key, values in chosen.items()}
        key = _cache_key(name, scale, grid, names_of_images, noise_std, degradation)
        if key in stored:
            entry = {k: v for k, v in stored[key].items() if k != "key"}
            entry.setdefault("degradation", degradation or "")
            results[name] = SearchResult(**{**entry, "cached": True})
            continue
        if images is None:
            images = prepare_search_images(pairs, scale, noise_std, make_input, multiple)
        result = search(name, images, scale, chosen)
        result.degradation = degradation or ""
        results[name] = result
        stored[key] = {"key": key, **{k: v for k, v in result.__dict__.items() if k != "cached"}}
    if cache is not None and images is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(list(stored.values()), indent=1) + "\n")
    return results
