"""segbench's own FCN and DeepLabv3 on dilated ResNets against torchvision's: converted weights give equal
outputs, output stride, ASPP rates, loading torchvision files, parameter counts and key names.

Numeric comparisons use ResNet-50 at 65 x 97; ResNet-101 is built on the meta device (counts only)."""

import urllib.error

import pytest
import torch
import torchvision
from torchvision.models import segmentation as tvseg

from segbench.errors import UserError
from segbench.models import build_model, load_model
from segbench.models.convert import convert_torchvision_state
from segbench.models.deeplabv3 import ASPP
from segbench.models.encoders.resnet import ResNetEncoder
from segbench.models.weights import TORCHVISION_WEIGHTS

NAMES = ["fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101"]
NUM_CLASSES = 5


def _randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights everywhere, including non-trivial batch-norm statistics and affine parameters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            elif isinstance(m, torch.nn.Conv2d) and m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model


def _torchvision(name: str, num_classes: int = NUM_CLASSES, aux_loss: bool = True, seed: int = 1) -> torch.nn.Module:
    torch.manual_seed(seed)
    tv = getattr(tvseg, name)(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=aux_loss)
    return _randomise(tv, seed).eval()


def _input(size=(65, 97)) -> torch.Tensor:
    return torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0))


def _close(a, b):
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["fcn_resnet50", "deeplabv3_resnet50"])
def test_converted_torchvision_weights_give_torchvision_outputs(name):
    tv = _torchvision(name)
    torch.manual_seed(2)  # different random weights, so equal outputs come from the loaded state
    ours = build_model(name, num_classes=NUM_CLASSES, aux_loss=True).eval()
    ours.load_state_dict(convert_torchvision_state(tv.state_dict()), strict=True)
    x = _input()
    with torch.no_grad():
        ref = tv(x)
        plain = ours(x)
        logits, aux = ours(x, with_aux=True)
    assert logits.shape == aux.shape == (1, NUM_CLASSES, 65, 97)
    _close(plain, ref["out"])
    _close(logits, ref["out"])
    _close(aux, ref["aux"])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("aux_loss", [False, True])
def test_conversion_covers_every_key_and_counts_match(name, aux_loss):
    with torch.device("meta"):
        tv = getattr(tvseg, name)(weights=None, weights_backbone=None, num_classes=21, aux_loss=aux_loss)
        ours = build_model(name, num_classes=21, aux_loss=aux_loss)
    tv_state = tv.state_dict()
    converted = convert_torchvision_state(tv_state)
    assert len(converted) == len(tv_state)
    assert set(converted) == set(ours.state_dict())
    assert all(converted[k].shape == v.shape for k, v in ours.state_dict().items())
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in tv.parameters())
    if aux_loss:
        assert sum(p.numel() for p in ours.parameters()) == TORCHVISION_WEIGHTS[name].meta["num_params"]


