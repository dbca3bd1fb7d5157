"""Multi-process training on CPU (gloo): two processes with half the batch each against one process with
the whole batch, and the CPU SyncBatchNorm against BatchNorm2d on the whole batch.

Processes are spawned from the test process with ``torch.multiprocessing`` and given the environment
torchrun would give them (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT).
"""

import csv
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as tmp
import yaml
from torch import nn

from segbench.config import config_from_dict
from segbench.engine.distributed import SyncBatchNorm2d, convert_sync_batchnorm
from segbench.engine.train import train

WORLD = 2
# Tolerances, from the run below measured here (LR-ASPP, 4 iterations, global batch 4): with sync_bn the
# two-process losses equal the one-process ones to the 4 decimals metrics.csv keeps and the final weights
# differ by at most 1.3e-4 (float32 rounding in another reduction order, grown over 4 steps). Without
# sync_bn (batch-norm statistics over 2 images instead of 4) the iteration-2 loss differed by 2.6%
# (1.0502 vs 1.0236) and the weights by up to 3.8e-2, so these tolerances tell the two apart.
LOSS_RTOL = 1e-3
WEIGHT_ATOL, WEIGHT_RTOL = 1e-3, 1e-2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank, port, fn, *args) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))  # fmt: skip
    fn(rank, *args)


def _launch(fn, *args) -> None:
    """Run ``fn(rank, *args)`` in WORLD fresh (spawned) processes with torchrun's environment variables.

    Not forked: autograd's worker threads, started by any earlier test in this process, do not survive fork.
    """
    tmp.start_processes(_entry, args=(_free_port(), fn, *args), nprocs=WORLD, start_method="spawn")


def _train_rank(rank, cfg) -> None:
    train(cfg, progress=False)


def _cfg(root, out, num_workers=0):
    data = {
        "data": {"root": str(root), "crop_size": [64, 64], "scale_range": [1.0, 1.0], "num_workers": num_workers},
        "model": {"name": "lraspp_mobilenet_v3_large"},  # BatchNorm, no dropout
        "optim": {"lr": 0.02},
        "iters": 4,
        "batch_size": 4,
        "val_every": 2,
        "log_every": 1,
        "sync_bn": True,
        "tensorboard": False,
        "out_dir": str(out),
    }
    return config_from_dict(data)


def _rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_two_processes_follow_the_one_process_trajectory(shapes_root, tmp_path):
    # One process: the seeded batch stream needs a DataLoader, here with one worker. Two processes take
    # half of every global batch each (no worker processes), so both runs see the same 4 crops per step.
    single = tmp_path / "single"
    train(_cfg(shapes_root, single, num_workers=1), progress=False)
    ddp = tmp_path / "ddp"
    _launch(_train_rank, _cfg(shapes_root, ddp))

    one, two = _rows(single), _rows(ddp)
    assert [r["iter"] for r in two] == ["1", "2", "3", "4"]  # rank 0 alone writes, once per iteration
    for a, b in zip(one, two):
        assert float(b["loss"]) == pytest.approx(float(a["loss"]), rel=LOSS_RTOL), a["iter"]
    assert [r["iter"] for r in two if r["miou"]] == ["2", "4"]
    for a, b in zip(one, two):  # validation split over the two processes, confusion matrices summed
        if a["miou"]:
            assert float(b["miou"]) == pytest.approx(float(a["miou"]), abs=2e-3)
    w1 = torch.load(single / "last.pt", weights_only=False)
    w2 = torch.load(ddp / "last.pt", weights_only=False)
    assert w2["world_size"] == WORLD and len(w2["rng_per_rank"]) == WORLD
    assert set(w1["model"]) == set(w2["model"])  # SyncBatchNorm2d keeps BatchNorm2d's keys
    for key, value in w1["model"].items():
        if value.is_floating_point():
            torch.testing.assert_close(w2["model"][key], value, atol=WEIGHT_ATOL, rtol=WEIGHT_RTOL, msg=key)


def _sync_bn_rank(rank, out_dir) -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 6) * 3 + 1
    g = torch.randn(4, 3, 5, 6)
    bn = nn.Sequential(nn.BatchNorm2d(3))
    with torch.no_grad():
        bn[0].weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        bn[0].bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    dist.init_process_group("gloo")
    try:
        bn = convert_sync_batchnorm(bn, torch.device("cpu"))
        assert isinstance(bn[0], SyncBatchNorm2d)
        xs = x[2 * rank : 2 * rank + 2].clone().requires_grad_()
        y = bn(xs)
        (y * g[2 * rank : 2 * rank + 2]).sum().backward()
        grads = [bn[0].weight.grad.clone(), bn[0].bias.grad.clone()]
        for t in grads:
            dist.all_reduce(t)  # what DDP does with parameter gradients (up to its 1/world scaling)
    finally:
        dist.destroy_process_group()
    tensors = (y, xs.grad, *grads, bn[0].running_mean, bn[0].running_var)
    np.savez(out_dir / f"rank{rank}.npz", *[t.detach().numpy() for t in tensors])


def test_cpu_sync_batchnorm_equals_batchnorm_on_the_whole_batch(tmp_path):
    _launch(_sync_bn_rank, tmp_path)
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in range(WORLD)]
    got = [torch.from_numpy(r[f"arr_{i}"]) for r in ranks for i in range(6)]
    torch.manual_seed(0)
    x = (torch.randn(4, 3, 5, 6) * 3 + 1).requires_grad_()
    g = torch.randn(4, 3, 5, 6)
    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    y = bn(x)
    (y * g).sum().backward()
    close = {"atol": 1e-5, "rtol": 1e-5}
    torch.testing.assert_close(torch.cat([got[0], got[6]]), y.detach(), **close)  # outputs
    torch.testing.assert_close(torch.cat([got[1], got[7]]), x.grad, **close)  # input gradients
    torch.testing.assert_close(got[2], bn.weight.grad, **close)
    torch.testing.assert_close(got[3], bn.bias.grad, **close)
    torch.testing.assert_close(got[4], bn.running_mean, **close)  # running statistics, unbiased variance
    torch.testing.assert_close(got[5], bn.running_var, **close)
    torch.testing.assert_close(got[10], got[4], atol=0, rtol=0)  # identical in both processes


def test_sync_batchnorm_without_a_process_group_is_batchnorm():
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm2d(4)))
    synced = convert_sync_batchnorm(
        nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm2d(4))), torch.device("cpu")
    )
    synced.load_state_dict(plain.state_dict())
    assert isinstance(synced[1], SyncBatchNorm2d) and isinstance(synced[2][0], SyncBatchNorm2d)
    assert list(synced.state_dict()) == list(plain.state_dict())
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(synced(x), plain(x))


@pytest.mark.slow  # torchrun and two training processes, each importing torch
def test_torchrun_launches_the_cli(shapes_root, tmp_path):
    out = tmp_path / "run"
    recipe = {
        "data": {"root": str(shapes_root), "crop_size": [32, 32], "val_max_images": 2},
        "model": {"name": "lraspp_mobilenet_v3_large"},
        "iters": 2, "batch_size": 2, "val_every": 2, "sync_bn": True, "threads": 1, "tensorboard": False,
        "out_dir": str(out),
    }  # fmt: skip
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(WORLD),
           "-m", "segbench.cli", "train", str(tmp_path / "recipe.yaml"), "--quiet"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("best val mIoU") == 1  # rank 0 reports for both
    state = torch.load(out / "last.pt", weights_only=False)
    assert state["world_size"] == WORLD and state["iteration"] == 2
