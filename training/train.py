"""Train FDKN or DKN for depth upsampling or denoising (plain PyTorch, one file).

The defaults are the paper's recipe (section 4.1.1): L1 loss, Adam (0.9, 0.999),
learning rate 1e-3 divided by 5 every 10k of 40k iterations, batch 1, LR depth
synthesised by bicubic downsampling, no augmentation, no weight decay. When fewer
iterations are asked for, the step is scaled with them (every ``iterations / 4``). The
paper's denoising model (``--scale 1``) is ``training/configs/paper_fdkn_denoise.yaml``:
Gaussian noise of variance 0.005, 4k iterations, no residual connection.

Data (``--dataset``, see ``training/data.py``): NYU v2 converted by
``training/prepare_nyu.py`` (the paper's data), RGB-D-D (what the shipped weights were
trained on here) or the synthetic scenes; each has a held-out validation split that is
never trained on. Degradations beyond the paper (``training/degrade.py``): a set of
scales drawn per sample (``--scales``), noise, quantisation and holes.

    python -m training.train --model fdkn --scale 8 --iterations 20000 \
        --out-dir runs/fdkn_x8 --export dkn_ros/weights/fdkn_x8.safetensors
    python -m training.train --config training/configs/paper_fdkn_denoise.yaml

``--config FILE.yaml`` sets any option (keys are the option names with ``_``); options
given on the command line win.

A run can be stopped at any time (Ctrl-C or SIGTERM save a checkpoint first; a kill
loses at most ``--save-every`` iterations) and continued exactly with
``--resume runs/fdkn_x8/checkpoint.pt`` (or ``--resume auto``): the checkpoint holds the
model, optimizer, scheduler, iteration, arguments and RNG states, and is written
atomically. With the same seed and thread count a resumed run reaches the same
weights as an uninterrupted one.

Outputs in ``--out-dir``: ``checkpoint.pt``, ``log.csv`` (iteration, loss, lr,
seconds), ``val.csv`` (iteration, RMSE on the held-out images for the model and for its
degraded input, i.e. bicubic upsampling or the noisy depth, in the dataset's report
unit, seconds) and ``curves.svg``, the two plotted (``training/plot.py``).

Many processes: the same script runs unchanged under ``torchrun`` (one machine or
several), as DistributedDataParallel (gloo on CPU; nccl would be chosen for a model on
CUDA GPUs, which this CPU script does not do)::

    torchrun --standalone --nproc_per_node 4 -m training.train --threads 1 ...

Every process draws its own crops (numpy generator seeded with (seed, rank); rank 0
keeps the single-process stream) from an identically initialised model, the gradients
are averaged, so one iteration trains ``processes x --batch-size`` crops (the effective
batch; the learning rate is not scaled). Only rank 0 validates and writes the logs
(loss: the mean over the processes), checkpoints, curves, weights and card; a
checkpoint holds the plain network (it loads in a single-process run and the other way
round) and every rank's RNG state, so a resume with the same number of processes is
exact; with another number, a rank without a saved state reseeds from (seed, rank,
iteration). A signal to any process stops every one at the same iteration.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import hashlib
import json
import math
import os
import shlex
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from dkn_ros.models import MODELS, ModelCard, build_model, load_model, save_model
from dkn_ros.models.dkn import DKN, STRIDE
from dkn_ros.models.registry import full_config
from dkn_ros.processing import UPSAMPLINGS
from training.data import (
    VALIDATION_EVERY,
    TrainingImage,
    TrainSet,
    data_dir,
    open_dataset,
    prepare_training_image,
    rmse,
    to_tensors,
    validation_inputs,
)
from training.degrade import Degradation
from training.plot import write_curves
from training.sensors import GRIDS

CHECKPOINT = "checkpoint.pt"
LOG_FIELDS = ("iteration", "loss", "lr", "seconds")
VAL_FIELDS = ("iteration", "val_rmse", "input_rmse", "unit", "seconds")
# Arguments that may differ on --resume; every other one is taken from the checkpoint.
RESUME_OVERRIDES = {
    "iterations", "out_dir", "threads", "export", "save_every", "val_every", "stop_at",
    "resume", "data_dir", "command",
}  # fmt: skip
# Longest a process waits in a collective for the others (e.g. for rank 0's validation).
DDP_TIMEOUT = datetime.timedelta(hours=2)
# When set, every rank writes rank<N>.json there: parameter digests and per-step crop
# digests and losses (tests check that the ranks stay in sync and draw different crops).
DDP_CHECK_ENV = "DKN_DDP_CHECK_DIR"


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        "python -m training.train",
        description="Train FDKN/DKN for depth upsampling on RGB-D-D (every default is shown).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    model = parser.add_argument_group("model")
    model.add_argument("--model", default="fdkn", choices=sorted(MODELS), help="network")
    model.add_argument(
        "--scale", type=int, default=8, choices=(1, 2, 4, 8, 16),
        help="upsampling factor s; 1 = same-size input (the denoising task)",
    )  # fmt: skip
    model.add_argument("--kernel-size", type=int, default=3, choices=(3, 5, 7), help="k")
    model.add_argument("--window", type=int, default=15, help="d, offsets confined to d x d")
    model.add_argument(
        "--n1", type=int, default=None,
        help="channels of the last-but-one layer (None: the model's, fdkn/dkn 128, fdkn_s 32)",
    )  # fmt: skip
    model.add_argument(
        "--n2", type=int, default=None,
        help="channels of the last feature layer (None: the model's, fdkn/dkn 128, fdkn_s 32)",
    )  # fmt: skip
    model.add_argument(
        "--c1", type=int, default=None,
        help="FDKN: channels of the first two feature layers (None: fdkn 32, fdkn_s 16)",
    )  # fmt: skip
    model.add_argument(
        "--c2", type=int, default=None,
        help="FDKN: channels of the third and fourth (None: fdkn 64, fdkn_s 32)",
    )  # fmt: skip
    model.add_argument(
        "--no-residual", dest="residual", action="store_false",
        help="eq. 7 (L1-normalised kernels) instead of the residual eq. 3 (residual=True)",
    )  # fmt: skip
    model.add_argument(
        "--init", default=None,
        help="start from these weights (a safetensors file with its card, same model and "
        "config) instead of a random initialisation, e.g. to fine-tune x8 weights for x4",
    )  # fmt: skip
    model.add_argument(
        "--teacher", default=None,
        help="distillation: an FDKN weights file (with its card) trained for this scale and "
        "input upsampling; the loss then also pulls the output towards the teacher's",
    )  # fmt: skip
    model.add_argument(
        "--distill-weight", type=float, default=0.5,
        help="with --teacher: loss = (1 - w) L1(output, truth) + w L1(output, teacher output)",
    )  # fmt: skip
    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--iterations", type=int, default=40000, help="total iterations")
    optim.add_argument("--batch-size", type=int, default=1, help="crops per iteration")
    optim.add_argument("--crop", type=int, default=256, help="crop side, multiple of lcm(s, 4)")
    optim.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    optim.add_argument(
        "--lr-step", type=int, default=0,
        help="multiply the lr by --lr-gamma every this many iterations; 0 = iterations / 4 "
        "(10k for the paper's 40k)",
    )  # fmt: skip
    optim.add_argument("--lr-gamma", type=float, default=0.2, help="lr decay factor (1/5)")
    optim.add_argument("--seed", type=int, default=0, help="seeds the model init and crops")
    optim.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    data = parser.add_argument_group("data and degradation (training/degrade.py)")
    data.add_argument(
        "--dataset", default="rgbdd", choices=("rgbdd", "nyu_v2", "synthetic", "camera_mix"),
        help="training data: its 'train' split; validation on its 'val' split",
    )  # fmt: skip
    data.add_argument(
        "--scales", type=int, nargs="+", default=None,
        help="train on several scales, one drawn per sample (e.g. 2 4 8 16); None = --scale",
    )  # fmt: skip
    data.add_argument(
        "--noise-std", type=float, nargs="+", default=[0.0], metavar="STD",
        help="Gaussian noise std on normalised LR depth: STD, or LOW HIGH drawn per sample "
        "(the paper's denoising: 0.0707, variance 0.005)",
    )  # fmt: skip
    data.add_argument(
        "--quantisation", type=float, default=0.0, help="LR quantisation step (normalised)"
    )
    data.add_argument(
        "--grids", nargs="+", default=["bicubic"], choices=GRIDS,
        help="how the LR grid is formed (training/sensors.py), one drawn per sample: bicubic "
        "(the paper), nearest (point sampling, centre of each block), median, area",
    )  # fmt: skip
    data.add_argument(
        "--profile", default="",
        help="a camera profile of training/profiles (e.g. kinect_v1) that makes the input "
        "instead of --grids/--noise-std/--quantisation/--holes (training/sensors.py)",
    )  # fmt: skip
    data.add_argument(
        "--input-upsampling", default="bicubic", choices=UPSAMPLINGS,
        help="how the LR depth is brought to guidance size, before the network (written "
        "into the card; the node does the same for these weights)",
    )  # fmt: skip
    data.add_argument(
        "--holes", type=float, default=0.0,
        help="fraction of LR pixels dropped in blobs and nearest-filled as the node does",
    )  # fmt: skip
    data.add_argument(
        "--data-dir", default=None,
        help="data directory (holds rgbdd/, nyu_v2/); None = $DKN_DATA_DIR, else ../shared/data "
        "relative to the repository root",
    )  # fmt: skip
    data.add_argument(
        "--train-images", type=int, default=0,
        help="use only the first N training images (0 = all)",
    )  # fmt: skip
    data.add_argument(
        "--val-images", type=int, default=0,
        help=f"use only the first N held-out images (0 = all; every {VALIDATION_EVERY}th image)",
    )  # fmt: skip
    run = parser.add_argument_group("run")
    run.add_argument(
        "--config", default=None,
        help="YAML file of option values (keys: option names with '_'); the command line wins",
    )  # fmt: skip
    run.add_argument("--out-dir", default=None, help="run directory; None = runs/<model>_x<scale>")
    run.add_argument(
        "--resume", default=None,
        help="checkpoint to continue from, or 'auto' = <out-dir>/checkpoint.pt if it exists",
    )  # fmt: skip
    run.add_argument("--save-every", type=int, default=500, help="checkpoint period (its)")
    run.add_argument(
        "--val-every", type=int, default=1000,
        help="validation period (its); 0 = only at the end (always validated at the end)",
    )  # fmt: skip
    run.add_argument(
        "--stop-at", type=int, default=0,
        help="stop (checkpoint saved) after this iteration as if interrupted; 0 = never",
    )  # fmt: skip
    run.add_argument(
        "--export", default=None,
        help="at the end, write the model (safetensors) and its JSON card to this path",
    )  # fmt: skip
    return parser


# --------------------------------------------------------------------------- helpers


def masked_l1(output: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the valid pixels."""
    weights = mask.to(output.dtype)
    return ((output - truth).abs() * weights).sum() / weights.sum().clamp_min(1.0)


