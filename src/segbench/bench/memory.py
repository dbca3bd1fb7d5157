"""Peak memory of one training step, in MiB (2**20 bytes), beside the measurements of one forward pass.

:func:`peak_memory_mib`, :func:`current_rss_mib` and :func:`process_peak_rss_mib` live in
:mod:`segbench.engine.memory` (inference uses them too) and are re-exported here; ``memory_kind`` values are
listed in :data:`segbench.engine.memory.MEMORY_KINDS`.
"""

from __future__ import annotations

import torch
from torch import nn

from segbench.engine.memory import (
    MEMORY_KINDS,
    MIB,
    current_rss_mib,
    peak_memory_mib,
    peak_rss_increase_mib,
    process_peak_rss_mib,
)

__all__ = ["MEMORY_KINDS", "current_rss_mib", "peak_memory_mib", "process_peak_rss_mib", "train_step_memory_mib"]


def train_step_memory_mib(
    model: nn.Module,
    input_shape: tuple[int, int, int, int],
    num_classes: int,
    device: str | torch.device = "cpu",
    lr: float = 0.01,
) -> dict:
    """Peak memory of one training step: forward, cross-entropy loss, backward and an SGD step.

    The model is moved to ``device`` and put in train mode (its mode is restored afterwards); the
    input is random and the target random class indices ``(N, H, W)`` in ``[0, num_classes)``. One
    unmeasured step runs first (it allocates the gradients, as every step after the first finds them),
    then the measured one. **The weights change** (two SGD steps with momentum 0.9): measure on a model
    you do not need afterwards, or on a copy. Batch-norm layers need ``N >= 2`` when a feature map is
    1 x 1 (e.g. ASPP's image pooling), so use a batch of at least 2.

    - CUDA: ``torch.cuda.max_memory_allocated`` and ``max_memory_reserved`` over the measured step,
      kind ``"cuda_peak_allocated"``.
    - CPU: peak RSS increase during the measured step (see :func:`peak_memory_mib`), kind
      ``"cpu_peak_rss_increase"``.

    Args:
        model: Module returning logits ``(N, num_classes, H, W)``.
        input_shape: ``(N, C, H, W)``.
        num_classes: Classes of the logits.
        device: Device to run on.
        lr: SGD learning rate.

    Returns:
        ``{"train_memory_mib", "train_memory_reserved_mib" (CUDA only, else None),
        "train_memory_kind", "train_batch"}``, MiB.

    Raises:
        ValueError: If ``input_shape`` does not have 4 positive entries.
        Exception: Whatever the model raises (e.g. ``torch.cuda.OutOfMemoryError``, or batch norm with
            one value per channel at batch 1).
    """
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) != 4 or min(input_shape) < 1:
        raise ValueError(f"input_shape must be (N, C, H, W) with positive entries, got {input_shape}")
    device = torch.device(device)
    was_training = model.training
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9)
    x = torch.randn(input_shape, device=device)
    n, _, h, w = input_shape
    target = torch.randint(0, num_classes, (n, h, w), device=device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=False)
        loss = torch.nn.functional.cross_entropy(model(x), target)
        loss.backward()
        optimizer.step()

    try:
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            step()
            torch.cuda.synchronize(device)
            return {
                "train_memory_mib": torch.cuda.max_memory_allocated(device) / MIB,
                "train_memory_reserved_mib": torch.cuda.max_memory_reserved(device) / MIB,
                "train_memory_kind": "cuda_peak_allocated",
                "train_batch": n,
            }
        peak = peak_rss_increase_mib(step)
        return {
            "train_memory_mib": peak["memory_mib"],
            "train_memory_reserved_mib": None,
            "train_memory_kind": peak["memory_kind"],
            "train_batch": n,
        }
    finally:
        optimizer.zero_grad(set_to_none=True)
        model.train(was_training)
