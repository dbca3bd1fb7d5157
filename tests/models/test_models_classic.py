"""U-Net (classic, ResNet-18/34) and FCN-32s/16s/8s on VGG-16: shapes, gradients, initialisation,
parameter counts and ImageNet backbone loading (with fake checkpoints; no network access)."""

import urllib.error

import pytest
import torch
import torch.nn.functional as F
import torchvision

from segbench.errors import UserError
from segbench.models import build_model, list_models
from segbench.models.base import match_size
from segbench.models.fcn import bilinear_kernel

NAMES = ["unet", "unet_resnet18", "unet_resnet34", "fcn32s_vgg16", "fcn16s_vgg16", "fcn8s_vgg16"]

# measured at num_classes=21 (fcn8s_vgg16: the paper's released FCN-8s has about 134 M)
NUM_PARAMS = {
    "unet": 31_038_933,
    "unet_resnet18": 14_328_421,
    "unet_resnet34": 24_436_581,
    "fcn32s_vgg16": 134_346_581,
    "fcn16s_vgg16": 134_364_410,
    "fcn8s_vgg16": 134_376_863,
}

# state_dict size and a few keys per model: module names are permanent once weights exist
STATE_KEYS = {
    "unet": (118, ["encoder.stages.0.0.0.weight", "encoder.stages.4.1.1.1.running_var", "decoder.stages.0.up.weight",
                   "decoder.stages.3.conv.1.1.bias", "classifier.weight"]),
    "unet_resnet18": (182, ["encoder.conv1.weight", "encoder.layer4.1.bn2.bias", "decoder.stages.0.conv.0.0.weight",
                            "decoder.stages.4.conv.1.1.num_batches_tracked", "classifier.bias"]),
    "unet_resnet34": (278, ["encoder.layer3.5.conv2.weight", "decoder.stages.4.conv.1.0.weight", "classifier.weight"]),
    "fcn32s_vgg16": (32, ["encoder.features.0.weight", "encoder.features.28.bias", "encoder.fc6.weight",
                          "encoder.fc7.bias", "decoder.score_fr.weight"]),
    "fcn16s_vgg16": (35, ["decoder.upscore2.weight", "decoder.score_pool4.weight"]),
    "fcn8s_vgg16": (38, ["decoder.upscore2.weight", "decoder.upscore_pool4.weight", "decoder.score_pool3.bias"]),
}


@pytest.fixture(scope="module")
def models():
    """Each network built once (21 classes), on demand."""
    cache = {}

    def get(name):
        if name not in cache:
            torch.manual_seed(0)
            cache[name] = build_model(name, num_classes=21)
        return cache[name]

    yield get
    cache.clear()


def test_registered():
    assert set(NAMES) <= set(list_models())


@pytest.mark.parametrize("name", NAMES)
def test_odd_size_logits(models, name):
    model = models(name).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 65, 97))
    assert out.shape == (1, 21, 65, 97)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_every_parameter_gets_a_gradient(models, name):
    model = models(name).train()
    if name.startswith("fcn"):
        # the score layers start at zero (as in the paper), which zeroes every gradient behind them
        for m in (model.decoder.score_fr, model.decoder.score_pool4, model.decoder.score_pool3):
            if m is not None:
                torch.nn.init.normal_(m.weight, std=0.01)
    model.zero_grad(set_to_none=True)
    model(torch.randn(2, 3, 64, 64)).logsumexp(1).mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname
    model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("name", NAMES)
def test_num_params_and_state_keys(models, name):
    model = models(name)
    assert sum(p.numel() for p in model.parameters()) == NUM_PARAMS[name]
    keys = list(model.state_dict())
    count, some = STATE_KEYS[name]
    assert len(keys) == count
    assert set(some) <= set(keys)
    assert {k.split(".")[0] for k in keys} <= {"encoder", "decoder", "classifier"}


def test_fcn8s_size_matches_the_paper():
    assert NUM_PARAMS["fcn8s_vgg16"] == pytest.approx(134e6, rel=0.01)


