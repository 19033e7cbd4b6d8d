"""Quality levels (dkn_ros.quality) and the Enhancer's ``auto`` choice, timed with a
fake clock: the networks really run, the clock says how long each candidate took."""

from __future__ import annotations

import numpy as np
import pytest

from dkn_ros import quality
from dkn_ros.engines.optimise import cpu_computes_bf16
from dkn_ros.enhancer import Enhancer
from dkn_ros.models import ModelCard, build_model, save_model
from dkn_ros.quality import Candidate, choose, median_time

FULL = Candidate("full", "fdkn", "fp32")
FULL_BF16 = Candidate("full", "fdkn", "bf16")
FAST = Candidate("fast", "fdkn_s", "bf16")


def test_candidates_per_quality_device_and_cpu():
    assert quality.candidates("full", "cpu", True) == [Candidate("full", "fdkn", "fp32")]
    assert quality.candidates("fast", "cpu", True) == [FAST]
    assert quality.candidates("fast", "cpu", False) == [Candidate("fast", "fdkn_s", "fp32")]
    assert quality.candidates("auto", "cpu", True) == [FULL, FULL_BF16, FAST]
    assert quality.candidates("auto", "cpu", False) == [
        Candidate("full", "fdkn", "fp32"),
        Candidate("fast", "fdkn_s", "fp32"),
    ]
    # bf16 is a CPU path: on a GPU the engine's own precision applies
    on_gpu = quality.candidates("auto", "cuda", True)
    assert on_gpu == [Candidate("full", "fdkn", ""), Candidate("fast", "fdkn_s", "")]
    assert [c.label for c in on_gpu] == ["full", "fast"]
    assert quality.candidates("full", "cpu", True, model="dkn") == [Candidate("full", "dkn")]
    with pytest.raises(ValueError, match="with model 'dkn' use quality 'full'"):
        quality.candidates("fast", "cpu", True, model="dkn")
    with pytest.raises(ValueError, match="quality must be one of auto, full, fast"):
        quality.candidates("best", "cpu", True)


def test_bf16_candidates_ask_for_the_torch_engine():
    assert FULL_BF16.engine("onnx") == "torch"
    assert FULL_BF16.engine_options({"threads": 2}) == {"threads": 2, "cpu_precision": "bf16"}
    assert FULL.engine("onnx") == "onnx"  # asked for by name: as asked
    assert FULL.engine("auto") == "auto"  # PyTorch on the CPU, as the bf16 candidates
    assert FULL.engine_options({"threads": 2}) == {"threads": 2}


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_median_time_warms_up_then_takes_the_median_of_three():
    clock = FakeClock()
    costs = iter([5.0, 0.3, 0.1, 0.2])  # the warm-up run (5 s) is not counted

    def run():
        clock.now += next(costs)

    assert median_time(run, clock) == pytest.approx(0.2)


def fake_timer(seconds: dict[str, float]):
    return lambda candidate: seconds[candidate.label]


def test_choose_takes_the_best_quality_that_keeps_up():
    options = [FULL, FULL_BF16, FAST]
    timer = fake_timer({"full fp32": 0.130, "full bf16": 0.060, "fast bf16": 0.030})
    # 30 Hz: budget 0.9 / 30 = 30 ms: only fast keeps up
    choice = choose(options, timer, 30.0, "measured")
    assert choice.candidate == FAST and choice.keeps_up
    assert choice.budget_ms == pytest.approx(30.0)
    # 15 Hz: budget 60 ms: full bf16 is the best that keeps up
    assert choose(options, timer, 15.0, "max_rate").candidate == FULL_BF16
    # 5 Hz: full float32 keeps up
    assert choose(options, timer, 5.0, "assumed").candidate == FULL
    summary = choose(options, timer, 30.0, "measured", "640x480, depth 80x60").summary()
    assert "640x480, depth 80x60" in summary and "full fp32 130 ms" in summary
    assert summary.endswith("-> fast bf16")


def test_choose_when_none_keeps_up_takes_the_fastest_and_says_so():
    timer = fake_timer({"full fp32": 0.130, "full bf16": 0.060, "fast bf16": 0.045})
    choice = choose([FULL, FULL_BF16, FAST], timer, 30.0, "measured")
    assert choice.candidate == FAST and not choice.keeps_up
    assert "none keeps up" in choice.summary()


