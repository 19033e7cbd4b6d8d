"""Data for training and evaluation, behind one interface.

Where the data lives
    One setting: the environment variable ``DKN_DATA_DIR``, default ``../shared/data``
    relative to the repository root (see :func:`data_dir`). The data is never copied
    into the repository; tests skip with :func:`missing_reason` when it is absent.

Datasets (:func:`open_dataset` ``(name, split)``: a sequence of :class:`RGBDImage`)
    ========================  ==========================================  ===========
    name                      splits                                      depth unit
    ========================  ==========================================  ===========
    ``nyu_v2``                train / val (every 20th of frames 0-999),   m (cm)
                              test (1000-1448); ``prepare_nyu.py``
    ``rgbdd``                 train (384) / val (every 20th: 21) / all    mm
    ``middlebury30``          test (30)                                   0..255
    ``nyu_test_samples``      test (frames 1000-1002)                     m (cm)
    ``synthetic``             train / val (disjoint scenes)               m (mm)
    ========================  ==========================================  ===========

    Validation splits are for validation curves and model and parameter selection
    (the baselines' grid searches use *training* images only); test splits are for
    evaluation only, never training, validation or tuning.

Low-resolution synthesis (paper section 4.1.1, the README's protocols)
    The LR depth is the ground truth bicubic-downsampled by s, and the network's target
    is that LR depth bicubic-upsampled back to the guidance size, both with PIL's
    bicubic resampler on float ``'F'`` images (``dkn_ros.processing.bicubic_resize``).
    H and W are first cropped to a multiple of s (from the top-left), as in the
    Middlebury protocol. Noise, quantisation, holes and scale sets are added by
    ``training/degrade.py``.

Training samples (:class:`TrainSet`)
    Every training image is prepared once, at full size (:func:`prepare_training_image`):

    1. ``mask`` = depth > 0 and finite (valid pixels).
    2. Holes are filled with the nearest valid pixel's value (Euclidean distance
       transform, ``dkn_ros.processing.fill_holes``, the node's own rule) *before*
       anything else, so that neither the normalisation, nor the bicubic resampling,
       nor the network ever sees the 0 placeholder and no 0 is smeared into valid
       neighbours. (The shipped RGB-D-D ground truth has almost no holes: at most 1
       pixel per image; the rule matters for other data.)
    3. The depth is normalised to [0, 1] with the image's own min and max over valid
       pixels (the paper's NYU protocol: normalise the ground truth, then synthesise).
    4. The input is degraded (``Degradation.apply``): once per full image for the
       paper's fixed-scale bicubic, per crop otherwise (4x cheaper than the whole
       image; the crop's corner is on the LR grid, so its LR pixels are the image's).

    A sample is a random crop of the prepared image whose top-left corner is a multiple
    of lcm(4, scales), so the crop sees the LR pixel grid and FDKN's 4 x 4
    pixel-unshuffle grid exactly as a full-image inference does. The loss is masked
    with ``mask`` (filled pixels are not ground truth). No augmentation, as in the
    paper.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dkn_ros.processing import bicubic_resize, depth_span, fill_holes
from training.degrade import Degradation

__all__ = [
    "DATASET_CLASSES",
    "REPO_ROOT",
    "VALIDATION_EVERY",
    "DepthDataset",
    "RGBDFiles",
    "RGBDImage",
    "crop_to_multiple",
    "data_dir",
    "load_middlebury",
    "load_nyu_sample",
    "load_rgbdd",
    "middlebury_pairs",
    "missing_reason",
    "normalise_depth",
    "nyu_sample_pairs",
    "open_dataset",
    "TrainingImage",
    "TEST_ONLY_SCENES",
    "TrainSet",
    "to_tensors",
    "prepare_training_image",
    "rgbdd_pairs",
    "rmse",
    "split_rgbdd",
    "synthesize_lr",
    "validation_inputs",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_ENV = "DKN_DATA_DIR"
VALIDATION_EVERY = 20  # every 20th RGB-D-D image (sorted by name) is held out
# The three rgbdd_real_lr scenes (real phone ToF low-res depth beside their high-res
# ground truth, which also sits in rgbdd/) are test data: no training or validation
# split of any dataset may contain them (data README, "Test-only scenes").
TEST_ONLY_SCENES = frozenset({"20200509112638", "20200509113453", "20200509114515"})
# The folders each dataset must have under the data directory (see missing_reason).
DATASETS = {
    "rgbdd": ("Depth", "RGB"),
    "middlebury30": ("Depth", "RGB"),
    "nyu_test_samples": ("Depth", "RGB"),
    "nyu_v2": ("train", "test"),  # written by training/prepare_nyu.py
}


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """The data directory: ``override`` if given, else ``$DKN_DATA_DIR``, else
    ``../shared/data`` relative to the repository root."""
    if override:
        return Path(override).expanduser().resolve()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return (REPO_ROOT / ".." / "shared" / "data").resolve()


def missing_reason(dataset: str, root: str | os.PathLike | None = None) -> str | None:
    """None when ``dataset`` (a folder of the data directory) is there, else a sentence
    saying what is missing and how to point at it (for ``pytest.skip``)."""
    base = data_dir(root)
    folder = base / dataset
    subdirs = DATASETS.get(dataset, ())
    if not folder.is_dir() or any(not (folder / sub).is_dir() for sub in subdirs):
        return (
            f"dataset {dataset!r} not found at {folder} (set {DATA_ENV} to the folder that "
            f"holds {dataset}/, default ../shared/data relative to the repository root)"
        )
    return None


def _require(dataset: str, root: str | os.PathLike | None) -> Path:
    reason = missing_reason(dataset, root)
    if reason:
        raise FileNotFoundError(reason)
    return data_dir(root) / dataset


# --------------------------------------------------------------------------- files


@dataclass(frozen=True)
class RGBDFiles:
    """One RGB-D pair on disk."""

    name: str
    rgb: Path
    depth: Path


def rgbdd_pairs(root: str | os.PathLike | None = None) -> list[RGBDFiles]:
    """All RGB-D-D pairs, sorted by name: ``Depth/NAME_HR_gt.png`` + ``RGB/NAME_RGB.jpg``."""
    folder = _require("rgbdd", root)
    pairs = []
    for depth in sorted((folder / "Depth").glob("*_HR_gt.png")):
        name = depth.name[: -len("_HR_gt.png")]
        rgb = folder / "RGB" / f"{name}_RGB.jpg"
        if not rgb.is_file():
            raise FileNotFoundError(f"{rgb}: colour image for {depth.name} not found")
        pairs.append(RGBDFiles(name, rgb, depth))
    if not pairs:
        raise FileNotFoundError(f"{folder / 'Depth'}: no *_HR_gt.png files")
    return pairs


def split_rgbdd(
    pairs: list[RGBDFiles], every: int = VALIDATION_EVERY
) -> tuple[list[RGBDFiles], list[RGBDFiles]]:
    """(training, validation): validation = sorted index % ``every`` == 0, after the
    :data:`TEST_ONLY_SCENES` are taken out of both."""
    ordered = sorted((p for p in pairs if p.name not in TEST_ONLY_SCENES), key=lambda p: p.name)
    val = [p for i, p in enumerate(ordered) if i % every == 0]
    train = [p for i, p in enumerate(ordered) if i % every != 0]
    return train, val


def middlebury_pairs(root: str | os.PathLike | None = None) -> list[RGBDFiles]:
    """The 30 Middlebury pairs, sorted: ``Depth/X_output_depth.png`` +
    ``RGB/X_output_color.png``."""
    folder = _require("middlebury30", root)
    pairs = []
    for depth in sorted((folder / "Depth").glob("*.png")):
        name = depth.name.replace("_output_depth.png", "")
        rgb = folder / "RGB" / depth.name.replace("_output_depth", "_output_color")
        if not rgb.is_file():
            raise FileNotFoundError(f"{rgb}: colour image for {depth.name} not found")
        pairs.append(RGBDFiles(name, rgb, depth))
    if not pairs:
        raise FileNotFoundError(f"{folder / 'Depth'}: no png files")
    return pairs


def load_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB."""
    with Image.open(path) as image:
        return np.array(image.convert("RGB"), dtype=np.uint8)


