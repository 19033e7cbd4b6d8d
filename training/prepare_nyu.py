"""Convert the official NYU Depth v2 labeled file into the standard DJF/DKN split.

Input: ``nyu_depth_v2_labeled.mat`` (2.8 GB) from the NYU Depth v2 page,
https://cs.nyu.edu/~fergus/datasets/nyu_depth_v2.html ("Labeled dataset"). It is a
MATLAB v7.3 file, i.e. HDF5, whose arrays h5py sees transposed (MATLAB is column-major):

    images  (1449, 3, 640, 480) uint8    frame n, channel c, column x, row y
    depths  (1449, 640, 480)    float    metres, inpainted (no holes)

Output, in ``OUT`` (default ``$DKN_DATA_DIR/nyu_v2``; never inside the repository):

    index.json                 per frame: index, split, files, min_m, max_m
    train/0000_rgb.png ...     frames 0-999 (the training split of DJF, DKN, FDSR, DCTNet)
    train/0000_depth.png
    test/1000_rgb.png ...      frames 1000-1448 (the test split)
    test/1000_depth.png

``*_rgb.png`` is the 480 x 640 colour image; ``*_depth.png`` is the depth normalised by
the frame's own min and max (the paper's NYU protocol normalises exactly so) and stored
as uint16, ``round((d - min) / (max - min) * 65535)``, with min and max in metres in
``index.json``: about a tenth of the float32 size, and at most (max - min) / 131070
(under 0.1 mm for a 10 m range) from the original. ``training.data.read_nyu_frame``
decodes a frame back to metres.

    python -m training.prepare_nyu nyu_depth_v2_labeled.mat            # -> $DKN_DATA_DIR/nyu_v2
    python -m training.prepare_nyu nyu_depth_v2_labeled.mat --out DIR

The frames are read one at a time (memory stays small); an existing output with the same
frames is left alone unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from dkn_ros.processing import depth_span
from training.data import NYU_INDEX, NYU_LEVELS, data_dir, read_nyu_index

__all__ = ["TRAIN_FRAMES", "convert"]

TRAIN_FRAMES = 1000  # frames 0-999 train, 1000-1448 test (DJF / DKN / FDSR / DCTNet)


def _open_arrays(path: Path):
    try:
        import h5py
    except ImportError:
        raise SystemExit(
            "prepare_nyu needs h5py (pip install h5py, or pip install -e '.[train]')"
        ) from None
    try:
        handle = h5py.File(path, "r")
    except FileNotFoundError:
        raise SystemExit(f"{path}: file not found") from None
    except OSError as exc:
        raise SystemExit(f"{path}: not an HDF5 / MATLAB v7.3 file ({exc})") from None
    missing = [name for name in ("images", "depths") if name not in handle]
    if missing:
        handle.close()
        raise SystemExit(f"{path}: no {' and '.join(missing)} dataset (not the NYU labeled file)")
    images, depths = handle["images"], handle["depths"]
    if (
        images.ndim != 4
        or images.shape[1] != 3
        or depths.shape
        != (
            images.shape[0],
            *images.shape[2:],
        )
    ):
        handle.close()
        raise SystemExit(
            f"{path}: images {images.shape} and depths {depths.shape} are not the official "
            "layout (N, 3, 640, 480) and (N, 640, 480)"
        )
    return handle, images, depths


def convert(mat_path: str | Path, out: str | Path, overwrite: bool = False) -> list[dict]:
    """Convert every frame of ``mat_path`` into ``out`` (see the module docstring) and
    return the index entries."""
    mat_path, out = Path(mat_path), Path(out)
    handle, images, depths = _open_arrays(mat_path)
    count = images.shape[0]
    index_path = out / NYU_INDEX
    if index_path.is_file() and not overwrite:
        entries = read_nyu_index(out)
        if len(entries) == count:
            handle.close()
            print(f"{out} already holds {count} frames; --overwrite to convert again")
            return entries
    from tqdm import tqdm

    entries = []
    try:
        for n in tqdm(range(count), desc="NYU v2 frames", unit="frame"):
            split = "train" if n < TRAIN_FRAMES else "test"
            (out / split).mkdir(parents=True, exist_ok=True)
            rgb = np.ascontiguousarray(np.asarray(images[n]).transpose(2, 1, 0))  # (H, W, 3)
            depth = np.asarray(depths[n], dtype=np.float64).T  # (H, W) metres
            if not np.isfinite(depth).all():
                raise SystemExit(f"{mat_path}: frame {n} has non-finite depth")
            dmin, dmax = float(depth.min()), float(depth.max())
            span = depth_span(dmin, dmax)
            levels = np.round((depth - dmin) / span * NYU_LEVELS).astype(np.uint16)
            stem = f"{n:04d}"
            Image.fromarray(rgb.astype(np.uint8)).save(out / split / f"{stem}_rgb.png")
            Image.fromarray(levels).save(out / split / f"{stem}_depth.png")
            entries.append(
                {
                    "index": n,
                    "split": split,
                    "rgb": f"{split}/{stem}_rgb.png",
                    "depth": f"{split}/{stem}_depth.png",
                    "min_m": dmin,
                    "max_m": dmax,
                }
            )
    finally:
        handle.close()
    source = {"file": mat_path.name, "frames": count, "train_frames": TRAIN_FRAMES}
    index_path.write_text(json.dumps({"source": source, "frames": entries}, indent=1) + "\n")
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        "python -m training.prepare_nyu", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("mat", help="nyu_depth_v2_labeled.mat (MATLAB v7.3 / HDF5)")
    parser.add_argument("--out", default=None, help="output folder (default: $DKN_DATA_DIR/nyu_v2)")
    parser.add_argument("--overwrite", action="store_true", help="convert again if present")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else data_dir() / "nyu_v2"
    entries = convert(args.mat, out, args.overwrite)
    train = sum(e["split"] == "train" for e in entries)
    print(f"wrote {len(entries)} frames to {out}: {train} train, {len(entries) - train} test")
    return 0


if __name__ == "__main__":
    sys.exit(main())