def test_choose_skips_a_candidate_that_cannot_run():
    def timer(candidate):
        if candidate == FULL_BF16:
            raise RuntimeError("this CPU has no native bfloat16 arithmetic")
        return {"full fp32": 0.2, "fast bf16": 0.02}[candidate.label]

    choice = choose([FULL, FULL_BF16, FAST], timer, 30.0, "measured")
    assert choice.candidate == FAST
    assert "no native bfloat16" in choice.failed["full bf16"]
    assert "full bf16 failed" in choice.summary()
    with pytest.raises(RuntimeError, match="no quality candidate could run"):
        choose([FULL_BF16], timer, 30.0, "measured")
    with pytest.raises(ValueError, match="rate must be positive"):
        choose([FULL], timer, 0.0, "measured")


# --------------------------------------------------------------------------- Enhancer


@pytest.fixture(scope="module")
def two_families(tmp_path_factory):
    """Untrained x8 weights of fdkn and fdkn_s (narrow, so the test is quick), as a
    shipped-weights folder."""
    folder = tmp_path_factory.mktemp("weights")
    for model, config in (("fdkn", {"n1": 16, "n2": 16}), ("fdkn_s", {"c1": 8, "c2": 8})):
        card = ModelCard(model=model, config=config, task="upsampling", scale=8)
        save_model(build_model(model, **config), card, folder / f"{model}_x8.safetensors")
    return folder


class CandidateClock(FakeClock):
    """A fake clock that moves on by what the candidate costs each time the Enhancer
    runs a frame (its real network on a tiny frame): ``frames`` counts them."""

    def __init__(self, costs: dict[str, float]):
        super().__init__()
        self.costs = costs
        self.frames = 0

    def attach(self, enhancer: Enhancer) -> None:
        run = enhancer._enhance_once

        def run_and_tick(color, depth):
            out = run(color, depth)
            self.frames += 1
            self.now += self.costs[enhancer.candidate.label]
            return out

        enhancer._enhance_once = run_and_tick


