"""Joint bilateral upsampling (dkn_ros.processing.guided): shapes, units, known values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dkn_ros import processing
from dkn_ros.processing.arrays import TorchArrays
from dkn_ros.processing.guided import guided_smoothing, joint_bilateral_upsample

TORCH = TorchArrays("cpu")  # the device back-end, on CPU tensors here


def step_scene(height=32, width=48, edge=13):
    """Colour and depth with one vertical edge at column ``edge`` (not on the x8 LR
    grid): near (1.0) and red on the left, far (3.0) and blue on the right."""
    color = np.zeros((height, width, 3), np.uint8)
    color[:, :edge] = (200, 30, 30)
    color[:, edge:] = (30, 30, 200)
    depth = np.full((height, width), 3.0, np.float32)
    depth[:, :edge] = 1.0
    return color, depth


def test_depth_edge_follows_the_colour_edge_not_the_lr_grid():
    color, depth = step_scene()
    lr = depth[4::8, 4::8]  # point sampling, centre of each 8 x 8 block
    guidance = processing.guidance_from_color(color)
    up = joint_bilateral_upsample(lr, guidance)
    nearest = processing.nearest_resize(lr, depth.shape)
    assert up.shape == depth.shape and up.dtype == np.float32
    # nearest puts the edge on the LR grid (column 16): columns 13..15 are wrong there
    assert np.abs(nearest - depth).max() == pytest.approx(2.0)
    # the guided result is within 1 mm-equivalent of the truth on both sides
    np.testing.assert_allclose(up, depth, atol=1e-3)


def test_constant_depth_stays_constant_and_units_are_kept():
    rng = np.random.default_rng(0)
    color = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    lr = np.full((3, 4), 1234.5, np.float32)  # any unit: millimetres here
    up = joint_bilateral_upsample(lr, processing.guidance_from_color(color))
    np.testing.assert_allclose(up, 1234.5, rtol=1e-6)


def test_any_ratio_and_same_size():
    rng = np.random.default_rng(1)
    color = rng.integers(0, 256, (384, 512, 3), dtype=np.uint8)
    guidance = processing.guidance_from_color(color)
    lr = rng.random((144, 192)).astype(np.float32)  # the phone ToF's 2.67
    up = joint_bilateral_upsample(lr, guidance)
    assert up.shape == (384, 512) and np.isfinite(up).all()
    assert lr.min() - 1e-6 <= up.min() and up.max() <= lr.max() + 1e-6  # a convex mix
    same = rng.random((384, 512)).astype(np.float32)
    np.testing.assert_array_equal(joint_bilateral_upsample(same, guidance), same)


def test_same_size_guided_smoothing_averages_noise_and_keeps_colour_edges():
    color, depth = step_scene(height=64, width=96, edge=37)
    noisy = depth + np.random.default_rng(2).normal(0, 0.05, depth.shape).astype(np.float32)
    guidance = processing.guidance_from_color(color)
    out = guided_smoothing(noisy, guidance)
    assert out.shape == depth.shape and out.dtype == np.float32
    inner = np.abs(np.arange(96) - 37) > 6  # away from the edge
    assert np.std((out - depth)[:, inner]) < 0.4 * 0.05  # 4 x 4 blocks: std / 4 at best
    # the edge stays on the colour edge: the near side is clean up to it; on the far side
    # the one 4 x 4 block that straddles it (columns 36-39, mean 2.5) still pulls the
    # next 7 pixels (the network's kernels are there to fix that), beyond them it is clean
    near, far = out[:, 30:37], out[:, 44:52]
    assert np.all(out[:, 37:44] > 2.5)
    assert np.abs(near - 1.0).max() < 0.1 and np.abs(far - 3.0).max() < 0.1
    # processing's and the GPU path's "guided" at the same size are this function
    np.testing.assert_array_equal(processing.upsample(noisy, depth.shape, "guided", guidance), out)
    on_device = processing.upsample(
        torch.from_numpy(noisy), depth.shape, "guided", torch.from_numpy(guidance), TORCH
    )
    np.testing.assert_array_equal(on_device.numpy(), out)
    # bicubic and nearest leave same-size depth alone
    np.testing.assert_array_equal(processing.upsample(noisy, depth.shape, "bicubic"), noisy)


def test_torch_in_torch_out_and_both_back_ends_are_the_same_code():
    color, depth = step_scene()
    lr = np.ascontiguousarray(depth[4::8, 4::8])
    guidance = processing.guidance_from_color(color)
    from_numpy = processing.upsample(lr, depth.shape, "guided", guidance)
    from_torch = joint_bilateral_upsample(torch.from_numpy(lr), torch.from_numpy(guidance))
    assert isinstance(from_torch, torch.Tensor)
    np.testing.assert_array_equal(from_torch.numpy(), from_numpy)
    on_device = processing.upsample(
        torch.from_numpy(lr), depth.shape, "guided", torch.from_numpy(guidance), TORCH
    )
    np.testing.assert_array_equal(on_device.numpy(), from_numpy)


@pytest.mark.parametrize(
    "lr_size, size", [((6, 8), (48, 64)), ((18, 24), (48, 64)), ((9, 13), (30, 37))]
)
def test_the_c_pass_equals_the_torch_version(lr_size, size, monkeypatch):
    """On the CPU joint bilateral upsampling runs in C (guided.c): the same values as the
    torch version to float rounding, at integer and non-integer ratios, and the same-size
    smoothing through the coarser grid."""
    from dkn_ros import native
    from dkn_ros.processing import guided

    if guided._compiled() is None:
        pytest.skip("no C compiler here: only the torch version runs")
    rng = np.random.default_rng(3)
    depth = rng.random(lr_size, dtype=np.float32) * 4 + 0.5
    guidance = rng.random((1, 3, *size), dtype=np.float32)
    same = rng.random(size, dtype=np.float32)
    results = {}
    for enabled in (True, False):
        monkeypatch.setattr(native, "ENABLED", enabled)
        results[enabled] = (
            joint_bilateral_upsample(depth, guidance),
            guided_smoothing(same, guidance),
            joint_bilateral_upsample(depth, guidance, sigma_space=2.0, radius=2),
        )
    for c_version, torch_version in zip(results[True], results[False], strict=True):
        np.testing.assert_allclose(c_version, torch_version, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize(
    "depth, guidance, message",
    [
        (np.zeros((4, 4, 1), np.float32), np.zeros((1, 3, 8, 8), np.float32), "expected depth"),
        (np.zeros((4, 4), np.float32), np.zeros((3, 8, 8), np.float32), "expected depth"),
        (np.zeros((16, 16), np.float32), np.zeros((1, 3, 8, 8), np.float32), "larger than"),
    ],
)
def test_bad_shapes(depth, guidance, message):
    with pytest.raises(ValueError, match=message):
        joint_bilateral_upsample(depth, guidance)


def test_upsample_guided_needs_the_guidance():
    with pytest.raises(ValueError, match="needs the"):
        processing.upsample(np.zeros((4, 4), np.float32), (8, 8), "guided")
