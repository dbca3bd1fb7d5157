"""The modified aligned Xception-65 of DeepLabv3+, as a segmentation encoder: segbench's own implementation.

Reference: Chen, Zhu, Papandreou, Schroff, Adam, "Encoder-Decoder with Atrous Separable Convolution for
Semantic Image Segmentation", arXiv 1802.02611 (https://arxiv.org/abs/1802.02611), section 3.3 and figure 4;
Xception: Chollet, "Xception: Deep Learning with Depthwise Separable Convolutions", arXiv 1610.02357.

Section 3.3 modifies Xception in three ways, all followed here:

1. deeper (as MSRA's aligned Xception): the middle flow's block is repeated 16 times instead of 8, the entry
   flow is kept;
2. every max pooling is replaced by a depthwise separable convolution with stride 2 (so the output stride
   can be set by dilating instead of striding);
3. batch normalization and ReLU after each 3x3 depthwise convolution, as in MobileNet.

Layout (figure 4), each block three separable 3x3 convs, the third one strided where the block is:

- stem: 3x3 conv 32 stride 2, 3x3 conv 64 (each Conv-BN-ReLU);
- entry flow: blocks of 128, 256 and 728 channels, stride 2 each, 1x1 conv (stride 2) + BN shortcut;
- middle flow: 16 blocks of 728 channels, identity shortcut;
- exit flow: a block of 728, 1024, 1024 channels, stride 2, 1x1 conv shortcut; then 1536, 1536, 2048
  channels without shortcut.

A separable conv is depthwise 3x3 -> BN -> ReLU -> pointwise 1x1 -> BN. In the blocks with a shortcut it is
preceded by a ReLU (Xception's order: the shortcut adds the block's input before that ReLU); in the last
block it is followed by one instead (Xception's exit flow: separable conv, then ReLU).

With the output stride at 16 (8), the blocks that would exceed it lose their stride (the exit flow's first
block; at 8 also the entry flow's last) and every later conv is dilated by the strides given up (2, then 4);
a block that lost its stride keeps the rate before it, as DeepLab's reference code does
(:func:`~segbench.models.encoders.dilation.stride_dilation`).

No ImageNet weights for this network ship with torchvision, so it starts from random initialisation.

Module names (permanent once weights exist)::

    stem.{0,1}.{0,1}.*                               # Conv-BN(-ReLU)
    entry_flow.{0,1,2}.convs.{0,1,2}.{depthwise,pointwise}.{0,1}.*
    entry_flow.{0,1,2}.shortcut.{0,1}.*              # 1x1 conv + BN
    middle_flow.{0..15}.convs.{0,1,2}.*
    exit_flow.0.convs.*, exit_flow.0.shortcut.*, exit_flow.1.convs.*

Shape:
    input ``(N, 3, H, W)``; output a list of two maps: ``(N, 256, H/4, W/4)`` (the entry flow's second block
    after its second separable conv, where DeepLab's reference code reads the decoder's low-level features)
    and ``(N, 2048, H/s, W/s)`` with ``s`` the output stride; sizes rounded up (``ceil``) at each stride 2.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from segbench.models.encoders.dilation import check_output_stride, stride_dilation
from segbench.models.layers import ConvBNAct

__all__ = ["XceptionBlock", "XceptionEncoder", "XceptionSeparableConv"]


class XceptionSeparableConv(nn.Module):
    """Depthwise 3x3 (strided or dilated) -> BN -> ReLU -> pointwise 1x1 -> BN, with a ReLU before
    (``relu="before"``) or after (``relu="after"``).

    Reference: Chen et al., arXiv 1802.02611, section 3.3 (BN and ReLU after the depthwise conv).

    Args:
        in_ch: input channels.
        out_ch: output channels.
        stride: the depthwise conv's stride.
        dilation: the depthwise conv's dilation (padding equals it, so stride 1 keeps the size).
        relu: ``"before"`` (Xception's pre-activation, blocks with a shortcut) or ``"after"`` (the last block).

    Shape:
        ``(N, in_ch, H, W)`` -> ``(N, out_ch, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, dilation: int = 1, relu: str = "before") -> None:
        super().__init__()
        if relu not in ("before", "after"):
            raise ValueError(f"relu must be 'before' or 'after', got {relu!r}")
        # not in-place: the block's shortcut still needs the un-rectified input
        self.relu_in = nn.ReLU() if relu == "before" else nn.Identity()
        self.depthwise = ConvBNAct(in_ch, in_ch, 3, stride, dilation, groups=in_ch)
        self.pointwise = ConvBNAct(in_ch, out_ch, 1, act=nn.ReLU if relu == "after" else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(self.relu_in(x)))


class XceptionBlock(nn.Module):
    """Three separable 3x3 convs, the third one strided, plus a shortcut: a 1x1 conv + BN (``"conv"``), the
    identity (``"sum"``) or none (``"none"``).

    Args:
        in_ch: input channels.
        channels: the three convs' output channels.
        stride: the third conv's (and the shortcut conv's) stride.
        dilation: the three depthwise convs' dilation.
        shortcut: ``"conv"``, ``"sum"`` or ``"none"``; without a shortcut the ReLUs come after each conv.

    Shape:
        ``(N, in_ch, H, W)`` -> ``(N, channels[-1], ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(
        self, in_ch: int, channels: Sequence[int], stride: int = 1, dilation: int = 1, shortcut: str = "conv"
    ) -> None:
        super().__init__()
        relu = "after" if shortcut == "none" else "before"
        ins = [in_ch, *channels[:2]]
        self.convs = nn.ModuleList(
            XceptionSeparableConv(i, o, stride if k == 2 else 1, dilation, relu)
            for k, (i, o) in enumerate(zip(ins, channels))
        )
        self.shortcut_type = shortcut
        self.shortcut = ConvBNAct(in_ch, channels[-1], 1, stride, act=None) if shortcut == "conv" else None
        if shortcut == "sum" and (stride != 1 or in_ch != channels[-1]):
            raise ValueError("an identity shortcut needs stride 1 and equal input and output channels")

    def forward_with_hidden(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The block's output and the second conv's output (before the strided third conv)."""
        hidden = self.convs[1](self.convs[0](x))
        out = self.convs[2](hidden)
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        elif self.shortcut_type == "sum":
            out = out + x
        return out, hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_hidden(x)[0]


class XceptionEncoder(nn.Module):
    """The modified aligned Xception-65 of DeepLabv3+ (see the module docstring), dilated to an output stride.

    Reference: Chen et al., "Encoder-Decoder with Atrous Separable Convolution for Semantic Image
    Segmentation", arXiv 1802.02611, section 3.3 and figure 4.

    Args:
        output_stride: 8, 16 or 32 (no dilation).
        middle_blocks: repeats of the middle flow's block (16 in the paper).

    Shape:
        input ``(N, 3, H, W)``; output a list of two maps ``(N, 256, H/4, W/4)`` and ``(N, 2048, H/s, W/s)``
        (sizes rounded up) with :attr:`out_channels` ``(256, 2048)`` and :attr:`reductions` ``(4, s)``,
        ``s = output_stride``.

    Raises:
        UserError: ``output_stride`` not 8/16/32.
    """

    def __init__(self, output_stride: int = 16, middle_blocks: int = 16) -> None:
        super().__init__()
        check_output_stride(output_stride)
        self.stem = nn.Sequential(ConvBNAct(3, 32, 3, stride=2), ConvBNAct(32, 64, 3))
        # (input channels, the three convs' channels, stride without dilation, shortcut) of each block
        entry = [(64, (128, 128, 128), 2, "conv"), (128, (256, 256, 256), 2, "conv"), (256, (728, 728, 728), 2, "conv")]
        middle = [(728, (728, 728, 728), 1, "sum")] * middle_blocks
        exit_ = [(728, (728, 1024, 1024), 2, "conv"), (1024, (1536, 1536, 2048), 1, "none")]
        plan = iter(stride_dilation([spec[2] for spec in entry + middle + exit_], output_stride))

        def flow(specs: list) -> nn.Sequential:
            return nn.Sequential(*(XceptionBlock(i, c, *next(plan), shortcut) for i, c, _, shortcut in specs))

        self.entry_flow = flow(entry)
        self.middle_flow = flow(middle)
        self.exit_flow = flow(exit_)
        self.output_stride = output_stride
        self.out_channels = (256, 2048)
        self.reductions = (4, output_stride)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.entry_flow[0](self.stem(x))
        x, low = self.entry_flow[1].forward_with_hidden(x)
        x = self.exit_flow(self.middle_flow(self.entry_flow[2](x)))
        return [low, x]