def test_bilinear_initialisation(models):
    decoder = models("fcn8s_vgg16").decoder
    x = torch.randn(2, 21, 5, 7)
    want = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    for up in (decoder.upscore2, decoder.upscore_pool4):
        assert up.bias is None and up.kernel_size == (4, 4) and up.stride == (2, 2)
        with torch.no_grad():
            got = up(x)
        assert got.shape == want.shape
        torch.testing.assert_close(got[..., 1:-1, 1:-1], want[..., 1:-1, 1:-1])
    k = bilinear_kernel(3, 4)
    assert k[0, 0, 1].tolist() == pytest.approx([0.1875, 0.5625, 0.5625, 0.1875])
    assert k[0, 1].abs().sum() == 0


def test_match_size_crops_and_pads():
    ref = torch.zeros(1, 1, 5, 4)
    x = torch.arange(36.0).reshape(1, 1, 6, 6)
    assert torch.equal(match_size(x, ref), x[..., :5, :4])
    y = match_size(torch.ones(1, 1, 4, 3), ref)
    assert y.shape == (1, 1, 5, 4) and y.sum() == 12 and y[..., :4, :3].eq(1).all()


@pytest.mark.parametrize("name", NAMES)
def test_no_aux_head(name):
    with pytest.raises(UserError, match="auxiliary"):
        build_model(name, aux_loss=True)


@pytest.mark.parametrize("name", ["unet_resnet18", "fcn8s_vgg16"])
def test_bad_weights_backbone(name):
    with pytest.raises(UserError, match="imagenet"):
        build_model(name, weights_backbone="imagenet21k")


def test_unet_has_no_backbone_weights():
    with pytest.raises(UserError, match="accepted"):
        build_model("unet", weights_backbone="imagenet")


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """torch's hub cache in tmp_path, and no network: a download raises URLError."""

    def offline(url, dst, *args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    (tmp_path / "checkpoints").mkdir()
    return tmp_path / "checkpoints"


@pytest.mark.parametrize(
    "name, file",
    [("unet_resnet18", "resnet18-f37072fd.pth"), ("unet_resnet34", "resnet34-b627a593.pth"),
     ("fcn32s_vgg16", "vgg16-397923af.pth"), ("fcn8s_vgg16", "vgg16-397923af.pth")],
)
def test_imagenet_offline_says_where_to_put_the_file(hub, name, file):
    with pytest.raises(UserError) as err:
        build_model(name, weights_backbone="imagenet")
    assert file in str(err.value)
    assert str(hub / file) in str(err.value)


def test_imagenet_resnet18_lands_in_encoder(hub):
    torch.manual_seed(1)
    state = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(state, hub / "resnet18-f37072fd.pth")
    model = build_model("unet_resnet18", num_classes=5, weights_backbone="imagenet")
    got = model.encoder.state_dict()
    assert set(got) == {k for k in state if not k.startswith("fc.")}
    for k, v in got.items():
        assert torch.equal(v, state[k]), k


def test_imagenet_vgg16_lands_in_encoder(hub):
    torch.manual_seed(2)
    state = torchvision.models.vgg16(weights=None).state_dict()
    torch.save(state, hub / "vgg16-397923af.pth")
    model = build_model("fcn32s_vgg16", num_classes=3, weights_backbone="imagenet")
    enc = model.encoder
    for k, v in enc.features.state_dict().items():
        assert torch.equal(v, state[f"features.{k}"]), k
    assert torch.equal(enc.fc6.weight, state["classifier.0.weight"].reshape(4096, 512, 7, 7))
    assert torch.equal(enc.fc6.bias, state["classifier.0.bias"])
    assert torch.equal(enc.fc7.weight[:, :, 0, 0], state["classifier.3.weight"])
    assert torch.equal(enc.fc7.bias, state["classifier.3.bias"])
    # fc6 as a convolution computes torchvision's classifier.0 on a 7x7 pool5 map (centre output)
    pool5 = torch.randn(1, 512, 7, 7)
    with torch.no_grad():
        conv = enc.fc6(pool5)[0, :, 3, 3]
        linear = F.linear(pool5.flatten(1), state["classifier.0.weight"], state["classifier.0.bias"])[0]
    torch.testing.assert_close(conv, linear, rtol=1e-4, atol=1e-4)
