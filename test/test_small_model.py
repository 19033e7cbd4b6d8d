"""The small FDKN family (fdkn_s): the same structure as FDKN at narrower widths, its
card says every width, and it round-trips through save/load."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from dkn_ros.models import FDKN, ModelCard, build_model, load_model, save_model
from dkn_ros.models.fdkn import FDKNSmall, shuffle_to_float32
from dkn_ros.models.registry import full_config


def conv_widths(model) -> list[int]:
    features = model.guidance_stream.features
    return [m.out_channels for m in features if isinstance(m, torch.nn.Conv2d)]


def test_fdkn_s_is_fdkn_with_narrow_streams():
    small, full = build_model("fdkn_s"), build_model("fdkn")
    assert isinstance(small, FDKN) and isinstance(small, FDKNSmall)
    assert conv_widths(full) == [32, 32, 64, 64, 128, 128]  # Table 2
    assert conv_widths(small) == [16, 16, 32, 32, 32, 32]
    assert conv_widths(build_model("fdkn", c1=8, c2=24, n1=40, n2=48)) == [8, 8, 24, 24, 40, 48]
    params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert params(small) < params(full) / 6  # 107k against 703k


@pytest.mark.parametrize("kernel_size", [3, 5])
def test_fdkn_s_shapes(kernel_size):
    model = build_model("fdkn_s", kernel_size=kernel_size).eval()
    guidance, target = torch.rand(2, 3, 50, 37), torch.rand(2, 1, 50, 37)
    with torch.inference_mode():
        weights, offsets = model.kernels(F.pad(guidance, (0, 3, 0, 2)), F.pad(target, (0, 3, 0, 2)))
        out = model(guidance, target)
    assert weights.shape == (2, kernel_size**2, 52, 40)
    assert offsets.shape == (2, 2 * kernel_size**2, 52, 40)
    assert out.shape == (2, 1, 50, 37) and torch.isfinite(out).all()


def test_shuffle_to_float32_is_pixel_shuffle_for_any_layout_and_dtype():
    x = torch.rand(2, 48, 5, 7)
    assert torch.equal(shuffle_to_float32(x), F.pixel_shuffle(x, 4))
    low = x.to(memory_format=torch.channels_last).bfloat16()
    shuffled = shuffle_to_float32(low)
    assert shuffled.dtype == torch.float32 and shuffled.is_contiguous()
    assert torch.equal(shuffled, F.pixel_shuffle(low.float(), 4))


def test_card_round_trip_rebuilds_the_widths(tmp_path):
    torch.manual_seed(0)
    config = full_config("fdkn_s", {"c1": 8, "n2": 24})
    assert config == {"kernel_size": 3, "window": 15, "residual": True, "n1": 32, "n2": 24,
                      "guidance_channels": 3, "c1": 8, "c2": 32}  # fmt: skip
    model = build_model("fdkn_s", **config).eval()
    path = tmp_path / "fdkn_s_x8.safetensors"
    save_model(model, ModelCard(model="fdkn_s", config=config, scale=8), path)
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["model"] == "fdkn_s" and card["config"] == config
    loaded, read = load_model(path)
    assert conv_widths(loaded) == [8, 8, 32, 32, 32, 24]
    guidance, target = torch.rand(1, 3, 32, 32), torch.rand(1, 1, 32, 32)
    with torch.inference_mode():
        assert torch.equal(loaded(guidance, target), model(guidance, target))


def test_an_old_fdkn_card_without_c1_c2_means_the_paper_widths(tmp_path):
    path = tmp_path / "fdkn_x8.safetensors"
    save_model(build_model("fdkn"), ModelCard(model="fdkn", config={"n1": 128}, scale=8), path)
    loaded, _ = load_model(path)
    assert conv_widths(loaded) == [32, 32, 64, 64, 128, 128]


def test_a_card_with_wrong_widths_is_refused_with_the_file_named(tmp_path):
    path = tmp_path / "fdkn_s_x8.safetensors"
    save_model(build_model("fdkn_s"), ModelCard(model="fdkn_s", config={"c1": 8}, scale=8), path)
    with pytest.raises(ValueError, match="fdkn_s_x8.safetensors: weights do not fit model"):
        load_model(path)
    card = json.loads(path.with_suffix(".json").read_text())
    card["config"]["c2"] = 0
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match=r"field 'config.c2' must be in 1..1024"):
        load_model(path)
