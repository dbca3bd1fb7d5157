"""segbench's own MobileNetV3-Large encoder, LR-ASPP, DeepLabv3 and DeepLabv3+ on it: equal outputs to
torchvision's with converted weights (random weights, eval mode), output stride, ASPP rates, the shipped
CamVid LR-ASPP file, ImageNet backbone loading, parameter counts and key names."""

import urllib.error

import pytest
import torch
import torchvision
from safetensors.torch import load_file
from torchvision.models import segmentation as tvseg

from segbench.errors import UserError
from segbench.models import build_model, load_model
from segbench.models.convert import convert_torchvision_lraspp_state as convert_lraspp
from segbench.models.convert import convert_torchvision_mobilenet_v3_state
from segbench.models.encoders.mobilenet_v3 import MobileNetV3LargeEncoder
from segbench.models.weights import TORCHVISION_WEIGHTS, to_segbench_layout, zoo_tags

NUM_CLASSES = 5
CONVERTERS = {
    "lraspp_mobilenet_v3_large": convert_lraspp,
    "deeplabv3_mobilenet_v3_large": convert_torchvision_mobilenet_v3_state,
}


def _randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random non-trivial batch-norm statistics and affine parameters (the defaults would hide a misplaced BN)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model


def _torchvision(name: str, aux_loss: bool, num_classes: int = NUM_CLASSES, seed: int = 1) -> torch.nn.Module:
    torch.manual_seed(seed)
    kwargs = {"weights": None, "weights_backbone": None, "num_classes": num_classes}
    if aux_loss:
        kwargs["aux_loss"] = True
    return _randomise(getattr(tvseg, name)(**kwargs), seed).eval()


def _input(size=(65, 97)) -> torch.Tensor:
    return torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0))


def _close(a, b):
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("output_stride, dilated", [(16, True), (32, False)])
def test_encoder_computes_torchvision_features(output_stride, dilated):
    tv = _randomise(torchvision.models.mobilenet_v3_large(weights=None, dilated=dilated), 3).features.eval()
    encoder = MobileNetV3LargeEncoder(output_stride).eval()
    encoder.features.load_state_dict(tv.state_dict(), strict=True)
    x = _input()
    with torch.no_grad():
        low, mid, high = encoder(x)
        _close(low, tv[:4](x))
        _close(mid, tv[:5](x))
        _close(high, tv(x))
    assert (low.shape[1], mid.shape[1], high.shape[1]) == encoder.out_channels == (24, 40, 960)


@pytest.mark.parametrize(
    "name, aux_loss",
    [
        ("lraspp_mobilenet_v3_large", False),
        ("deeplabv3_mobilenet_v3_large", True),
        ("deeplabv3_mobilenet_v3_large", False),
    ],
)
def test_converted_torchvision_weights_give_torchvision_outputs(name, aux_loss):
    tv = _torchvision(name, aux_loss)
    torch.manual_seed(2)  # different random weights, so equal outputs come from the loaded state
    ours = build_model(name, num_classes=NUM_CLASSES, aux_loss=aux_loss).eval()
    state = tv.state_dict()
    converted = CONVERTERS[name](state)
    assert all(converted[k] is v for k, v in zip(converted, state.values()))  # renamed, values untouched
    ours.load_state_dict(converted, strict=True)
    x = _input()
    with torch.no_grad():
        ref = tv(x)
        plain = ours(x)
        logits, aux = ours(x, with_aux=True)
    assert plain.shape == (1, NUM_CLASSES, 65, 97)
    _close(plain, ref["out"])
    _close(logits, ref["out"])
    if aux_loss:
        _close(aux, ref["aux"])
    else:
        assert aux is None


@pytest.mark.parametrize(
    "name, aux_loss",
    [
        ("lraspp_mobilenet_v3_large", False),
        ("deeplabv3_mobilenet_v3_large", True),
        ("deeplabv3_mobilenet_v3_large", False),
    ],
)
def test_conversion_covers_every_key(name, aux_loss):
    with torch.device("meta"):
        tv = _torchvision(name, aux_loss, num_classes=21)
        ours = build_model(name, num_classes=21, aux_loss=aux_loss)
    converted = CONVERTERS[name](tv.state_dict())
    assert len(converted) == len(tv.state_dict())
    assert set(converted) == set(ours.state_dict())
    assert all(converted[k].shape == v.shape for k, v in ours.state_dict().items())
    # the dispatcher used by load_model picks the same converter, and leaves segbench's layout alone
    assert list(to_segbench_layout(name, tv.state_dict())) == list(converted)
    assert to_segbench_layout(name, ours.state_dict()).keys() == ours.state_dict().keys()


