"""The optimiser builder and the learning-rate schedule.

Parameter groups: *backbone* parameters are those under ``encoder.`` (segbench's networks) or
``backbone.`` (torchvision's); everything else (decoder, classifier, auxiliary head) is the *head*.
With ``backbone_lr_mult != 1`` the backbone gets ``lr * backbone_lr_mult`` (for example lr 1e-3 and
mult 0.1 give 1e-4 for a pretrained encoder). With ``no_decay_norm_bias`` the 1-D parameters (norm
weights and biases, every bias) get no weight decay. Groups come in a fixed order and empty ones are
dropped; with the defaults there are two, ``decay`` then ``no_decay``, as segbench always built them.

Schedule: poly, ``lr = base * (1 - it / iters) ** power``, times a linear warm-up factor rising from
0.1 to 1 over ``warmup_iters``, set before every iteration (as in torchvision's segmentation reference
recipe and MMSegmentation's ``PolyLR`` with ``by_epoch=False``).
"""

from __future__ import annotations

import torch
from torch import nn

from segbench.errors import UserError

BACKBONE_PREFIXES = ("encoder.", "backbone.")
OPTIMIZERS = ("sgd", "adamw")


def poly_lr(base_lr: float, it: int, total: int, power: float, warmup: int) -> float:
    """Poly schedule ``base_lr * (1 - it/total) ** power`` with optional linear warm-up from ``base_lr/10``.

    Args:
        base_lr: the peak learning rate.
        it: the iteration about to run, 0-based.
        total: the number of iterations of the run.
        power: the poly exponent (0.9 in the DeepLab papers, arXiv 1606.00915).
        warmup: warm-up iterations (0 = none); the factor is ``0.1 + 0.9 * it / warmup`` before it.
    """
    lr = base_lr * (1.0 - it / total) ** power
    if warmup and it < warmup:
        lr *= 0.1 + 0.9 * it / warmup
    return lr


def param_groups(
    model: nn.Module, weight_decay: float, backbone_lr_mult: float = 1.0, no_decay_norm_bias: bool = True
) -> tuple[list[dict], list[str], list[float]]:
    """Split the trainable parameters of ``model`` into optimiser groups.

    Args:
        model: the (unwrapped) network; parameter names decide backbone vs head.
        weight_decay: weight decay of the decaying groups.
        backbone_lr_mult: learning-rate multiplier of the backbone (1 = one group set for the whole net).
        no_decay_norm_bias: put 1-D parameters in groups without weight decay.

    Returns:
        ``(groups, names, lr_mults)``: groups for ``torch.optim`` (``params`` and ``weight_decay``), a
        name per group (``decay``, ``no_decay``, ``backbone_decay``, ...) and each group's multiplier.
    """
    split = backbone_lr_mult != 1.0
    buckets: dict[tuple[str, bool], list[nn.Parameter]] = {}
    order = [(part, decay) for part in (("backbone", "head") if split else ("",)) for decay in (True, False)]
    for key in order:
        buckets[key] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        part = ("backbone" if name.startswith(BACKBONE_PREFIXES) else "head") if split else ""
        decay = not (no_decay_norm_bias and p.ndim <= 1)
        buckets[(part, decay)].append(p)
    groups, names, mults = [], [], []
    for (part, decay), params in buckets.items():
        if not params:
            continue
        groups.append({"params": params, "weight_decay": weight_decay if decay else 0.0})
        names.append((f"{part}_" if part else "") + ("decay" if decay else "no_decay"))
        mults.append(backbone_lr_mult if part == "backbone" else 1.0)
    return groups, names, mults


def build_optimizer(model: nn.Module, optim_cfg) -> tuple[torch.optim.Optimizer, list[str], list[float]]:
    """SGD with momentum or AdamW over :func:`param_groups`; initial lrs are ``lr * mult`` per group.

    Args:
        model: the (unwrapped) network.
        optim_cfg: a :class:`segbench.config.OptimConfig`.

    Returns:
        ``(optimizer, group_names, lr_mults)``.

    Raises:
        UserError: unknown ``optim.name``, negative lr, multiplier or clip norm, or ``betas`` not two values.
    """
    if optim_cfg.name not in OPTIMIZERS:
        raise UserError(f"optim.name: expected one of {', '.join(OPTIMIZERS)}, got {optim_cfg.name!r}")
    for key in ("lr", "backbone_lr_mult", "grad_clip_norm", "weight_decay"):
        if getattr(optim_cfg, key) < 0:
            raise UserError(f"optim.{key}: must be >= 0, got {getattr(optim_cfg, key)}")
    groups, names, mults = param_groups(
        model, optim_cfg.weight_decay, optim_cfg.backbone_lr_mult, optim_cfg.no_decay_norm_bias
    )
    if not groups:
        raise UserError("the model has no trainable parameters")
    for g, m in zip(groups, mults):
        g["lr"] = optim_cfg.lr * m
    if optim_cfg.name == "sgd":
        optimizer = torch.optim.SGD(groups, lr=optim_cfg.lr, momentum=optim_cfg.momentum)
    else:
        if len(optim_cfg.betas) != 2:
            raise UserError(f"optim.betas: expected two values [beta1, beta2], got {optim_cfg.betas}")
        optimizer = torch.optim.AdamW(groups, lr=optim_cfg.lr, betas=tuple(optim_cfg.betas))
    return optimizer, names, mults
