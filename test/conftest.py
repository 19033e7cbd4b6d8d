"""Shared test settings: deterministic, single-threaded torch (the CI machine has 2 cores)."""

import pytest
import torch

from dkn_ros.models import ModelCard, build_model, save_model


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def small_fdkn_weights(tmp_path_factory):
    """A small untrained FDKN x8 weights file with its card (n1 = n2 = 16): for tests of
    plumbing that does not depend on training."""
    path = tmp_path_factory.mktemp("weights") / "fdkn_small_x8.safetensors"
    card = ModelCard(model="fdkn", config={"n1": 16, "n2": 16}, task="upsampling", scale=8)
    save_model(build_model("fdkn", n1=16, n2=16), card, path)
    return path