def test_state_dict_keys_snapshot():
    # Module names are permanent once weights exist.
    with torch.device("meta"):
        lraspp = build_model("lraspp_mobilenet_v3_large", num_classes=21).state_dict()
        deeplab = build_model("deeplabv3_mobilenet_v3_large", num_classes=21, aux_loss=True).state_dict()
    assert {k.split(".", 1)[0] for k in lraspp} == {"encoder", "decoder", "classifier"}
    assert {k for k in lraspp if not k.startswith("encoder.")} == {
        "decoder.cbr.0.weight", "decoder.cbr.1.weight", "decoder.cbr.1.bias", "decoder.cbr.1.running_mean",
        "decoder.cbr.1.running_var", "decoder.cbr.1.num_batches_tracked", "decoder.scale.1.weight",
        "classifier.low_classifier.weight", "classifier.low_classifier.bias",
        "classifier.high_classifier.weight", "classifier.high_classifier.bias",
    }  # fmt: skip
    assert {
        "encoder.features.0.0.weight",
        "encoder.features.1.block.0.0.weight",
        "encoder.features.4.block.2.fc1.weight",
        "encoder.features.15.block.3.1.running_var",
        "encoder.features.16.1.bias",
    } <= set(lraspp)
    assert {
        "decoder.aspp.branches.3.0.weight",
        "decoder.aspp.branches.4.conv.0.weight",
        "decoder.conv.1.running_mean",
        "classifier.weight",
        "aux_head.conv.0.weight",
        "aux_head.classifier.bias",
    } <= set(deeplab)
    assert len(lraspp) == 319 and len(deeplab) == 360  # as torchvision's


@pytest.mark.parametrize("output_stride, last, max_dilation", [(8, 8, 4), (16, 4, 2), (32, 2, 1)])
def test_output_stride_sets_the_encoder_strides(output_stride, last, max_dilation):
    encoder = MobileNetV3LargeEncoder(output_stride).eval()
    assert encoder.reductions == (4, 8, output_stride)
    with torch.no_grad():
        sizes = [tuple(f.shape[-2:]) for f in encoder(torch.randn(1, 3, 64, 64))]
    assert sizes == [(16, 16), (8, 8), (last, last)]
    convs = [m for m in encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert max(c.dilation[0] for c in convs) == max_dilation
    assert all(c.padding[0] == c.dilation[0] * (c.kernel_size[0] - 1) // 2 for c in convs)


def test_invalid_output_stride_is_a_user_error():
    with pytest.raises(UserError, match="output_stride"):
        MobileNetV3LargeEncoder(4)
    for name in ("lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", "deeplabv3plus_mobilenet_v3_large"):
        for bad in (4, 32, "16"):
            with pytest.raises(UserError, match="output_stride"):
                build_model(name, output_stride=bad)


def test_aspp_rates_default_to_torchvision_and_can_be_set():
    with torch.device("meta"):
        os16 = build_model("deeplabv3_mobilenet_v3_large")
        os8 = build_model("deeplabv3_mobilenet_v3_large", output_stride=8)
        paper = build_model("deeplabv3_mobilenet_v3_large", atrous_rates=(6, 12, 18))

    def dilations(model):
        return [b[0].dilation[0] for b in model.decoder.aspp.branches[1:4]]

    assert dilations(os16) == [12, 24, 36]  # torchvision's, which its coco_voc weights were trained with
    assert dilations(os8) == [24, 48, 72]
    assert dilations(paper) == [6, 12, 18]
    for bad in ((6, 12), (6, 12, 0), "6,12,18", (6.0, 12, 18)):
        with pytest.raises(UserError, match="atrous_rates"):
            build_model("deeplabv3_mobilenet_v3_large", atrous_rates=bad)


def test_output_stride_8_runs():
    torch.manual_seed(0)
    for name in ("lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large"):
        model = build_model(name, num_classes=3, output_stride=8).eval()
        with torch.no_grad():
            out = model(_input())
        assert out.shape == (1, 3, 65, 97) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", "fcn_resnet50",
                                  "deeplabv3_resnet101"])
def test_to_torchvision_state_inverts_the_converter(name):
    from segbench.models.convert import to_torchvision_state

    aux = {} if name.startswith("lraspp") else {"aux_loss": True}
    with torch.device("meta"):
        tv = getattr(tvseg, name)(weights=None, weights_backbone=None, num_classes=11, **aux)
    state = tv.state_dict()
    back = to_torchvision_state(name, to_segbench_layout(name, state))
    assert list(back) == list(state)
    with pytest.raises(ValueError, match="unet_resnet18"):
        to_torchvision_state("unet_resnet18", {})


def test_shipped_camvid_lraspp_equals_torchvision_with_the_same_weights():
    # The zoo file keeps torchvision's key layout; it is converted on loading.
    path = zoo_tags()["lraspp_mobilenet_v3_large"]["camvid"]
    raw = {k: v.float() for k, v in load_file(str(path)).items()}
    assert any(k.startswith("backbone.") for k in raw)
    loaded = load_model("lraspp_mobilenet_v3_large.camvid")
    assert loaded.info.num_classes == 11
    tv = tvseg.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=11).eval()
    tv.load_state_dict(raw, strict=True)
    x = _input((72, 96))
    with torch.no_grad():
        _close(loaded.model.eval()(x), tv(x)["out"])


