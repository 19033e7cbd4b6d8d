"""Build models by name and load trained weights (safetensors + JSON card).

A weights file ``NAME.safetensors`` travels with ``NAME.json``, its card::

    {
      "model": "fdkn",                       # a name of MODELS
      "config": {"kernel_size": 3, ...},     # keyword arguments of the model class
      "task": "upsampling" | "denoising",
      "scale": 8,                            # the upsampling factor it was trained for
      "scales": [2, 4, 8, 16],               # every factor it was trained on (optional)
      "input_upsampling": "bicubic",         # how LR depth reaches colour size: bicubic
                                             # (the paper), nearest or guided (joint
                                             # bilateral, processing.UPSAMPLINGS)
      "training_data": "...", "iterations": 2000, "command": "...",
      "evaluation": {...}                    # numbers it reached, with their protocol
    }

Weights are read with ``safetensors`` only: a weights file is never unpickled. A card is
checked field by field when read (:meth:`ModelCard.read`, types and bounds of
:data:`CARD_FIELDS` and :data:`CONFIG_FIELDS`; unknown top-level keys are ignored, unknown
config keys are errors), and a weights file with a NaN or +-Inf value is refused
(:func:`load_model`): both with one ``ValueError`` naming the file and the field or tensor.

This module is the one place that finds and loads weights. The package ships them in
``dkn_ros/weights/`` (:data:`DEFAULT_WEIGHTS_DIR`), named ``{model}_x{scale}`` for
upsampling by ``scale`` and ``{model}_denoise`` for same-size input (scale 1), each
``.safetensors`` with its ``.json`` card. :func:`resolve_weights` picks the file for a
model and a size ratio (the exact scale, else the closest in log scale) and
:func:`load_weights` loads it; every front end asks these two.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

from dkn_ros.models.dkn import DKN, INFERENCE_MODES
from dkn_ros.models.fdkn import FDKN, FDKNSmall

__all__ = [
    "DEFAULT_WEIGHTS_DIR",
    "KERNEL_SIZES",
    "MODELS",
    "ModelCard",
    "build_model",
    "card_path",
    "check_card_data",
    "full_config",
    "load_model",
    "load_weights",
    "resolve_weights",
    "save_model",
    "shipped_weights",
    "weights_name",
]

logger = logging.getLogger(__name__)

MODELS: dict[str, type[nn.Module]] = {"fdkn": FDKN, "fdkn_s": FDKNSmall, "dkn": DKN}
KERNEL_SIZES = (3, 5, 7)
INPUT_UPSAMPLINGS = ("bicubic", "nearest", "guided")  # = dkn_ros.processing.UPSAMPLINGS
TASKS = ("upsampling", "denoising")
MAX_SCALE = 16  # = dkn_ros.processing.MAX_SCALE: depth up to 16 times smaller
DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"  # shipped weights


@dataclass(frozen=True)
class FieldRule:
    """What one card or config field may hold: a type (``bool``, ``int``, ``str``,
    ``list`` of ints, ``dict``), an inclusive range for ints, or a set of choices."""

    kind: type
    low: int | None = None
    high: int | None = None
    choices: tuple = ()

    def problem(self, value: Any) -> str | None:
        """Why ``value`` does not fit, in words, or None when it does."""
        if self.kind is list:
            if not isinstance(value, list):
                return f"must be a list of integers {self.low}..{self.high}"
            for item in value:
                if type(item) is not int or not self.low <= item <= self.high:
                    return f"must be a list of integers {self.low}..{self.high}"
            return None
        if type(value) is not self.kind:  # exact: a bool is no int here, a "8" no int
            return f"must be {'an' if self.kind is int else 'a'} {self.kind.__name__}"
        if self.choices and value not in self.choices:
            return "must be one of " + ", ".join(repr(c) for c in self.choices)
        if self.low is not None and not self.low <= value <= self.high:
            return f"must be in {self.low}..{self.high}"
        return None


#: Top-level card fields (the model's name is checked against :data:`MODELS`).
CARD_FIELDS: dict[str, FieldRule] = {
    "config": FieldRule(dict),
    "task": FieldRule(str, choices=TASKS),
    "scale": FieldRule(int, 1, MAX_SCALE),
    "scales": FieldRule(list, 1, MAX_SCALE),
    "input_upsampling": FieldRule(str, choices=INPUT_UPSAMPLINGS),
    "training_data": FieldRule(str),
    "iterations": FieldRule(int, 0, 10**9),
    "command": FieldRule(str),
    "evaluation": FieldRule(dict),
    "notes": FieldRule(str),
}

_STREAM_FIELDS = {
    "kernel_size": FieldRule(int, choices=KERNEL_SIZES),
    "window": FieldRule(int, 3, 63),  # d: offsets confined to a d x d window (paper: 15)
    "residual": FieldRule(bool),
    "n1": FieldRule(int, 1, 1024),  # Table 7: 128
    "n2": FieldRule(int, 1, 1024),
    "guidance_channels": FieldRule(int, 1, 4),  # 3 for RGB
}
_FDKN_FIELDS = {
    **_STREAM_FIELDS,
    "c1": FieldRule(int, 1, 1024),  # Table 2: 32 (first two feature layers)
    "c2": FieldRule(int, 1, 1024),  # Table 2: 64 (third and fourth)
}

#: Model -> the keyword arguments of its class a card's ``config`` may set.
CONFIG_FIELDS: dict[str, dict[str, FieldRule]] = {
    "fdkn": dict(_FDKN_FIELDS),
    "fdkn_s": dict(_FDKN_FIELDS),
    "dkn": {**_STREAM_FIELDS, "inference": FieldRule(str, choices=INFERENCE_MODES)},
}


def _shown(value: Any) -> str:
    """A value read from JSON, as JSON, cut to 60 characters."""
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_card_data(data: Any, path: str | Path) -> None:
    """Raise ``ValueError`` naming ``path`` and the first field whose type or value is
    not allowed (see :data:`CARD_FIELDS`, :data:`CONFIG_FIELDS`)."""
    if not isinstance(data, dict) or "model" not in data:
        raise ValueError(f"{path}: a model card must be a JSON object with a 'model' key")
    model = data["model"]
    if not isinstance(model, str) or model not in MODELS:
        raise ValueError(
            f"{path}: field 'model' must be one of {', '.join(repr(m) for m in MODELS)}, "
            f"got {_shown(model)}"
        )
    for name, rule in CARD_FIELDS.items():
        if name in data and (problem := rule.problem(data[name])) is not None:
            raise ValueError(f"{path}: field {name!r} {problem}, got {_shown(data[name])}")
    allowed = CONFIG_FIELDS[model]
    for name, value in data.get("config", {}).items():
        if name not in allowed:
            raise ValueError(
                f"{path}: field 'config.{name}' is not a setting of {model} (known: "
                f"{', '.join(allowed)})"
            )
        if (problem := allowed[name].problem(value)) is not None:
            raise ValueError(f"{path}: field 'config.{name}' {problem}, got {_shown(value)}")


@dataclass
class ModelCard:
    """What a weights file is and how it was made (see the module docstring)."""

    model: str
    config: dict[str, Any] = field(default_factory=dict)
    task: str = "upsampling"
    scale: int = 1
    scales: list[int] = field(default_factory=list)  # all scales trained on, if several
    input_upsampling: str = "bicubic"  # how the LR depth was brought to colour size
    training_data: str = ""
    iterations: int = 0
    command: str = ""
    evaluation: dict[str, Any] = field(default_factory=dict)
    notes: str = ""

    @classmethod
    def read(cls, path: str | Path) -> ModelCard:
        """Read and check a card (:func:`check_card_data`).

        Raises:
            FileNotFoundError: no file at ``path``.
            ValueError: not JSON, or a field of the wrong type or out of bounds; the
                message names the file and the field.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: model card not found") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a readable JSON model card ({exc})") from None
        check_card_data(data, path)
        known = set(cls.__dataclass_fields__)
        return cls(**{key: value for key, value in data.items() if key in known})

    @property
    def trained_scale(self) -> int:
        """The scale the weights were made for: 1 for same-size denoising, else
        ``scale``."""
        return 1 if self.task == "denoising" else int(self.scale)

    @property
    def trained_scales(self) -> tuple[int, ...]:
        """Every scale the weights were trained on (a scale-set model has several)."""
        return tuple(sorted({self.trained_scale, *(int(s) for s in self.scales)}))

    @property
    def scale_name(self) -> str:
        """``denoise`` or ``x8``, for logs and pictures."""
        return "denoise" if self.task == "denoising" else f"x{self.scale}"

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.__dict__, indent=2) + "\n")


