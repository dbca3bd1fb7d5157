"""The training state in ``last.pt``: what an exact resume needs, written and read back safely.

A checkpoint holds the model (the weight average of :mod:`segbench.engine.ema` when the run keeps one, with
the trained weights under ``train_model``), optimizer, schedule, gradient scaler, the RNG states of every process,
the iteration, the best mIoU, the elapsed seconds and ``meta`` (classes, normalisation, resolved config).
Checkpoints without the ``scheduler``/``scaler``/``rng_per_rank`` keys resume too.

Reading uses ``torch.load(..., weights_only=True)`` with an allowlist of exactly the non-tensor types a
segbench checkpoint holds (numpy's RNG state: an ``ndarray`` of ``uint32``), so a crafted ``last.pt``
cannot run code when unpickled.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from segbench.errors import UserError, first_line
from segbench.models.pretrained import load_pickle_safely

REQUIRED_KEYS = ("model", "optimizer", "iteration", "best_miou", "rng")


@dataclass
class ResumePoint:
    """Where a run continues: the next iteration, the best validation mIoU so far (-1 before any), the
    training seconds already spent, and the last validation metrics (or None)."""

    start_iter: int = 0
    best_miou: float = -1.0
    elapsed_s: float = 0.0
    last_val: dict | None = None


def rng_state(device: torch.device) -> dict:
    """The torch, numpy and Python RNG states of this process (and CUDA's on a CUDA ``device``)."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    """Restore the RNG states saved by :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def read_state(path: Path, device: torch.device) -> dict:
    """Load a training checkpoint without running code from it.

    Raises:
        UserError: one line naming ``path``: unreadable, truncated, holding other than tensors and the
            allowlisted numpy RNG types, or missing a key of :data:`REQUIRED_KEYS`.
    """
    try:
        state = load_pickle_safely(path, map_location=device)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a corrupt or crafted file
        raise UserError(f"{path}: cannot resume from this checkpoint ({first_line(exc)})") from None
    missing = [k for k in REQUIRED_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise UserError(f"{path}: not a segbench training checkpoint (no {', '.join(missing)})")
    return state


def check_same_network(path: Path, model: nn.Module, state: dict) -> None:
    """Raise a one-line :class:`UserError` unless ``state`` has exactly ``model``'s tensor names and shapes."""
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    if own == theirs:
        return
    missing, unexpected = sorted(own.keys() - theirs.keys()), sorted(theirs.keys() - own.keys())
    reshaped = sorted(k for k in own.keys() & theirs.keys() if own[k] != theirs[k])
    parts = [f"{len(v)} {what} (e.g. {v[0]})" for what, v in
             (("missing", missing), ("unexpected", unexpected), ("of another shape", reshaped)) if v]  # fmt: skip
    raise UserError(f"{path}: holds another network than model.* describes: tensors {'; '.join(parts)}")


def restore(path: Path, state: dict, model: nn.Module, optimizer, scaler, rank: int, world_size: int,
            device: torch.device, ema=None) -> ResumePoint:  # fmt: skip
    """Load ``state`` (from :func:`read_state`) into the model, optimizer, scaler and weight average ``ema``
    (a :class:`segbench.engine.ema.WeightEMA` or None) and set this process's RNG states (its own when the
    world size is unchanged, else rank 0's). A run that starts averaging on resume starts from the weights.

    Raises:
        UserError: the weights are another network's, or the optimizer state does not fit ``optim.*``.
    """
    trained = state.get("train_model", state["model"])
    check_same_network(path, model, trained)
    model.load_state_dict(trained)
    if ema is not None:
        ema.load_state_dict(state["model"] if "train_model" in state else trained)
    try:
        optimizer.load_state_dict(state["optimizer"])
    except ValueError as exc:
        raise UserError(
            f"{path}: the optimizer state does not fit optim.* ({exc}); resume with the run's settings"
        ) from None
    if state.get("scaler") and scaler.is_enabled():
        scaler.load_state_dict(state["scaler"])
    per_rank = state.get("rng_per_rank")
    set_rng_state(per_rank[rank] if per_rank and len(per_rank) == world_size else state["rng"], device)
    return ResumePoint(state["iteration"], state["best_miou"], state.get("elapsed_s", 0.0),
                       state.get("meta", {}).get("val"))  # fmt: skip


def training_state(model: nn.Module, optimizer, scaler, schedule: dict, point: ResumePoint, rng_all: list,
                   world_size: int, meta: dict, ema_weights: dict | None = None) -> dict:  # fmt: skip
    """The dict written to ``last.pt``/``best.pt`` after ``point.start_iter`` iterations; with ``ema_weights``
    those are ``model`` (what inference and export load) and the trained weights ``train_model``."""
    done = point.start_iter
    weights = {"model": model.state_dict()} if ema_weights is None else {
        "model": ema_weights, "train_model": model.state_dict()}  # fmt: skip
    return {
        **weights,
        "optimizer": optimizer.state_dict(),
        "scheduler": {"name": "poly", **schedule, "next_iter": done},
        "scaler": scaler.state_dict(),
        "iteration": done,
        "best_miou": point.best_miou,
        "elapsed_s": point.elapsed_s,
        "rng": rng_all[0],
        "rng_per_rank": rng_all,
        "world_size": world_size,
        "meta": {**meta, "iteration": done, **({"val": point.last_val} if point.last_val else {})},
    }
