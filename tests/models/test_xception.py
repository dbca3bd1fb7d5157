"""The modified aligned Xception-65 (arXiv 1802.02611, section 3.3) and DeepLabv3+ on it: layout (16 middle
blocks, no max pooling, BN + ReLU after every depthwise conv), shortcuts, low-level features at stride 4,
output stride, weights_backbone refusal, parameter counts and key names."""

import pytest
import torch
from torch import nn

from segbench.errors import UserError
from segbench.models import build_model
from segbench.models.encoders.xception import XceptionBlock, XceptionEncoder, XceptionSeparableConv

NAME = "deeplabv3plus_xception65"


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return XceptionEncoder(16).eval()


def test_layout_follows_the_paper(encoder):
    assert len(encoder.entry_flow) == 3 and len(encoder.middle_flow) == 16 and len(encoder.exit_flow) == 2
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in encoder.modules())
    widths = [
        [c.pointwise[0].out_channels for c in b.convs]
        for b in (*encoder.entry_flow, encoder.middle_flow[0], *encoder.exit_flow)
    ]
    assert widths == [[128] * 3, [256] * 3, [728] * 3, [728] * 3, [728, 1024, 1024], [1536, 1536, 2048]]
    assert [b.shortcut_type for b in (*encoder.entry_flow, *encoder.middle_flow, *encoder.exit_flow)] == (
        ["conv"] * 3 + ["sum"] * 16 + ["conv", "none"]
    )
    stem = [m for m in encoder.stem.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in stem] == [(32, (3, 3), (2, 2)), (64, (3, 3), (1, 1))]
    seps = [m for m in encoder.modules() if isinstance(m, XceptionSeparableConv)]
    assert len(seps) == 3 * (3 + 16 + 2)
    for sep in seps:  # depthwise 3x3 -> BN -> ReLU -> pointwise 1x1 -> BN
        dw, bn, act = sep.depthwise
        assert dw.groups == dw.in_channels == dw.out_channels and dw.kernel_size == (3, 3)
        assert isinstance(bn, nn.BatchNorm2d) and isinstance(act, nn.ReLU)
        assert sep.pointwise[0].kernel_size == (1, 1) and isinstance(sep.pointwise[1], nn.BatchNorm2d)
    # the last block's ReLUs come after its convs, the others' before
    assert all(isinstance(c.relu_in, nn.Identity) and len(c.pointwise) == 3 for c in encoder.exit_flow[1].convs)
    assert all(isinstance(c.relu_in, nn.ReLU) and len(c.pointwise) == 2 for c in encoder.middle_flow[0].convs)


def test_downsampling_is_by_strided_separable_convs():
    with torch.device("meta"):
        encoder = XceptionEncoder(32)
    strided = [m for m in encoder.modules() if isinstance(m, nn.Conv2d) and m.stride == (2, 2)]
    depthwise = [c for c in strided if c.groups > 1]
    shortcuts = [c for c in strided if c.kernel_size == (1, 1)]
    # stem conv, four strided blocks (entry x3, exit x1), each with a strided depthwise conv and 1x1 shortcut
    assert len(strided) == 1 + 4 + 4 and len(depthwise) == 4 and len(shortcuts) == 4
    assert all(c.kernel_size == (3, 3) for c in depthwise)