def test_torchvision_layout_file_and_coco_voc_tag_load(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("must not download when the file is present")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    tv = _torchvision("deeplabv3_mobilenet_v3_large", aux_loss=True, num_classes=21, seed=4)
    file_name = TORCHVISION_WEIGHTS["deeplabv3_mobilenet_v3_large"].url.rsplit("/", 1)[-1]
    (tmp_path / "checkpoints").mkdir()
    torch.save(tv.state_dict(), tmp_path / "checkpoints" / file_name)
    x = _input()
    with torch.no_grad():
        ref = tv(x)
    loaded = load_model("deeplabv3_mobilenet_v3_large.coco_voc")
    assert loaded.info.name == "deeplabv3_mobilenet_v3_large.coco_voc" and loaded.info.num_classes == 21
    with torch.no_grad():
        logits, aux = loaded.model.eval()(x, with_aux=True)
    _close(logits, ref["out"])
    _close(aux, ref["aux"])
    # a raw file in torchvision's layout (as segbench wrote before its own implementation existed)
    path = tmp_path / "old_layout.pth"
    torch.save(tv.state_dict(), path)
    again = load_model("deeplabv3_mobilenet_v3_large", weights=str(path))
    with torch.no_grad():
        _close(again.model.eval()(x), ref["out"])


def test_imagenet_backbone_lands_in_encoder(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    file_name = torchvision.models.MobileNet_V3_Large_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    with pytest.raises(UserError, match=file_name):
        build_model("lraspp_mobilenet_v3_large", weights_backbone="imagenet")
    state = _randomise(torchvision.models.mobilenet_v3_large(weights=None), 5).state_dict()
    (tmp_path / "checkpoints").mkdir(exist_ok=True)
    torch.save(state, tmp_path / "checkpoints" / file_name)
    for name in ("lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", "deeplabv3plus_mobilenet_v3_large"):
        model = build_model(name, num_classes=3, weights_backbone="imagenet")
        got = model.encoder.state_dict()
        assert set(got) == {k for k in state if k.startswith("features.")}
        assert all(torch.equal(v, state[k]) for k, v in got.items())
    with pytest.raises(UserError, match="imagenet"):
        build_model("lraspp_mobilenet_v3_large", weights_backbone="imagenet21k")


def test_deeplabv3plus_mobilenet_v3_large_structure():
    with torch.device("meta"):
        model = build_model("deeplabv3plus_mobilenet_v3_large", num_classes=NUM_CLASSES, aux_loss=True)
        low, mid, high = model.encoder(torch.empty(1, 3, 64, 96))
    dec = model.decoder
    proj = dec.low_level[0]
    assert (proj.in_channels, proj.out_channels, proj.kernel_size) == (24, 48, (1, 1))
    assert low.shape == (1, 24, 16, 24) and high.shape == (1, 960, 4, 6)  # low-level features at stride 4
    assert dec.aspp.branches[0][0].in_channels == 960 and dec.aspp.rates == (6, 12, 18)
    assert model.aux_index == 1 and model.aux_head.conv[0].in_channels == 40 == mid.shape[1]
    for block, ch in zip(dec.refine, (256 + 48, 256)):  # separable refinement (default)
        assert block[0][0].groups == ch and block[1][0].kernel_size == (1, 1)
    torch.manual_seed(0)
    model = build_model("deeplabv3plus_mobilenet_v3_large", num_classes=NUM_CLASSES, aux_loss=True).eval()
    with torch.no_grad():
        logits, aux = model(_input(), with_aux=True)
    assert logits.shape == aux.shape == (1, NUM_CLASSES, 65, 97)
    assert torch.isfinite(logits).all() and torch.isfinite(aux).all()


@pytest.mark.parametrize(
    "name, kwargs, count",
    [
        ("deeplabv3plus_mobilenet_v3_large", {}, 10_586_933),
        ("deeplabv3plus_mobilenet_v3_large", {"aux_loss": True}, 10_590_784),
        ("deeplabv3plus_mobilenet_v3_large", {"separable_aspp": True}, 4_720_373),
        ("deeplabv3plus_mobilenet_v3_large", {"separable": False}, 11_727_653),
        ("deeplabv3_mobilenet_v3_large", {}, 11_025_477),
        ("lraspp_mobilenet_v3_large", {}, 3_221_538),
    ],
)
def test_parameter_count_snapshot(name, kwargs, count):
    # at 21 classes; output_stride does not change the count (torchvision's published figures:
    # tests/models/test_torchvision_figures.py)
    with torch.device("meta"):
        model = build_model(name, num_classes=21, **kwargs)
        os8 = build_model(name, num_classes=21, output_stride=8, **kwargs)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in os8.parameters()) == count
    assert sum(p.numel() for p in model.encoder.parameters()) == 2_971_952
