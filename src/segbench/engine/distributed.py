"""Multi-process training with ``torch.distributed``: process group, batch-norm sync, reductions.

Launch ``segbench train`` with torchrun; each process reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``
from the environment torchrun sets, and joins a process group with the gloo backend on CPU or NCCL on
CUDA (one GPU per process, ``cuda:LOCAL_RANK``)::

    torchrun --standalone --nproc_per_node 2 -m segbench.cli train RECIPE.yaml

A run without those variables is a single process and every helper here is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

from segbench.errors import UserError


@dataclass
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size`` processes, its ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """True for the process that writes files and prints (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str) -> DistInfo:
    """Join the process group torchrun describes, or describe a single process.

    Args:
        device: ``"cpu"`` or ``"cuda"``/``"cuda:N"`` (in a multi-process run, ``cuda`` becomes
            ``cuda:LOCAL_RANK``).

    Returns:
        :class:`DistInfo` with the device this process trains on.

    Raises:
        UserError: CUDA asked for but not available, or a malformed torchrun environment.
    """
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device: {device!r} asked for, but CUDA is not available here; use device=cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise UserError(f"device: expected 'cpu' or 'cuda' (or 'cuda:N'), got {device!r}")
    try:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise UserError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (launch with torchrun)") from None
    if world_size <= 1:
        return DistInfo(device=torch.device(device))
    if device.startswith("cuda"):
        if local_rank >= torch.cuda.device_count():
            raise UserError(f"LOCAL_RANK {local_rank}: only {torch.cuda.device_count()} CUDA devices here")
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
        backend = "nccl"
    else:
        dev, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def cleanup() -> None:
    """Leave the process group (no-op in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_mean(values: list[float], device: torch.device) -> list[float]:
    """Mean of each value over the processes (the values themselves in a single process)."""
    if not _active():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return (t / dist.get_world_size()).tolist()


def all_gather_object(obj) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` (``[obj]`` in a single process)."""
    if not _active():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if _active():
        dist.barrier()


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes; the gradient of each process's input is the sum of the incoming gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        out = grad.clone()
        dist.all_reduce(out)
        return out


class SyncBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training-mode statistics are taken over the batches of all processes.

    ``torch.nn.SyncBatchNorm`` accepts only accelerator tensors (torch 2.15 raises "SyncBatchNorm
    expected input tensor to be on GPU" for CPU input), so segbench uses this module for CPU (gloo)
    runs. Forward: per-channel sum and count, then the sum of squared deviations from the global
    mean, each summed over processes by an all-reduce whose backward all-reduces the incoming
    gradients, which gives each process the gradient of the sum of all processes' losses, as
    ``torch.nn.SyncBatchNorm`` does. Running statistics use the unbiased
    global variance. Statistics are computed in float32. In eval mode, or without a process group, it
    is a plain ``BatchNorm2d``.

    Reference: Ioffe & Szegedy, "Batch Normalization", arXiv 1502.03167 (https://arxiv.org/abs/1502.03167).

    Shape:
        ``(N, C, H, W)`` -> ``(N, C, H, W)``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and _active()):
            return super().forward(x)
        self._check_input_dim(x)
        c = x.shape[1]
        dims = (0, 2, 3)
        xf = x.float()
        count = torch.full((1,), x.numel() / c, dtype=torch.float32, device=x.device)
        sums = _AllReduceSum.apply(torch.cat([xf.sum(dims), count]))
        n = sums[c]
        mean = sums[:c] / n
        centred = xf - mean.view(1, c, 1, 1)
        var = _AllReduceSum.apply((centred * centred).sum(dims)) / n
        y = centred * torch.rsqrt(var + self.eps).view(1, c, 1, 1)
        if self.affine:
            y = y * self.weight.view(1, c, 1, 1) + self.bias.view(1, c, 1, 1)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var.detach() * (n / (n - 1).clamp(min=1))
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased, alpha=m)
        return y.to(x.dtype)


def _to_sync_bn_cpu(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.BatchNorm2d) and not isinstance(module, SyncBatchNorm2d):
        new = SyncBatchNorm2d(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        new.to(next((t.device for t in module.state_dict().values()), torch.device("cpu")))
        return new
    for name, child in module.named_children():
        new_child = _to_sync_bn_cpu(child)
        if new_child is not child:
            setattr(module, name, new_child)
    return module


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Replace the model's BatchNorm2d layers with synchronised ones: ``torch.nn.SyncBatchNorm`` on
    accelerators, :class:`SyncBatchNorm2d` on CPU. Weights and running statistics are kept; the state
    dict keys do not change."""
    if device.type == "cpu":
        return _to_sync_bn_cpu(model)
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)
