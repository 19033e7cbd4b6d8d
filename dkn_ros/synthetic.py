"""Synthetic RGB-D scenes with exact ground truth and a Kinect-like depth degradation.

This module is pure numpy/scipy. It exists to feed the demo, the tests and the benchmarks with
RGB-D frames whose depth is known exactly, and with low-resolution, noisy, holey depth maps that
look roughly like the output of a structured-light sensor (Kinect v1).

Scene
-----
World frame: metres, ``y`` up, the floor is the plane ``y = 0``. The scene is a closed room
(``ROOM_MIN`` .. ``ROOM_MAX``) so that every camera ray hits something and the depth is finite
everywhere:

* floor (``LABEL_FLOOR``): wooden checkerboard (0.5 m tiles) with a grain texture;
* back wall (``LABEL_BACK_WALL``, ``z = ROOM_MAX[2]``): vertical wallpaper stripes and a framed
  noise "poster" (colour edges without any depth edge);
* side wall (``LABEL_SIDE_WALL``, ``x = ROOM_MAX[0]``, seen on the left of the image): blue-grey
  value-noise plaster with a white skirting board;
* the other walls and the ceiling, with low-contrast noise textures;
* a few seeded objects standing on the floor: axis-aligned boxes (stripes / checkers / noise
  textures) and spheres (solid or beach-ball segments), each with a distinct colour, and a
  "cabinet" box against the back wall that carries the wallpaper texture, i.e. a depth edge
  whose two sides have almost the same colour.

Colour is ``albedo * shading`` where the shading is Lambertian with an ambient term, one
directional light and one point light under the ceiling (with distance fall-off), so colour
varies smoothly inside a surface and is not piecewise constant. There are no cast shadows.
Object silhouettes are depth edges with colour edges; texture edges are colour edges without
depth edges.

Camera
------
A pinhole camera with square pixels, OpenCV convention (``x`` right, ``y`` down, ``z`` forward),
pixel ``(u, v)`` has its centre at image coordinate ``(u, v)``, ``cx = (W - 1) / 2``,
``cy = (H - 1) / 2`` and ``fx = fy = (W / 2) / tan(hfov / 2)`` with a 58 degree horizontal field
of view (Kinect v1). Its pose (:func:`camera_pose`) is a smooth function of time: a slow sideways
sway with a small bob, looking at a point that drifts over the objects.

Rays are cast analytically and vectorised over all pixels (room slab exit, box slabs, sphere
quadratics, nearest hit). The camera ray of pixel ``(u, v)`` is ``R @ ((u - cx)/fx,
(v - cy)/fy, 1)`` (not normalised), so the ray parameter of the hit equals its ``z`` in the
camera frame: the returned depth is the exact z-depth (not the Euclidean range) in metres.

Degradation (:func:`degrade_depth`, :class:`KinectDegradation`)
--------------------------------------------------------------
In this order:

1. crop ``H`` and ``W`` down to multiples of ``scale`` (rows/columns are dropped at the bottom and
   right), then downsample by **block averaging** (area) the ground truth over ``scale x scale``
   blocks (:func:`downsample_depth`). A block with any invalid input pixel (non-finite or <= 0)
   is invalid. Block averaging mixes both sides of silhouettes ("flying pixels"), as a real
   sensor does; most of them are removed by the edge holes below.
2. additive Gaussian noise with ``std = noise_std_at_1m * z**2`` (seeded);
3. rounding to multiples of ``quantisation_mm`` millimetres (always to whole millimetres, the
   output format);
4. holes: random blobs covering ``hole_fraction`` of the pixels (smoothed white noise, the
   highest values are dropped, so the count is exact), and, with ``edge_holes``, pixels of the
   clean downsampled depth whose 8-neighbourhood contains a jump larger than
   ``EDGE_JUMP_RELATIVE * z`` (like Kinect shadows at discontinuities). Invalid pixels count as
   depth 0 for this test, so edge holes also grow existing holes by one pixel;
5. range cut: measurements beyond ``max_range_m`` (or <= 0) become invalid.

The result is ``uint16`` millimetres with 0 meaning "no measurement", like the
``16UC1`` depth images of ROS drivers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from numbers import Real

import numpy as np
from scipy import ndimage

__all__ = [
    "DEFAULT_HFOV_DEG",
    "EDGE_JUMP_RELATIVE",
    "LABEL_BACK_WALL",
    "LABEL_BOX_BASE",
    "LABEL_CEILING",
    "LABEL_FLOOR",
    "LABEL_FRONT_WALL",
    "LABEL_OTHER_WALL",
    "LABEL_SIDE_WALL",
    "LABEL_SPHERE_BASE",
    "ROOM_MAX",
    "ROOM_MIN",
    "Box",
    "CameraIntrinsics",
    "CameraPose",
    "KinectDegradation",
    "RGBDFrame",
    "Scene",
    "Sphere",
    "blob_mask",
    "camera_pose",
    "degrade_depth",
    "downsample_depth",
    "generate_sequence",
    "make_scene",
    "render_frame",
    "render_frame_with_labels",
]

#: Horizontal field of view of the synthetic camera in degrees (Kinect v1 is about 58).
DEFAULT_HFOV_DEG = 58.0
#: Room corners (x, y, z) in metres; the floor is y = 0, the back wall z = ROOM_MAX[2].
ROOM_MIN = (-2.6, 0.0, -1.5)
ROOM_MAX = (1.8, 2.8, 4.8)
#: Edge holes: a jump to a neighbour larger than this fraction of the depth drops the pixel.
EDGE_JUMP_RELATIVE = 0.1

#: Surface labels returned by :func:`render_frame_with_labels`.
LABEL_FLOOR = 0
LABEL_CEILING = 1
LABEL_BACK_WALL = 2  # z = ROOM_MAX[2]
LABEL_SIDE_WALL = 3  # x = ROOM_MAX[0], on the left of the image
LABEL_OTHER_WALL = 4  # x = ROOM_MIN[0]
LABEL_FRONT_WALL = 5  # z = ROOM_MIN[2], behind the camera
LABEL_BOX_BASE = 10  # box i of Scene.boxes has label LABEL_BOX_BASE + i
LABEL_SPHERE_BASE = 30  # sphere i of Scene.spheres has label LABEL_SPHERE_BASE + i

_MIN_SIZE = 8
_MAX_SIZE = 4096
_MAX_SCALE = 16
_MAX_UINT16_M = 65.535

_AMBIENT = 0.32
_DIR_LIGHT = np.array([0.35, 1.0, -0.55]) / np.linalg.norm([0.35, 1.0, -0.55])
_DIR_WEIGHT = 0.45
_POINT_LIGHT = np.array([-0.2, 2.55, 1.6])
_POINT_WEIGHT = 0.55
_POINT_FALLOFF_M = 3.0

_PALETTE = (
    (0.82, 0.16, 0.13),  # red
    (0.16, 0.32, 0.82),  # blue
    (0.20, 0.66, 0.26),  # green
    (0.92, 0.76, 0.16),  # yellow
    (0.58, 0.26, 0.72),  # purple
    (0.96, 0.52, 0.12),  # orange
    (0.10, 0.62, 0.62),  # teal
)
_WALL_STRIPE_A = np.array([0.86, 0.80, 0.66], dtype=np.float32)
_WALL_STRIPE_B = np.array([0.76, 0.69, 0.55], dtype=np.float32)
_WALL_STRIPE_M = 0.2


# --------------------------------------------------------------------------------------------
# Data types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics in pixels; ``width`` and ``height`` are the image size in pixels."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def from_fov(
        cls, width: int, height: int, hfov_deg: float = DEFAULT_HFOV_DEG
    ) -> CameraIntrinsics:
        """Square-pixel intrinsics for a ``width x height`` image and a horizontal FOV in degrees.

        ``fx = fy = (width / 2) / tan(hfov / 2)``, principal point at the image centre
        ``((width - 1) / 2, (height - 1) / 2)`` (pixel centres at integer coordinates).
        """
        width = _check_int("width", width, _MIN_SIZE, _MAX_SIZE)
        height = _check_int("height", height, _MIN_SIZE, _MAX_SIZE)
        hfov = _check_real("hfov_deg", hfov_deg, 1.0, 179.0)
        f = (width / 2.0) / math.tan(math.radians(hfov) / 2.0)
        return cls(f, f, (width - 1) / 2.0, (height - 1) / 2.0, width, height)

    def downscaled(self, scale: int) -> CameraIntrinsics:
        """Intrinsics of the image produced by :func:`degrade_depth` with this ``scale``.

        Low-res pixel ``j`` is the average of high-res pixels ``j*scale .. j*scale + scale - 1``,
        whose centre is at high-res coordinate ``j*scale + (scale - 1)/2``; the image is cropped
        to multiples of ``scale`` first.
        """
        scale = _check_int("scale", scale, 1, _MAX_SCALE)
        off = (scale - 1) / 2.0
        return CameraIntrinsics(
            fx=self.fx / scale,
            fy=self.fy / scale,
            cx=(self.cx - off) / scale,
            cy=(self.cy - off) / scale,
            width=self.width // scale,
            height=self.height // scale,
        )


@dataclass(frozen=True, eq=False)
class CameraPose:
    """Camera-to-world rigid transform.

    ``rotation`` (3, 3) float64 has the camera axes (x right, y down, z forward) in world
    coordinates as its columns; ``position`` (3,) float64 is the optical centre in metres.
    A world point ``p`` has camera coordinates ``rotation.T @ (p - position)``.
    """

    rotation: np.ndarray
    position: np.ndarray


@dataclass
class RGBDFrame:
    """One rendered RGB-D frame.

    ``color`` (H, W, 3) uint8 RGB; ``depth`` (H, W) float32 z-depth in metres (exact ground
    truth, finite and > 0 everywhere); ``stamp`` seconds since the start of the sequence.
    """

    color: np.ndarray
    depth: np.ndarray
    intrinsics: CameraIntrinsics
    stamp: float


@dataclass(frozen=True)
class Box:
    """Axis-aligned box ``lo <= p <= hi`` (metres) with an RGB albedo in [0, 1].

    ``pattern`` is one of ``"stripes"``, ``"checker"``, ``"noise"`` or ``"wallpaper"`` (the back
    wall's texture, used by the cabinet standing against the back wall).
    """

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    albedo: tuple[float, float, float]
    pattern: str


@dataclass(frozen=True)
class Sphere:
    """Sphere with ``center`` (metres), ``radius`` (metres), RGB albedo in [0, 1] and a pattern
    (``"solid"`` or ``"segments"``)."""

    center: tuple[float, float, float]
    radius: float
    albedo: tuple[float, float, float]
    pattern: str


@dataclass(frozen=True, eq=False)
class Scene:
    """The room (``ROOM_MIN`` .. ``ROOM_MAX``), its objects and the texture parameters.

    ``noise`` is a read-only (64, 64) float32 lattice in [0, 1] for value-noise textures;
    ``poster`` is ``(x0, x1, y0, y1)`` in metres on the back wall.
    """

    room_min: tuple[float, float, float]
    room_max: tuple[float, float, float]
    boxes: tuple[Box, ...]
    spheres: tuple[Sphere, ...]
    poster: tuple[float, float, float, float]
    noise: np.ndarray = field(repr=False)
    seed: int


# --------------------------------------------------------------------------------------------
# Argument validation
# --------------------------------------------------------------------------------------------


def _check_int(name: str, value: object, lo: int, hi: int | None = None) -> int:
    bounds = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(
            f"{name} must be an integer {bounds}, got {value!r} of type {type(value).__name__}"
        )
    if value < lo or (hi is not None and value > hi):
        raise ValueError(f"{name} must be an integer {bounds}, got {value}")
    return int(value)


def _check_real(
    name: str,
    value: object,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {hi}")
    what = f"a finite number{' ' + ' and '.join(parts) if parts else ''}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        raise ValueError(f"{name} must be {what}, got {value!r} of type {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    if hi is not None and (v >= hi if hi_open else v > hi):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return v


# --------------------------------------------------------------------------------------------
# Scene construction
# --------------------------------------------------------------------------------------------


def make_scene(seed: int = 0) -> Scene:
    """Build the seeded scene: room, 2-3 boxes, 2 spheres, a wall-coloured cabinet, a poster.

    The same seed always gives the same scene. Objects stand on the floor in the region
    ``x in [-1.3, 1.2], z in [1.8, 3.9]`` without overlapping.
    """
    seed = _check_int("seed", seed, 0)
    return _make_scene_cached(seed)


@lru_cache(maxsize=16)
def _make_scene_cached(seed: int) -> Scene:
    rng = np.random.default_rng(seed)
    noise = rng.random((64, 64)).astype(np.float32)
    noise.setflags(write=False)

    n_boxes = int(rng.integers(2, 4))
    n_spheres = 2
    colours = [_PALETTE[i] for i in rng.permutation(len(_PALETTE))[: n_boxes + n_spheres]]
    patterns = ["stripes", "checker", "noise"]

    placed: list[tuple[float, float, float]] = []  # (x, z, footprint radius)

    def place(radius: float) -> tuple[float, float, float]:
        """Random free floor position for a footprint; shrinks it until it fits.

        Returns (x, z, shrink factor in (0, 1]).
        """
        shrink = 1.0
        while True:
            r = radius * shrink
            for _ in range(100):
                x = float(rng.uniform(-1.3 + r, 1.2 - r))
                z = float(rng.uniform(1.8 + r, 3.9 - r))
                if all(math.hypot(x - px, z - pz) > r + pr + 0.05 for px, pz, pr in placed):
                    placed.append((x, z, r))
                    return x, z, shrink
            shrink *= 0.85

    boxes: list[Box] = []
    for i in range(n_boxes):
        hx, hz = (float(v) for v in rng.uniform(0.15, 0.38, size=2))
        h = float(rng.uniform(0.3, 1.0))
        x, z, k = place(math.hypot(hx, hz))
        hx, hz = hx * k, hz * k
        pattern = patterns[int(rng.integers(len(patterns)))] if i else "stripes"
        boxes.append(Box((x - hx, 0.0, z - hz), (x + hx, h, z + hz), colours[i], pattern))

    spheres: list[Sphere] = []
    for j in range(n_spheres):
        r = float(rng.uniform(0.18, 0.34))
        x, z, k = place(r)
        r *= k
        pattern = "segments" if j == 0 else "solid"
        spheres.append(Sphere((x, r, z), r, colours[n_boxes + j], pattern))

    # Cabinet against the back wall carrying the wallpaper: depth edge, (almost) no colour edge.
    cx = float(rng.uniform(-1.2, 0.6))
    depth = 0.3
    boxes.append(
        Box(
            (cx - 0.35, 0.0, ROOM_MAX[2] - depth),
            (cx + 0.35, float(rng.uniform(1.0, 1.4)), ROOM_MAX[2]),
            tuple(float(c) for c in _WALL_STRIPE_A),
            "wallpaper",
        )
    )
    px = float(rng.uniform(-1.8, 0.4))
    poster = (px, px + float(rng.uniform(0.7, 1.1)), 1.45, 2.2)
    return Scene(ROOM_MIN, ROOM_MAX, tuple(boxes), tuple(spheres), poster, noise, seed)


def camera_pose(t: float = 0.0) -> CameraPose:
    """Camera pose at time ``t`` seconds: a smooth, slow sway (period 16 s) inside the room.

    The camera stays at ``z`` around -0.3 m, about 1.35 m above the floor, and looks at a point
    that drifts around ``(0, 0.7, 3.0)``. Independent of the scene seed.
    """
    t = _check_real("t", t)
    w = 2.0 * math.pi / 16.0
    ph = w * t
    position = np.array(
        [
            0.05 + 0.45 * math.sin(ph),
            1.35 + 0.06 * math.sin(2.3 * ph),
            -0.3 + 0.15 * math.sin(0.7 * ph + 0.3),
        ]
    )
    target = np.array(
        [
            -0.05 + 0.35 * math.sin(0.8 * ph + 1.0),
            0.7 + 0.1 * math.sin(1.3 * ph),
            3.0,
        ]
    )
    forward = target - position
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return CameraPose(np.column_stack([right, down, forward]), position)


# --------------------------------------------------------------------------------------------
# Textures
# --------------------------------------------------------------------------------------------


def _value_noise(lattice: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Tileable smooth value noise in [0, 1]; ``a`` and ``b`` are in lattice cells."""
    n = lattice.shape[0]
    ia = np.floor(a)
    ib = np.floor(b)
    fa = (a - ia).astype(np.float32)
    fb = (b - ib).astype(np.float32)
    fa = fa * fa * (3.0 - 2.0 * fa)
    fb = fb * fb * (3.0 - 2.0 * fb)
    i0 = ia.astype(np.int64) % n
    j0 = ib.astype(np.int64) % n
    i1 = (i0 + 1) % n
    j1 = (j0 + 1) % n
    top = lattice[i0, j0] * (1 - fb) + lattice[i0, j1] * fb
    bot = lattice[i1, j0] * (1 - fb) + lattice[i1, j1] * fb
    return top * (1 - fa) + bot * fa


def _fbm(lattice: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two-octave value noise in [0, 1]."""
    return (
        2.0 * _value_noise(lattice, a, b) + _value_noise(lattice, 2.0 * a + 17.0, 2.0 * b)
    ) / 3.0


def _mix(c0: np.ndarray, c1: np.ndarray, w: np.ndarray) -> np.ndarray:
    w = w.astype(np.float32)[:, None]
    return c0[None, :] * (1.0 - w) + c1[None, :] * w


def _rgb(c: tuple[float, float, float] | np.ndarray) -> np.ndarray:
    return np.asarray(c, dtype=np.float32)


def _wallpaper(scene: Scene, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    stripe = (np.floor(x / _WALL_STRIPE_M) % 2).astype(np.float32)
    out = _mix(_WALL_STRIPE_A, _WALL_STRIPE_B, stripe)
    out *= (0.96 + 0.08 * _value_noise(scene.noise, x * 6.0, y * 6.0))[:, None]
    return out


def _albedo_floor(scene: Scene, p: tuple[np.ndarray, ...]) -> np.ndarray:
    x, _, z = p
    tile = ((np.floor(x / 0.5) + np.floor(z / 0.5)) % 2).astype(np.float32)
    out = _mix(_rgb((0.66, 0.46, 0.28)), _rgb((0.86, 0.70, 0.50)), tile)
    grain = _fbm(scene.noise, x * 1.5 + 3.0 * tile, z * 14.0)
    out *= (0.85 + 0.3 * grain)[:, None]
    return out


def _albedo_back_wall(scene: Scene, p: tuple[np.ndarray, ...]) -> np.ndarray:
    x, y, _ = p
    out = _wallpaper(scene, x, y)
    x0, x1, y0, y1 = scene.poster
    frame = 0.04
    outer = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
    inner = (x >= x0 + frame) & (x <= x1 - frame) & (y >= y0 + frame) & (y <= y1 - frame)
    out[outer & ~inner] = _rgb((0.12, 0.10, 0.09))
    if inner.any():
        n = _fbm(scene.noise, x[inner] * 4.0 + 30.0, y[inner] * 4.0)
        sky = np.clip((y[inner] - y0) / (y1 - y0) * 1.6 - 0.3 + 0.4 * (n - 0.5), 0.0, 1.0)
        out[inner] = _mix(_rgb((0.15, 0.45, 0.20)), _rgb((0.45, 0.70, 0.95)), sky > 0.5)
        out[inner] *= (0.8 + 0.4 * n)[:, None]
    return out


def _albedo_side_wall(scene: Scene, p: tuple[np.ndarray, ...]) -> np.ndarray:
    _, y, z = p
    n = _fbm(scene.noise, z * 3.0 + 40.0, y * 3.0)
    out = _mix(_rgb((0.42, 0.50, 0.62)), _rgb((0.62, 0.70, 0.80)), n)
    out[y < 0.12] = _rgb((0.93, 0.93, 0.90))
    return out


def _albedo_plain(base: tuple[float, float, float], offset: float) -> Callable[..., np.ndarray]:
    def albedo(scene: Scene, p: tuple[np.ndarray, ...]) -> np.ndarray:
        # (x + z, y + (x - z) / 2) is a 2-D coordinate on any axis-aligned plane.
        a = (p[0] + p[2]) * 2.0 + offset
        b = (p[1] + 0.5 * (p[0] - p[2])) * 2.0
        n = _value_noise(scene.noise, a, b)
        return _rgb(base)[None, :] * (0.9 + 0.2 * n)[:, None]

    return albedo


def _albedo_box(scene: Scene, box: Box, p: tuple[np.ndarray, ...]) -> np.ndarray:
    x, y, z = p
    base = _rgb(box.albedo)
    if box.pattern == "wallpaper":
        return _wallpaper(scene, x, y)
    if box.pattern == "stripes":
        w = (np.floor(y / 0.08) % 2).astype(np.float32)
        return _mix(base, base * 0.55 + 0.4, w)
    if box.pattern == "checker":
        w = ((np.floor(x / 0.1) + np.floor(y / 0.1) + np.floor(z / 0.1)) % 2).astype(np.float32)
        return _mix(base, base * 0.45, w)
    n = _fbm(scene.noise, (x + z) * 5.0 + 50.0, y * 5.0)
    return base[None, :] * (0.6 + 0.7 * n)[:, None]


def _albedo_sphere(sphere: Sphere, p: tuple[np.ndarray, ...]) -> np.ndarray:
    base = _rgb(sphere.albedo)
    if sphere.pattern == "segments":
        cx, _, cz = sphere.center
        seg = (np.floor(np.arctan2(p[2] - cz, p[0] - cx) / (np.pi / 4)) % 2).astype(np.float32)
        return _mix(base, _rgb((0.95, 0.95, 0.92)), seg)
    return np.broadcast_to(base, (p[0].size, 3)).copy()


# --------------------------------------------------------------------------------------------
# Ray casting and shading
# --------------------------------------------------------------------------------------------


def _screen_window(
    lo: tuple[float, ...], hi: tuple[float, ...], pose: CameraPose, intr: CameraIntrinsics
) -> tuple[slice, slice] | None:
    """Pixel rows/cols that can see the world AABB ``lo..hi`` (None: not visible at all).

    The projection of a convex set in front of the camera lies in the convex hull of its
    projected corners; if a corner is behind (or at) the camera the whole image is returned.
    """
    corners = np.array(
        [
            [lo[0] if i & 1 else hi[0], lo[1] if i & 2 else hi[1], lo[2] if i & 4 else hi[2]]
            for i in range(8)
        ]
    )
    cam = (corners - pose.position) @ pose.rotation
    if np.any(cam[:, 2] <= 1e-6):
        if np.all(cam[:, 2] <= 0.0):
            return None
        return slice(0, intr.height), slice(0, intr.width)
    u = intr.fx * cam[:, 0] / cam[:, 2] + intr.cx
    v = intr.fy * cam[:, 1] / cam[:, 2] + intr.cy
    u0 = max(math.floor(u.min()) - 1, 0)
    u1 = min(math.ceil(u.max()) + 2, intr.width)
    v0 = max(math.floor(v.min()) - 1, 0)
    v1 = min(math.ceil(v.max()) + 2, intr.height)
    if u0 >= u1 or v0 >= v1:
        return None
    return slice(v0, v1), slice(u0, u1)


def _raycast(
    scene: Scene, pose: CameraPose, intr: CameraIntrinsics
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Nearest hit per pixel: (t == z-depth (H, W) float64, labels (H, W) int16, ray dirs)."""
    xn = (np.arange(intr.width, dtype=np.float64) - intr.cx) / intr.fx
    yn = (np.arange(intr.height, dtype=np.float64) - intr.cy) / intr.fy
    rot = pose.rotation
    dirs = tuple(rot[k, 0] * xn[None, :] + rot[k, 1] * yn[:, None] + rot[k, 2] for k in range(3))
    # Exact zeros would divide by zero in the slab tests; a 1e-30 nudge changes nothing else.
    inv = tuple(1.0 / np.where(d == 0.0, 1e-30, d) for d in dirs)
    o = pose.position

    # Room: the camera is inside, so the hit is the exit point of the room slab.
    wall_pos = (LABEL_SIDE_WALL, LABEL_CEILING, LABEL_BACK_WALL)
    wall_neg = (LABEL_OTHER_WALL, LABEL_FLOOR, LABEL_FRONT_WALL)
    best = np.full((intr.height, intr.width), np.inf)
    labels = np.zeros((intr.height, intr.width), dtype=np.int16)
    for k in range(3):
        pos = inv[k] > 0
        tk = (np.where(pos, scene.room_max[k], scene.room_min[k]) - o[k]) * inv[k]
        closer = tk < best
        best[closer] = tk[closer]
        labels[closer] = np.where(pos, wall_pos[k], wall_neg[k])[closer]

    # Objects: only the pixels of their screen-space bounding rectangle are tested.
    for i, box in enumerate(scene.boxes):
        win = _screen_window(box.lo, box.hi, pose, intr)
        if win is None:
            continue
        tnear = np.full(best[win].shape, -np.inf)
        tfar = np.full(best[win].shape, np.inf)
        for k in range(3):
            t1 = (box.lo[k] - o[k]) * inv[k][win]
            t2 = (box.hi[k] - o[k]) * inv[k][win]
            np.maximum(tnear, np.minimum(t1, t2), out=tnear)
            np.minimum(tfar, np.maximum(t1, t2), out=tfar)
        hit = (tnear <= tfar) & (tnear > 1e-9) & (tnear < best[win])
        best[win][hit] = tnear[hit]
        labels[win][hit] = LABEL_BOX_BASE + i

    for i, sph in enumerate(scene.spheres):
        lo = tuple(c - sph.radius for c in sph.center)
        hi = tuple(c + sph.radius for c in sph.center)
        win = _screen_window(lo, hi, pose, intr)
        if win is None:
            continue
        d = [dk[win] for dk in dirs]
        oc = [o[k] - sph.center[k] for k in range(3)]
        a = d[0] ** 2 + d[1] ** 2 + d[2] ** 2
        half_b = d[0] * oc[0] + d[1] * oc[1] + d[2] * oc[2]
        c = oc[0] ** 2 + oc[1] ** 2 + oc[2] ** 2 - sph.radius**2
        disc = half_b * half_b - a * c
        hit = disc > 0
        ts = np.where(hit, (-half_b - np.sqrt(np.where(hit, disc, 0.0))) / a, np.inf)
        hit &= (ts > 1e-9) & (ts < best[win])
        best[win][hit] = ts[hit]
        labels[win][hit] = LABEL_SPHERE_BASE + i
    return best, labels, dirs


def _contact_shadow(scene: Scene, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Soft darkening factor in (0, 1] of the floor around the objects' footprints."""
    factor = np.ones(x.shape, dtype=np.float32)
    for box in scene.boxes:
        dx = np.maximum(np.maximum(box.lo[0] - x, x - box.hi[0]), 0.0)
        dz = np.maximum(np.maximum(box.lo[2] - z, z - box.hi[2]), 0.0)
        factor *= 1.0 - 0.45 * np.exp(-(dx * dx + dz * dz) / 0.03)
    for sph in scene.spheres:
        d2 = (x - sph.center[0]) ** 2 + (z - sph.center[2]) ** 2
        factor *= 1.0 - 0.55 * np.exp(-d2 / (0.7 * sph.radius) ** 2)
    return factor


_PLANE_NORMALS = {
    LABEL_FLOOR: (0.0, 1.0, 0.0),
    LABEL_CEILING: (0.0, -1.0, 0.0),
    LABEL_BACK_WALL: (0.0, 0.0, -1.0),
    LABEL_FRONT_WALL: (0.0, 0.0, 1.0),
    LABEL_SIDE_WALL: (-1.0, 0.0, 0.0),
    LABEL_OTHER_WALL: (1.0, 0.0, 0.0),
}
_PLANE_ALBEDO: dict[int, Callable[..., np.ndarray]] = {
    LABEL_FLOOR: _albedo_floor,
    LABEL_BACK_WALL: _albedo_back_wall,
    LABEL_SIDE_WALL: _albedo_side_wall,
    LABEL_CEILING: _albedo_plain((0.93, 0.92, 0.88), 11.0),
    LABEL_OTHER_WALL: _albedo_plain((0.70, 0.80, 0.66), 23.0),
    LABEL_FRONT_WALL: _albedo_plain((0.60, 0.60, 0.62), 37.0),
}


def _lambert(p: tuple[np.ndarray, ...], n: tuple[np.ndarray | float, ...]) -> np.ndarray:
    """Shading factor (N,) float32: ambient + directional + point light with fall-off."""
    lam_dir = np.maximum(n[0] * _DIR_LIGHT[0] + n[1] * _DIR_LIGHT[1] + n[2] * _DIR_LIGHT[2], 0.0)
    lx, ly, lz = (_POINT_LIGHT[k] - p[k] for k in range(3))
    dist2 = lx * lx + ly * ly + lz * lz
    lam_pt = np.maximum(n[0] * lx + n[1] * ly + n[2] * lz, 0.0) / np.sqrt(dist2)
    lam_pt /= 1.0 + dist2 / _POINT_FALLOFF_M**2
    shading = _AMBIENT + _DIR_WEIGHT * lam_dir + 1.6 * _POINT_WEIGHT * lam_pt
    return np.broadcast_to(shading, p[0].shape).astype(np.float32)


def _shade(
    scene: Scene, pose: CameraPose, depth: np.ndarray, labels: np.ndarray, dirs: tuple
) -> np.ndarray:
    """Colour (H, W, 3) uint8 = albedo x (ambient + directional + point-light Lambert terms)."""
    h, w = depth.shape
    o = pose.position
    rgb = np.empty((h * w, 3), dtype=np.float32)
    flat_labels = labels.ravel()
    flat_depth = depth.ravel()
    flat_dirs = tuple(d.ravel() for d in dirs)

    for lab in np.flatnonzero(np.bincount(flat_labels)).tolist():
        idx = np.flatnonzero(flat_labels == lab)
        t = flat_depth[idx]
        p = tuple(o[k] + t * flat_dirs[k][idx] for k in range(3))
        normal: tuple[np.ndarray | float, ...]
        if lab in _PLANE_NORMALS:
            albedo = _PLANE_ALBEDO[lab](scene, p)
            if lab == LABEL_FLOOR:
                albedo *= _contact_shadow(scene, p[0], p[2])[:, None]
            normal = _PLANE_NORMALS[lab]
        elif lab >= LABEL_SPHERE_BASE:
            sph = scene.spheres[lab - LABEL_SPHERE_BASE]
            albedo = _albedo_sphere(sph, p)
            normal = tuple((p[k] - sph.center[k]) / sph.radius for k in range(3))
        else:
            box = scene.boxes[lab - LABEL_BOX_BASE]
            albedo = _albedo_box(scene, box, p)
            centre = [(box.lo[k] + box.hi[k]) / 2 for k in range(3)]
            half = [(box.hi[k] - box.lo[k]) / 2 for k in range(3)]
            rel = np.stack([(p[k] - centre[k]) / half[k] for k in range(3)])
            axis = np.argmax(np.abs(rel), axis=0)
            sign = np.sign(rel[axis, np.arange(idx.size)])
            normal = tuple(np.where(axis == k, sign, 0.0) for k in range(3))
        rgb[idx] = albedo * _lambert(p, normal)[:, None]
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).reshape(h, w, 3)


def render_frame_with_labels(
    t: float = 0.0, width: int = 640, height: int = 480, seed: int = 0
) -> tuple[RGBDFrame, np.ndarray]:
    """Like :func:`render_frame`, also returning the (H, W) int16 surface label of each pixel.

    Labels are ``LABEL_FLOOR`` .. ``LABEL_FRONT_WALL`` for the room,
    ``LABEL_BOX_BASE + i`` for ``make_scene(seed).boxes[i]`` and ``LABEL_SPHERE_BASE + i`` for
    ``make_scene(seed).spheres[i]``.
    """
    t = _check_real("t", t)
    intr = CameraIntrinsics.from_fov(width, height)
    scene = make_scene(seed)
    pose = camera_pose(t)
    depth, labels, dirs = _raycast(scene, pose, intr)
    color = _shade(scene, pose, depth, labels, dirs)
    frame = RGBDFrame(color=color, depth=depth.astype(np.float32), intrinsics=intr, stamp=t)
    return frame, labels


def render_frame(t: float = 0.0, width: int = 640, height: int = 480, seed: int = 0) -> RGBDFrame:
    """Render the scene of ``seed`` seen at time ``t`` (seconds) by a ``width x height`` camera.

    Args:
        t: time in seconds (any finite number); the camera pose is :func:`camera_pose` ``(t)``.
        width, height: image size in pixels, integers in [8, 4096].
        seed: non-negative integer selecting the scene layout (:func:`make_scene`).

    Returns:
        :class:`RGBDFrame` with ``color`` (H, W, 3) uint8 RGB, ``depth`` (H, W) float32 exact
        z-depth in metres (finite, > 0), the intrinsics (58 degree horizontal FOV) and
        ``stamp = t``.
    """
    return render_frame_with_labels(t, width, height, seed)[0]


def generate_sequence(
    num_frames: int = 8, width: int = 640, height: int = 480, fps: float = 30.0, seed: int = 0
) -> list[RGBDFrame]:
    """Render ``num_frames`` (>= 1) frames at times ``i / fps`` seconds (``fps`` > 0).

    All frames share the scene of ``seed``; the camera moves smoothly (see :func:`camera_pose`).
    """
    num_frames = _check_int("num_frames", num_frames, 1)
    fps = _check_real("fps", fps, 0.0, lo_open=True)
    _check_int("width", width, _MIN_SIZE, _MAX_SIZE)
    _check_int("height", height, _MIN_SIZE, _MAX_SIZE)
    _check_int("seed", seed, 0)
    return [render_frame(i / fps, width, height, seed) for i in range(num_frames)]


# --------------------------------------------------------------------------------------------
# Degradation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KinectDegradation:
    """Parameters of :func:`degrade_depth` (validated on construction, ValueError if bad).

    Attributes:
        scale: integer downsampling factor in [1, 16] (1 = same size, i.e. a denoising task).
        noise_std_at_1m: metres (>= 0); the noise std at depth ``z`` is
            ``noise_std_at_1m * z**2``, like structured-light sensors.
        quantisation_mm: round to multiples of this many millimetres (>= 0, 0 = whole mm only).
        hole_fraction: fraction in [0, 1) of the pixels dropped in random blobs.
        edge_holes: drop pixels next to depth jumps larger than ``EDGE_JUMP_RELATIVE * z``.
        max_range_m: measurements beyond this many metres are invalid, in (0, 65.535].
    """

    scale: int = 8
    noise_std_at_1m: float = 0.0015
    quantisation_mm: float = 1.0
    hole_fraction: float = 0.02
    edge_holes: bool = True
    max_range_m: float = 8.0

    def __post_init__(self) -> None:
        _check_int("scale", self.scale, 1, _MAX_SCALE)
        _check_real("noise_std_at_1m", self.noise_std_at_1m, 0.0)
        _check_real("quantisation_mm", self.quantisation_mm, 0.0)
        _check_real("hole_fraction", self.hole_fraction, 0.0, 1.0, hi_open=True)
        if not isinstance(self.edge_holes, (bool, np.bool_)):
            raise ValueError(
                f"edge_holes must be a bool, got {self.edge_holes!r} "
                f"of type {type(self.edge_holes).__name__}"
            )
        _check_real("max_range_m", self.max_range_m, 0.0, _MAX_UINT16_M, lo_open=True)


def _check_depth(depth: object, scale: int) -> np.ndarray:
    if not isinstance(depth, np.ndarray):
        raise ValueError(
            f"depth must be a 2-D floating-point numpy array in metres, got {type(depth).__name__}"
        )
    if depth.ndim != 2:
        raise ValueError(
            "depth must be a 2-D floating-point numpy array in metres of shape (H, W), "
            f"got {depth.ndim}-D array of shape {depth.shape}"
        )
    if not np.issubdtype(depth.dtype, np.floating):
        raise ValueError(
            "depth must be a 2-D floating-point numpy array in metres, "
            f"got dtype {depth.dtype} (convert millimetre images with depth / 1000.0)"
        )
    if depth.shape[0] < scale or depth.shape[1] < scale:
        raise ValueError(
            f"depth of shape {depth.shape} must be at least scale x scale = "
            f"{scale} x {scale} pixels"
        )
    return depth


def downsample_depth(depth: np.ndarray, scale: int) -> np.ndarray:
    """Block-average ``depth`` (H, W) metres over ``scale x scale`` blocks.

    ``H`` and ``W`` are first cropped to multiples of ``scale`` (bottom rows / right columns
    dropped). Returns (H // scale, W // scale) float64 metres; a block containing any invalid
    pixel (non-finite or <= 0) is NaN. This is the "downsampled truth" that
    :func:`degrade_depth` starts from.
    """
    scale = _check_int("scale", scale, 1, _MAX_SCALE)
    depth = _check_depth(depth, scale)
    h, w = depth.shape[0] // scale, depth.shape[1] // scale
    d = depth[: h * scale, : w * scale].astype(np.float64)
    d = np.where(np.isfinite(d) & (d > 0), d, np.nan)
    return d.reshape(h, scale, w, scale).mean(axis=(1, 3))


def blob_mask(shape: tuple[int, int], fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask with exactly ``round(fraction * N)`` True pixels grouped in smooth blobs."""
    n = shape[0] * shape[1]
    k = round(fraction * n)
    field = rng.standard_normal(shape)
    if k == 0:
        return np.zeros(shape, dtype=bool)
    sigma = max(0.8, 0.01 * max(shape))
    field = ndimage.gaussian_filter(field, sigma=sigma, mode="wrap").ravel()
    mask = np.zeros(n, dtype=bool)
    mask[np.argpartition(field, n - k)[n - k :]] = True
    return mask.reshape(shape)


def degrade_depth(depth: np.ndarray, degradation: KinectDegradation, seed: int = 0) -> np.ndarray:
    """Kinect-like degradation of a ground-truth depth map.

    Args:
        depth: (H, W) floating-point depth in metres (non-finite or <= 0 = invalid), with
            ``H, W >= degradation.scale``.
        degradation: the parameters, see :class:`KinectDegradation`.
        seed: non-negative integer; noise and holes are deterministic given it (they come from
            independent streams, so the holes do not change with the noise level).

    Returns:
        (H // scale, W // scale) uint16 depth in millimetres, 0 = invalid. Order of operations:
        crop to multiples of scale + block average (:func:`downsample_depth`), noise,
        quantisation, holes (blobs, edge holes), range cut. Use
        ``intrinsics.downscaled(scale)`` for the matching intrinsics.
    """
    if not isinstance(degradation, KinectDegradation):
        raise ValueError(
            f"degradation must be a KinectDegradation, got {type(degradation).__name__}"
        )
    seed = _check_int("seed", seed, 0)
    deg = degradation
    clean = downsample_depth(_check_depth(depth, deg.scale), deg.scale)
    valid = np.isfinite(clean)
    clean0 = np.where(valid, clean, 0.0)

    noise_rng, hole_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    z = clean0 + noise_rng.standard_normal(clean.shape) * (deg.noise_std_at_1m * clean0**2)

    mm = z * 1000.0
    if deg.quantisation_mm > 0:
        mm = np.round(mm / deg.quantisation_mm) * deg.quantisation_mm
    mm = np.round(mm)

    drop = ~valid
    if deg.hole_fraction > 0:
        drop |= blob_mask(clean.shape, deg.hole_fraction, hole_rng)
    if deg.edge_holes:
        jump = np.maximum(
            ndimage.maximum_filter(clean0, size=3, mode="nearest") - clean0,
            clean0 - ndimage.minimum_filter(clean0, size=3, mode="nearest"),
        )
        drop |= jump > EDGE_JUMP_RELATIVE * clean0
    drop |= (mm <= 0) | (mm > deg.max_range_m * 1000.0)
    return np.where(drop, 0.0, mm).astype(np.uint16)
