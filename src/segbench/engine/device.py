"""The device a command runs on: ``cpu``, ``cuda`` or ``cuda:N``, checked once before any work."""

from __future__ import annotations

import torch

from segbench.errors import UserError


def check_device(device: str) -> str:
    """``device`` unchanged when this machine can run on it.

    Raises:
        UserError: not ``cpu``, ``cuda`` or ``cuda:N``, or CUDA asked for where it is not available.
    """
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UserError(f"--device {device!r}: expected cpu or cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device}: CUDA is not available on this machine")
    return device
