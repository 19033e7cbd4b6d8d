"""Synthetic RGB-D scenes (exact ground truth) and the Kinect-like depth degradation."""

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest

from dkn_ros.synthetic import (
    LABEL_BACK_WALL,
    LABEL_BOX_BASE,
    LABEL_FLOOR,
    LABEL_SPHERE_BASE,
    ROOM_MAX,
    CameraIntrinsics,
    KinectDegradation,
    RGBDFrame,
    camera_pose,
    degrade_depth,
    downsample_depth,
    generate_sequence,
    make_scene,
    render_frame,
    render_frame_with_labels,
)

W, H = 160, 120


@pytest.fixture(scope="module")
def vga_frame() -> RGBDFrame:
    return render_frame(0.0, 640, 480, seed=0)


@pytest.fixture(scope="module")
def labelled() -> tuple[RGBDFrame, np.ndarray]:
    return render_frame_with_labels(0.3, 320, 240, seed=0)


def world_rays(t: float, intr: CameraIntrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Camera centre (3,) and un-normalised world rays (H, W, 3) whose camera z is 1."""
    pose = camera_pose(t)
    u, v = np.meshgrid(np.arange(intr.width), np.arange(intr.height))
    cam = np.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones(u.shape)], -1)
    return pose.position, cam @ pose.rotation.T


def neighbour_pairs(labels: np.ndarray, a: int, b: int) -> np.ndarray:
    """Mask (H, W-1) of horizontally adjacent pixel pairs labelled (a, b) in either order."""
    left, right = labels[:, :-1], labels[:, 1:]
    return ((left == a) & (right == b)) | ((left == b) & (right == a))


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def test_intrinsics_kinect_like_fov():
    intr = CameraIntrinsics.from_fov(640, 480)
    assert intr.fx == pytest.approx(320.0 / math.tan(math.radians(29.0)))
    assert intr.fy == intr.fx
    assert (intr.cx, intr.cy, intr.width, intr.height) == (319.5, 239.5, 640, 480)
    low = intr.downscaled(8)
    assert (low.width, low.height) == (80, 60)
    assert (low.cx, low.cy) == (39.5, 29.5)
    assert low.fx == pytest.approx(intr.fx / 8)


@pytest.mark.parametrize(("width", "height"), [(W, H), (97, 61), (8, 8)])
def test_frame_shapes_dtypes_ranges(width, height):
    frame = render_frame(1.25, width, height, seed=3)
    assert frame.color.shape == (height, width, 3)
    assert frame.color.dtype == np.uint8
    assert frame.depth.shape == (height, width)
    assert frame.depth.dtype == np.float32
    assert np.all(np.isfinite(frame.depth))
    assert frame.depth.min() > 0.5
    assert frame.depth.max() < 8.0
    assert frame.stamp == 1.25
    assert frame.intrinsics == CameraIntrinsics.from_fov(width, height)


def test_vga_frame(vga_frame):
    assert vga_frame.color.shape == (480, 640, 3)
    assert vga_frame.depth.shape == (480, 640)
    # A real image: many colours, not saturated everywhere.
    assert len(np.unique(vga_frame.color.reshape(-1, 3), axis=0)) > 1000
    assert 40 < vga_frame.color.mean() < 220


def test_deterministic_from_seed():
    a = render_frame(0.5, W, H, seed=7)
    b = render_frame(0.5, W, H, seed=7)
    c = render_frame(0.5, W, H, seed=8)
    np.testing.assert_array_equal(a.color, b.color)
    np.testing.assert_array_equal(a.depth, b.depth)
    assert np.abs(a.depth - c.depth).max() > 0.1
    assert np.any(a.color != c.color)


def test_scene_has_boxes_spheres_and_is_seeded():
    scene = make_scene(0)
    assert len(scene.boxes) >= 2
    assert len(scene.spheres) >= 2
    assert make_scene(0).boxes == scene.boxes
    assert make_scene(1).boxes != scene.boxes
    for sphere in scene.spheres:  # resting on the floor
        assert sphere.center[1] == pytest.approx(sphere.radius)


def test_sequence_camera_moves():
    frames = generate_sequence(num_frames=4, width=W, height=H, fps=10.0, seed=0)
    assert len(frames) == 4
    assert [f.stamp for f in frames] == pytest.approx([0.0, 0.1, 0.2, 0.3])
    for prev, cur in itertools.pairwise(frames):
        diff = np.abs(prev.depth - cur.depth)
        assert np.median(diff) > 1e-3  # the whole view changes, not a few pixels
    assert np.any(frames[0].color != frames[-1].color)


def test_camera_pose_smooth_and_orthonormal():
    poses = [camera_pose(t) for t in np.linspace(0.0, 20.0, 81)]
    for pose in poses:
        np.testing.assert_allclose(pose.rotation.T @ pose.rotation, np.eye(3), atol=1e-12)
        assert np.linalg.det(pose.rotation) == pytest.approx(1.0)
        assert 1.0 < pose.position[1] < 1.7  # eye height above the floor
    steps = [np.linalg.norm(b.position - a.position) for a, b in itertools.pairwise(poses)]
    assert 0.0 < max(steps) < 0.2  # 0.25 s apart: smooth
    assert np.linalg.norm(poses[0].position - poses[8].position) > 0.1  # but it does move


def test_floor_and_wall_depth_match_analytic_intersection(labelled):
    frame, labels = labelled
    origin, rays = world_rays(frame.stamp, frame.intrinsics)
    floor = labels == LABEL_FLOOR
    wall = labels == LABEL_BACK_WALL
    assert floor.sum() > 1000
    assert wall.sum() > 1000
    # Camera z of the hit equals the ray parameter since the camera-frame ray has z = 1.
    t_floor = (0.0 - origin[1]) / rays[..., 1]
    t_wall = (ROOM_MAX[2] - origin[2]) / rays[..., 2]
    np.testing.assert_allclose(frame.depth[floor], t_floor[floor], rtol=1e-6)
    np.testing.assert_allclose(frame.depth[wall], t_wall[wall], rtol=1e-6)
    # The bottom image row sees the floor.
    assert np.all(labels[-1] == LABEL_FLOOR)


def test_sphere_depth_analytic_and_in_front_of_wall(labelled):
    frame, labels = labelled
    scene = make_scene(0)
    origin, rays = world_rays(frame.stamp, frame.intrinsics)
    t_wall = (ROOM_MAX[2] - origin[2]) / rays[..., 2]
    for i, sphere in enumerate(scene.spheres):
        mask = labels == LABEL_SPHERE_BASE + i
        assert mask.sum() > 50, f"sphere {i} not visible"
        d = rays[mask]
        oc = origin - np.asarray(sphere.center)
        a = np.einsum("ij,ij->i", d, d)
        b = d @ oc
        c = oc @ oc - sphere.radius**2
        t = (-b - np.sqrt(b * b - a * c)) / a
        np.testing.assert_allclose(frame.depth[mask], t, rtol=1e-6)
        assert np.all(frame.depth[mask] < t_wall[mask] - 0.3)


def test_box_points_lie_on_box_surface(labelled):
    frame, labels = labelled
    scene = make_scene(0)
    origin, rays = world_rays(frame.stamp, frame.intrinsics)
    points = origin + frame.depth[..., None].astype(np.float64) * rays
    for i, box in enumerate(scene.boxes):
        mask = labels == LABEL_BOX_BASE + i
        if not mask.any():
            continue
        p = points[mask]
        lo, hi = np.asarray(box.lo), np.asarray(box.hi)
        assert np.all(p >= lo - 1e-4)
        assert np.all(p <= hi + 1e-4)
        on_face = np.min(np.minimum(np.abs(p - lo), np.abs(p - hi)), axis=1)
        assert on_face.max() < 1e-4


def test_colour_edges_with_and_without_depth_edges(labelled):
    frame, labels = labelled
    color = frame.color.astype(np.int32)
    depth = frame.depth
    dcol = np.abs(np.diff(color, axis=1)).max(-1)
    ddep = np.abs(np.diff(depth, axis=1))
    rel = ddep / depth[:, 1:]
    # Texture edges: inside the floor the colour jumps (checkerboard) while depth is smooth.
    floor_pairs = neighbour_pairs(labels, LABEL_FLOOR, LABEL_FLOOR)
    assert np.sum(floor_pairs & (dcol > 40) & (rel < 0.01)) > 50
    # Silhouettes: sphere borders are depth edges and colour edges.
    for i in range(len(make_scene(0).spheres)):
        s = LABEL_SPHERE_BASE + i
        border = ((labels[:, :-1] == s) != (labels[:, 1:] == s)) & (ddep > 0.1)
        assert border.sum() > 10
        assert np.median(dcol[border]) > 30
    # Shading: a plain-coloured sphere has a smooth range of colours, not one colour.
    solid = next(i for i, s in enumerate(make_scene(0).spheres) if s.pattern == "solid")
    assert len(np.unique(frame.color[labels == LABEL_SPHERE_BASE + solid], axis=0)) > 30


def test_depth_edge_with_similar_colours(labelled):
    frame, labels = labelled
    cabinet = LABEL_BOX_BASE + len(make_scene(0).boxes) - 1
    assert make_scene(0).boxes[-1].pattern == "wallpaper"
    pairs = neighbour_pairs(labels, cabinet, LABEL_BACK_WALL)
    dcol = np.abs(np.diff(frame.color.astype(np.int32), axis=1)).max(-1)
    ddep = np.abs(np.diff(frame.depth, axis=1))
    assert np.sum(pairs & (ddep > 0.25) & (dcol < 16)) >= 5


# --------------------------------------------------------------------------------------------
# Degradation
# --------------------------------------------------------------------------------------------


def test_degrade_default_shape_dtype_and_accuracy(vga_frame):
    deg = KinectDegradation()
    out = degrade_depth(vga_frame.depth, deg, seed=1)
    assert out.shape == (60, 80)
    assert out.dtype == np.uint16
    truth = downsample_depth(vga_frame.depth, 8)
    valid = out > 0
    holes = 1.0 - valid.mean()
    assert deg.hole_fraction <= holes < 0.3
    sigma = deg.noise_std_at_1m * truth**2
    err = np.abs(out[valid] / 1000.0 - truth[valid])
    assert np.all(err <= 5 * sigma[valid] + deg.quantisation_mm / 1000.0)
    # The noise is really there and has about the expected size.
    z_score = (out[valid] / 1000.0 - truth[valid]) / sigma[valid]
    assert 0.7 < np.std(z_score) < 1.3


def test_downsample_is_block_average_with_crop():
    rng = np.random.default_rng(0)
    depth = rng.uniform(1.0, 3.0, size=(21, 30)).astype(np.float32)
    low = downsample_depth(depth, 4)
    assert low.shape == (5, 7)
    np.testing.assert_allclose(low[1, 2], depth[4:8, 8:12].astype(np.float64).mean())
    depth[0, 0] = np.nan
    depth[5, 29] = 0.0  # columns 28 and 29 are cropped away (30 // 4 * 4 = 28)
    low = downsample_depth(depth, 4)
    assert np.isnan(low[0, 0])
    assert np.isfinite(low[1:, :]).all()


def test_degrade_crops_non_multiple_sizes():
    depth = np.full((100, 75), 2.0, dtype=np.float32)
    out = degrade_depth(depth, KinectDegradation(scale=8), seed=0)
    assert out.shape == (12, 9)


def test_scale_one_keeps_size():
    frame = render_frame(0.0, W, H, seed=0)
    out = degrade_depth(frame.depth, KinectDegradation(scale=1), seed=0)
    assert out.shape == (H, W)
    assert out.dtype == np.uint16


def test_noise_free_degradation_is_rounded_truth(vga_frame):
    deg = KinectDegradation(
        scale=4, noise_std_at_1m=0.0, quantisation_mm=0.0, hole_fraction=0.0, edge_holes=False
    )
    out = degrade_depth(vga_frame.depth, deg)
    expected = np.round(downsample_depth(vga_frame.depth, 4) * 1000.0)
    np.testing.assert_array_equal(out, expected.astype(np.uint16))


def test_quantisation_and_hole_fraction():
    depth = np.full((96, 128), 2.0, dtype=np.float32) + np.linspace(0, 1, 128, dtype=np.float32)
    deg = KinectDegradation(
        scale=2, noise_std_at_1m=0.002, quantisation_mm=5.0, hole_fraction=0.1, edge_holes=False
    )
    out = degrade_depth(depth, deg, seed=3)
    assert np.all(out % 5 == 0)
    assert np.sum(out == 0) == round(0.1 * out.size)  # blobs only, exact count
    # Holes come from their own random stream: same seed, other noise, same holes.
    other = degrade_depth(depth, replace(deg, noise_std_at_1m=0.0), 3)
    np.testing.assert_array_equal(out == 0, other == 0)


def test_holes_are_blobs_not_salt_and_pepper():
    depth = np.full((240, 320), 2.0, dtype=np.float32)
    deg = KinectDegradation(scale=1, hole_fraction=0.05, edge_holes=False)
    holes = degrade_depth(depth, deg, seed=0) == 0
    # Most hole pixels have a hole as a 4-neighbour.
    nb = np.zeros_like(holes)
    nb[1:] |= holes[:-1]
    nb[:-1] |= holes[1:]
    nb[:, 1:] |= holes[:, :-1]
    nb[:, :-1] |= holes[:, 1:]
    assert (holes & nb).sum() > 0.8 * holes.sum()


def test_edge_holes_at_depth_discontinuities():
    depth = np.full((64, 64), 4.0, dtype=np.float32)
    depth[:, 32:] = 2.0  # a step of 2 m
    deg = KinectDegradation(scale=4, noise_std_at_1m=0.0, hole_fraction=0.0, edge_holes=True)
    out = degrade_depth(depth, deg)
    assert out.shape == (16, 16)
    assert np.all(out[:, 7:9] == 0)  # both sides of the jump dropped
    assert np.all(out[:, :7] == 4000)
    assert np.all(out[:, 9:] == 2000)
    no_edge = degrade_depth(depth, replace(deg, edge_holes=False))
    assert np.all(no_edge > 0)


def test_edge_holes_on_rendered_silhouettes(vga_frame):
    deg = KinectDegradation(scale=8, noise_std_at_1m=0.0, hole_fraction=0.0)
    out = degrade_depth(vga_frame.depth, deg)
    truth = downsample_depth(vga_frame.depth, 8)
    assert 0 < np.mean(out == 0) < 0.2
    valid = out > 0
    np.testing.assert_allclose(out[valid] / 1000.0, truth[valid], atol=0.0006)


def test_range_cut():
    depth = np.tile(np.linspace(1.0, 6.0, 64, dtype=np.float32), (32, 1))
    deg = KinectDegradation(scale=1, noise_std_at_1m=0.0, hole_fraction=0.0, max_range_m=3.0)
    out = degrade_depth(depth, deg)
    assert np.all(out[depth > 3.001] == 0)
    assert np.all(out[depth < 2.999] > 0)
    assert out.max() <= 3000


def test_degrade_deterministic(vga_frame):
    deg = KinectDegradation()
    a = degrade_depth(vga_frame.depth, deg, seed=5)
    b = degrade_depth(vga_frame.depth, deg, seed=5)
    c = degrade_depth(vga_frame.depth, deg, seed=6)
    np.testing.assert_array_equal(a, b)
    assert np.any(a != c)


# --------------------------------------------------------------------------------------------
# Argument validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 4}, r"width must be an integer in \[8, 4096\], got 4"),
        ({"width": 64.0}, r"width must be an integer .*got 64.0 of type float"),
        ({"width": True}, r"width must be an integer .*got True of type bool"),
        ({"height": 0}, r"height must be an integer in \[8, 4096\], got 0"),
        ({"height": 5000}, r"height must be an integer in \[8, 4096\], got 5000"),
        ({"seed": -1}, r"seed must be an integer >= 0, got -1"),
        ({"t": float("nan")}, r"t must be a finite number, got nan"),
        ({"t": "0"}, r"t must be a finite number, got '0' of type str"),
    ],
)
def test_render_frame_rejects_bad_arguments(kwargs, message):
    args = {"t": 0.0, "width": 16, "height": 16, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        render_frame(**args)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_frames": 0}, r"num_frames must be an integer >= 1, got 0"),
        ({"fps": 0.0}, r"fps must be a finite number > 0.0, got 0.0"),
        ({"fps": float("inf")}, r"fps must be a finite number > 0.0, got inf"),
        ({"width": 2}, r"width must be an integer in \[8, 4096\], got 2"),
        ({"seed": 1.5}, r"seed must be an integer >= 0, got 1.5 of type float"),
    ],
)
def test_generate_sequence_rejects_bad_arguments(kwargs, message):
    args = {"num_frames": 1, "width": 16, "height": 16, "fps": 30.0, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        generate_sequence(**args)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scale": 0}, r"scale must be an integer in \[1, 16\], got 0"),
        ({"scale": 17}, r"scale must be an integer in \[1, 16\], got 17"),
        ({"scale": 2.0}, r"scale must be an integer in \[1, 16\], got 2.0 of type float"),
        ({"noise_std_at_1m": -0.1}, r"noise_std_at_1m must be a finite number >= 0.0, got -0.1"),
        ({"quantisation_mm": -1.0}, r"quantisation_mm must be a finite number >= 0.0, got -1.0"),
        ({"hole_fraction": 1.0}, r"hole_fraction must be .*>= 0.0 and < 1.0, got 1.0"),
        ({"hole_fraction": -0.01}, r"hole_fraction must be .*>= 0.0 and < 1.0, got -0.01"),
        ({"edge_holes": "yes"}, r"edge_holes must be a bool, got 'yes' of type str"),
        ({"max_range_m": 0.0}, r"max_range_m must be a finite number > 0.0 and <= 65.535"),
        ({"max_range_m": 70.0}, r"max_range_m must be .*<= 65.535, got 70.0"),
    ],
)
def test_kinect_degradation_rejects_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        KinectDegradation(**kwargs)


@pytest.mark.parametrize(
    ("depth", "kwargs", "message"),
    [
        ([[1.0, 2.0]], {}, r"depth must be a 2-D floating-point numpy array in metres, got list"),
        (np.ones((4, 4, 1)), {}, r"got 3-D array of shape \(4, 4, 1\)"),
        (np.ones((16, 16), np.uint16), {}, r"floating-point .*got dtype uint16"),
        (np.ones((16, 4), np.float32), {}, r"depth of shape \(16, 4\) must be at least .*8 x 8"),
        (np.ones((16, 16), np.float32), {"seed": -2}, r"seed must be an integer >= 0, got -2"),
        (
            np.ones((16, 16), np.float32),
            {"degradation": 8},
            r"must be a KinectDegradation, got int",
        ),
    ],
)
def test_degrade_depth_rejects_bad_arguments(depth, kwargs, message):
    args = {"degradation": KinectDegradation(scale=8), "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        degrade_depth(depth, **args)


def test_downsample_depth_rejects_bad_scale():
    with pytest.raises(ValueError, match=r"scale must be an integer in \[1, 16\], got 32"):
        downsample_depth(np.ones((64, 64), np.float32), 32)
