"""segbench.models.layers: ConvBNAct, SeparableConv, and the exportable adaptive average pooling."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from segbench.models import layers
from segbench.models.convert import rename_prefixes
from segbench.models.layers import AdaptiveAvgPool2d, ConvBNAct, SeparableConv, adaptive_avg_pool2d


def test_conv_bn_act_names_and_optional_activation():
    assert [type(m) for m in ConvBNAct(3, 8)] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    assert [type(m) for m in ConvBNAct(3, 8, act=None)] == [nn.Conv2d, nn.BatchNorm2d]
    block = ConvBNAct(4, 4, 3, dilation=2, act=nn.Hardswish, bn_eps=1e-3)
    assert block[0].padding == (2, 2) and block[1].eps == 1e-3 and isinstance(block[2], nn.Hardswish)


def test_separable_conv_layout():
    sep = SeparableConv(8, 16, 3, stride=2, dilation=1, pointwise_act=None)
    assert sep[0][0].groups == 8 and sep[0][0].stride == (2, 2) and len(sep[0]) == 3
    assert sep[1][0].kernel_size == (1, 1) and len(sep[1]) == 2
    assert sep(torch.randn(1, 8, 9, 11)).shape == (1, 16, 5, 6)


@pytest.mark.parametrize("size", [(17, 23), (6, 6), (5, 13), (3, 2)])
@pytest.mark.parametrize("bins", [1, 2, 3, 6, (2, 5)])
def test_exportable_pooling_equals_adaptive_avg_pool2d(size, bins, monkeypatch):
    x = torch.randn(2, 3, *size)
    want = F.adaptive_avg_pool2d(x, bins)
    assert torch.equal(adaptive_avg_pool2d(x, bins), want)  # eager: PyTorch's own
    monkeypatch.setattr(layers, "_is_exporting", lambda: True)
    got = adaptive_avg_pool2d(x, bins)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(AdaptiveAvgPool2d(bins)(x), want, rtol=1e-5, atol=1e-6)


def test_exportable_pooling_exports_with_dynamic_sizes():
    dims = {2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC}
    program = torch.export.export(AdaptiveAvgPool2d(3), (torch.randn(1, 2, 12, 15),), dynamic_shapes=(dims,))
    ops = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert not any("adaptive_avg_pool" in op for op in ops)  # the bin-matrix form was exported
    x = torch.randn(1, 2, 20, 9)
    torch.testing.assert_close(program.module()(x), F.adaptive_avg_pool2d(x, 3), rtol=1e-5, atol=1e-6)


def test_rename_prefixes_first_rule_wins_and_unknown_keys_stay():
    t = torch.zeros(1)
    out = rename_prefixes({"a.b.w": t, "a.c": t, "z": t}, [("a.b.", "x."), ("a.", "y.")])
    assert list(out) == ["x.w", "y.c", "z"] and out["x.w"] is t
