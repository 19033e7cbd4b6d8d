"""DKN and FDKN (Kim, Ponce and Ham, IJCV 2021) and the deformable weighted average."""

from dkn_ros.models.dkn import DKN
from dkn_ros.models.fdkn import FDKN
from dkn_ros.models.registry import (
    MODELS,
    ModelCard,
    build_model,
    card_path,
    load_model,
    save_model,
)
from dkn_ros.models.sampling import deformable_weighted_average, normalise_kernel_weights

__all__ = [
    "DKN",
    "FDKN",
    "MODELS",
    "ModelCard",
    "build_model",
    "card_path",
    "deformable_weighted_average",
    "load_model",
    "normalise_kernel_weights",
    "save_model",
]
