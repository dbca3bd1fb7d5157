"""segbench.models.encoders: the output-stride rule (one pure function) and get_encoder."""

import pytest
import torch

from segbench.errors import UserError
from segbench.models.encoders import ENCODERS, get_encoder, stride_dilation
from segbench.models.encoders.resnet import ResNetEncoder


def test_stride_dilation_keeps_the_rate_before_on_the_block_that_gives_up_its_stride():
    assert stride_dilation([2, 1, 2, 1], 8, start_stride=4) == [(2, 1), (1, 1), (1, 1), (1, 2)]
    assert stride_dilation([2, 1, 2, 1], 8, start_stride=4, dilate_first=True) == [(2, 1), (1, 1), (1, 2), (1, 2)]


@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_stride_dilation_reaches_the_output_stride(output_stride):
    strides = [1, 2, 1, 2, 1, 2, 1, 2, 1]  # total stride 2 * 16 = 32
    plan = stride_dilation(strides, output_stride)
    total = 2
    for stride, _ in plan:
        total *= stride
    assert total == output_stride
    rates = [rate for _, rate in plan]
    assert rates == sorted(rates) and rates[-1] == 32 // output_stride


def test_stride_dilation_at_32_changes_nothing():
    assert stride_dilation([2, 1, 2], 32) == [(2, 1), (1, 1), (2, 1)]


@pytest.mark.parametrize("bad", [4, 12, 64])
def test_stride_dilation_rejects_other_output_strides(bad):
    with pytest.raises(UserError, match="output_stride must be 8, 16 or 32"):
        stride_dilation([2, 2], bad)


def test_resnet_dilation_matches_torchvision_replace_stride_with_dilation():
    enc = ResNetEncoder(50, 8)
    assert enc.layer3[0].conv2.dilation == (1, 1) and enc.layer3[1].conv2.dilation == (2, 2)
    assert enc.layer4[0].conv2.dilation == (2, 2) and enc.layer4[1].conv2.dilation == (4, 4)


@pytest.mark.parametrize("depth", [18, 34])
def test_resnet_basic_blocks_take_output_stride_32_only(depth):
    enc = ResNetEncoder(depth, 32, with_stem=True)
    assert enc.out_channels == (64, 64, 128, 256, 512) and enc.reductions == (2, 4, 8, 16, 32)
    feats = enc.eval()(torch.randn(1, 3, 64, 64))
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4, 2]
    with pytest.raises(UserError, match="output_stride must be 32"):
        ResNetEncoder(depth, 16)


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_get_encoder_builds_every_encoder(name):
    with torch.device("meta"):
        enc = get_encoder(name)
    assert len(enc.out_channels) == len(enc.reductions)


def test_get_encoder_errors_name_the_problem():
    with pytest.raises(UserError, match="unknown encoder 'resnet7'; known: resnet18"):
        get_encoder("resnet7")
    with pytest.raises(UserError, match="vgg16: output_stride must be 32"):
        get_encoder("vgg16", output_stride=16)
    with pytest.raises(UserError, match="no ImageNet weights"):
        get_encoder("xception65", weights_backbone="imagenet")
    with pytest.raises(UserError, match="weights_backbone must be None"):
        get_encoder("resnet18", weights_backbone="coco")
