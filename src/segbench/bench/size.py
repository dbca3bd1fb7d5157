"""Model size and cost: parameter count, serialised weight size (MB) and FLOPs (GFLOPs / GMACs).

Units: ``size_mb`` is in megabytes of 10**6 bytes; ``gflops`` / ``gmacs`` are 10**9 operations per
forward pass at the given input shape.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["count_flops", "count_params", "weights_size_mb"]


def count_params(model: nn.Module) -> int:
    """Count the parameters of a model (shared parameters counted once; buffers excluded).

    Args:
        model: Any module.

    Returns:
        Number of scalar parameters (divide by 1e6 for ``params_m``).
    """
    return sum(p.numel() for p in model.parameters())


def weights_size_mb(model: nn.Module, dtype: torch.dtype = torch.float32) -> float:
    """Size of the model's ``state_dict`` serialised with safetensors, in MB (10**6 bytes).

    Floating-point tensors (parameters and floating buffers) are cast to ``dtype`` first; integer
    buffers (e.g. BatchNorm's ``num_batches_tracked``) keep their dtype. Tensors that share memory
    (tied weights) are stored once. The count includes the small safetensors header.

    Args:
        model: Any module; it is not modified.
        dtype: Floating dtype to store weights in, e.g. ``torch.float16`` for ``size_mb_fp16``.

    Returns:
        File size in MB.

    Raises:
        ValueError: If ``dtype`` is not a floating dtype.
    """
    from safetensors.torch import save

    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating dtype, got {dtype}")
    tensors: dict[str, torch.Tensor] = {}
    seen: set[tuple] = set()
    for name, t in model.state_dict().items():
        if not isinstance(t, torch.Tensor):
            continue  # e.g. extra state
        key = (t.device, t.data_ptr(), tuple(t.shape), tuple(t.stride()), t.dtype)
        if t.numel() > 0 and key in seen:
            continue
        seen.add(key)
        t = t.detach()
        if t.is_floating_point():
            t = t.to(dtype)
        tensors[name] = t.to("cpu").contiguous().clone()
    return len(save(tensors)) / 1e6


def count_flops(model: nn.Module, input_shape: tuple[int, int, int, int]) -> dict:
    """Count the floating-point operations of one forward pass with ``FlopCounterMode``.

    Runs one forward under ``torch.no_grad()`` in eval mode on a zero input of ``input_shape``, on
    the device the model's parameters are on (CPU for a freshly built model); the model's
    train/eval mode is restored afterwards.

    ``torch.utils.flop_counter.FlopCounterMode`` counts a multiply-add as 2 FLOPs, so
    GMACs = GFLOPs / 2. torchvision's published "GFLOPS" are actually multiply-adds, i.e. they are
    comparable with ``gmacs`` here, not with ``gflops``. Only ops with a registered formula count
    (convolutions, matmuls, attention); element-wise ops, pooling and interpolation are not counted.

    Args:
        model: Module whose forward takes one ``(N, C, H, W)`` tensor.
        input_shape: ``(N, C, H, W)`` of the input.

    Returns:
        ``{"gflops": flops / 1e9, "gmacs": flops / 2 / 1e9}`` for the whole batch.

    Raises:
        ValueError: If ``input_shape`` does not have 4 positive entries.
        Exception: Whatever the model's forward raises.
    """
    from torch.utils.flop_counter import FlopCounterMode

    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) != 4 or min(input_shape) < 1:
        raise ValueError(f"input_shape must be (N, C, H, W) with positive entries, got {input_shape}")
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(input_shape, device=device, dtype=dtype)
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(x)
        flops = counter.get_total_flops()
    finally:
        model.train(was_training)
    return {"gflops": flops / 1e9, "gmacs": flops / 2 / 1e9}
