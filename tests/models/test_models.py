"""Every registered network: shapes at odd sizes, gradients, aux outputs, builder keywords and state_dict
key snapshots. (Equivalence with torchvision: tests/models/test_deeplabv3.py and tests/models/test_mobilenet_v3.py.)"""

import inspect

import pytest
import torch
from test_models_classic import NAMES as CLASSIC_NAMES  # their gradients are tested there

from segbench.errors import UserError
from segbench.models import SegmentationModel, build_model, list_models

NUM_CLASSES = 5
SEGBENCH_PREFIXES = {"encoder", "decoder", "classifier", "aux_head"}

# Every network outside test_models_classic.py, with aux_loss where it has an aux head; each train-mode
# backward takes under 3 s on one core.
GRAD_MODELS = {
    "fast_scnn": True,
    "lraspp_mobilenet_v3_large": False,
    "deeplabv3_mobilenet_v3_large": True,
    "fcn_resnet50": True,
    "fcn_resnet101": True,
    "deeplabv3_resnet50": True,
    "deeplabv3_resnet101": True,
    "deeplabv3plus_mobilenet_v2": False,
    "deeplabv3plus_mobilenet_v3_large": True,
    "deeplabv3plus_resnet50": True,
    "deeplabv3plus_resnet101": True,
    "deeplabv3plus_xception65": False,
}


def _prefixes(model: torch.nn.Module) -> set[str]:
    return {k.split(".", 1)[0] for k in model.state_dict()}


def test_registry_holds_the_documented_models():
    assert set(list_models()) >= {
        "fast_scnn", "fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101",
        "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large", "deeplabv3plus_mobilenet_v3_large",
        "deeplabv3plus_xception65",
    }  # fmt: skip
    assert list_models() == sorted(list_models())


def test_every_registered_model_has_a_gradient_test():
    assert set(list_models()) <= set(GRAD_MODELS) | set(CLASSIC_NAMES)


@pytest.mark.parametrize("name", list_models())
def test_odd_input_size_gives_finite_logits_of_input_size(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=NUM_CLASSES).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 65, 97))
    assert isinstance(out, torch.Tensor)  # a tensor, never a dict
    assert out.shape == (1, NUM_CLASSES, 65, 97)
    assert torch.isfinite(out).all()
    # every network is segbench's own composition (torchvision's checkpoints load converted)
    assert isinstance(model, SegmentationModel)
    assert "encoder" in _prefixes(model) and _prefixes(model) <= SEGBENCH_PREFIXES


@pytest.mark.parametrize("name", list_models())
def test_builders_are_keyword_only_with_the_common_keywords(name):
    from segbench.models import MODELS

    params = inspect.signature(MODELS.get(name)).parameters
    assert {"num_classes", "aux_loss"} <= set(params)
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values())


@pytest.mark.parametrize("name", sorted(GRAD_MODELS))
def test_every_parameter_gets_a_gradient(name):
    aux_loss = GRAD_MODELS[name]
    torch.manual_seed(0)
    model = build_model(name, num_classes=NUM_CLASSES, aux_loss=aux_loss).train()
    x = torch.randn(2, 3, 64, 64)
    y = torch.randint(0, NUM_CLASSES, (2, 64, 64))
    logits, aux = model(x, with_aux=True)
    assert (aux is not None) == aux_loss
    loss = torch.nn.functional.cross_entropy(logits, y)
    if aux is not None:
        loss = loss + 0.4 * torch.nn.functional.cross_entropy(aux, y)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", ["fast_scnn", "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"])
def test_with_aux_returns_a_tuple(name):
    has_aux_head = name != "lraspp_mobilenet_v3_large"
    torch.manual_seed(0)
    model = build_model(name, num_classes=NUM_CLASSES, aux_loss=has_aux_head).eval()
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        plain = model(x)
        out = model(x, with_aux=True)
    assert isinstance(out, tuple) and len(out) == 2
    logits, aux = out
    torch.testing.assert_close(logits, plain)
    if has_aux_head:
        assert aux is not None and aux.shape == logits.shape == (1, NUM_CLASSES, 40, 56)
    else:
        assert aux is None
    # without aux_loss there is no aux head, and with_aux gives None
    no_aux = build_model(name, num_classes=NUM_CLASSES).eval()
    with torch.no_grad():
        assert no_aux(x, with_aux=True)[1] is None


def test_unknown_builder_keyword_lists_accepted_ones():
    with pytest.raises(UserError) as info:
        build_model("fast_scnn", num_classes=3, output_strid=8)
    msg = str(info.value)
    assert "output_strid" in msg
    assert "accepted: num_classes, aux_loss" in msg


def test_unknown_model_name_suggests():
    with pytest.raises(UserError, match="did you mean.*deeplabv3_resnet50"):
        build_model("deeplabv3_resnet5")


def test_lraspp_aux_loss_is_a_user_error():
    with pytest.raises(UserError, match="no auxiliary head"):
        build_model("lraspp_mobilenet_v3_large", aux_loss=True)


def test_fast_scnn_parameter_count_snapshot():
    # Snapshot at 19 classes (Cityscapes); the paper reports 1.11 M.
    model = build_model("fast_scnn", num_classes=19)
    assert sum(p.numel() for p in model.parameters()) == 1_137_795
    # each class adds a 128-channel 1x1 filter and a bias
    model21 = build_model("fast_scnn", num_classes=21)
    assert sum(p.numel() for p in model21.parameters()) == 1_137_795 + 2 * 129


def test_fast_scnn_within_one_percent_of_the_paper_without_batchnorm_affine():
    # The paper's 1.11 M (arXiv 1902.04502) is met when BatchNorm's scale and shift are not
    # counted (2.5% above it with them).
    model = build_model("fast_scnn", num_classes=19)
    bn = sum(p.numel() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters())
    without_bn = sum(p.numel() for p in model.parameters()) - bn
    assert without_bn == 1_114_115
    assert abs(without_bn / 1.11e6 - 1) < 0.01


def test_fast_scnn_state_dict_keys_snapshot():
    # Module names are permanent once weights exist: changing them breaks every saved file.
    keys = build_model("fast_scnn", num_classes=19).state_dict().keys()
    second_level = {".".join(k.split(".")[:2]) for k in keys}
    assert second_level == {
        "encoder.downsample", "encoder.global_features", "decoder.high", "decoder.low",
        "classifier.0", "classifier.1", "classifier.3",
    }  # fmt: skip
    assert len(keys) == 266
    assert "classifier.3.weight" in keys and "encoder.downsample.0.0.weight" in keys
    aux_keys = set(build_model("fast_scnn", num_classes=19, aux_loss=True).state_dict()) - set(keys)
    assert aux_keys and all(k.startswith("aux_head.") for k in aux_keys)
    assert {k.split(".", 1)[0] for k in aux_keys} == {"aux_head"}
    assert len(aux_keys) == 8