def forward_train(
    model: torch.nn.Module,
    guidance: torch.Tensor,
    target: torch.Tensor,
    truth: torch.Tensor,
    mask: torch.Tensor,
    rng: np.random.Generator,
    step: torch.nn.Module | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The training forward pass: (output, truth, mask) to compare. ``step``, when
    given, is ``model`` in a :class:`TrainStep` wrapped by DistributedDataParallel and
    runs the pass (DDP averages the gradients of the calls through its own forward).

    FDKN filters every pixel of the crop. DKN runs one shift-and-stitch pass with a
    random shift (i, j) (``DKN.forward_shift``): its kernels for the pixels
    (i + 4a, j + 4b), which is the network of Table 1 as written (strided DownConvs)
    at 1/16 of the cost of every pixel; over many steps every shift is trained."""
    if isinstance(model, DKN):
        i, j = (int(v) for v in rng.integers(STRIDE, size=2))
        if step is not None:
            output = step(guidance, target, (i, j))
        else:
            output = model.forward_shift(guidance, target, i, j)
        return output, truth[..., i::STRIDE, j::STRIDE], mask[..., i::STRIDE, j::STRIDE]
    return (step or model)(guidance, target), truth, mask


# --------------------------------------------------------------------------- many processes


class TrainStep(torch.nn.Module):
    """The training pass as one module for DistributedDataParallel: the network's
    forward, or with ``shift`` = (i, j) DKN's one shift-and-stitch pass."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(
        self, guidance: torch.Tensor, target: torch.Tensor, shift: tuple[int, int] | None = None
    ) -> torch.Tensor:
        if shift is None:
            return self.net(guidance, target)
        return self.net.forward_shift(guidance, target, *shift)


