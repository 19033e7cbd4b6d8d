"""The RGB-D data bundled with the package: five consecutive 640 x 480 frames of a living
room (Open3D's sample RGB-D images, Redwood format, MIT licence; see
``dkn_ros/data/rgbd_sequence/README.md``).

    from dkn_ros.sample_data import rgbd_sequence
    for color, depth_mm in rgbd_sequence():
        ...

Open3D documents them as Redwood "living-room1", the Augmented ICL-NUIM living room: a
rendered scene, not a recording, whose depth is not exact either: it carries a depth
sensor's disparity steps (about 18 mm at 2.2 m) and empty borders, as Redwood's simulated
PrimeSense noise makes them. The demos use it as a camera whose depth is not ours to
choose: its full-resolution depth (holes included) is the reference, and the
low-resolution input is sampled from it (:func:`point_sample`).
"""

from __future__ import annotations

import io
from importlib import resources

import numpy as np
from PIL import Image

from dkn_ros.synthetic import CameraIntrinsics

__all__ = [
    "SEQUENCE_INTRINSICS",
    "point_sample",
    "rgbd_sequence",
    "rgbd_sequence_files",
]

SEQUENCE = "data/rgbd_sequence"
LICENSE_FILE = "LICENSE-Open3D.txt"

# The PrimeSense default intrinsics, which Open3D uses with this data
# (camera_primesense.json): fx = fy = 525, principal point at the image centre.
SEQUENCE_INTRINSICS = CameraIntrinsics(
    fx=525.0, fy=525.0, cx=319.5, cy=239.5, width=640, height=480
)


def rgbd_sequence_files():
    """The bundled sequence's folder as an importlib.resources Traversable (a real folder
    for an installed or editable package)."""
    return resources.files("dkn_ros").joinpath(SEQUENCE)


def rgbd_sequence() -> list[tuple[np.ndarray, np.ndarray]]:
    """The five bundled frames, in order, as read from the package.

    Returns:
        [(colour, depth)] with colour (480, 640, 3) uint8 RGB and depth (480, 640) uint16
        millimetres, 0 = invalid (no measurement), registered to the colour image.
    """
    folder = rgbd_sequence_files()
    match = folder.joinpath("rgbd.match").read_text(encoding="utf-8")
    frames = []
    for line in match.splitlines():
        if not line.strip():
            continue
        depth_name, color_name = line.split()
        with Image.open(io.BytesIO(folder.joinpath(color_name).read_bytes())) as image:
            color = np.asarray(image.convert("RGB"), dtype=np.uint8)
        with Image.open(io.BytesIO(folder.joinpath(depth_name).read_bytes())) as image:
            depth = np.asarray(image, dtype=np.uint16)
        if color.shape[:2] != depth.shape:
            raise ValueError(f"{depth_name}: size {depth.shape} differs from {color_name}'s")
        frames.append((color, depth))
    return frames


def point_sample(depth: np.ndarray, scale: int) -> np.ndarray:
    """What a native low-resolution depth sensor (or driver decimation) delivers: every
    ``scale``-th pixel, the centre of each ``scale x scale`` block,
    ``depth[s//2::s, s//2::s]`` of ``depth`` cropped to a multiple of ``scale``. Invalid
    pixels (0) stay invalid."""
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    height, width = (n - n % scale for n in depth.shape[:2])
    return depth[scale // 2 : height : scale, scale // 2 : width : scale].copy()