def load_rgbdd(pair: RGBDFiles) -> tuple[np.ndarray, np.ndarray]:
    """RGB (H, W, 3) uint8 and depth (H, W) uint16 millimetres (0 = missing)."""
    with Image.open(pair.depth) as image:
        depth = np.asarray(image)
    if depth.dtype != np.uint16 and depth.dtype != np.int32:
        raise ValueError(f"{pair.depth}: expected 16-bit depth, got {depth.dtype}")
    rgb = load_rgb(pair.rgb)
    if rgb.shape[:2] != depth.shape:
        raise ValueError(f"{pair.name}: RGB {rgb.shape} and depth {depth.shape} differ in size")
    return rgb, depth.astype(np.uint16)


def load_middlebury(pair: RGBDFiles) -> tuple[np.ndarray, np.ndarray]:
    """RGB (H, W, 3) uint8 and depth (H, W) uint8 (0..255, larger = nearer)."""
    with Image.open(pair.depth) as image:
        depth = np.asarray(image.convert("L") if image.mode != "L" else image, dtype=np.uint8)
    rgb = load_rgb(pair.rgb)
    if rgb.shape[:2] != depth.shape:
        raise ValueError(f"{pair.name}: RGB {rgb.shape} and depth {depth.shape} differ in size")
    return rgb, depth


