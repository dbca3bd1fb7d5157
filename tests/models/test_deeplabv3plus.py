"""DeepLabv3+ on ResNet-50/101 and MobileNetV2: shapes, gradients, aux head, output stride, decoder
structure, parameter counts and ImageNet backbone loading.

Numeric runs use MobileNetV2 and ResNet-50 at small sizes; ResNet-101 is built on the meta device."""

import urllib.error

import pytest
import torch
import torchvision

from segbench.errors import UserError
from segbench.models import build_model, list_models
from segbench.models.deeplabv3 import ASPP
from segbench.models.deeplabv3plus import SeparableASPP
from segbench.models.encoders.mobilenet_v2 import MobileNetV2Encoder

NAMES = ["deeplabv3plus_mobilenet_v2", "deeplabv3plus_resnet50", "deeplabv3plus_resnet101"]
NUM_CLASSES = 5


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registered():
    assert set(NAMES) <= set(list_models())


@pytest.mark.parametrize("name", NAMES[:2])
def test_odd_input_gives_finite_logits(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=NUM_CLASSES).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 65, 97))
    assert out.shape == (1, NUM_CLASSES, 65, 97)
    assert torch.isfinite(out).all()


def test_resnet101_shape_on_meta():
    with torch.device("meta"):
        model = build_model("deeplabv3plus_resnet101", num_classes=NUM_CLASSES, aux_loss=True).eval()
        logits, aux = model(torch.empty(1, 3, 65, 97), with_aux=True)
    assert logits.shape == aux.shape == (1, NUM_CLASSES, 65, 97)


# Gradients for deeplabv3plus_mobilenet_v2 and deeplabv3plus_resnet50 (with aux): tests/models/test_models.py.


def test_with_aux_shapes():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 40, 56)
    model = build_model("deeplabv3plus_resnet50", num_classes=NUM_CLASSES, aux_loss=True).eval()
    assert model.aux_index == 2 and model.aux_head.conv[0].in_channels == 1024  # layer3
    with torch.no_grad():
        plain = model(x)
        logits, aux = model(x, with_aux=True)
    torch.testing.assert_close(logits, plain)
    assert logits.shape == aux.shape == (1, NUM_CLASSES, 40, 56)
    mobile = build_model("deeplabv3plus_mobilenet_v2", num_classes=NUM_CLASSES).eval()
    with torch.no_grad():
        logits, aux = mobile(x, with_aux=True)
    assert logits.shape == (1, NUM_CLASSES, 40, 56) and aux is None


def test_mobilenet_v2_aux_loss_is_a_user_error():
    with pytest.raises(UserError, match="no auxiliary head"):
        build_model("deeplabv3plus_mobilenet_v2", aux_loss=True)


@pytest.mark.parametrize("output_stride, last", [(8, 8), (16, 4)])
def test_mobilenet_v2_encoder_strides(output_stride, last):
    encoder = MobileNetV2Encoder(output_stride).eval()
    assert encoder.out_channels == (24, 320) and encoder.reductions == (4, output_stride)
    with torch.no_grad():
        low, high = encoder(torch.randn(1, 3, 64, 64))
    assert low.shape == (1, 24, 16, 16)
    assert high.shape == (1, 320, last, last)
    assert [64 // r for r in encoder.reductions] == [16, last]
    convs = [m for m in encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.padding[0] == c.dilation[0] * (c.kernel_size[0] - 1) // 2 for c in convs)
    assert max(c.dilation[0] for c in convs) == {8: 4, 16: 2}[output_stride]


def test_mobilenet_v2_output_stride_32_is_plain():
    encoder = MobileNetV2Encoder(32).eval()
    assert all(m.dilation == (1, 1) for m in encoder.modules() if isinstance(m, torch.nn.Conv2d))
    with torch.no_grad():
        assert encoder(torch.randn(1, 3, 64, 64))[1].shape[-2:] == (2, 2)


@pytest.mark.parametrize("name", NAMES[1:])
@pytest.mark.parametrize("output_stride, sizes", [(8, [16, 8, 8, 8]), (16, [16, 8, 4, 4])])
def test_resnet_encoder_strides(name, output_stride, sizes):
    with torch.device("meta"):
        model = build_model(name, output_stride=output_stride)
        assert model.encoder.out_indices == {0, 3}  # the decoder's low-level and high-level maps only
        model.encoder.out_indices = frozenset(range(4))
        features = model.encoder(torch.empty(1, 3, 64, 64))
    assert [f.shape[-1] for f in features] == sizes and [f.shape[-2] for f in features] == sizes
    assert model.encoder.reductions == (4, 8, min(16, output_stride), output_stride)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("output_stride, rates", [(8, (12, 24, 36)), (16, (6, 12, 18))])
def test_aspp_rates(name, output_stride, rates):
    with torch.device("meta"):
        model = build_model(name, output_stride=output_stride)
    assert model.decoder.aspp.rates == rates
    assert [b[0].dilation[0] for b in model.decoder.aspp.branches[1:4]] == list(rates)


@pytest.mark.parametrize("name", NAMES)
def test_decoder_structure(name):
    with torch.device("meta"):
        model = build_model(name, num_classes=NUM_CLASSES)
    dec = model.decoder
    low_in = 24 if name.endswith("mobilenet_v2") else 256
    proj = dec.low_level[0]
    assert (proj.in_channels, proj.out_channels, proj.kernel_size) == (low_in, 48, (1, 1))
    in_ch = 320 if name.endswith("mobilenet_v2") else 2048
    assert type(dec.aspp) is ASPP and dec.aspp.branches[0][0].in_channels == in_ch
    assert dec.aspp.project[0].out_channels == 256
    # separable=True (default): each refinement block is depthwise 3x3 (groups == channels) + pointwise 1x1
    for block, ch in zip(dec.refine, (256 + 48, 256)):
        dw, pw = block[0][0], block[1][0]
        assert dw.groups == dw.in_channels == dw.out_channels == ch and dw.kernel_size == (3, 3)
        assert pw.kernel_size == (1, 1) and pw.out_channels == 256
    assert model.classifier.in_channels == 256 and model.classifier.out_channels == NUM_CLASSES


def test_dense_refinement_and_separable_aspp():
    with torch.device("meta"):
        dense = build_model("deeplabv3plus_mobilenet_v2", separable=False)
        sep_aspp = build_model("deeplabv3plus_mobilenet_v2", separable_aspp=True)
    assert all(b[0].groups == 1 and b[0].kernel_size == (3, 3) for b in dense.decoder.refine)
    aspp = sep_aspp.decoder.aspp
    assert isinstance(aspp, SeparableASPP) and len(aspp.branches) == 5
    for branch, rate in zip(aspp.branches[1:4], (6, 12, 18)):
        dw = branch[0][0]
        assert dw.groups == dw.in_channels == 320 and dw.dilation == (rate, rate) and dw.padding == (rate, rate)


def test_separable_aspp_runs():
    torch.manual_seed(0)
    model = build_model("deeplabv3plus_mobilenet_v2", num_classes=3, separable_aspp=True, separable=False).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 65, 97))
    assert out.shape == (1, 3, 65, 97) and torch.isfinite(out).all()


