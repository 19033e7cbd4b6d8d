"""``training/train.py`` under ``torchrun``: two CPU processes (gloo) on the synthetic
scenes (no data needed), a few steps of a tiny FDKN.

One test, three launches (about 30-40 s on a loaded 2-core machine): a run that one
rank's SIGTERM stops (every rank must stop at the same iteration), its resume by two
processes, and an uninterrupted run of the same length, which must give the same
weights. Each rank reports (``$DKN_DDP_CHECK_DIR/rank<N>.json``, written by train.py)
its parameter digests and per step its own loss and a digest of its crops.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from dkn_ros.models import build_model, load_model
from training import train
from training.data import REPO_ROOT

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(),
    reason="torch.distributed with the gloo backend is not available in this torch build",
)

COMMON = [
    "--dataset", "synthetic", "--train-images", "2", "--val-images", "1",
    "--n1", "8", "--n2", "8", "--crop", "32", "--threads", "1", "--seed", "4",
    "--lr-step", "2", "--val-every", "0",
]  # fmt: skip
TIMEOUT = 120  # seconds per launch before the test gives up (a hung collective)


def children(parent):
    """The processes whose parent is ``parent`` (torchrun starts its workers in sessions
    of their own, so they are not in its process group)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == parent:
                pids.append(int(stat.parent.name))
    return pids


