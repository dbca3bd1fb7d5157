"""A training run killed with SIGKILL and resumed ends with exactly the weights of an uninterrupted run
(deterministic CPU mode, one thread, DataLoader worker stream).

The run to kill is a child process spawned from the test process (fork is unsafe once autograd has run)."""

import csv
import multiprocessing
import os
import signal
import time

import torch
import yaml

from segbench.cli import main
from segbench.config import load_config
from segbench.engine.train import train

ITERS, CKPT_EVERY = 12, 4


def _recipe(path, root):
    recipe = {
        "data": {
            "root": str(root),
            "crop_size": [48, 48],
            "scale_range": [0.75, 1.25],
            "num_workers": 1,
            "val_max_images": 1,
        },
        "model": {"name": "fast_scnn"},  # dropout and random crops: the RNG states must come back too
        "optim": {"lr": 0.02, "warmup_iters": 2},
        "iters": ITERS,
        "batch_size": 2,
        "val_every": 6,
        "ckpt_every": CKPT_EVERY,
        "log_every": 1,
        "deterministic": True,
        "threads": 1,
        "tensorboard": False,
        "seed": 3,
    }
    path.write_text(yaml.safe_dump(recipe))
    return path


def _rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _iters_logged(run_dir):
    try:
        return [int(r["iter"]) for r in _rows(run_dir)]
    except (OSError, KeyError, ValueError):
        return []


def _train_child(recipe, run) -> None:
    os._exit(main(["train", str(recipe), "--quiet", "--set", f"out_dir={run}"]))


def test_sigkill_and_resume_end_with_the_uninterrupted_weights(shapes_root, tmp_path):
    recipe = _recipe(tmp_path / "recipe.yaml", shapes_root)
    run = tmp_path / "killed"
    proc = multiprocessing.get_context("spawn").Process(target=_train_child, args=(recipe, run))
    proc.start()
    try:
        # Kill once metrics rows exist past the first checkpoint (iteration 4), before the next one:
        # the resumed run must then drop those rows and redo their iterations.
        deadline = time.monotonic() + 120
        while proc.is_alive() and time.monotonic() < deadline:
            logged = _iters_logged(run)
            if (run / "last.pt").exists() and logged and logged[-1] % CKPT_EVERY:
                break
            time.sleep(0.01)
        assert proc.is_alive(), f"training ended (exit code {proc.exitcode}) before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(timeout=30)
    finally:
        if proc.is_alive():
            proc.kill()
    assert proc.exitcode == -signal.SIGKILL
    killed_at = torch.load(run / "last.pt", weights_only=False)["iteration"]
    assert 0 < killed_at < ITERS and killed_at % CKPT_EVERY == 0
    assert max(_iters_logged(run)) > killed_at  # rows the checkpoint has not seen

    assert main(["train", str(recipe), "--resume", "--quiet", "--set", f"out_dir={run}"]) == 0

    reference = tmp_path / "uninterrupted"
    train(load_config(recipe, [f"out_dir={reference}"]), progress=False)
    got = torch.load(run / "last.pt", weights_only=False)
    ref = torch.load(reference / "last.pt", weights_only=False)
    assert got["iteration"] == ref["iteration"] == ITERS
    for key, value in ref["model"].items():
        torch.testing.assert_close(got["model"][key], value, atol=0, rtol=0, msg=f"{key} differs after SIGKILL")
    for a, b in zip(ref["optimizer"]["state"].values(), got["optimizer"]["state"].values()):
        assert torch.equal(a["momentum_buffer"], b["momentum_buffer"])
    assert _iters_logged(run) == list(range(1, ITERS + 1))  # every iteration logged once
    assert [r["loss"] for r in _rows(run)] == [r["loss"] for r in _rows(reference)]
    assert not torch.are_deterministic_algorithms_enabled()  # train() restores the global setting
