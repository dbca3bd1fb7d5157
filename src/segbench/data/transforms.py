"""Joint image + mask transforms for training (torchvision.transforms.v2) and inference preprocessing."""

from __future__ import annotations

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from segbench.classes import IGNORE_INDEX
from segbench.preprocessing import Preprocessing


def train_transform(
    crop_size: tuple[int, int],
    scale_range: tuple[float, float],
    hflip: bool,
    base_short_side: int,
    photometric: bool = False,
    brightness_range: tuple[float, float] = (0.875, 1.125),
    gamma_range: tuple[float, float] | None = None,
    blur_prob: float = 0.0,
    noise_std: float = 0.0,
):
    """Random scale, random crop (padded with 0 for the image and the ignore index for the mask), flip,
    and optionally photometric distortion; image and mask move together, the mask is resized with
    nearest-neighbour interpolation and never colour-changed.

    Photometric distortion: brightness x [0.875, 1.125], contrast x [0.5, 1.5], saturation x [0.5, 1.5]
    and hue shift [-0.05, 0.05] (fraction of the hue circle), each applied with probability 0.5: the
    ranges of torchvision's ``v2.RandomPhotometricDistort`` (after SSD, arXiv 1512.02325), without its
    random channel permutation, since a pixel's colour can decide its class.

    Args:
        crop_size: output (H, W).
        scale_range: factors applied to ``base_short_side`` to pick the resized short side.
        hflip: random horizontal flip with probability 0.5.
        base_short_side: the short side of the training images (pixels).
        photometric: add the photometric distortion.
        brightness_range: brightness factors of the photometric distortion.
        gamma_range: random gamma correction in ``[lo, hi]`` with probability 0.5 (None: off); a gamma
            above 1 darkens, as dusk footage does.
        blur_prob: probability of a Gaussian blur (kernel 5, sigma drawn in [0.1, 2] pixels).
        noise_std: additive Gaussian noise with probability 0.5, its standard deviation drawn in
            ``[0, noise_std]`` on the 0..255 scale (0: off).

    Returns:
        A callable ``(Image (3, H, W) uint8, Mask (H, W) uint8) -> (Image (3, h, w), Mask (h, w))`` with
        ``(h, w) = crop_size``, drawing its randomness from torch's global RNG.
    """
    lo, hi = (round(base_short_side * s) for s in scale_range)
    ops: list = [
        v2.RandomResize(lo, hi + 1, antialias=True),
        v2.RandomCrop(list(crop_size), pad_if_needed=True, fill={tv_tensors.Image: 0, tv_tensors.Mask: IGNORE_INDEX}),
    ]
    if hflip:
        ops.append(v2.RandomHorizontalFlip())
    if photometric:
        for jitter in (
            v2.ColorJitter(brightness=tuple(brightness_range)),
            v2.ColorJitter(contrast=(0.5, 1.5)),
            v2.ColorJitter(saturation=(0.5, 1.5)),
            v2.ColorJitter(hue=(-0.05, 0.05)),
        ):
            ops.append(v2.RandomApply([jitter], p=0.5))
    if gamma_range:
        ops.append(v2.RandomApply([_RandomGamma(tuple(gamma_range))], p=0.5))
    if blur_prob > 0:
        ops.append(v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 2.0))], p=blur_prob))
    if noise_std > 0:
        ops.append(v2.RandomApply([_RandomNoise(noise_std)], p=0.5))
    return v2.Compose(ops)


class _RandomGamma(v2.Transform):
    """Gamma correction of the image only, gamma uniform in ``gamma_range`` (torch's global RNG)."""

    def __init__(self, gamma_range: tuple[float, float]):
        super().__init__()
        self.gamma_range = gamma_range

    def make_params(self, flat_inputs):
        lo, hi = self.gamma_range
        return {"gamma": lo + (hi - lo) * float(torch.rand(()))}

    def transform(self, inpt, params):
        if isinstance(inpt, tv_tensors.Image):
            return v2.functional.adjust_gamma(inpt, params["gamma"])
        return inpt


class _RandomNoise(v2.Transform):
    """Additive Gaussian noise on the image only (uint8 kept, clamped to 0..255)."""

    def __init__(self, max_std: float):
        super().__init__()
        self.max_std = max_std

    def make_params(self, flat_inputs):
        return {"std": self.max_std * float(torch.rand(()))}

    def transform(self, inpt, params):
        if isinstance(inpt, tv_tensors.Image):
            noisy = inpt.float() + torch.randn(inpt.shape) * params["std"]
            return tv_tensors.wrap(noisy.round_().clamp_(0, 255).to(torch.uint8), like=inpt)
        return inpt


def to_tensor_pair(image: np.ndarray, mask: np.ndarray) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
    """``(H, W, 3)`` uint8 and ``(H, W)`` int labels -> ``Image (3, H, W)`` uint8 and ``Mask (H, W)`` uint8."""
    return (
        tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)),
        tv_tensors.Mask(torch.from_numpy(mask.astype(np.uint8))),
    )


def preprocess(image: np.ndarray, preprocessing: Preprocessing, device: str | torch.device = "cpu") -> torch.Tensor:
    """One ``(H, W, 3)`` uint8 RGB image -> the network's ``(1, 3, H, W)`` float32 input on ``device``
    (:meth:`segbench.preprocessing.Preprocessing.normalize`: scaled, normalised, in the network's channel order)."""
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).unsqueeze(0).to(device)
    return preprocessing.normalize(t)
