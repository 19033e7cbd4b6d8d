"""DKN, FDKN and the deformable weighted average (paper eq. 3-7, Tables 1-2)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dkn_ros.models import (
    DKN,
    FDKN,
    ModelCard,
    build_model,
    deformable_weighted_average,
    load_model,
    normalise_kernel_weights,
    save_model,
)
from dkn_ros.models.dkn import PAD_BEFORE, PATCH


def randomise(model: nn.Module, offset_gain: float = 20.0) -> nn.Module:
    """Make an untrained model behave non-trivially: BN statistics away from (0, 1)
    and offset heads that move samples by several pixels."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.1, 0.1)
    for name, param in model.named_parameters():
        if "offset_head" in name:
            param.data.mul_(offset_gain)
    return model.eval()


# --- the deformable weighted average -------------------------------------------------


def centre_weights(batch, k, h, w, dtype=torch.float64):
    """Raw weights that put all mass on the centre sample (plain variant: identity)."""
    weights = torch.full((batch, k * k, h, w), 1e-12, dtype=dtype)
    weights[:, (k * k) // 2] = 1.0
    return weights


def test_zero_offsets_centre_weight_is_identity():
    target = torch.rand(2, 1, 9, 11, dtype=torch.float64)
    offsets = torch.zeros(2, 18, 9, 11, dtype=torch.float64)
    out = deformable_weighted_average(target, centre_weights(2, 3, 9, 11), offsets, residual=False)
    torch.testing.assert_close(out, target)


def test_integer_offsets_shift_the_image():
    target = torch.rand(1, 1, 10, 12, dtype=torch.float64)
    offsets = torch.zeros(1, 18, 10, 12, dtype=torch.float64)
    offsets[:, 4] = 2.0  # dx of the centre sample
    offsets[:, 9 + 4] = -1.0  # dy of the centre sample
    out = deformable_weighted_average(target, centre_weights(1, 3, 10, 12), offsets, residual=False)
    # p + (2, -1) inside the image; replicate border outside it.
    expected = F.pad(target, (0, 2, 1, 0), mode="replicate")[:, :, :10, 2:]
    torch.testing.assert_close(out, expected)


def test_fractional_offset_is_bilinear():
    target = torch.arange(20, dtype=torch.float64).view(1, 1, 4, 5)
    offsets = torch.zeros(1, 18, 4, 5, dtype=torch.float64)
    offsets[:, 4] = 0.25
    out = deformable_weighted_average(target, centre_weights(1, 3, 4, 5), offsets, residual=False)
    torch.testing.assert_close(out[0, 0, :, :4], target[0, 0, :, :4] + 0.25)


def test_offsets_are_confined_to_the_window():
    target = torch.arange(40, dtype=torch.float64).view(1, 1, 1, 40)
    offsets = torch.zeros(1, 18, 1, 40, dtype=torch.float64)
    offsets[:, 4] = 100.0
    out = deformable_weighted_average(
        target, centre_weights(1, 3, 1, 40), offsets, residual=False, window=15
    )
    assert out[0, 0, 0, 0].item() == pytest.approx(7.0)  # |q + dq| <= d // 2 = 7
    assert out[0, 0, 0, 10].item() == pytest.approx(17.0)


def test_residual_variant_adds_high_pass_to_target():
    target = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    weights = torch.rand(1, 9, 8, 8, dtype=torch.float64) + 0.1
    offsets = torch.randn(1, 18, 8, 8, dtype=torch.float64)
    constant = torch.full_like(target, 0.7)
    # Mean-subtracted weights add up to 0: a constant image is left unchanged.
    out = deformable_weighted_average(constant, weights, offsets, residual=True)
    torch.testing.assert_close(out, constant)
    plain = deformable_weighted_average(constant, weights, offsets, residual=False)
    torch.testing.assert_close(plain, constant)
    assert normalise_kernel_weights(weights, True).sum(1).abs().max() < 1e-12
    torch.testing.assert_close(
        normalise_kernel_weights(weights, False).sum(1), torch.ones(1, 8, 8, dtype=torch.float64)
    )
    filtered = deformable_weighted_average(target, weights, offsets, residual=True)
    assert not torch.allclose(filtered, target)


def test_stride_and_origin_select_pixels():
    target = torch.rand(1, 1, 13, 10, dtype=torch.float64)
    weights = torch.rand(1, 9, 13, 10, dtype=torch.float64)
    offsets = 3 * torch.randn(1, 18, 13, 10, dtype=torch.float64)
    full = deformable_weighted_average(target, weights, offsets, residual=True)
    part = deformable_weighted_average(
        target,
        weights[:, :, 1::4, 2::4],
        offsets[:, :, 1::4, 2::4],
        residual=True,
        stride=4,
        origin=(1, 2),
    )
    torch.testing.assert_close(part, full[:, :, 1::4, 2::4])


@pytest.mark.parametrize("residual", [True, False])
def test_gradients_reach_weights_and_offsets(residual):
    target = torch.rand(1, 1, 5, 6, dtype=torch.float64, requires_grad=True)
    weights = (torch.rand(1, 9, 5, 6, dtype=torch.float64) + 0.1).requires_grad_()
    # Fractional offsets away from integers and from the window limit (kinks of bilinear
    # interpolation and of the clamp are not differentiable).
    offsets = (torch.rand(1, 18, 5, 6, dtype=torch.float64) * 0.6 + 0.2).requires_grad_()

    def f(t, w, o):
        return deformable_weighted_average(t, w, o, residual=residual, window=5)

    assert torch.autograd.gradcheck(f, (target, weights, offsets))


def test_multichannel_target_shares_the_kernel():
    target = torch.rand(1, 3, 8, 8)
    weights = torch.rand(1, 9, 8, 8)
    offsets = torch.randn(1, 18, 8, 8)
    joint = deformable_weighted_average(target, weights, offsets, residual=True)
    for c in range(3):
        single = deformable_weighted_average(target[:, c : c + 1], weights, offsets, residual=True)
        torch.testing.assert_close(joint[:, c : c + 1], single)


def test_sampling_rejects_inconsistent_channels():
    with pytest.raises(ValueError, match="k\\^2 channels"):
        deformable_weighted_average(
            torch.rand(1, 1, 4, 4), torch.rand(1, 9, 4, 4), torch.rand(1, 9, 4, 4), residual=True
        )
    with pytest.raises(ValueError, match="window must be odd"):
        deformable_weighted_average(
            torch.rand(1, 1, 4, 4), torch.rand(1, 9, 4, 4), torch.rand(1, 18, 4, 4),
            residual=True, window=4,
        )


# --- FDKN ------------------------------------------------------------------------------


def test_fdkn_matches_table_2():
    model = FDKN()
    g = model.guidance_stream
    assert g.features[0].in_channels == 48  # 16 C for an RGB guidance resampled by 4
    assert model.target_stream.features[0].in_channels == 16
    convs = [m for m in g.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64, 128, 128]
    assert all(c.kernel_size == (3, 3) for c in convs)
    bns = [i for i, m in enumerate(g.features) if isinstance(m, nn.BatchNorm2d)]
    assert [type(g.features[i - 1]) for i in bns] == [nn.Conv2d] * 3
    assert [convs.index(g.features[i - 1]) for i in bns] == [0, 2, 4]  # 1st, 3rd, 5th
    assert g.weight_head.out_channels == 16 * 9 and g.offset_head.out_channels == 32 * 9
    # Table 7: about 0.6 M parameters for n1 = n2 = 128 (0.7 M with an RGB guidance).
    assert 0.6e6 < sum(p.numel() for p in model.parameters()) < 0.75e6


@pytest.mark.parametrize("size", [(16, 20), (21, 30), (33, 17)])
def test_fdkn_any_size(size):
    model = randomise(FDKN())
    with torch.no_grad():
        out = model(torch.rand(2, 3, *size), torch.rand(2, 1, *size))
    assert out.shape == (2, 1, *size)
    assert torch.isfinite(out).all()


def test_fdkn_padding_does_not_change_the_interior():
    """Cropped output of a padded image equals the output of the image padded by hand."""
    model = randomise(FDKN())
    g, t = torch.rand(1, 3, 22, 26), torch.rand(1, 1, 22, 26)
    with torch.no_grad():
        out = model(g, t)
        pad = (0, 2, 0, 2)
        by_hand = model(F.pad(g, pad, mode="replicate"), F.pad(t, pad, mode="replicate"))
    torch.testing.assert_close(out, by_hand[:, :, :22, :26])


@pytest.mark.parametrize("k", [3, 5, 7])
def test_kernel_sizes(k):
    for name in ("fdkn", "dkn"):
        model = randomise(build_model(name, kernel_size=k))
        with torch.no_grad():
            out = model(torch.rand(1, 3, 12, 16), torch.rand(1, 1, 12, 16))
        assert out.shape == (1, 1, 12, 16)


def test_n1_n2_configurable():
    model = build_model("fdkn", n1=64, n2=32)
    assert model.guidance_stream.weight_head.in_channels == 32
    dkn = build_model("dkn", n1=64, n2=32)
    assert dkn.guidance_stream.conv4.out_channels == 64
    assert dkn.guidance_stream.conv5.out_channels == 32


def test_fdkn_gradients_reach_every_parameter():
    model = randomise(FDKN(), offset_gain=5.0).train()
    out = model(torch.rand(2, 3, 16, 16), torch.rand(2, 1, 16, 16))
    out.abs().mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


# --- DKN -------------------------------------------------------------------------------


def test_dkn_matches_table_1():
    stream = DKN().guidance_stream
    x = torch.rand(1, 3, PATCH, PATCH)
    sizes = []
    for layer in (stream.conv1, stream.down1, stream.conv2, stream.down2, stream.conv3,
                  stream.conv4, stream.conv5):
        x = layer(x)
        sizes.append(tuple(x.shape[1:]))
    assert sizes == [(32, 45, 45), (32, 22, 22), (64, 18, 18), (64, 9, 9), (128, 5, 5),
                     (128, 3, 3), (128, 1, 1)]
    # Table 7: 1.1 M parameters for n1 = n2 = 128, 5.8 M for n1 = 256, n2 = 1024.
    assert 1.1e6 < sum(p.numel() for p in DKN().parameters()) < 1.2e6
    assert 5.8e6 < sum(p.numel() for p in DKN(n1=256, n2=1024).parameters()) < 6.0e6


def dkn_brute_force(model: DKN, guidance: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The pixel-wise implementation of Fig. 2: one 51 x 51 patch per pixel through the
    strided network of Table 1, then the weighted average."""
    height, width = target.shape[-2:]
    pad = (PAD_BEFORE, PATCH - PAD_BEFORE - 1, PAD_BEFORE, PATCH - PAD_BEFORE - 1)
    g = F.pad(guidance, pad, mode="replicate")
    t = F.pad(target, pad, mode="replicate")
    g_patches = g.unfold(2, PATCH, 1).unfold(3, PATCH, 1)  # (1, C, H, W, 51, 51)
    t_patches = t.unfold(2, PATCH, 1).unfold(3, PATCH, 1)
    g_patches = g_patches[0].permute(1, 2, 0, 3, 4).reshape(-1, g.shape[1], PATCH, PATCH)
    t_patches = t_patches[0].permute(1, 2, 0, 3, 4).reshape(-1, 1, PATCH, PATCH)
    weights, offsets = model.kernels(g_patches, t_patches, dilated=False)  # (HW, *, 1, 1)
    assert weights.shape[-2:] == (1, 1)
    weights = weights.view(height, width, -1).permute(2, 0, 1).unsqueeze(0)
    offsets = offsets.view(height, width, -1).permute(2, 0, 1).unsqueeze(0)
    return deformable_weighted_average(
        target, weights, offsets, residual=model.residual, window=model.window
    )


@pytest.mark.parametrize("residual", [True, False])
def test_dkn_shift_and_stitch_and_single_pass_equal_brute_force(residual):
    model = randomise(DKN(residual=residual))
    guidance, target = torch.rand(1, 3, 14, 11), torch.rand(1, 1, 14, 11)
    with torch.no_grad():
        reference = dkn_brute_force(model, guidance, target)
        stitched = model.forward_shift_and_stitch(guidance, target)
        single = model.forward_single_pass(guidance, target)
    assert (reference - target).abs().max() > 1e-3  # the filter does something
    assert (stitched - reference).abs().max() <= 1e-5
    assert (single - reference).abs().max() <= 1e-5


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (3, 9)])
def test_dkn_tiny_images(size):
    model = randomise(DKN())
    guidance, target = torch.rand(1, 3, *size), torch.rand(1, 1, *size)
    with torch.no_grad():
        stitched = model.forward_shift_and_stitch(guidance, target)
        single = model.forward_single_pass(guidance, target)
    assert stitched.shape == (1, 1, *size)
    assert (stitched - single).abs().max() <= 1e-5


def test_dkn_inference_mode_is_validated():
    assert build_model("dkn", inference="shift_and_stitch").inference == "shift_and_stitch"
    with pytest.raises(ValueError, match="inference must be one of"):
        build_model("dkn", inference="fast")


# --- registry and weights --------------------------------------------------------------


def test_build_model_rejects_unknown_names_and_sizes():
    with pytest.raises(ValueError, match="unknown model 'unet'; known models: fdkn, fdkn_s, dkn"):
        build_model("unet")
    with pytest.raises(ValueError, match="kernel_size must be one of"):
        build_model("fdkn", kernel_size=4)


def test_weights_round_trip(tmp_path):
    model = randomise(build_model("fdkn", kernel_size=5, residual=False))
    card = ModelCard(model="fdkn", config={"kernel_size": 5, "residual": False}, task="denoising")
    save_model(model, card, tmp_path / "m.safetensors")
    loaded, loaded_card = load_model(tmp_path / "m.safetensors")
    assert loaded_card.task == "denoising" and not loaded.residual
    for (key, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=key)
    assert not loaded.training


def test_load_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        load_model(tmp_path / "missing.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(FileNotFoundError, match="model card not found"):
        load_model(tmp_path / "bad.safetensors")
    ModelCard(model="fdkn").write(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_model(tmp_path / "bad.safetensors")
    save_model(build_model("fdkn"), ModelCard(model="fdkn"), tmp_path / "k3.safetensors")
    ModelCard(model="fdkn", config={"kernel_size": 5}).write(tmp_path / "k3.json")
    with pytest.raises(ValueError, match="weights do not fit"):
        load_model(tmp_path / "k3.safetensors")


@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("kernel_size", [3, 5])
def test_block_layout_weighted_average_equals_the_shuffled_one(residual, kernel_size):
    """FDKN's forward reads the kernels at quarter resolution in pixel_shuffle's channel
    order (deformable_weighted_average_blocks): the same result as shuffling them to full
    size first, whatever their dtype or memory layout, and the inputs are left alone."""
    import torch.nn.functional as F

    from dkn_ros.models.sampling import deformable_weighted_average_blocks

    torch.manual_seed(0)
    k2 = kernel_size**2
    target = torch.rand(2, 2, 24, 36)
    weights = torch.rand(2, 16 * k2, 6, 9)
    offsets = torch.randn(2, 32 * k2, 6, 9) * 4  # reaching past the 7 x 7 window
    expected = deformable_weighted_average(
        target, F.pixel_shuffle(weights, 4), F.pixel_shuffle(offsets, 4),
        residual=residual, window=7,
    )  # fmt: skip
    last = offsets.to(memory_format=torch.channels_last)
    kept = last.clone()
    got = deformable_weighted_average_blocks(
        target, weights.to(memory_format=torch.channels_last), last, residual=residual, window=7
    )
    assert got.shape == expected.shape and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert torch.equal(last, kept)
    with pytest.raises(ValueError, match="is not 4 x the kernels'"):
        deformable_weighted_average_blocks(target[..., :20], weights, offsets, residual=residual)


@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("kernel_size", [3, 5])
def test_fdkn_fused_cpu_step_equals_the_definition(residual, kernel_size, monkeypatch):
    """CPU inference runs FDKN's last step (the products of the heads and the weighted
    average) in one C pass (sampling_cpu): the same output as block_kernels followed by
    deformable_weighted_average_blocks, at sizes that need padding too."""
    from dkn_ros import native
    from dkn_ros.engines.optimise import optimise_for_cpu
    from dkn_ros.models import sampling_cpu

    torch.manual_seed(2)
    plain = FDKN(kernel_size=kernel_size, residual=residual).eval()
    for bn in (m for m in plain.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
    if sampling_cpu._function() is None:
        pytest.skip("no C compiler here: only the definition runs")
    for model in (plain, optimise_for_cpu(plain)):  # (N, C, H, W) and channels-last heads
        for size in ((24, 32), (21, 30)):
            guidance, target = torch.rand(2, 3, *size), torch.rand(2, 1, *size)
            with torch.no_grad():
                assert sampling_cpu.usable(
                    target, *model.parameters(), kernel_size=kernel_size, block=4
                )
                fused = model(guidance, target)
                monkeypatch.setattr(native, "ENABLED", False)
                expected = model(guidance, target)
                monkeypatch.setattr(native, "ENABLED", True)
            torch.testing.assert_close(fused, expected, atol=2e-5, rtol=0)


def test_fdkn_fused_cpu_step_takes_bfloat16_heads_in_float32():
    """With bfloat16 streams the C pass reads the heads' bfloat16 outputs and takes the
    sigmoid and the products in float32: the definition on the same values in float32."""
    from dkn_ros.models import sampling_cpu
    from dkn_ros.models.sampling import deformable_weighted_average_blocks

    if sampling_cpu._function() is None:
        pytest.skip("no C compiler here: only the definition runs")
    torch.manual_seed(1)
    target = torch.rand(1, 3, 20, 28)
    w_g, w_t = (torch.randn(1, 16 * 9, 5, 7).to(torch.bfloat16) for _ in range(2))
    o_g, o_t = (torch.randn(1, 32 * 9, 5, 7).mul(2).to(torch.bfloat16) for _ in range(2))
    expected = deformable_weighted_average_blocks(
        target, torch.sigmoid(w_g.float()) * torch.sigmoid(w_t.float()),
        o_g.float() * o_t.float(), residual=True,
    )  # fmt: skip
    for layout in (torch.contiguous_format, torch.channels_last):
        heads = [t.contiguous(memory_format=layout) for t in (w_g, w_t, o_g, o_t)]
        got = sampling_cpu.fdkn_last_step(
            target, heads[:2], heads[2:], residual=True, window=15, block=4
        )
        torch.testing.assert_close(got, expected, atol=2e-5, rtol=0)
    with pytest.raises(ValueError, match="is not 4 x the heads' 5x7"):
        sampling_cpu.fdkn_last_step(
            target[..., :24], heads[:2], heads[2:], residual=True, window=15, block=4
        )


def test_fdkn_fused_cpu_step_is_for_inference_only():
    """Training (gradients needed), float64 targets and GPUs take the definitions;
    gradients reach every parameter through FDKN's forward."""
    from dkn_ros.models import sampling_cpu

    model = FDKN().train()
    target = torch.rand(1, 1, 16, 16)
    assert not sampling_cpu.usable(target, *model.parameters(), kernel_size=3, block=4)
    with torch.no_grad():
        assert sampling_cpu.usable(target, *model.parameters(), kernel_size=3, block=4) == (
            sampling_cpu._function() is not None
        )
    assert not sampling_cpu.usable(target.double(), kernel_size=3, block=4)
    out = model(torch.rand(1, 3, 16, 16), target)
    assert out.grad_fn is not None
