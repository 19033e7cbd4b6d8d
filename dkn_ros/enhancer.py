"""``Enhancer``: depth enhancement for numpy arrays, the one core every front end uses.

    enhancer = Enhancer()                        # FDKN, shipped weights, scale from sizes
    depth_hr = enhancer.enhance(color, depth)    # numpy in, numpy out
    enhancer.last_timings                        # pre / inference / post milliseconds

Weights: ``weights=None`` uses the weights shipped in ``dkn_ros/weights/``, named
``{model}_x{scale}.safetensors`` (upsampling by ``scale``) and
``{model}_denoise.safetensors`` (same-size input), each with its ``.json`` card beside
it. They are loaded on first use and cached per scale. Depth may be smaller than the
colour image by any real factor (80x60 or 240x180 under 640x480, 144x192 under
384x512): the shipped weights of the closest trained scale (in log scale; the denoising
weights count as scale 1) are used, and the LR depth is brought to colour size the way
those weights were trained (their card's ``input_upsampling``). An explicit ``weights``
path is used for every input as given, and its card names the model.

``quality`` chooses the network and its arithmetic (``dkn_ros.quality``): ``full`` (the
default here: FDKN as trained), ``fast`` (the distilled small FDKN, bfloat16 where the
CPU computes it natively) or ``auto``: on the first frame of each size, every candidate
is timed on that frame and the best one that keeps up with ``input_rate_hz`` (set by
the caller, e.g. the node's measured input rate) or ``max_rate`` is kept;
``last_choice`` says what was chosen and the measured latencies.

``iterations=N`` applies the same network N times, feeding the (normalised) output
back as the target with the same guidance; the normalisation range and the validity
mask stay those of the input (texture removal, paper section 4.3, uses 4).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dkn_ros import processing
from dkn_ros import quality as quality_module
from dkn_ros.engines import ENGINES, Engine, create_engine
from dkn_ros.engines.optimise import cpu_computes_bf16, release_free_memory
from dkn_ros.models import MODELS, ModelCard
from dkn_ros.models.registry import DEFAULT_WEIGHTS_DIR, load_model, resolve_weights
from dkn_ros.processing.arrays import NUMPY, TorchArrays

__all__ = ["COLOR_ORDERS", "INVALID_POLICIES", "MAX_SCALE", "QUALITIES", "Enhancer", "Timings"]

# What the Enhancer's arguments take (front ends offer these without reaching past it).
COLOR_ORDERS = processing.COLOR_ORDERS
INVALID_POLICIES = processing.INVALID_POLICIES
MAX_SCALE = processing.MAX_SCALE  # depth up to this many times smaller than the colour
QUALITIES = quality_module.QUALITIES

logger = logging.getLogger(__name__)


class _SaidOnce(logging.Filter):
    """Lets each distinct message through once."""

    def __init__(self) -> None:
        super().__init__()
        self.said: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self.said:
            return False
        self.said.add(message)
        return True


@dataclass(frozen=True)
class Timings:
    """Wall-clock milliseconds of one ``enhance`` call, split by stage. Loading
    weights on first use is counted in ``load_ms`` only."""

    preprocess_ms: float = 0.0
    inference_ms: float = 0.0
    postprocess_ms: float = 0.0
    load_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        """Pre-processing + inference + post-processing (not loading)."""
        return self.preprocess_ms + self.inference_ms + self.postprocess_ms


class Enhancer:
    """Enhance depth with DKN/FDKN: colour guidance + low-resolution or noisy depth in,
    depth at colour resolution out, in the input's own dtype and units.

    Args:
        model: ``"fdkn"``, ``"fdkn_s"`` or ``"dkn"``; selects the shipped weights
            (ignored when ``weights`` is given: the card names the model).
        weights: a ``.safetensors`` file with its ``.json`` card, or None for the
            shipped weights.
        scale: pin the shipped weights to this trained scale (2..16, or 1 for the
            same-size weights) for every input, whatever its size ratio; None (default):
            the weights of the trained scale closest to each input's ratio. The weights
            are loaded at once when pinned.
        engine: ``"auto"``, ``"torch"``, ``"onnx"`` or ``"tensorrt"`` (see
            ``dkn_ros.engines``: what each runs on which device, and the fallbacks).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``... When the engine ends up on a
            GPU, the full-resolution pre- and post-processing runs there too (the torch
            back-end of ``dkn_ros.processing``).
        invalid: ``"keep"`` (output invalid where no valid input supports it) or
            ``"fill"`` (every output pixel gets a value); see ``dkn_ros.processing``.
        color_order: channel order of the colour images, ``"rgb"`` or ``"bgr"``.
        iterations: how many times the filter is applied (>= 1).
        weights_dir: where the shipped weights are looked for; None: the package's
            ``weights/`` (``dkn_ros.models.registry.DEFAULT_WEIGHTS_DIR``).
        engine_options: keyword options of ``create_engine`` (``precision``,
            ``size`` for TensorRT, ``cache_dir``...; see ``dkn_ros.engines``).
        quality: ``"full"``, ``"fast"`` or ``"auto"`` (``dkn_ros.quality``); ``fast``
            and ``auto`` need ``model="fdkn"`` and the shipped weights.
        max_rate: for ``auto``: the frame rate to keep up with, in Hz, instead of
            ``input_rate_hz``.
        clock: seconds, for timing the ``auto`` candidates (a seam for tests).
    """

    def __init__(
        self,
        model: str = "fdkn",
        weights: str | Path | None = None,
        scale: int | None = None,
        engine: str = "auto",
        device: str = "cpu",
        invalid: str = "keep",
        color_order: str = "rgb",
        iterations: int = 1,
        weights_dir: str | Path | None = None,
        engine_options: dict | None = None,
        quality: str = "full",
        max_rate: float | None = None,
        clock=time.perf_counter,
    ):
        if model not in MODELS:
            raise ValueError(f"unknown model {model!r}; known models: {', '.join(MODELS)}")
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; known engines: {', '.join(ENGINES)}")
        if invalid not in processing.INVALID_POLICIES:
            raise ValueError(f"invalid must be 'keep' or 'fill', got {invalid!r}")
        if color_order not in processing.COLOR_ORDERS:
            raise ValueError(f"color_order must be 'rgb' or 'bgr', got {color_order!r}")
        if not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"iterations must be an integer >= 1, got {iterations!r}")
        if scale is not None and not (
            isinstance(scale, int) and processing.MIN_SCALE <= scale <= processing.MAX_SCALE
        ):
            raise ValueError(
                f"scale must be None (automatic), 1 (same size) or an integer in "
                f"2..{processing.MAX_SCALE}, got {scale!r}"
            )
        if quality not in QUALITIES:
            raise ValueError(f"quality must be one of {', '.join(QUALITIES)}, got {quality!r}")
        if quality != "full" and weights is not None:
            raise ValueError(
                f"quality {quality!r} chooses among the shipped weights; an explicit weights "
                "file is used as it is (quality 'full')"
            )
        if max_rate is not None and not (isinstance(max_rate, int | float) and max_rate > 0):
            raise ValueError(f"max_rate must be None or a positive rate in Hz, got {max_rate!r}")
        self.model_name = model
        self.weights = Path(weights) if weights is not None else None
        self.scale = scale
        self.engine_name = engine
        self.device = device
        self.invalid = invalid
        self.color_order = color_order
        self.iterations = iterations
        self.weights_dir = Path(weights_dir) if weights_dir is not None else DEFAULT_WEIGHTS_DIR
        self.engine_options = dict(engine_options or {})
        self.quality = quality
        self.max_rate = max_rate
        self.input_rate_hz: float | None = None  # the caller's measured input rate, for auto
        self._clock = clock
        self._candidates = quality_module.candidates(
            quality, device, device == "cpu" and cpu_computes_bf16(), model
        )
        self._candidate = self._candidates[0]  # the one enhancing now
        self._choice: quality_module.Choice | None = None
        self._choice_shapes: tuple | None = None  # the input shapes the choice was made for
        self._chosen_at = 0.0  # self._clock() when it was made

        # (weights file, precision) -> (engine, card)
        self._loaded: dict[tuple[Path, str], tuple[Engine, ModelCard]] = {}
        self._path_for_scale: dict[tuple[str, float], Path] = {}  # (model, scale) -> file
        self._warned_scales: set[float] = set()
        self._last_scale: float | None = None
        self._last_key: tuple[Path, str] | None = None
        self._last_timings = Timings()
        self._warned_implausible = False
        self._arrays = NUMPY  # the array back-end of the last call's engine
        self._device_arrays: dict[str, TorchArrays] = {}  # GPU back-ends by device

        if self.weights is not None:
            self._load(resolve_weights(model, scale, self.weights))
        elif scale is not None:
            self._engine_for_scale(scale)

    # ----------------------------------------------------------------- diagnostics

    @property
    def engine_description(self) -> str | None:
        """The engine of the last call (or of the loaded weights), e.g. ``torch on cpu``;
        None before any weights are loaded."""
        key = self._last_key or next(iter(self._loaded), None)
        return None if key is None else self._loaded[key][0].describe()

    @property
    def last_scale(self) -> float | None:
        """The size ratio of the last call (1.0 = same size), None before the first."""
        return self._last_scale

    @property
    def last_weights(self) -> Path | None:
        """The weights file the last call used."""
        return None if self._last_key is None else self._last_key[0]

    @property
    def last_card(self) -> ModelCard | None:
        """The model card of the weights the last call used."""
        return None if self._last_key is None else self._loaded[self._last_key][1]

    @property
    def loaded_weights(self) -> tuple[Path, ...]:
        """The weights files loaded now (each is loaded once, however many scales use
        it; ``auto`` lets go of the candidates it did not choose)."""
        return tuple(dict.fromkeys(path for path, _ in self._loaded))

    @property
    def last_timings(self) -> Timings:
        """Milliseconds of the last call: pre-processing, inference, post-processing."""
        return self._last_timings

    @property
    def candidate(self) -> quality_module.Candidate:
        """The quality candidate enhancing now (under ``auto``: the chosen one, or the
        one being timed while choosing)."""
        return self._candidate

    @property
    def last_choice(self) -> quality_module.Choice | None:
        """What ``auto`` chose for the current input size (and the latencies it
        measured); None before the first frame and for ``full`` and ``fast``."""
        return self._choice

    # ----------------------------------------------------------------- weights

    def _load(self, path: Path) -> Engine:
        """Load a weights file once per precision and make its engine; returns the
        engine."""
        candidate = self._candidate
        key = (path, candidate.precision)
        if key not in self._loaded:
            model, card = load_model(path)
            engine = create_engine(
                candidate.engine(self.engine_name),
                model,
                self.device,
                **candidate.engine_options(self.engine_options),
            )
            self._loaded[key] = (engine, card)
            logger.info(
                "loaded %s (%s, %s, scale %s) on %s",
                path,
                card.model,
                card.task,
                card.scale,
                engine.describe(),
            )
        self._last_key = key
        return self._loaded[key][0]

    @property
    def array_backend(self) -> str:
        """Where the last call's full-resolution pre- and post-processing ran:
        ``numpy`` (the host) or ``torch`` (the engine's GPU)."""
        return self._arrays.name

    def _arrays_for(self, engine: Engine):
        """The torch back-end on the engine's GPU when the engine takes device tensors
        there (one per device, so its pinned upload buffer is reused), else numpy on the
        host."""
        if not (engine.device.startswith("cuda") and hasattr(engine, "run_tensors")):
            return NUMPY
        if engine.device not in self._device_arrays:
            self._device_arrays[engine.device] = TorchArrays(engine.device)
        return self._device_arrays[engine.device]

    def _weights_for_scale(self, scale: float) -> Path:
        """The shipped weights file of the current candidate's model for ``scale``:
        exact, else the closest (said once)."""
        model = self._candidate.model
        if (model, scale) not in self._path_for_scale:
            self._path_for_scale[model, scale] = resolve_weights(
                model, scale, weights_dir=self.weights_dir, exact=self.scale == scale
            )
        return self._path_for_scale[model, scale]

    def _engine_for_scale(self, scale: float) -> Engine:
        """The engine for inputs of ``scale`` (the pinned scale when there is one),
        loading its weights on first use."""
        if self.weights is None:
            return self._load(self._weights_for_scale(scale if self.scale is None else self.scale))
        engine = self._load(self.weights)
        self._warn_if_card_differs(scale)
        return engine

    def _warn_if_card_differs(self, scale: float) -> None:
        """Explicit weights are used for any scale; say once per scale when the card
        was made for another one."""
        card = self._loaded[self.weights, self._candidate.precision][1]
        near = any(abs(math.log(scale / t)) < math.log(1.5) for t in card.trained_scales)
        if not near and scale not in self._warned_scales:
            self._warned_scales.add(scale)
            logger.warning(
                "%s was trained for %s (scale %d) but the input has scale %.3g; using it anyway",
                self.weights.name,
                card.task,
                card.trained_scale,
                scale,
            )

    def _warn_if_implausible(self, depth: np.ndarray) -> None:
        """Warn once per Enhancer when the depth's range is implausible for its units
        (:func:`processing.implausible_depth_message`, under a millisecond); it is
        enhanced anyway."""
        if not self._warned_implausible:
            message = processing.implausible_depth_message(depth)
            if message:
                self._warned_implausible = True
                logger.warning("%s; enhancing it anyway (said once)", message)

    # ----------------------------------------------------------------- quality

    def _rate(self) -> tuple[float, str]:
        """The rate ``auto`` keeps up with, and where it came from."""
        if self.max_rate is not None:
            return float(self.max_rate), "max_rate"
        if self.input_rate_hz is not None and self.input_rate_hz > 0:
            return float(self.input_rate_hz), "measured"
        return quality_module.ASSUMED_RATE_HZ, "assumed"

    def _choose_quality(self, color: np.ndarray, depth: np.ndarray) -> None:
        """``auto``: time every candidate on this frame, keep the chosen one's engines
        and let go of the others (see ``dkn_ros.quality``)."""
        # Bad input is the caller's error, not a candidate's: check it once first.
        processing.check_color(color, self.color_order)
        processing.prepare_depth(depth[:, :, 0] if np.ndim(depth) == 3 else depth, color.shape)

        def time_candidate(candidate: quality_module.Candidate) -> float:
            self._candidate = candidate
            return quality_module.median_time(lambda: self._enhance_once(color, depth), self._clock)

        rate, source = self._rate()
        depth_size = f"{depth.shape[1]}x{depth.shape[0]}"
        size = f"{color.shape[1]}x{color.shape[0]}, depth {depth_size}"
        # Each candidate makes its engine: a fallback they share (no CUDA...) is said once.
        engines_log = logging.getLogger("dkn_ros.engines")
        once = _SaidOnce()
        engines_log.addFilter(once)
        try:
            choice = quality_module.choose(self._candidates, time_candidate, rate, source, size)
        finally:
            engines_log.removeFilter(once)
        self._candidate, self._choice = choice.candidate, choice
        self._chosen_at = self._clock()
        unused = [key for key in self._loaded if key[1] != choice.candidate.precision]
        unused += [k for k in self._loaded if self._loaded[k][1].model != choice.candidate.model]
        for key in dict.fromkeys(unused):
            del self._loaded[key]
        if self._last_key not in self._loaded:
            self._last_key = None
        self._path_for_scale.clear()
        if unused:
            release_free_memory()
        log = logger.info if choice.keeps_up else logger.warning
        log("%s", choice.summary())

    # ----------------------------------------------------------------- enhancement

    def enhance(self, color: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Enhance one depth image under its colour image.

        Args:
            color: (H, W, 3) uint8 in the enhancer's ``color_order``.
            depth: (h, w) uint16 millimetres (0 = invalid) or float32 metres (NaN or 0 =
                invalid), of colour size or smaller by any factor up to 16 with the
                colour's aspect ratio (within 1 %); or (h, w, N) for N channels
                filtered one at a time with the same guidance.

        Returns:
            (H, W) (or (H, W, N)) depth of the input's dtype and units at colour
            resolution; invalid pixels are 0 (uint16) or NaN (float32) under
            ``invalid="keep"``.
        """
        self._warn_if_implausible(depth)
        if np.ndim(depth) == 3 and np.shape(depth)[2] == 0:
            raise processing.InputError("bad_depth", f"depth has no channels: {depth.shape}")
        shapes = (np.shape(color), np.shape(depth))
        if self.quality == "auto" and self._needs_choice(shapes):
            self._choose_quality(color, depth)
            self._choice_shapes = shapes
        return self._enhance_once(color, depth)

    def _needs_choice(self, shapes: tuple) -> bool:
        """``auto`` chooses again for a new input size, and when the rate to keep up
        with has moved by more than :data:`quality.RATE_CHANGE` since the choice (a
        camera measured at 5 Hz after 30 Hz was assumed at start-up), at most every
        :data:`quality.RECHOOSE_AFTER_S` seconds; at once when ``max_rate`` is set,
        changed or unset."""
        if shapes != self._choice_shapes or self._choice is None:
            return True
        rate, source = self._rate()
        if source == "max_rate" or self._choice.rate_source == "max_rate":
            return (source, rate) != (self._choice.rate_source, self._choice.rate_hz)
        if self._clock() - self._chosen_at < quality_module.RECHOOSE_AFTER_S:
            return False
        return abs(rate / self._choice.rate_hz - 1.0) > quality_module.RATE_CHANGE

    def _enhance_once(self, color: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """:meth:`enhance` with the current candidate."""
        multi_channel = isinstance(depth, np.ndarray) and depth.ndim == 3
        channels = [depth[:, :, c] for c in range(depth.shape[2])] if multi_channel else [depth]

        tick = time.perf_counter()
        processing.check_color(color, self.color_order)
        inputs = [processing.prepare_depth(channel, color.shape) for channel in channels]
        scale = inputs[0].scale
        preprocess = time.perf_counter() - tick

        tick = time.perf_counter()
        engine = self._engine_for_scale(scale)
        upsampling = self._loaded[self._last_key][1].input_upsampling
        self._arrays = arrays = self._arrays_for(engine)
        load = time.perf_counter() - tick

        tick = time.perf_counter()
        guidance = processing.guidance_from_color(color, self.color_order, arrays)
        preprocess += time.perf_counter() - tick
        inference = postprocess = 0.0
        outputs = []
        for depth_in in inputs:
            tick = time.perf_counter()
            normalised = arrays.upload(depth_in.normalised)
            target = processing.upsample(
                normalised, depth_in.output_shape, upsampling, guidance, arrays
            )[None, None]
            arrays.synchronize()
            tock = time.perf_counter()
            preprocess += tock - tick
            output = target
            for _ in range(self.iterations):
                output = arrays.run(engine, guidance, output)
            arrays.synchronize()
            tick = time.perf_counter()
            inference += tick - tock
            outputs.append(processing.finish(output, depth_in, self.invalid, arrays))
            postprocess += time.perf_counter() - tick

        result = np.stack(outputs, axis=2) if multi_channel else outputs[0]
        self._last_scale = scale
        self._last_timings = Timings(
            preprocess_ms=preprocess * 1e3,
            inference_ms=inference * 1e3,
            postprocess_ms=postprocess * 1e3,
            load_ms=load * 1e3,
        )
        return result

    def describe(self) -> str:
        """One line for logs: model, weights and engine of the last call, e.g.
        ``fdkn x8 (fdkn_x8.safetensors), torch on cpu``."""
        key = self._last_key or next(iter(self._loaded), None)
        chosen = (
            "" if self.quality == "full" else f", quality {self.quality}: {self._candidate.label}"
        )
        if key is None:
            return (
                f"{self.model_name}, weights not loaded yet, engine {self.engine_name}{chosen}"
            )
        card = self._loaded[key][1]
        return (
            f"{card.model} {card.scale_name} ({key[0].name}), {self.engine_description}{chosen}"
        )

    def __repr__(self) -> str:
        source = self.weights or self.weights_dir
        return (
            f"Enhancer(model={self.model_name!r}, weights={str(source)!r}, scale={self.scale}, "
            f"engine={self.engine_description or self.engine_name!r}, invalid={self.invalid!r}, "
            f"color_order={self.color_order!r}, iterations={self.iterations}, "
            f"quality={self.quality!r})"
        )