def build_model(name: str, **config: Any) -> nn.Module:
    """A fresh model by name (``fdkn``, ``fdkn_s`` or ``dkn``), with the class's keyword
    arguments."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    kernel_size = config.get("kernel_size", 3)
    if kernel_size not in KERNEL_SIZES:
        raise ValueError(f"kernel_size must be one of {KERNEL_SIZES}, got {kernel_size!r}")
    return MODELS[name](**config)


def full_config(name: str, config: dict[str, Any]) -> dict[str, Any]:
    """Every setting of model ``name`` that a card may hold: the class's defaults for
    the keys of :data:`CONFIG_FIELDS` updated with ``config`` (keys the class does not
    take are left out)."""
    parameters = inspect.signature(MODELS[name]).parameters
    full = {
        key: parameters[key].default
        for key in CONFIG_FIELDS[name]
        if key in parameters and parameters[key].default is not inspect.Parameter.empty
    }
    full.update({key: value for key, value in config.items() if key in parameters})
    return full


def card_path(weights_path: str | Path) -> Path:
    """The card that goes with a weights file: same name, ``.json``."""
    return Path(weights_path).with_suffix(".json")


def load_model(weights_path: str | Path, **overrides: Any) -> tuple[nn.Module, ModelCard]:
    """The model described by the card beside ``weights_path``, with its weights, in
    eval mode. ``overrides`` replace config entries that do not change the weights
    (e.g. ``inference`` for DKN).

    Raises:
        FileNotFoundError: the weights file or its card is missing.
        ValueError: the card is not valid (:meth:`ModelCard.read`), the file is not
            safetensors, a tensor holds NaN or +-Inf, or the tensors do not fit the
            model; the message names the file.
    """
    weights_path = Path(weights_path)
    if not weights_path.is_file():
        raise FileNotFoundError(f"{weights_path}: weights file not found")
    card = ModelCard.read(card_path(weights_path))
    model = build_model(card.model, **{**card.config, **overrides})
    try:
        state = load_file(str(weights_path))
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(f"{weights_path}: not a readable safetensors file ({exc})") from None
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(tensor.isfinite().all()):
            bad = int((~tensor.isfinite()).sum())
            raise ValueError(
                f"{weights_path}: tensor {name!r} has {bad} non-finite values (NaN or Inf) "
                f"of {tensor.numel()}; the weights are broken (a diverged training run?)"
            )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        raise ValueError(
            f"{weights_path}: weights do not fit model {card.model!r} {card.config}: {first}"
        ) from None
    return model.eval(), card


def save_model(model: nn.Module, card: ModelCard, weights_path: str | Path) -> None:
    """Write ``weights_path`` (safetensors) and its card beside it."""
    weights_path = Path(weights_path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().contiguous().cpu() for key, value in model.state_dict().items()}
    save_file(state, str(weights_path), metadata={"model": card.model})
    card.write(card_path(weights_path))


# --------------------------------------------------------------------------- shipped weights


def weights_name(model: str, scale: int) -> str:
    """The shipped weights file for a model and scale (1 = same-size denoising)."""
    return f"{model}_denoise.safetensors" if scale == 1 else f"{model}_x{scale}.safetensors"


def shipped_weights(model: str, weights_dir: str | Path | None = None) -> dict[int, Path]:
    """Scale -> weights file for every weights file of ``model`` in ``weights_dir``
    (default :data:`DEFAULT_WEIGHTS_DIR`; scale 1 = the denoising weights), by scale."""
    weights_dir = Path(weights_dir) if weights_dir is not None else DEFAULT_WEIGHTS_DIR
    found: dict[int, Path] = {}
    pattern = re.compile(rf"{re.escape(model)}_(?:x(\d+)|(denoise))\.safetensors")
    for path in weights_dir.glob(f"{model}_*.safetensors"):
        match = pattern.fullmatch(path.name)
        if match and path.is_file():
            found[1 if match.group(2) else int(match.group(1))] = path
    return dict(sorted(found.items()))


def _closest(scales: list[int], scale: float) -> int:
    """The scale closest to ``scale`` in log scale; ties go to the larger one."""
    return min(scales, key=lambda s: (round(abs(math.log(s / scale)), 9), -s))


def resolve_weights(
    model: str,
    scale: float | None,
    weights: str | Path | None = None,
    weights_dir: str | Path | None = None,
    *,
    exact: bool = False,
) -> Path:
    """The weights file to use: ``weights`` if given (it must exist), else the shipped
    file of ``model`` for ``scale`` (1 = same-size denoising, any real factor) in
    ``weights_dir`` (default :data:`DEFAULT_WEIGHTS_DIR`): the exact scale, else the
    closest shipped scale in log scale (said as INFO: a size ratio between trained
    scales is the normal case, not a problem), or an error when ``exact``.

    Raises:
        FileNotFoundError: ``weights`` is missing, or no weights of ``model`` are shipped
            (the message names the directory and the expected file names).
        ValueError: ``scale`` is None and several scales are shipped; or ``exact`` and
            ``scale`` is not shipped (the message lists the shipped scales).
    """
    if weights is not None:
        weights = Path(weights)
        if not weights.is_file():
            raise FileNotFoundError(f"{weights}: weights file not found")
        return weights
    weights_dir = Path(weights_dir) if weights_dir is not None else DEFAULT_WEIGHTS_DIR
    shipped = shipped_weights(model, weights_dir)
    if not shipped:
        expected = f"{model}_x{scale:g}" if scale is not None else f"{model}_x<scale>"
        raise FileNotFoundError(
            f"no weights for model {model!r} in {weights_dir}: expected {expected}.safetensors "
            f"(upsampling files are named {model}_x<scale>.safetensors, same-size denoising "
            f"{model}_denoise.safetensors, each with its .json card); pass weights=PATH to "
            "use another file"
        )
    if scale is None:
        if len(shipped) == 1:
            return next(iter(shipped.values()))
        raise ValueError(
            f"several {model} weights are shipped ({', '.join(p.name for p in shipped.values())})"
            "; give the scale (1 = same-size denoising) or the weights file"
        )
    chosen = _closest(sorted(shipped), scale)
    if exact and chosen != scale:
        names = ", ".join("denoise" if s == 1 else f"x{s}" for s in shipped)
        raise ValueError(
            f"no {model} weights trained for scale {scale:g} in {weights_dir} (shipped: "
            f"{names}); choose one of those, or leave the scale unset to pick the weights "
            "from each input's size ratio"
        )
    if chosen != scale:
        logger.info(
            "x%.3g: no %s weights trained for this scale in %s; using those of the closest "
            "trained scale, %s",
            scale,
            model,
            weights_dir,
            shipped[chosen].name,
        )
    return shipped[chosen]


def load_weights(
    model: str = "fdkn",
    scale: float | None = None,
    weights: str | Path | None = None,
    weights_dir: str | Path | None = None,
    *,
    exact: bool = False,
    **overrides: Any,
) -> tuple[nn.Module, ModelCard, Path]:
    """:func:`resolve_weights`, then :func:`load_model`: the model in eval mode, its
    card and the file it came from."""
    path = resolve_weights(model, scale, weights, weights_dir, exact=exact)
    loaded, card = load_model(path, **overrides)
    return loaded, card, path