def frame(height: int, width: int, scale: int = 8):
    rng = np.random.default_rng(0)
    color = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    depth = rng.integers(500, 4000, (height // scale, width // scale), dtype=np.uint16)
    return color, depth


def auto_enhancer(folder, clock, **kwargs) -> Enhancer:
    enhancer = Enhancer(quality="auto", weights_dir=folder, engine="torch", clock=clock, **kwargs)
    clock.attach(enhancer)
    return enhancer


def test_auto_chooses_what_keeps_up_and_lets_go_of_the_rest(two_families):
    costs = {"full fp32": 0.120, "full bf16": 0.070, "fast bf16": 0.025, "fast fp32": 0.040}
    clock = CandidateClock(costs)
    enhancer = auto_enhancer(two_families, clock)
    enhancer.input_rate_hz = 30.0
    color, depth = frame(48, 64)
    out = enhancer.enhance(color, depth)
    assert out.shape == (48, 64) and out.dtype == np.uint16
    choice = enhancer.last_choice
    assert choice.rate_source == "measured" and choice.rate_hz == 30.0
    fast = "fast bf16" if cpu_computes_bf16() else "fast fp32"
    labels = ["full fp32", "full bf16", fast] if cpu_computes_bf16() else ["full fp32", fast]
    assert list(choice.latencies_ms) == labels  # every candidate timed, best first
    assert choice.latencies_ms["full fp32"] == pytest.approx(120.0)
    assert choice.candidate.label == fast
    assert enhancer.candidate.model == "fdkn_s"
    assert [p.name for p in enhancer.loaded_weights] == ["fdkn_s_x8.safetensors"]
    assert f"quality auto: {fast}" in enhancer.describe()
    # one warm-up and three timed frames per candidate, then the frame itself
    assert clock.frames == 4 * len(labels) + 1


def test_auto_keeps_its_choice_for_a_size_and_redecides_when_the_size_changes(two_families):
    clock = CandidateClock({"full fp32": 0.050, "full bf16": 0.030, "fast bf16": 0.01,
                            "fast fp32": 0.01})  # fmt: skip
    enhancer = auto_enhancer(two_families, clock, max_rate=15.0)  # budget 60 ms
    enhancer.input_rate_hz = 30.0  # max_rate wins over the measured rate
    color, depth = frame(48, 64)
    enhancer.enhance(color, depth)
    assert enhancer.last_choice.candidate.label == "full fp32"
    assert enhancer.last_choice.rate_source == "max_rate"
    frames = clock.frames
    enhancer.enhance(color, depth)
    frames += 1
    assert clock.frames == frames  # same size: this frame only, no timing
    clock.costs["full fp32"] = 0.2  # larger frames are slower
    color, depth = frame(96, 128)
    enhancer.enhance(color, depth)
    assert clock.frames > frames + 1  # timed again
    assert enhancer.last_choice.candidate.label != "full fp32"
    assert "128x96, depth 16x12" in enhancer.last_choice.summary()


def test_auto_without_a_measured_rate_assumes_a_camera_rate(two_families):
    clock = CandidateClock({"full fp32": 0.020, "full bf16": 0.01, "fast bf16": 0.01,
                            "fast fp32": 0.01})  # fmt: skip
    enhancer = auto_enhancer(two_families, clock)
    enhancer.enhance(*frame(48, 64))
    assert enhancer.last_choice.rate_source == "assumed"
    assert enhancer.last_choice.rate_hz == quality.ASSUMED_RATE_HZ
    assert enhancer.last_choice.candidate.label == "full fp32"


def test_auto_bad_input_is_the_callers_error_not_a_candidates(two_families):
    from dkn_ros.processing import InputError

    enhancer = auto_enhancer(two_families, CandidateClock({}))
    color, depth = frame(48, 64)
    with pytest.raises(InputError):
        enhancer.enhance(color[:, :, :2], depth)
    assert enhancer.last_choice is None


def test_fast_and_full_use_their_own_weights(two_families):
    color, depth = frame(48, 64)
    fast = Enhancer(quality="fast", weights_dir=two_families, engine="torch")
    fast.enhance(color, depth)
    assert fast.last_card.model == "fdkn_s" and fast.last_choice is None
    full = Enhancer(quality="full", weights_dir=two_families, engine="torch")
    full.enhance(color, depth)
    assert full.last_card.model == "fdkn"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"quality": "best"}, "quality must be one of auto, full, fast"),
        ({"quality": "fast", "model": "dkn"}, "with model 'dkn' use quality 'full'"),
        ({"quality": "auto", "weights": "x.safetensors"}, "explicit weights file is used as it"),
        ({"quality": "auto", "max_rate": 0}, "max_rate must be None or a positive rate"),
    ],
)
def test_bad_quality_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Enhancer(**kwargs)


def test_auto_chooses_again_when_the_measured_rate_moves(two_families):
    clock = CandidateClock({"full fp32": 0.100, "full bf16": 0.050, "fast bf16": 0.02,
                            "fast fp32": 0.02})  # fmt: skip
    enhancer = auto_enhancer(two_families, clock)
    color, depth = frame(48, 64)
    enhancer.enhance(color, depth)  # start-up: no rate measured yet, 30 Hz assumed
    assert enhancer.last_choice.rate_source == "assumed"
    assert enhancer.last_choice.candidate.quality == "fast"
    enhancer.input_rate_hz = 5.0  # the camera runs at 5 Hz, but the choice is fresh
    frames = clock.frames
    enhancer.enhance(color, depth)
    frames += 1
    assert clock.frames == frames  # this frame only: no timing
    clock.now += quality.RECHOOSE_AFTER_S
    enhancer.input_rate_hz = 27.0  # within 25 %: the choice stands
    enhancer.enhance(color, depth)
    frames += 1
    assert clock.frames == frames  # this frame only: no timing
    enhancer.input_rate_hz = 5.0  # full fp32 keeps up with 5 Hz
    enhancer.enhance(color, depth)
    assert enhancer.last_choice.rate_source == "measured"
    assert enhancer.last_choice.candidate.label == "full fp32"
