"""Quality levels: which network and which arithmetic enhance the depth, and how
``auto`` picks the best one that keeps up with the camera.

=========  ================================================================================
quality    what runs
=========  ================================================================================
``full``   FDKN at the paper's widths (the ``fdkn`` weights), float32, on the engine asked
           for: today's accuracy, about 113 ms a 640 x 480 frame on two CPU cores
``fast``   FDKN-S (the ``fdkn_s`` weights: the small FDKN distilled from ``fdkn``),
           bfloat16 streams on a CPU that computes bfloat16 natively (PyTorch), else
           float32 on the engine asked for
``auto``   time each candidate below on the frame in hand (one warm-up, then the median
           of :data:`TIMED_RUNS` whole frames: pre-processing, network, post-processing)
           and take the first, in order of quality, that keeps up with the input rate
           (``max_rate`` when set, else the rate measured so far, else
           :data:`ASSUMED_RATE_HZ`); when none keeps up, the fastest. Candidates: full
           float32, full with bfloat16 streams (on such a CPU), fast. Where bfloat16
           runs, full float32 runs on PyTorch too when the engine asked for is
           ``auto``: one runtime in the process.
=========  ================================================================================

"Keeps up" means a median whole-frame time of at most :data:`KEEP_UP_FRACTION` of the
input period: the rest is left for the node's message handling and the odd slow frame.
The choice is made again for each new input size, and when the rate moves by more than
:data:`RATE_CHANGE` (e.g. a camera measured at 5 Hz after 30 Hz was assumed at start-up),
at most once every :data:`RECHOOSE_AFTER_S` seconds (the timing itself makes a node drop
frames for a second or two, which must not make it choose again and again).

bfloat16 changes FDKN's output by at most 0.05 RMSE on middlebury30 x8 (0-255 disparity
units; ``test/test_precision.py``), which is why ``auto`` ranks it just below float32.
The choice is made by :class:`dkn_ros.enhancer.Enhancer`; this module only holds the
candidates and the rule, so the rule is tested with a fake clock (``choose``,
``median_time``).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "ASSUMED_RATE_HZ",
    "KEEP_UP_FRACTION",
    "QUALITIES",
    "RATE_CHANGE",
    "RECHOOSE_AFTER_S",
    "TIMED_RUNS",
    "Candidate",
    "Choice",
    "candidates",
    "choose",
    "median_time",
]

QUALITIES = ("auto", "full", "fast")
ASSUMED_RATE_HZ = 30.0  # Kinect, Xtion, RealSense defaults: used before a rate is measured
KEEP_UP_FRACTION = 0.9  # a candidate keeps up when its median <= this x the input period
RATE_CHANGE = 0.25  # choose again when the rate to keep up with moves by more than this
RECHOOSE_AFTER_S = 10.0  # ... but not sooner than this after the last choice
WARM_RUNS = 1
TIMED_RUNS = 3


@dataclass(frozen=True)
class Candidate:
    """One way to enhance: a quality level's network and the arithmetic of its streams.

    Attributes:
        quality: ``full`` or ``fast``.
        model: the weights family, ``fdkn`` or ``fdkn_s`` (``dkn_ros.models.MODELS``).
        precision: ``fp32`` or ``bf16``: the streams' arithmetic on a CPU; ``""`` on a
            GPU, where the engine's own ``precision`` option applies.
    """

    quality: str
    model: str
    precision: str = "fp32"

    @property
    def label(self) -> str:
        """``full fp32``, ``full bf16``, ``fast bf16`` (``full``, ``fast`` on a GPU), for
        logs and diagnostics."""
        return f"{self.quality} {self.precision}".strip()

    def engine(self, asked: str) -> str:
        """The engine to make: bfloat16 streams need PyTorch; otherwise the one asked
        for (``auto`` is PyTorch on the CPU too, so auto's candidates share one
        runtime)."""
        return "torch" if self.precision == "bf16" else asked

    def engine_options(self, options: dict) -> dict:
        """``options`` with this candidate's ``cpu_precision``."""
        return {**options, "cpu_precision": self.precision} if self.precision == "bf16" else options