@pytest.mark.parametrize("output_stride, sizes", [(8, [16, 8, 8, 8]), (16, [16, 8, 4, 4])])
def test_output_stride_sets_the_encoder_strides(output_stride, sizes):
    encoder = ResNetEncoder(50, output_stride).eval()
    assert encoder.reductions == (4, 8, min(16, output_stride), output_stride)
    assert encoder.out_channels == (256, 512, 1024, 2048)
    with torch.no_grad():
        features = encoder(torch.randn(1, 3, 64, 64))
    assert [f.shape[-1] for f in features] == sizes and [f.shape[-2] for f in features] == sizes
    assert [f.shape[1] for f in features] == list(encoder.out_channels)
    assert [64 // r for r in encoder.reductions] == sizes


def test_output_stride_32_is_plain_resnet():
    with torch.device("meta"):
        encoder = ResNetEncoder(50, 32)
        features = encoder(torch.empty(1, 3, 64, 64))
    assert encoder.reductions == (4, 8, 16, 32)
    assert [f.shape[-1] for f in features] == [16, 8, 4, 2]


@pytest.mark.parametrize("name", ["deeplabv3_resnet50", "fcn_resnet101"])
def test_output_stride_16_model_runs(name):
    with torch.device("meta"):
        model = build_model(name, num_classes=3, aux_loss=True, output_stride=16).eval()
        logits, aux = model(torch.empty(1, 3, 65, 97), with_aux=True)
    assert model.encoder.reductions == (4, 8, 16, 16)
    assert logits.shape == aux.shape == (1, 3, 65, 97)


def test_aspp_rates_double_at_output_stride_8():
    with torch.device("meta"):
        os8 = build_model("deeplabv3_resnet50", output_stride=8)
        os16 = build_model("deeplabv3_resnet50", output_stride=16)

    def dilations(model):
        aspp = model.decoder.aspp
        assert isinstance(aspp, ASPP)
        return [b[0].dilation[0] for b in aspp.branches[1:4]], aspp.rates

    assert dilations(os8) == ([12, 24, 36], (12, 24, 36))
    assert dilations(os16) == ([6, 12, 18], (6, 12, 18))
    branches = os8.decoder.aspp.branches
    assert branches[0][0].kernel_size == (1, 1) and all(b[0].padding == b[0].dilation for b in branches[1:4])
    assert len(branches) == 5  # 1x1, three atrous, image pooling


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("output_stride", [4, 32, "8"])
def test_invalid_output_stride_is_a_user_error(name, output_stride):
    with pytest.raises(UserError, match="output_stride"):
        build_model(name, output_stride=output_stride)


def test_state_dict_keys_snapshot():
    # Module names are permanent once weights exist.
    with torch.device("meta"):
        deeplab = build_model("deeplabv3_resnet50", num_classes=21, aux_loss=True).state_dict()
        fcn = build_model("fcn_resnet50", num_classes=21, aux_loss=True).state_dict()
    for keys in (deeplab, fcn):
        assert {k.split(".", 1)[0] for k in keys} == {"encoder", "decoder", "classifier", "aux_head"}
        assert {"encoder.conv1.weight", "encoder.layer4.2.bn3.running_var", "classifier.weight", "classifier.bias",
                "aux_head.conv.0.weight", "aux_head.conv.1.running_mean", "aux_head.classifier.weight"} <= set(keys)
    assert {"decoder.aspp.branches.0.0.weight", "decoder.aspp.branches.3.1.bias", "decoder.aspp.branches.4.conv.0.weight",
            "decoder.aspp.project.0.weight", "decoder.aspp.project.1.running_var", "decoder.conv.0.weight",
            "decoder.conv.1.weight"} <= set(deeplab)
    assert {k for k in fcn if k.startswith("decoder.")} == {
        "decoder.conv.0.weight", "decoder.conv.1.weight", "decoder.conv.1.bias", "decoder.conv.1.running_mean",
        "decoder.conv.1.running_var", "decoder.conv.1.num_batches_tracked"}  # fmt: skip
    assert len(deeplab) == 370 and len(fcn) == 334  # as torchvision's


def test_torchvision_file_loads_through_load_model(tmp_path):
    tv = _torchvision("fcn_resnet50", aux_loss=False, seed=3)
    path = tmp_path / "fcn_tv.pth"
    torch.save(tv.state_dict(), path)
    loaded = load_model("fcn_resnet50", weights=str(path))
    assert loaded.info.num_classes == NUM_CLASSES
    assert loaded.model.aux_head is None
    x = _input()
    with torch.no_grad():
        _close(loaded.model.eval()(x), tv(x)["out"])
    # a file in segbench's layout loads unconverted
    own = tmp_path / "fcn_own.pth"
    torch.save(loaded.model.state_dict(), own)
    again = load_model("fcn_resnet50", weights=str(own))
    with torch.no_grad():
        _close(again.model.eval()(x), tv(x)["out"])


def test_coco_voc_tag_converts_the_cached_torchvision_file(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("must not download when the file is present")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    file_name = TORCHVISION_WEIGHTS["deeplabv3_resnet50"].url.rsplit("/", 1)[-1]
    tv = _torchvision("deeplabv3_resnet50", num_classes=21, aux_loss=True, seed=4)
    (tmp_path / "checkpoints").mkdir()
    torch.save(tv.state_dict(), tmp_path / "checkpoints" / file_name)
    loaded = load_model("deeplabv3_resnet50.coco_voc")
    assert loaded.info.name == "deeplabv3_resnet50.coco_voc" and loaded.info.num_classes == 21
    assert loaded.model.aux_head is not None
    x = _input()
    with torch.no_grad():
        ref = tv(x)
        logits, aux = loaded.model.eval()(x, with_aux=True)
    _close(logits, ref["out"])
    _close(aux, ref["aux"])


def test_imagenet_backbone_lands_in_encoder(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(UserError, match="resnet50-0676ba61.pth"):
        build_model("fcn_resnet50", weights_backbone="imagenet")
    torch.manual_seed(6)
    state = torchvision.models.resnet50(weights=None).state_dict()
    (tmp_path / "checkpoints").mkdir(exist_ok=True)  # the failed attempt above made it
    torch.save(state, tmp_path / "checkpoints" / "resnet50-0676ba61.pth")
    model = build_model("deeplabv3_resnet50", num_classes=3, weights_backbone="imagenet")
    got = model.encoder.state_dict()
    assert set(got) == {k for k in state if not k.startswith("fc.")}
    assert all(torch.equal(v, state[k]) for k, v in got.items())
    with pytest.raises(UserError, match="imagenet"):
        build_model("deeplabv3_resnet50", weights_backbone="imagenet21k")


@pytest.mark.parametrize("aux_loss, kept", [(False, [3]), (True, [2, 3])])
@pytest.mark.parametrize("name", ["fcn_resnet50", "deeplabv3_resnet50"])
def test_encoder_returns_only_the_maps_the_heads_use(name, aux_loss, kept):
    with torch.device("meta"):
        model = build_model(name, num_classes=3, aux_loss=aux_loss).eval()
        features = model.encoder(torch.empty(1, 3, 64, 64))
        logits, aux = model(torch.empty(1, 3, 64, 64), with_aux=True)
    assert [i for i, f in enumerate(features) if f is not None] == kept
    assert logits.shape == (1, 3, 64, 64) and (aux is not None) == aux_loss