def torchrun(argv, check_dir, wait_for_ranks=None):
    """Run ``torchrun --standalone --nproc_per_node 2 -m training.train ARGV`` and return
    (exit code, output). With ``wait_for_ranks``, call it with the ranks' first reports
    as soon as both exist (the signal handlers are set by then)."""
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(DKN_DDP_CHECK_DIR=str(check_dir), OMP_NUM_THREADS="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "training.train", *argv],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        if wait_for_ranks is not None:
            deadline = time.monotonic() + TIMEOUT
            reports = [check_dir / f"rank{r}.json" for r in (0, 1)]
            while not all(p.is_file() for p in reports):
                assert process.poll() is None, process.communicate()[0]
                assert time.monotonic() < deadline, "the ranks never started training"
                time.sleep(0.05)
            wait_for_ranks([json.loads(p.read_text()) for p in reports])
        output, _ = process.communicate(timeout=TIMEOUT)
    except BaseException:  # e.g. a rank waiting forever in a collective
        for pid in [*children(process.pid), process.pid]:  # the workers, then torchrun
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        output, _ = process.communicate()
        if sys.exc_info()[0] is subprocess.TimeoutExpired:
            pytest.fail(f"torchrun still running after {TIMEOUT} s (a rank left waiting in a "
                        f"collective?); its output:\n{output}")  # fmt: skip
        raise
    return process.returncode, output


def reports(check_dir):
    return [json.loads((check_dir / f"rank{r}.json").read_text()) for r in (0, 1)]


def log_rows(run_dir):
    with open(run_dir / "log.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def checkpoint_params_digest(path):
    """Digest of the parameters in a checkpoint, loaded into a plain (non-DDP) network."""
    model = build_model("fdkn", n1=8, n2=8)
    model.load_state_dict(torch.load(path, weights_only=True)["model"])
    return train.param_digest(model)


def test_torchrun_two_processes_stay_in_sync_stop_together_and_resume_exactly(tmp_path):
    # 1. A long run; SIGTERM to rank 1 only: both ranks stop at the same iteration.
    stopped_dir = tmp_path / "stopped"

    def terminate_rank1(first_reports):
        assert [r["world_size"] for r in first_reports] == [2, 2]
        assert first_reports[0]["initial"] == first_reports[1]["initial"]  # same init
        os.kill(first_reports[1]["pid"], signal.SIGTERM)

    code, output = torchrun(
        [*COMMON, "--iterations", "100000", "--save-every", "100000", "--out-dir",
         str(stopped_dir / "run")],
        stopped_dir / "check", wait_for_ranks=terminate_rank1,
    )  # fmt: skip
    assert code == 0, output
    assert "stopped at iteration" in output and "a signal to another process" in output
    stop_reports = reports(stopped_dir / "check")
    k = stop_reports[0]["iteration"]
    assert k >= 1 and all(r["stopped"] and r["iteration"] == k for r in stop_reports)
    checkpoint = torch.load(stopped_dir / "run" / train.CHECKPOINT, weights_only=True)
    assert checkpoint["iteration"] == k and checkpoint["world_sizes"] == [2]
    assert len(checkpoint["rng_ranks"]) == 2
    assert [int(r["iteration"]) for r in log_rows(stopped_dir / "run")] == list(range(1, k + 1))

    # 2. Its resume by two processes, to k + 2.
    total = k + 2
    resumed_dir = tmp_path / "resumed"
    code, output = torchrun(
        [*COMMON, "--iterations", str(total), "--out-dir", str(stopped_dir / "run"),
         "--resume", "auto"],
        resumed_dir / "check",
    )  # fmt: skip
    assert code == 0, output
    assert f"resumed from {stopped_dir / 'run' / train.CHECKPOINT} at iteration {k}" in output

    # 3. The same k + 2 iterations uninterrupted, exported.
    straight = tmp_path / "straight"
    run_dir = straight / "run"
    weights = run_dir / "m.safetensors"
    code, output = torchrun(
        [*COMMON, "--iterations", str(total), "--out-dir", str(run_dir), "--export",
         str(weights)],
        straight / "check",
    )  # fmt: skip
    assert code == 0, output

    # (b) one set of outputs, written once, by rank 0 (rank 1 prints nothing either).
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(
        ["checkpoint.pt", "log.csv", "val.csv", "curves.svg", "m.safetensors", "m.json"]
    )
    rows = log_rows(run_dir)
    assert [int(r["iteration"]) for r in rows] == list(range(1, total + 1))
    with open(run_dir / "val.csv", newline="") as handle:
        assert [int(r["iteration"]) for r in csv.DictReader(handle)] == [total]
    assert output.count("distributed: 2 processes (gloo)") == 1
    assert output.count("exported ") == 1 and output.count("[val] iteration") == 1

    # (c) the ranks hold the same parameters, the checkpoint's, which training changed.
    rank0, rank1 = reports(straight / "check")
    assert rank0["initial"] == rank1["initial"]
    assert rank0["final"] == rank1["final"], "the ranks' parameters diverged"
    assert rank0["final"] != rank0["initial"], "training did not change the parameters"
    assert checkpoint_params_digest(run_dir / train.CHECKPOINT) == rank0["final"]
    for report in reports(resumed_dir / "check"):
        assert report["iteration"] == total and report["final"] == rank0["final"]

    # (d) each rank drew its own crops; the log holds the mean of the ranks' losses.
    assert [s["iteration"] for s in rank0["steps"]] == list(range(1, total + 1))
    for step0, step1, row in zip(rank0["steps"], rank1["steps"], rows, strict=True):
        assert step0["crops"] != step1["crops"], f"same crops at step {step0['iteration']}"
        assert float(row["loss"]) == pytest.approx((step0["loss"] + step1["loss"]) / 2, abs=2e-6)

    # The resume was exact: same weights (and BatchNorm statistics) as the straight run.
    resumed = torch.load(stopped_dir / "run" / train.CHECKPOINT, weights_only=True)
    state = torch.load(run_dir / train.CHECKPOINT, weights_only=True)
    assert resumed["iteration"] == state["iteration"] == total
    assert resumed["world_sizes"] == [2, 2]
    for key, value in state["model"].items():
        assert torch.equal(resumed["model"][key], value), key

    # The weights load in one process: the exported ones, and the checkpoint to go on.
    model, card = load_model(weights)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state["model"][key]), key
    assert card.command.startswith("torchrun --standalone --nproc_per_node 2 -m training.train")
    assert "2 processes" in card.notes and "2 x 1 = 2 crops per iteration" in card.notes
    single = train.main(
        train.parse_args(
            [*COMMON, "--iterations", str(total + 1), "--resume", str(run_dir / "checkpoint.pt"),
             "--out-dir", str(tmp_path / "single")]
        )
    )  # fmt: skip
    assert single["iteration"] == total + 1 and not single["stopped"]
