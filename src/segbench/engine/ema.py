"""Exponential moving average of a network's weights, kept beside the trained weights.

After every optimisation step each floating-point parameter and buffer (batch-norm running statistics
included) of the average moves toward the trained network's: ``ema = d * ema + (1 - d) * w``, with the
decay ramped up over the first steps, ``d = min(decay, (1 + t) / (10 + t))`` at step ``t``, so early
averages are not dominated by the random initialisation. Integer buffers (``num_batches_tracked``) are
copied. The average is what validation measures and what ``best.pt``/``last.pt`` hold as ``model``.

Reference: Polyak and Juditsky, "Acceleration of Stochastic Approximation by Averaging", SIAM J. Control
Optim. 30(4), 1992; the ramp follows TensorFlow's ``tf.train.ExponentialMovingAverage(num_updates=t)``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_decay_at(decay: float, step: int) -> float:
    """The decay used at optimisation step ``step`` (0-based): ``min(decay, (1 + step) / (10 + step))``."""
    return min(decay, (1.0 + step) / (10.0 + step))


class WeightEMA:
    """An averaged copy of ``model`` (in eval mode, no gradients).

    Args:
        model: the network being trained (not a DDP wrapper).
        decay: the target decay in ``(0, 1)``, e.g. 0.999.

    Raises:
        ValueError: ``decay`` outside ``(0, 1)``.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay: expected a value in (0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Move the average toward ``model``'s current weights (call after optimisation step ``step``)."""
        d = ema_decay_at(self.decay, step)
        trained = model.state_dict()
        for name, avg in self.model.state_dict().items():
            value = trained[name].detach()
            if avg.is_floating_point():
                avg.mul_(d).add_(value.to(avg.dtype), alpha=1.0 - d)
            else:
                avg.copy_(value)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged weights (same names and shapes as the trained network's)."""
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore averaged weights saved by :meth:`state_dict`."""
        self.model.load_state_dict(state)