def candidates(quality: str, device: str, cpu_bf16: bool, model: str = "fdkn") -> list[Candidate]:
    """The candidates of a quality level, best first.

    Args:
        quality: a name of :data:`QUALITIES`.
        device: ``cpu`` or ``cuda[:N]``: bfloat16 candidates are for the CPU only.
        cpu_bf16: whether this CPU computes bfloat16 natively
            (``dkn_ros.engines.optimise.cpu_computes_bf16``).
        model: the model asked for; ``full`` runs it as it is (any model), ``fast`` and
            ``auto`` need ``fdkn``.
    """
    if quality not in QUALITIES:
        raise ValueError(f"quality must be one of {', '.join(QUALITIES)}, got {quality!r}")
    cpu = device == "cpu"
    bf16 = cpu_bf16 and cpu
    precision = "fp32" if cpu else ""
    if quality == "full":
        return [Candidate("full", model, precision)]
    if model != "fdkn":
        raise ValueError(
            f"quality {quality!r} chooses between fdkn and its small version fdkn_s; with "
            f"model {model!r} use quality 'full'"
        )
    fast = Candidate("fast", "fdkn_s", "bf16" if bf16 else precision)
    if quality == "fast":
        return [fast]
    if not bf16:
        return [Candidate("full", "fdkn", precision), fast]
    return [Candidate("full", "fdkn", "fp32"), Candidate("full", "fdkn", "bf16"), fast]


def median_time(run: Callable[[], object], clock: Callable[[], float]) -> float:
    """Seconds per call of ``run``: :data:`WARM_RUNS` untimed calls, then the median of
    :data:`TIMED_RUNS` timed with ``clock``."""
    for _ in range(WARM_RUNS):
        run()
    times = []
    for _ in range(TIMED_RUNS):
        start = clock()
        run()
        times.append(clock() - start)
    return statistics.median(times)


@dataclass(frozen=True)
class Choice:
    """What ``auto`` chose for one input size, and why."""

    candidate: Candidate
    latencies_ms: dict[str, float]  # candidate label -> median whole-frame ms, best first
    rate_hz: float
    rate_source: str  # "max_rate", "measured" or "assumed"
    size: str = ""  # e.g. "640x480, depth 80x60"
    failed: dict[str, str] = field(default_factory=dict)  # label -> why it could not run

    @property
    def budget_ms(self) -> float:
        """The longest median that keeps up with ``rate_hz``."""
        return KEEP_UP_FRACTION * 1e3 / self.rate_hz

    @property
    def keeps_up(self) -> bool:
        return self.latencies_ms[self.candidate.label] <= self.budget_ms

    def summary(self) -> str:
        """One line for the log, e.g. ``quality auto at 640x480, depth 80x60: input 30.0
        Hz (measured), budget 30 ms; full fp32 131 ms, full bf16 64 ms, fast bf16 29 ms
        -> fast bf16``."""
        timed = ", ".join(f"{label} {ms:.0f} ms" for label, ms in self.latencies_ms.items())
        failed = "".join(f"; {label} failed: {why}" for label, why in self.failed.items())
        verdict = "" if self.keeps_up else " (none keeps up: the fastest)"
        where = f" at {self.size}" if self.size else ""
        return (
            f"quality auto{where}: input {self.rate_hz:.1f} Hz ({self.rate_source}), budget "
            f"{self.budget_ms:.0f} ms; {timed}{failed} -> {self.candidate.label}{verdict}"
        )


def choose(
    options: Sequence[Candidate],
    time_candidate: Callable[[Candidate], float],
    rate_hz: float,
    rate_source: str,
    size: str = "",
) -> Choice:
    """Time every candidate (``time_candidate`` returns seconds per frame, or raises when
    the candidate cannot run here) and pick the first, in the given order, that keeps
    up with ``rate_hz``; when none does, the fastest.

    Raises:
        ValueError: no candidates, or a rate that is not positive.
        RuntimeError: no candidate could run (the message lists why each failed).
    """
    if not options:
        raise ValueError("no candidates to choose from")
    if not rate_hz > 0:
        raise ValueError(f"the input rate must be positive, got {rate_hz!r}")
    latencies: dict[str, float] = {}
    failed: dict[str, str] = {}
    for candidate in options:
        try:
            latencies[candidate.label] = time_candidate(candidate) * 1e3
        except Exception as exc:  # a candidate that cannot run here is skipped, said why
            failed[candidate.label] = " ".join(str(exc).split())[:200] or type(exc).__name__
    timed = [c for c in options if c.label in latencies]
    if not timed:
        raise RuntimeError(
            "no quality candidate could run: "
            + "; ".join(f"{label}: {why}" for label, why in failed.items())
        )
    budget = KEEP_UP_FRACTION * 1e3 / rate_hz
    keeping = [c for c in timed if latencies[c.label] <= budget]
    chosen = keeping[0] if keeping else min(timed, key=lambda c: latencies[c.label])
    return Choice(chosen, latencies, float(rate_hz), rate_source, size, failed)