def ddp_backend(device: torch.device) -> str:
    """nccl for a model on CUDA GPUs, else gloo (this script trains on the CPU)."""
    return "nccl" if device.type == "cuda" and torch.cuda.is_available() else "gloo"


class Ranks:
    """The processes of a ``torchrun`` launch, read from its environment (``WORLD_SIZE``,
    ``RANK``, ``LOCAL_RANK``); one process (rank 0 of 1, no collectives) otherwise. Joins
    the process group unless the caller already did (then leaves it to the caller)."""

    def __init__(self, device: torch.device | None = None):
        self.device = device or torch.device("cpu")
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0")) if self.world > 1 else 0
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0")) if self.world > 1 else 0
        self.backend = ddp_backend(self.device) if self.world > 1 else None
        self.owned = False
        if self.world > 1 and not dist.is_initialized():
            if self.backend == "nccl":
                torch.cuda.set_device(self.local_rank)
            dist.init_process_group(self.backend, timeout=DDP_TIMEOUT)
            self.owned = True

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes and prints."""
        return self.rank == 0

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module | None:
        """``model`` as a DDP :class:`TrainStep` (parameters broadcast from rank 0), or
        None for one process."""
        if not self.distributed:
            return None
        cuda = self.device.type == "cuda"
        return torch.nn.parallel.DistributedDataParallel(
            TrainStep(model), device_ids=[self.local_rank] if cuda else None
        )

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over the ranks (one small all_reduce)."""
        if not self.distributed:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def gather(self, obj) -> list | None:
        """Every rank's ``obj``, in rank order, on rank 0 (None on the others)."""
        if not self.distributed:
            return [obj]
        out = [None] * self.world if self.main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        if self.owned and dist.is_initialized():
            dist.destroy_process_group()
            self.owned = False