@pytest.mark.parametrize("output_stride, high, max_dilation", [(8, (8, 12), 4), (16, (4, 6), 2), (32, (2, 3), 1)])
def test_output_stride_sets_the_encoder_strides(output_stride, high, max_dilation):
    with torch.device("meta"):
        encoder = XceptionEncoder(output_stride)
        low, last = encoder(torch.empty(1, 3, 64, 96))
    assert encoder.reductions == (4, output_stride) and encoder.out_channels == (256, 2048)
    assert low.shape == (1, 256, 16, 24)  # low-level features at stride 4
    assert last.shape == (1, 2048, *high)
    convs = [m for m in encoder.modules() if isinstance(m, nn.Conv2d)]
    assert max(c.dilation[0] for c in convs) == max_dilation
    assert all(c.padding[0] == c.dilation[0] * (c.kernel_size[0] - 1) // 2 for c in convs)


def test_output_stride_16_dilates_only_the_exit_flow():
    encoder = XceptionEncoder(16)

    def rates(block):
        return {c.depthwise[0].dilation[0] for c in block.convs}

    assert [rates(b) for b in encoder.entry_flow] == [{1}, {1}, {1}]
    assert all(rates(b) == {1} for b in encoder.middle_flow)
    # the block that gives up its stride keeps the rate before it, later blocks are dilated
    assert [rates(b) for b in encoder.exit_flow] == [{1}, {2}]
    assert encoder.exit_flow[0].convs[2].depthwise[0].stride == (1, 1)


def test_shortcuts_add_the_unrectified_input():
    torch.manual_seed(1)
    x = torch.randn(1, 728, 5, 7)  # negative values: a ReLU before the shortcut would change them
    middle = XceptionBlock(728, (728, 728, 728), shortcut="sum").eval()
    entry = XceptionBlock(256, (728, 728, 728), stride=2, shortcut="conv").eval()
    for block in (middle, entry):
        last_bn = block.convs[2].pointwise[1]
        nn.init.zeros_(last_bn.weight)  # the residual branch now outputs zeros
        nn.init.zeros_(last_bn.bias)
    with torch.no_grad():
        torch.testing.assert_close(middle(x), x)
        y = torch.randn(1, 256, 9, 13)
        torch.testing.assert_close(entry(y), entry.shortcut(y))
        assert entry(y).shape == (1, 728, 5, 7)


def test_forward_gives_finite_logits_and_low_level_features_at_stride_4():
    torch.manual_seed(0)
    model = build_model(NAME, num_classes=3).eval()
    assert model.decoder.low_level[0].in_channels == 256 and model.decoder.aspp.branches[0][0].in_channels == 2048
    with torch.no_grad():
        out = model(torch.randn(1, 3, 65, 97))
    assert out.shape == (1, 3, 65, 97) and torch.isfinite(out).all()


def test_separable_aspp_and_decoder_by_default():
    with torch.device("meta"):
        model = build_model(NAME)
        dense = build_model(NAME, separable=False, separable_aspp=False)
    aspp = model.decoder.aspp
    for branch, rate in zip(aspp.branches[1:4], (6, 12, 18)):
        dw = branch[0][0]
        assert dw.groups == dw.in_channels == 2048 and dw.dilation == (rate, rate)
    assert all(b[0].groups == 1 for b in dense.decoder.aspp.branches[1:4])
    assert all(b[0][0].groups > 1 for b in model.decoder.refine)
    assert all(b[0].groups == 1 for b in dense.decoder.refine)


def test_imagenet_weights_are_refused_with_a_clear_message():
    with pytest.raises(UserError, match="no ImageNet weights for the aligned Xception-65"):
        build_model(NAME, weights_backbone="imagenet")
    with pytest.raises(UserError, match="weights_backbone must be None"):
        build_model(NAME, weights_backbone="coco")
    with pytest.raises(UserError, match="no auxiliary head"):
        build_model(NAME, aux_loss=True)
    for bad in (4, 32, "16"):
        with pytest.raises(UserError, match="output_stride"):
            build_model(NAME, output_stride=bad)


@pytest.mark.parametrize("kwargs, count", [({}, 41_055_413), ({"separable_aspp": False}, 53_570_741)])
def test_parameter_count_snapshot(kwargs, count):
    # measured at 21 classes; output_stride does not change it
    with torch.device("meta"):
        model = build_model(NAME, num_classes=21, **kwargs)
        os8 = build_model(NAME, num_classes=21, output_stride=8, **kwargs)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in os8.parameters()) == count
    assert sum(p.numel() for p in model.encoder.parameters()) == 37_867_312


def test_state_dict_keys_snapshot():
    with torch.device("meta"):
        keys = build_model(NAME).state_dict()
    assert {k.split(".", 1)[0] for k in keys} == {"encoder", "decoder", "classifier"}
    assert {k.split(".")[1] for k in keys if k.startswith("encoder.")} == {
        "stem",
        "entry_flow",
        "middle_flow",
        "exit_flow",
    }
    assert {
        "encoder.stem.0.0.weight",
        "encoder.stem.1.1.running_var",
        "encoder.entry_flow.0.convs.0.depthwise.0.weight",
        "encoder.entry_flow.0.shortcut.0.weight",
        "encoder.entry_flow.2.shortcut.1.bias",
        "encoder.middle_flow.15.convs.2.pointwise.1.running_mean",
        "encoder.exit_flow.0.shortcut.0.weight",
        "encoder.exit_flow.1.convs.2.pointwise.0.weight",
        "decoder.low_level.0.weight",
        "decoder.aspp.branches.1.0.0.weight",
        "classifier.weight",
    } <= set(keys)
    assert not any(k.startswith(("encoder.exit_flow.1.shortcut", "encoder.middle_flow.0.shortcut")) for k in keys)
    assert len(keys) == 878  # 63 separable convs x 12, stem 12, 4 shortcuts x 6; decoder 84; classifier 2
