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

Weights are read with ``safetensors`` only: a weights file is never unpickled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

from dkn_ros.models.dkn import DKN
from dkn_ros.models.fdkn import FDKN

__all__ = ["MODELS", "KERNEL_SIZES", "ModelCard", "build_model", "load_model", "save_model"]

MODELS: dict[str, type[nn.Module]] = {"fdkn": FDKN, "dkn": DKN}
KERNEL_SIZES = (3, 5, 7)
INPUT_UPSAMPLINGS = ("bicubic", "nearest", "guided")  # = dkn_ros.processing.UPSAMPLINGS


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
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: model card not found") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a readable JSON model card ({exc})") from None
        if not isinstance(data, dict) or "model" not in data:
            raise ValueError(f"{path}: a model card must be a JSON object with a 'model' key")
        known = set(cls.__dataclass_fields__)
        card = cls(**{key: value for key, value in data.items() if key in known})
        if card.input_upsampling not in INPUT_UPSAMPLINGS:
            raise ValueError(
                f"{path}: input_upsampling must be one of {', '.join(INPUT_UPSAMPLINGS)}, "
                f"got {card.input_upsampling!r}"
            )
        return card

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.__dict__, indent=2) + "\n")


def build_model(name: str, **config: Any) -> nn.Module:
    """A fresh model by name: ``fdkn`` or ``dkn``, with the class's keyword arguments."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    kernel_size = config.get("kernel_size", 3)
    if kernel_size not in KERNEL_SIZES:
        raise ValueError(f"kernel_size must be one of {KERNEL_SIZES}, got {kernel_size!r}")
    return MODELS[name](**config)


def card_path(weights_path: str | Path) -> Path:
    """The card that goes with a weights file: same name, ``.json``."""
    return Path(weights_path).with_suffix(".json")


def load_model(weights_path: str | Path, **overrides: Any) -> tuple[nn.Module, ModelCard]:
    """The model described by the card beside ``weights_path``, with its weights, in
    eval mode. ``overrides`` replace config entries that do not change the weights
    (e.g. ``inference`` for DKN)."""
    weights_path = Path(weights_path)
    if not weights_path.is_file():
        raise FileNotFoundError(f"{weights_path}: weights file not found")
    card = ModelCard.read(card_path(weights_path))
    model = build_model(card.model, **{**card.config, **overrides})
    try:
        state = load_file(str(weights_path))
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(f"{weights_path}: not a readable safetensors file ({exc})") from None
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