# --------------------------------------------------------------------------- protocol pieces


def crop_to_multiple(array: np.ndarray, multiple: int) -> np.ndarray:
    """Crop the first two axes (from the top-left) to a multiple of ``multiple``."""
    h, w = array.shape[:2]
    return array[: h - h % multiple, : w - w % multiple]


def synthesize_lr(depth: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """The paper's LR synthesis for a depth whose H and W are multiples of ``scale``.

    Returns:
        lr (H/s, W/s) float32 = bicubic downsample, and up (H, W) float32 = ``lr``
        bicubic-upsampled back (the network's target input), both PIL float bicubic.
    """
    h, w = depth.shape
    if h % scale or w % scale:
        raise ValueError(f"depth {depth.shape} is not a multiple of scale {scale}; crop it first")
    lr = bicubic_resize(depth.astype(np.float32), (h // scale, w // scale))
    return lr, bicubic_resize(lr, (h, w))


def normalise_depth(
    depth: np.ndarray, mask: np.ndarray | None = None
) -> tuple[np.ndarray, float, float]:
    """(depth - min) / (max - min) with min and max over ``mask`` (all pixels if None).

    Returns the float32 normalised depth, min and max (span 1 when max == min)."""
    valid = depth if mask is None else depth[mask]
    if valid.size == 0:
        raise ValueError("no valid depth pixel to normalise with")
    dmin, dmax = float(valid.min()), float(valid.max())
    span = depth_span(dmin, dmax)
    return ((depth.astype(np.float32) - np.float32(dmin)) / np.float32(span)), dmin, dmax


def rmse(prediction: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Root mean squared error over all pixels (or the True pixels of ``mask``), in
    float64."""
    diff = np.asarray(prediction, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    if mask is not None:
        diff = diff[mask]
    if diff.size == 0:
        raise ValueError("rmse of an empty set of pixels")
    return float(np.sqrt(np.mean(diff * diff)))


@dataclass
class TrainingImage:
    """One image prepared for training or validation (see the module docstring)."""

    name: str
    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32 normalised, hole-filled
    mask: np.ndarray  # (H, W) bool, True = valid ground truth
    dmin: float  # in the dataset's unit
    dmax: float


def prepare_training_image(sample: RGBDImage, multiple: int) -> TrainingImage:
    """Crop a sample to a multiple of ``multiple``, mask its invalid pixels, fill them
    with the nearest valid value and normalise with the valid pixels' min/max."""
    rgb = crop_to_multiple(sample.rgb, multiple)
    depth = crop_to_multiple(sample.depth, multiple).astype(np.float32)
    mask = np.isfinite(depth) & (depth > 0)
    if not mask.any():
        raise ValueError(f"{sample.name}: no valid depth pixel")
    filled = fill_holes(np.where(mask, depth, 0.0).astype(np.float32), mask)
    normalised, dmin, dmax = normalise_depth(filled, mask)
    return TrainingImage(sample.name, np.ascontiguousarray(rgb), normalised, mask, dmin, dmax)


def validation_inputs(
    images: Sequence[TrainingImage], degradation: Degradation, seed: int = 0
) -> list[np.ndarray]:
    """The degraded input of each validation image, the same in every run: image i is
    degraded with its own generator seeded by (seed, i) and, for several scales, at
    scale ``scales[i % len(scales)]`` so that every scale is validated."""
    inputs = []
    for i, image in enumerate(images):
        scale = degradation.scales[i % len(degradation.scales)]
        single = replace(degradation, scales=(scale,))
        inputs.append(single.apply(image.depth, np.random.default_rng([seed, i]), image.rgb))
    return inputs


def to_tensors(rgb: np.ndarray, target: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(H, W, 3) uint8 and (H, W) float32 -> guidance (1, 3, H, W) in [0, 1] and
    target (1, 1, H, W)."""
    guidance = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 255.0
    return guidance.unsqueeze(0), torch.from_numpy(np.ascontiguousarray(target))[None, None]


class TrainSet:
    """Random crops of prepared training images (all prepared in memory), degraded.

    Args:
        samples: the training samples (a dataset of :func:`open_dataset`).
        degradation: how the network's input is made from the ground truth.
        crop: crop side in pixels, a multiple of ``degradation.align`` and at most the
            image size.
    """

    def __init__(
        self,
        samples: Sequence[RGBDImage],
        degradation: Degradation,
        crop: int,
        progress: bool = False,
    ):
        self.degradation = degradation
        self.crop = crop
        self.align = degradation.align
        if crop <= 0 or crop % self.align:
            raise ValueError(
                f"crop must be a positive multiple of lcm(4, scales) = {self.align}, got {crop}"
            )
        indices = range(len(samples))
        if progress:
            from tqdm import tqdm

            indices = tqdm(indices, desc=f"preparing {len(samples)} images", unit="img")
        self.images = [prepare_training_image(samples[i], self.align) for i in indices]
        for image in self.images:
            if min(image.depth.shape) < crop:
                raise ValueError(
                    f"{image.name}: image {image.depth.shape} smaller than crop {crop}"
                )
        # A degradation that draws nothing is computed once per image.
        self._fixed = (
            [degradation.apply(image.depth, None, image.rgb) for image in self.images]
            if degradation.deterministic
            else None
        )

    def __len__(self) -> int:
        return len(self.images)

    def sample(
        self, rng: np.random.Generator, batch_size: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """A batch of random crops, drawn with ``rng`` only (deterministic): per crop the
        image, the corner (a multiple of ``align``, so the crop sees the LR and
        pixel-unshuffle grids as a full-image inference does), then the degradation of
        the crop (of the whole image, once, when the degradation draws nothing).

        Returns:
            guidance (B, 3, c, c) in [0, 1], target (B, 1, c, c) (the degraded input),
            truth (B, 1, c, c) normalised, mask (B, 1, c, c) bool.
        """
        c, a = self.crop, self.align
        guid, targ, truth, mask = [], [], [], []
        for _ in range(batch_size):
            index = int(rng.integers(len(self.images)))
            image = self.images[index]
            h, w = image.depth.shape
            y = int(rng.integers((h - c) // a + 1)) * a
            x = int(rng.integers((w - c) // a + 1)) * a
            rgb = image.rgb[y : y + c, x : x + c]
            if self._fixed is not None:
                degraded = self._fixed[index][y : y + c, x : x + c]
            else:  # the crop sees the LR grid of the whole image: its corner is aligned
                degraded = self.degradation.apply(image.depth[y : y + c, x : x + c], rng, rgb)
            guid.append(rgb)
            targ.append(degraded)
            truth.append(image.depth[y : y + c, x : x + c])
            mask.append(image.mask[y : y + c, x : x + c])
        guidance = torch.from_numpy(np.stack(guid)).permute(0, 3, 1, 2).float() / 255.0
        return (
            guidance.contiguous(),
            torch.from_numpy(np.stack(targ))[:, None],
            torch.from_numpy(np.stack(truth))[:, None],
            torch.from_numpy(np.stack(mask))[:, None],
        )


# --------------------------------------------------------------------------- NYU v2 test samples


def nyu_sample_pairs(root: str | os.PathLike | None = None) -> list[RGBDFiles]:
    """The NYU v2 test frames present in ``nyu_test_samples/``: ``Depth/N.npy`` + ``RGB/N.jpg``
    (``N`` the 0-based index into the 1449 labeled frames; 1000-1448 are the test split),
    sorted by N."""
    folder = _require("nyu_test_samples", root)
    pairs = []
    for depth in (folder / "Depth").glob("*.npy"):
        candidates = [folder / "RGB" / f"{depth.stem}{ext}" for ext in (".jpg", ".png")]
        rgb = next((path for path in candidates if path.is_file()), None)
        if rgb is None:
            raise FileNotFoundError(f"{candidates[0]}: colour image for {depth.name} not found")
        pairs.append(RGBDFiles(depth.stem, rgb, depth))
    if not pairs:
        raise FileNotFoundError(f"{folder / 'Depth'}: no .npy files")
    return sorted(pairs, key=lambda p: (int(p.name) if p.name.isdigit() else 1 << 30, p.name))


def load_nyu_sample(pair: RGBDFiles) -> tuple[np.ndarray, np.ndarray]:
    """RGB (H, W, 3) uint8 and depth (H, W) float32 metres (the inpainted ``depths``
    field: no holes)."""
    try:
        depth = np.load(pair.depth, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{pair.depth}: not a readable .npy array ({exc})") from None
    if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.floating):
        raise ValueError(
            f"{pair.depth}: expected 2-D float metres, got {depth.shape} {depth.dtype}"
        )
    rgb = load_rgb(pair.rgb)
    if rgb.shape[:2] != depth.shape:
        raise ValueError(f"{pair.name}: RGB {rgb.shape} and depth {depth.shape} differ in size")
    return rgb, depth.astype(np.float32)


# --------------------------------------------------------------------------- datasets
# One interface for every source of RGB-D pairs: a sequence of RGBDImage.


@dataclass(frozen=True)
class RGBDImage:
    """One RGB-D pair in memory.

    Attributes:
        name: the pair's name in its dataset.
        rgb: (H, W, 3) uint8 RGB.
        depth: (H, W) float32 in the dataset's ``unit``; 0 or non-finite = missing.
    """

    name: str
    rgb: np.ndarray
    depth: np.ndarray


class DepthDataset(Sequence):
    """A dataset of :class:`RGBDImage`, read on demand (``dataset[i]``, ``len``, iteration).

    Attributes:
        name: the name :func:`open_dataset` knows it by.
        split: ``train``, ``val``, ``test`` or ``all``.
        unit: the unit of ``RGBDImage.depth`` (``mm``, ``m`` or ``0..255``).
        report_unit, report_factor: errors are reported in ``report_unit`` =
            ``unit`` x ``report_factor`` (NYU: metres to centimetres, as the paper).
    """

    name = ""
    unit = ""
    report_unit = ""
    report_factor = 1.0

    def __init__(self, split: str, names: list[str], load: Callable[[int], RGBDImage]):
        self.split = split
        self.names = names
        self._load = load

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> RGBDImage:  # type: ignore[override]
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.name} {self.split}: index {index} out of {len(self)}")
        return self._load(index % len(self))

    def __repr__(self) -> str:
        return f"<{self.name} {self.split}: {len(self)} pairs, depth in {self.unit}>"


def _pair_dataset(cls, split: str, pairs: list[RGBDFiles], load) -> DepthDataset:
    def sample(i: int) -> RGBDImage:
        rgb, depth = load(pairs[i])
        return RGBDImage(pairs[i].name, rgb, depth.astype(np.float32))

    return cls(split, [p.name for p in pairs], sample)


class RGBDD(DepthDataset):
    """RGB-D-D (``rgbdd/``) without the three test-only scenes of ``rgbdd_real_lr``:
    ``train`` = 381 pairs, ``val`` = every 20th (21), ``all`` (402)."""

    name, unit, report_unit = "rgbdd", "mm", "mm"

    @classmethod
    def open(cls, split: str = "train", root=None) -> RGBDD:
        train, val = split_rgbdd(rgbdd_pairs(root))
        pairs = {"train": train, "val": val, "all": sorted(train + val, key=lambda p: p.name)}
        return _pair_dataset(cls, split, _pick(cls.name, pairs, split), load_rgbdd)


class Middlebury(DepthDataset):
    """The 30 Middlebury pairs of Lu et al. (``middlebury30/``): ``test`` only."""

    name, unit, report_unit = "middlebury30", "0..255", "0..255"

    @classmethod
    def open(cls, split: str = "test", root=None) -> Middlebury:
        pairs = _pick(cls.name, {"test": middlebury_pairs(root)}, split)
        return _pair_dataset(cls, split, pairs, load_middlebury)


class NYUSamples(DepthDataset):
    """The NYU v2 test frames shipped in ``nyu_test_samples/`` (1000-1002): ``test``."""

    name, unit, report_unit, report_factor = "nyu_test_samples", "m", "cm", 100.0

    @classmethod
    def open(cls, split: str = "test", root=None) -> NYUSamples:
        pairs = _pick(cls.name, {"test": nyu_sample_pairs(root)}, split)
        return _pair_dataset(cls, split, pairs, load_nyu_sample)


NYU_LEVELS = 65535  # prepare_nyu stores depth as 16-bit levels of each frame's own range
NYU_INDEX = "index.json"


def read_nyu_index(folder: str | Path) -> list[dict]:
    """The frames of a folder converted by ``training/prepare_nyu.py`` (``index.json``)."""
    path = Path(folder) / NYU_INDEX
    try:
        return json.loads(path.read_text())["frames"]
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} not found: convert nyu_depth_v2_labeled.mat with "
            "python -m training.prepare_nyu first"
        ) from None
    except (json.JSONDecodeError, KeyError) as exc:
        raise ValueError(f"{path}: not an index written by prepare_nyu ({exc})") from None


def read_nyu_frame(folder: str | Path, entry: dict) -> tuple[np.ndarray, np.ndarray]:
    """RGB (480, 640, 3) uint8 and depth (480, 640) float32 metres of one index entry."""
    folder = Path(folder)
    with Image.open(folder / entry["rgb"]) as image:
        rgb = np.array(image.convert("RGB"), dtype=np.uint8)
    with Image.open(folder / entry["depth"]) as image:
        levels = np.asarray(image, dtype=np.float64)
    span = depth_span(entry["min_m"], entry["max_m"])
    depth = entry["min_m"] + levels / NYU_LEVELS * span
    return rgb, depth.astype(np.float32)


class NYUPrepared(DepthDataset):
    """NYU v2 labeled frames converted by ``training/prepare_nyu.py`` (``nyu_v2/``): the
    standard split, ``train`` = frames 0-999 except every 20th, ``val`` = every 20th
    of 0-999 (50), ``test`` = 1000-1448; ``trainval`` = 0-999."""

    name, unit, report_unit, report_factor = "nyu_v2", "m", "cm", 100.0

    @classmethod
    def open(cls, split: str = "train", root=None) -> NYUPrepared:
        folder = _require(cls.name, root)
        entries = read_nyu_index(folder)
        trainval = [e for e in entries if e["split"] == "train"]
        by_split = {
            "trainval": trainval,
            "train": [e for e in trainval if e["index"] % VALIDATION_EVERY],
            "val": [e for e in trainval if e["index"] % VALIDATION_EVERY == 0],
            "test": [e for e in entries if e["split"] == "test"],
        }
        chosen = _pick(cls.name, by_split, split)

        def sample(i: int) -> RGBDImage:
            rgb, depth = read_nyu_frame(folder, chosen[i])
            return RGBDImage(f"{chosen[i]['index']:04d}", rgb, depth)

        return cls(split, [f"{e['index']:04d}" for e in chosen], sample)


class SyntheticScenes(DepthDataset):
    """Scenes of the synthetic generator (``dkn_ros.synthetic``, exact depth in metres):
    pair i of split ``train`` is scene ``i`` seen at time ``0.37 i``; ``val`` uses
    scenes from 10000 on, so the two never share a scene."""

    name, unit, report_unit, report_factor = "synthetic", "m", "mm", 1000.0

    @classmethod
    def open(
        cls, split: str = "train", root=None, count: int = 64, width: int = 512, height: int = 384
    ) -> SyntheticScenes:
        from dkn_ros.synthetic import render_frame

        first = _pick(cls.name, {"train": 0, "val": 10000}, split)

        def sample(i: int) -> RGBDImage:
            frame = render_frame(t=0.37 * i, width=width, height=height, seed=first + i)
            return RGBDImage(f"scene{first + i:05d}", frame.color, frame.depth)

        return cls(split, [f"scene{first + i:05d}" for i in range(count)], sample)


class CameraMix(DepthDataset):
    """The training mix of the camera weights: RGB-D-D (real ToF depth, colour only
    roughly registered to it) plus synthetic scenes (exact depth, colour edges exactly
    on the depth edges), so the network learns both how far colour can be trusted and
    what it is worth when it can. ``train`` = RGB-D-D ``train`` (381) + synthetic
    ``train`` scenes 0-199; ``val`` = RGB-D-D ``val`` only (21, in mm), so validation
    numbers stay comparable with the RGB-D-D-only runs. Depth is normalised per image in
    training, so the two units (mm and m) never meet."""

    name, unit, report_unit = "camera_mix", "mm", "mm"
    SYNTHETIC_SCENES = 200

    @classmethod
    def open(cls, split: str = "train", root=None) -> CameraMix:
        _pick(cls.name, {"train": "train", "val": "val"}, split)  # a bad split fails first
        rgbdd = RGBDD.open(split, root)
        if split == "val":
            return cls(split, list(rgbdd.names), rgbdd.__getitem__)
        synthetic = SyntheticScenes.open("train", root, count=cls.SYNTHETIC_SCENES)
        n = len(rgbdd)

        def sample(i: int) -> RGBDImage:
            return rgbdd[i] if i < n else synthetic[i - n]

        return cls(split, [*rgbdd.names, *synthetic.names], sample)


def _pick(name: str, splits: dict, split: str):
    if split not in splits:
        raise ValueError(f"dataset {name!r} has no split {split!r}; splits: {', '.join(splits)}")
    return splits[split]


DATASET_CLASSES: dict[str, type[DepthDataset]] = {
    cls.name: cls
    for cls in (RGBDD, Middlebury, NYUSamples, NYUPrepared, SyntheticScenes, CameraMix)
}


def open_dataset(name: str, split: str = "train", root: str | os.PathLike | None = None):
    """The ``split`` of dataset ``name`` (a key of :data:`DATASET_CLASSES`) under the
    data directory ``root`` (default :func:`data_dir`)."""
    if name not in DATASET_CLASSES:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASET_CLASSES)}")
    return DATASET_CLASSES[name].open(split, root)