@pytest.mark.parametrize(
    "name, kwargs, count",
    [
        ("deeplabv3plus_mobilenet_v2", {}, 4_675_333),
        ("deeplabv3plus_mobilenet_v2", {"separable": False}, 5_816_053),
        ("deeplabv3plus_mobilenet_v2", {"separable_aspp": True}, 2_719_813),
        ("deeplabv3plus_resnet50", {}, 39_211_461),
        ("deeplabv3plus_resnet50", {"aux_loss": True}, 41_576_666),
        ("deeplabv3plus_resnet50", {"separable_aspp": True}, 26_696_133),
        ("deeplabv3plus_resnet101", {}, 58_203_589),
        ("deeplabv3plus_resnet101", {"separable": False}, 59_344_309),
    ],
)
def test_parameter_count_snapshot(name, kwargs, count):
    # Snapshot at 21 classes (VOC); output_stride does not change the count.
    with torch.device("meta"):
        model = build_model(name, num_classes=21, **kwargs)
        os8 = build_model(name, num_classes=21, output_stride=8, **kwargs)
    assert _params(model) == _params(os8) == count


def test_state_dict_keys_snapshot():
    with torch.device("meta"):
        mobile = build_model("deeplabv3plus_mobilenet_v2").state_dict()
        resnet = build_model("deeplabv3plus_resnet50", aux_loss=True).state_dict()
    assert {k.split(".", 1)[0] for k in mobile} == {"encoder", "decoder", "classifier"}
    assert {k.split(".", 1)[0] for k in resnet} == {"encoder", "decoder", "classifier", "aux_head"}
    assert {"encoder.features.0.0.weight", "encoder.features.17.conv.3.running_var"} <= set(mobile)
    assert not any(k.startswith("encoder.features.18.") for k in mobile)
    assert {"decoder.aspp.branches.1.0.weight", "decoder.aspp.branches.4.conv.0.weight", "decoder.aspp.project.0.weight",
            "decoder.low_level.0.weight", "decoder.low_level.1.running_mean", "decoder.refine.0.0.0.weight",
            "decoder.refine.1.1.1.bias", "classifier.weight", "classifier.bias"} <= set(mobile)
    assert {"encoder.layer1.0.conv1.weight", "encoder.layer4.2.bn3.running_var", "aux_head.classifier.weight"} <= set(resnet)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("output_stride", [4, 32, "16"])
def test_invalid_output_stride_is_a_user_error(name, output_stride):
    with pytest.raises(UserError, match="output_stride"):
        build_model(name, output_stride=output_stride)


def test_invalid_weights_backbone_is_a_user_error():
    for name in NAMES:
        with pytest.raises(UserError, match="imagenet"):
            build_model(name, weights_backbone="imagenet21k")


def test_imagenet_mobilenet_v2_lands_in_encoder(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    file_name = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    with pytest.raises(UserError, match=file_name):
        build_model("deeplabv3plus_mobilenet_v2", weights_backbone="imagenet")
    torch.manual_seed(3)
    state = torchvision.models.mobilenet_v2(weights=None).state_dict()
    with torch.no_grad():  # non-default BN statistics, so a match is not a coincidence
        for k, v in state.items():
            if k.endswith("running_mean"):
                v.copy_(torch.randn_like(v))
    (tmp_path / "checkpoints").mkdir(exist_ok=True)
    torch.save(state, tmp_path / "checkpoints" / file_name)
    model = build_model("deeplabv3plus_mobilenet_v2", num_classes=3, weights_backbone="imagenet", output_stride=8)
    got = model.encoder.state_dict()
    assert set(got) == {k for k in state if k.startswith("features.") and not k.startswith("features.18.")}
    for k, v in got.items():
        assert torch.equal(v, state[k]), k


def test_mobilenet_v2_encoder_at_stride_32_computes_torchvision_features():
    torch.manual_seed(4)
    tv = torchvision.models.mobilenet_v2(weights=None).features.eval()
    encoder = MobileNetV2Encoder(32).eval()
    encoder.features.load_state_dict({k: v for k, v in tv.state_dict().items() if not k.startswith("18.")})
    x = torch.randn(1, 3, 65, 97)
    with torch.no_grad():
        low, high = encoder(x)
        torch.testing.assert_close(low, tv[:4](x))
        torch.testing.assert_close(high, tv[:-1](x))