def param_digest(model: torch.nn.Module) -> str:
    """SHA-256 of the parameters (names and exact values; buffers such as BatchNorm
    statistics are not parameters)."""
    digest = hashlib.sha256()
    for name, value in model.named_parameters():
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class SyncCheck:
    """What a rank writes to ``$DKN_DDP_CHECK_DIR/rank<N>.json`` (for tests): its pid
    (written once the signal handlers are set), the parameter digest before and after
    training, and per step the crops' digest and its own loss."""

    def __init__(self, folder: str, ranks: Ranks, model: torch.nn.Module):
        self.path = Path(folder) / f"rank{ranks.rank}.json"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.record = {
            "rank": ranks.rank,
            "world_size": ranks.world,
            "pid": os.getpid(),
            "initial": param_digest(model),
            "steps": [],
        }
        self.write()

    def step(self, iteration: int, loss: float, *crops: torch.Tensor) -> None:
        digest = hashlib.sha256()
        for crop in crops:
            digest.update(crop.numpy().tobytes())
        self.record["steps"].append(
            {"iteration": iteration, "loss": loss, "crops": digest.hexdigest()}
        )

    def finish(self, model: torch.nn.Module, iteration: int, stopped: bool) -> None:
        self.record.update(final=param_digest(model), iteration=iteration, stopped=stopped)
        self.write()

    def write(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.record))
        os.replace(tmp, self.path)


def launch_command() -> list[str]:
    """How this process was started: ``python -m training.train``, or the ``torchrun``
    line (processes per node, nodes) under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return ["python", "-m", "training.train"]
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    nodes = max(1, world // max(1, local))
    where = ["--standalone"] if nodes == 1 else ["--nnodes", str(nodes)]
    return ["torchrun", *where, "--nproc_per_node", str(local), "-m", "training.train"]


def model_config(args: argparse.Namespace) -> dict:
    """Every setting of the network (the card's ``config``): the options given, the
    model class's defaults for the widths left at None."""
    given = {
        "kernel_size": args.kernel_size,
        "window": args.window,
        "residual": args.residual,
        "n1": getattr(args, "n1", None),
        "n2": getattr(args, "n2", None),
        "c1": getattr(args, "c1", None),
        "c2": getattr(args, "c2", None),
    }
    return full_config(args.model, {k: v for k, v in given.items() if v is not None})


def load_teacher(args: argparse.Namespace, degradation: Degradation) -> torch.nn.Module | None:
    """The ``--teacher`` network in eval mode with frozen weights, or None. Its card must
    be an FDKN trained for ``--scale`` on inputs brought up the same way as ours."""
    if not args.teacher:
        return None
    try:
        teacher, card = load_model(args.teacher)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"--teacher: {exc}") from None
    problems = []
    if card.model not in ("fdkn", "fdkn_s") or args.model not in ("fdkn", "fdkn_s"):
        problems.append(f"distillation is for FDKN students and teachers ({card.model})")
    if card.trained_scale != args.scale:
        problems.append(f"it was trained for scale {card.trained_scale}, not {args.scale}")
    if card.input_upsampling != degradation.upsampling:
        problems.append(
            f"its input upsampling is {card.input_upsampling}, ours {degradation.upsampling}"
        )
    if not 0.0 <= args.distill_weight <= 1.0:
        problems.append(f"--distill-weight must be in 0..1, got {args.distill_weight}")
    if problems:
        raise SystemExit(f"--teacher {args.teacher}: " + "; ".join(problems))
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    print(f"distilling from {args.teacher} ({card.model}), weight {args.distill_weight}")
    return teacher.eval()


def canonical_command(args: argparse.Namespace) -> str:
    """A command line that sets every option explicitly (used when the exact one is
    not known, e.g. when ``main`` is called from Python)."""
    parts = ["python", "-m", "training.train"]
    for action in get_args_parser()._actions:
        if not action.option_strings or action.dest == "help":
            continue
        value = getattr(args, action.dest, None)
        if isinstance(action, argparse._StoreFalseAction):
            if not value:
                parts.append(action.option_strings[0])
        elif value is not None:
            parts += [action.option_strings[0], str(value)]
    return shlex.join(parts)


