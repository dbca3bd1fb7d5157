"""segbench.engine.optim: backbone/head parameter groups, no decay on norm and bias, SGD/AdamW."""

import pytest
import torch
from torch import nn

from segbench.config import OptimConfig
from segbench.engine.optim import build_optimizer, param_groups
from segbench.errors import UserError
from segbench.models import build_model


class _TorchvisionNamed(nn.Module):
    """torchvision's layout: ``backbone.*`` and ``classifier.*``."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.classifier = nn.Conv2d(4, 2, 1)


def _ids(params):
    return {id(p) for p in params}


def test_default_groups_are_decay_then_no_decay():
    model = build_model("fast_scnn", num_classes=3)
    groups, names, mults = param_groups(model, weight_decay=4e-5)
    assert names == ["decay", "no_decay"] and mults == [1.0, 1.0]
    assert [g["weight_decay"] for g in groups] == [4e-5, 0.0]
    params = list(model.parameters())
    assert _ids(groups[0]["params"]) == _ids(p for p in params if p.ndim > 1)
    assert _ids(groups[1]["params"]) == _ids(p for p in params if p.ndim <= 1)  # norm weights and biases
    assert groups[1]["params"] and len(groups[0]["params"]) + len(groups[1]["params"]) == len(params)


def test_backbone_and_head_groups_with_their_learning_rates():
    model = build_model("fast_scnn", num_classes=3, aux_loss=True)
    cfg = OptimConfig(lr=1e-3, backbone_lr_mult=0.1, weight_decay=1e-4)
    optimizer, names, mults = build_optimizer(model, cfg)
    assert names == ["backbone_decay", "backbone_no_decay", "head_decay", "head_no_decay"]
    assert mults == [0.1, 0.1, 1.0, 1.0]
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([1e-4, 1e-4, 1e-3, 1e-3])
    named = dict(model.named_parameters())
    backbone = _ids(p for n, p in named.items() if n.startswith("encoder."))
    head = _ids(p for n, p in named.items() if not n.startswith("encoder."))
    groups = optimizer.param_groups
    assert _ids(groups[0]["params"]) | _ids(groups[1]["params"]) == backbone
    assert _ids(groups[2]["params"]) | _ids(groups[3]["params"]) == head  # decoder, classifier, aux head
    assert any(n.startswith("aux_head.") for n in named)


def test_torchvision_backbone_names_count_as_backbone():
    model = _TorchvisionNamed()
    groups, names, _ = param_groups(model, 1e-4, backbone_lr_mult=0.5)
    assert names == ["backbone_decay", "backbone_no_decay", "head_decay", "head_no_decay"]
    assert _ids(groups[0]["params"]) == {id(model.backbone[0].weight)}
    assert _ids(groups[1]["params"]) == _ids([model.backbone[0].bias, model.backbone[1].weight, model.backbone[1].bias])
    assert _ids(groups[3]["params"]) == {id(model.classifier.bias)}


def test_decay_on_everything_when_asked_and_frozen_parameters_left_out():
    model = _TorchvisionNamed()
    model.classifier.bias.requires_grad_(False)
    groups, names, _ = param_groups(model, 1e-4, no_decay_norm_bias=False)
    assert names == ["decay"] and groups[0]["weight_decay"] == 1e-4
    assert _ids(groups[0]["params"]) == _ids(p for p in model.parameters() if p.requires_grad)


def test_adamw_and_sgd():
    model = _TorchvisionNamed()
    adamw, _, _ = build_optimizer(model, OptimConfig(name="adamw", lr=3e-4, betas=[0.8, 0.99], weight_decay=0.05))
    assert isinstance(adamw, torch.optim.AdamW)
    assert adamw.param_groups[0]["betas"] == (0.8, 0.99) and adamw.param_groups[0]["weight_decay"] == 0.05
    assert adamw.param_groups[1]["weight_decay"] == 0.0
    sgd, _, _ = build_optimizer(model, OptimConfig(momentum=0.8))
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.8


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (OptimConfig(name="adam"), "optim.name: expected one of sgd, adamw"),
        (OptimConfig(lr=-1.0), "optim.lr: must be >= 0"),
        (OptimConfig(grad_clip_norm=-1.0), "optim.grad_clip_norm"),
        (OptimConfig(name="adamw", betas=[0.9]), "optim.betas: expected two values"),
    ],
)
def test_bad_optimiser_settings(cfg, message):
    with pytest.raises(UserError, match=message):
        build_optimizer(_TorchvisionNamed(), cfg)