def atomic_save(obj: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_rows(path: Path, upto: int) -> list[dict]:
    """Rows of a CSV log with iteration <= upto (the rest came after the checkpoint)."""
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return [row for row in csv.DictReader(handle) if int(row["iteration"]) <= upto]


class CsvLog:
    """Append-only CSV, rewritten on resume to the rows up to the checkpoint."""

    def __init__(self, path: Path, fields: tuple[str, ...], keep: list[dict]):
        self.path = path
        self.handle = open(path, "w", newline="")  # noqa: SIM115 (closed in close())
        self.writer = csv.DictWriter(self.handle, fieldnames=fields)
        self.writer.writeheader()
        self.writer.writerows(keep)
        self.handle.flush()

    def write(self, row: dict) -> None:
        self.writer.writerow(row)

    def flush(self) -> None:
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


@torch.no_grad()
def validate(
    model: torch.nn.Module, images: list[TrainingImage], inputs: list[np.ndarray]
) -> tuple[float, float]:
    """Mean RMSE over the held-out images (valid pixels, de-normalised to the dataset's
    unit) for the model and for its degraded input. Paper protocol: the input is
    normalised with the ground truth's min and max (as prepared)."""
    was_training = model.training
    model.eval()
    ours, given = [], []
    for image, degraded in zip(images, inputs, strict=True):
        guidance, target = to_tensors(image.rgb, degraded)
        out = model(guidance, target)[0, 0].numpy()
        span = image.dmax - image.dmin if image.dmax > image.dmin else 1.0
        ours.append(rmse(out, image.depth, image.mask) * span)
        given.append(rmse(degraded, image.depth, image.mask) * span)
    model.train(was_training)
    return float(np.mean(ours)), float(np.mean(given))


def degradation_of(args: argparse.Namespace) -> Degradation:
    """The degradation the options describe."""
    noise = args.noise_std
    if len(noise) not in (1, 2):
        raise SystemExit(f"--noise-std takes STD or LOW HIGH, got {noise}")
    try:
        return Degradation(
            scales=tuple(args.scales or (args.scale,)),
            noise_std=(noise[0], noise[-1]),
            quantisation=args.quantisation,
            holes=args.holes,
            grids=tuple(getattr(args, "grids", None) or ("bicubic",)),
            upsampling=getattr(args, "input_upsampling", None) or "bicubic",
            profile=getattr(args, "profile", None) or "",
        )
    except ValueError as exc:
        raise SystemExit(f"invalid degradation: {exc}") from None


def load_config(parser: argparse.ArgumentParser, path: str) -> None:
    """Set the parser's defaults from a YAML file of option values."""
    import yaml

    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise SystemExit(f"--config {path}: file not found") from None
    except yaml.YAMLError as exc:
        raise SystemExit(f"--config {path}: not valid YAML ({exc})") from None
    if not isinstance(values, dict):
        raise SystemExit(f"--config {path}: expected a mapping of option: value")
    known = {a.dest for a in parser._actions}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SystemExit(f"--config {path}: unknown options {unknown}")
    parser.set_defaults(**values)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line, with the defaults of ``--config`` when given."""
    parser = get_args_parser()
    first, _ = parser.parse_known_args(argv)
    if first.config:
        load_config(parser, first.config)
    return parser.parse_args(argv)


def init_model(model: torch.nn.Module, args: argparse.Namespace) -> None:
    """Load ``--init`` weights into ``model``; their card must name the same model and
    architecture."""
    source, card = load_model(args.init)
    config = model_config(args)
    if card.model != args.model or full_config(card.model, card.config) != config:
        raise SystemExit(
            f"--init {args.init}: a {card.model} {card.config} cannot initialise a "
            f"{args.model} {config}"
        )
    model.load_state_dict(source.state_dict())
    print(f"initialised from {args.init} ({card.model} x{card.scale}, {card.iterations} its)")


def resolve_resume(args: argparse.Namespace) -> Path | None:
    if not args.resume:
        return None
    if args.resume == "auto":
        path = Path(args.out_dir) / CHECKPOINT
        return path if path.is_file() else None
    path = Path(args.resume)
    if not path.is_file():
        raise FileNotFoundError(f"--resume {path}: checkpoint not found")
    return path


DKN_TRAINING_NOTE = (
    " Each step trained one shift-and-stitch pass with a random shift (DKN.forward_shift): "
    "the kernels of 1/16 of the crop's pixels."
)
DATA_DESCRIPTIONS = {
    "rgbdd": "RGB-D-D (He et al., CVPR 2021; academic / non-commercial use; rgbdd/ of the "
    "shared data: the RGB-D-D test split, 405 pairs, 384x512, ToF depth in mm)",
    "nyu_v2": "NYU Depth v2 labeled frames 0-999 (the DJF/DKN training split) converted by "
    "training/prepare_nyu.py",
    "synthetic": "scenes of the synthetic generator dkn_ros.synthetic (exact depth)",
    "camera_mix": "RGB-D-D training pairs (real ToF depth, rgbdd/ of the shared data, the "
    "three rgbdd_real_lr test scenes excluded) plus synthetic scenes 0-199 of "
    "dkn_ros.synthetic (exact depth); validation on RGB-D-D's held-out pairs only",
}


def export(model: torch.nn.Module, args: argparse.Namespace, state: dict, path: str) -> None:
    """Write the weights and the card (see ``dkn_ros.models.registry``)."""
    degradation = degradation_of(args)
    val = state["val"][-1] if state["val"] else None
    evaluation = {}
    if val is not None:
        evaluation[f"{args.dataset}_val"] = {
            "protocol": (
                f"{args.dataset} 'val' split ({state['n_val']} images, every "
                f"{VALIDATION_EVERY}th, never trained on): ground truth normalised by its "
                f"own min/max, input degraded the same way as in training ("
                f"{degradation.describe()}; seeded per image), RMSE in {val['unit']} over "
                "valid pixels, averaged over images"
            ),
            "iteration": int(val["iteration"]),
            "rmse": float(val["val_rmse"]),
            "input_rmse": float(val["input_rmse"]),
            "unit": val["unit"],
        }
    commands = state["commands"]
    not_nyu = ", NOT on NYU v2 as in the paper (1000 NYU images, 40k iterations, batch 1)"
    notes = (
        f"Trained on {args.dataset}{'' if args.dataset == 'nyu_v2' else not_nyu}. CPU training: "
        f"{state['iteration']} iterations of batch {args.batch_size}, {args.crop}x{args.crop} "
        f"crops, lr {args.lr:g} x {args.lr_gamma:g} every {args.lr_step} iterations, "
        f"seed {args.seed}, {args.threads} threads, {state['elapsed'] / 60:.1f} min of training."
    )
    if args.init:
        notes += f" Initialised from {args.init} (fine-tuned), not from random weights."
    if args.teacher:
        notes += (
            f" Distilled from {args.teacher}: loss = {1 - args.distill_weight:g} x L1 to the "
            f"ground truth + {args.distill_weight:g} x L1 to the teacher's output on the "
            "same input."
        )
    if args.model == "dkn":
        notes += DKN_TRAINING_NOTE
    sizes = state.get("world_sizes") or [1]
    if max(sizes) > 1:
        if len(set(sizes)) == 1:
            notes += (
                f" Distributed (torchrun, DistributedDataParallel): {sizes[0]} processes, each "
                f"drawing its own crops, so the effective batch was {sizes[0]} x "
                f"{args.batch_size} = {sizes[0] * args.batch_size} crops per iteration "
                "(gradients averaged, lr not scaled)."
            )
        else:
            notes += (
                " Distributed (torchrun, DistributedDataParallel) with processes per "
                f"invocation {sizes}: effective batch = processes x {args.batch_size} crops "
                "per iteration (gradients averaged, lr not scaled)."
            )
    if len(commands) > 1:
        notes += " The run was stopped and resumed (resume is exact); invocations: " + " ; ".join(
            commands
        )
    card = ModelCard(
        model=args.model,
        config=model_config(args),
        task="denoising" if degradation.scales == (1,) else "upsampling",
        scale=args.scale,
        scales=list(degradation.scales),
        input_upsampling=degradation.upsampling,
        training_data=(
            f"{DATA_DESCRIPTIONS[args.dataset]}: {state['n_train']} training pairs, every "
            f"{VALIDATION_EVERY}th pair held out; depth normalised per image by its valid "
            f"min/max; input: {degradation.describe()}; random {args.crop}x{args.crop} crops"
        ),
        iterations=int(state["iteration"]),
        command=commands[0],
        evaluation=evaluation,
        notes=notes,
    )
    save_model(model.eval(), card, path)
    print(f"exported {path} and its card {Path(path).with_suffix('.json')}")


# --------------------------------------------------------------------------- main


def main(args: argparse.Namespace) -> dict:
    """Train (or continue) a run. Returns a summary dict (iteration, last loss, last
    validation, checkpoint path, stopped: whether it ended before ``--iterations``,
    model: the network). Under ``torchrun`` every process runs this; only rank 0 prints
    and writes."""
    ranks = Ranks()
    try:
        if ranks.main:
            return train(args, ranks)
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            return train(args, ranks)
    finally:
        ranks.close()


def train(args: argparse.Namespace, ranks: Ranks) -> dict:
    """``main`` for one process of ``ranks``."""
    command = getattr(args, "command", None) or canonical_command(args)
    args.command = command
    if args.out_dir is None:
        args.out_dir = f"runs/{args.model}_x{args.scale}"
    out_dir = Path(args.out_dir)
    if ranks.main:
        out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)

    resume_path = resolve_resume(args)
    checkpoint = None
    if resume_path is not None:
        checkpoint = torch.load(resume_path, map_location="cpu", weights_only=True)
        saved = checkpoint["args"]
        for key, value in saved.items():
            if key in RESUME_OVERRIDES:
                continue
            if getattr(args, key, value) != value and key != "lr_step":
                given = getattr(args, key)
                print(f"--resume: using the checkpoint's {key}={value!r}, not {given!r}")
            setattr(args, key, value)
    if not args.lr_step:
        args.lr_step = max(1, args.iterations // 4)
    degradation = degradation_of(args)
    if args.crop % degradation.align:
        raise SystemExit(
            f"--crop {args.crop} is not a multiple of lcm(4, scales) = {degradation.align}"
        )
    teacher = load_teacher(args, degradation)

    # Model and optimiser (seeded: the init is deterministic).
    torch.manual_seed(args.seed)
    model = build_model(args.model, **model_config(args))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, args.lr_step, gamma=args.lr_gamma)
    if args.init and checkpoint is None:
        init_model(model, args)
    # Crops: rank 0 draws the single-process stream, rank r > 0 its own (seed, r).
    rng = np.random.default_rng(args.seed if ranks.main else [args.seed, ranks.rank])
    state = {"iteration": 0, "elapsed": 0.0, "val": [], "commands": []}
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        for key in ("iteration", "elapsed", "val", "commands"):
            state[key] = checkpoint[key]
        # Each rank's RNG state (a single-process checkpoint has rank 0's only).
        saved_rngs = checkpoint.get("rng_ranks") or [checkpoint["rng"]]
        if ranks.rank < len(saved_rngs):
            rng.bit_generator.state = saved_rngs[ranks.rank]["numpy"]
            torch.set_rng_state(saved_rngs[ranks.rank]["torch"])
        else:
            rng = np.random.default_rng([args.seed, ranks.rank, state["iteration"]])
        state["world_sizes"] = list(checkpoint.get("world_sizes") or [1] * len(state["commands"]))
        saved_world = state["world_sizes"][-1]
        print(f"resumed from {resume_path} at iteration {state['iteration']}")
        if saved_world != ranks.world:
            print(
                f"--resume: the checkpoint was written by {saved_world} process(es), this run "
                f"has {ranks.world}: the effective batch changes and the crops drawn differ "
                "from an uninterrupted run (ranks without a saved RNG state reseed from "
                "(seed, rank, iteration))"
            )
    state["commands"] = [*state["commands"], command]
    state["world_sizes"] = [*state.get("world_sizes", []), ranks.world]
    if ranks.distributed:
        print(
            f"distributed: {ranks.world} processes ({ranks.backend}), each drawing its own "
            f"crops: effective batch {ranks.world} x {args.batch_size} = "
            f"{ranks.world * args.batch_size} crops per iteration; rank 0 logs the mean loss "
            f"and writes {out_dir}"
        )

    # Data.
    root = data_dir(args.data_dir)
    try:
        train_samples = open_dataset(args.dataset, "train", root)
        val_samples = open_dataset(args.dataset, "val", root)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"--dataset {args.dataset}: {exc}") from None
    train_ids = range(args.train_images or len(train_samples))
    val_ids = range(args.val_images or len(val_samples))
    state["n_train"], state["n_val"] = len(train_ids), len(val_ids)
    start = state["iteration"]
    need_training = start < args.iterations
    trainset = (
        TrainSet(
            [train_samples[i] for i in train_ids],
            degradation,
            args.crop,
            progress=len(train_ids) > 50 and ranks.main,
        )
        if need_training
        else None
    )
    # Only rank 0 validates.
    val_images = (
        [prepare_training_image(val_samples[i], degradation.align) for i in val_ids]
        if ranks.main
        else []
    )
    val_inputs = validation_inputs(val_images, degradation, args.seed)
    unit = val_samples.report_unit
    factor = val_samples.report_factor

    log = val_log = None
    if ranks.main:
        log = CsvLog(out_dir / "log.csv", LOG_FIELDS, read_rows(out_dir / "log.csv", start))
        val_log = CsvLog(out_dir / "val.csv", VAL_FIELDS, read_rows(out_dir / "val.csv", start))
    ckpt_path = out_dir / CHECKPOINT

    def save() -> None:
        """Rank 0 writes the checkpoint (a collective: every rank calls it)."""
        rng_state = {"numpy": rng.bit_generator.state, "torch": torch.get_rng_state()}
        rng_ranks = ranks.gather(rng_state)
        if not ranks.main:
            return
        log.flush()
        val_log.flush()
        checkpoint = {
            "model": model.state_dict(),  # the plain network, also under DDP
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "iteration": state["iteration"],
            "elapsed": state["elapsed"],
            "val": state["val"],
            "commands": state["commands"],
            "world_sizes": state["world_sizes"],
            "args": {k: v for k, v in vars(args).items() if k != "resume"},
            "rng": rng_state,
        }
        if ranks.distributed:
            checkpoint["rng_ranks"] = rng_ranks
        atomic_save(checkpoint, ckpt_path)

    def run_validation() -> dict:
        ours, given = (value * factor for value in validate(model, val_images, val_inputs))
        row = {
            "iteration": state["iteration"],
            "val_rmse": f"{ours:.4f}",
            "input_rmse": f"{given:.4f}",
            "unit": unit,
            "seconds": f"{state['elapsed']:.1f}",
        }
        val_log.write(row)
        val_log.flush()
        state["val"] = [*state["val"], row]
        write_curves(out_dir, f"{args.model} x{args.scale}")
        tqdm.write(
            f"[val] iteration {state['iteration']}: RMSE {ours:.2f} {unit} on "
            f"{len(val_images)} held-out {args.dataset} images (input {given:.2f} {unit})"
        )
        return row

    def validate_on_rank0() -> None:
        if ranks.main:
            run_validation()
        ranks.barrier()

    # Under torchrun: DDP over the plain network (its parameters broadcast from rank 0).
    step = ranks.wrap(model)

    stop_signal: list[int] = []

    def on_signal(signum, frame):  # noqa: ARG001
        stop_signal.append(signum)

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, on_signal)
        except ValueError:  # not the main thread
            pass
    check_dir = os.environ.get(DDP_CHECK_ENV)
    check = SyncCheck(check_dir, ranks, model) if check_dir else None

    loss_value = float("nan")
    stopped = False
    try:
        model.train()
        t0 = time.perf_counter() - state["elapsed"]
        bar = tqdm(
            total=args.iterations,
            initial=start,
            desc=f"{args.model} x{args.scale}",
            unit="it",
            dynamic_ncols=True,
            mininterval=1.0 if sys.stderr.isatty() else 30.0,
            disable=not need_training or not ranks.main,
        )
        for _ in range(start, args.iterations):
            guidance, target, truth, mask = trainset.sample(rng, args.batch_size)
            lr = optimizer.param_groups[0]["lr"]
            output, truth, mask = forward_train(model, guidance, target, truth, mask, rng, step)
            loss = masked_l1(output, truth, mask)
            if teacher is not None:
                with torch.no_grad():
                    taught = teacher(guidance, target)
                weight = args.distill_weight
                loss = (1 - weight) * loss + weight * masked_l1(output, taught, mask)
            loss_value = float(loss.detach())
            if check is not None:
                check.step(state["iteration"] + 1, loss_value, guidance, target)
            if ranks.distributed:
                # One 2-element all_reduce per step: the mean loss over the ranks (logged; a
                # non-finite one stops every rank) and whether any rank got a signal, so
                # that all stop at the same iteration and none waits in a collective.
                loss_sum, signals = ranks.sum([loss_value, float(bool(stop_signal))])
                loss_value, signalled = loss_sum / ranks.world, signals > 0
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"non-finite loss at iteration {state['iteration'] + 1}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            state["iteration"] += 1
            state["elapsed"] = time.perf_counter() - t0
            it = state["iteration"]
            if log is not None:
                log.write(
                    {
                        "iteration": it,
                        "loss": f"{loss_value:.6f}",
                        "lr": f"{lr:.6g}",
                        "seconds": f"{state['elapsed']:.2f}",
                    }
                )
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.1e}", refresh=False)
            bar.update(1)
            if args.val_every and it % args.val_every == 0 and it < args.iterations:
                validate_on_rank0()
            if not ranks.distributed:
                signalled = bool(stop_signal)
            if signalled or (args.stop_at and it >= args.stop_at and it < args.iterations):
                stopped = True
                save()
                why = f"signal {stop_signal[0]}" if stop_signal else f"--stop-at {args.stop_at}"
                if signalled and not stop_signal:
                    why = "a signal to another process"
                tqdm.write(
                    f"stopped at iteration {it} ({why}); checkpoint {ckpt_path}; continue with "
                    f"--resume {ckpt_path}"
                )
                break
            if it % args.save_every == 0 and it < args.iterations:
                save()
        bar.close()
        if not stopped:
            if need_training or not state["val"]:
                validate_on_rank0()
            save()
            if ranks.main:
                if args.export:
                    export(model, args, state, args.export)
                write_curves(out_dir, f"{args.model} x{args.scale}")
        if check is not None:
            check.finish(model, state["iteration"], stopped)
        ranks.barrier()
    finally:
        for handle in (log, val_log):
            if handle is not None:
                handle.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return {
        "iteration": state["iteration"],
        "loss": loss_value,
        "val": state["val"][-1] if state["val"] else None,
        "checkpoint": str(ckpt_path),
        "stopped": stopped,
        "model": model,
    }


if __name__ == "__main__":
    parsed = parse_args()
    parsed.command = shlex.join([*launch_command(), *sys.argv[1:]])
    main(parsed)
