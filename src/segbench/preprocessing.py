"""What a network expects of its input image, written once and passed whole: :class:`Preprocessing`.

As torchvision's ``Weights.transforms()`` and timm's ``pretrained_cfg``, one object holds the input
normalisation (mean and std per RGB channel, in 0..1 units), the scale of the network's input, the channel
order, the resize rule with its size divisor and the interpolation of images and labels. Weight specs, model
files (segbench ``.safetensors`` metadata, ONNX ``metadata_props``, a TorchScript or ``torch.export`` file's
``segbench.json``) and Hugging Face ``preprocessor_config.json`` produce one (:meth:`Preprocessing.from_dict`,
:meth:`Preprocessing.from_hf`); the data path, predictors, exporters and backends take one.

The network's input for pixels ``p`` (RGB, scaled to 0..1) is ``value_range * (p - mean) / std`` in the
network's channel order: with mean 0 and std 1, plain pixels in ``0..value_range`` (1 or 255).

:meth:`Preprocessing.normalize` scales, normalises and reorders channels; :meth:`Preprocessing.run_resized` runs a
network under the resize and size-divisor rule (``resize``, ``size``, ``size_divisor``) and gives its logits back
at the image's size. Every loader of a model file runs its network that way (:class:`Resized`), so a rule that a
file's metadata or a Hugging Face processor states is applied whatever made the file.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from segbench.errors import UserError

__all__ = ["CHANNEL_ORDERS", "IMAGENET_MEAN", "IMAGENET_STD", "INTERPOLATIONS", "RESIZE_RULES", "Preprocessing",
           "Resized", "as_preprocessing", "rgb_triple"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CHANNEL_ORDERS = ("RGB", "BGR")
RESIZE_RULES = ("none", "shorter_side", "fixed")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")

KEYS = ("mean", "std", "value_range", "channel_order", "resize", "size", "size_divisor", "interpolation",
        "label_interpolation")  # fmt: skip
"""The keys of :meth:`Preprocessing.to_dict`, as written in model files' metadata."""

# PIL's resampling filters by number, as Hugging Face processors give them (``resample``).
_PIL_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes a network's input.

    Attributes:
        mean: per-channel mean, RGB, in 0..1 units (of pixels scaled to 0..1).
        std: per-channel standard deviation, RGB, in 0..1 units; each > 0.
        value_range: the scale of the network's input (1.0, 255.0, > 0): the input is
            ``value_range * (p - mean) / std`` for pixels ``p`` in 0..1.
        channel_order: ``"RGB"`` or ``"BGR"``: the channel order the network takes (``mean``/``std`` stay RGB).
        resize: ``"none"``, ``"shorter_side"`` (the shorter side to ``size[0]``, aspect kept) or ``"fixed"``
            (to ``size = (H, W)``).
        size: ``()`` for ``"none"``, ``(S,)`` for ``"shorter_side"``, ``(H, W)`` for ``"fixed"`` (pixels).
        size_divisor: pad height and width to a multiple of it (0: no padding).
        interpolation: for images when resized: ``"nearest"``, ``"bilinear"`` or ``"bicubic"``.
        label_interpolation: for label maps when resized (``"nearest"``: labels are never blended).

    Raises:
        UserError: a field out of range, naming it (``mean``: 3 numbers in 0..1; ``std``: 3 positive numbers;
            ...).
    """

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    value_range: float = 1.0
    channel_order: str = "RGB"
    resize: str = "none"
    size: tuple[int, ...] = ()
    size_divisor: int = 0
    interpolation: str = "bilinear"
    label_interpolation: str = "nearest"

    def __post_init__(self) -> None:
        self._check("preprocessing")

    def _check(self, source: str) -> None:
        set_ = object.__setattr__
        set_(self, "mean", rgb_triple(self.mean, "mean", source))
        set_(self, "std", rgb_triple(self.std, "std", source))
        if any(not 0 <= v <= 1 for v in self.mean):
            raise UserError(f"{source}: mean {list(self.mean)}: expected 3 numbers in 0..1 (RGB scaled to 0..1)")
        if any(not v > 0 for v in self.std):
            raise UserError(f"{source}: std {list(self.std)}: expected 3 positive numbers (RGB, 0..1 units)")
        try:
            value_range = float(self.value_range)
        except (TypeError, ValueError):
            value_range = math.nan
        if not (math.isfinite(value_range) and value_range > 0):
            raise UserError(
                f"{source}: value_range {self.value_range!r}: expected a positive number (1: 0..1, 255: 0..255)"
            )
        set_(self, "value_range", value_range)
        for name, allowed in (("channel_order", CHANNEL_ORDERS), ("resize", RESIZE_RULES),
                              ("interpolation", INTERPOLATIONS), ("label_interpolation", INTERPOLATIONS)):  # fmt: skip
            value = getattr(self, name)
            if value not in allowed:
                raise UserError(f"{source}: {name} {value!r}: expected one of {', '.join(allowed)}")
        try:
            size = tuple(int(v) for v in self.size)
        except (TypeError, ValueError):
            raise UserError(f"{source}: size {self.size!r}: expected a list of pixel sizes") from None
        want = {"none": 0, "shorter_side": 1, "fixed": 2}[self.resize]
        if len(size) != want or any(v < 1 for v in size):
            shape = {"none": "[] (no resize)", "shorter_side": "[S]", "fixed": "[H, W]"}[self.resize]
            raise UserError(f"{source}: size {list(size)}: resize {self.resize!r} takes {shape}, sizes >= 1 px")
        set_(self, "size", size)
        if not isinstance(self.size_divisor, int) or isinstance(self.size_divisor, bool) or self.size_divisor < 0:
            raise UserError(f"{source}: size_divisor {self.size_divisor!r}: expected an integer >= 0 (0: no padding)")

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """The network's input for ``images``: ``(N, 3, H, W)`` RGB, uint8 (0..255) or float (0..1).

        Returns:
            ``(N, 3, H, W)`` float32 (float inputs keep their dtype), ``value_range * (p - mean) / std`` in
            :attr:`channel_order`, on the images' device.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (N, 3, H, W), got shape {tuple(images.shape)}")
        x = images.float().div_(255.0) if images.dtype == torch.uint8 else images
        m = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        s = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        if self.value_range != 1.0:
            s = s / self.value_range
        x = (x - m) / s
        return x.flip(1) if self.channel_order == "BGR" else x

    def to_dict(self) -> dict:
        """JSON-able ``{key: value}`` for model files' metadata (:data:`KEYS`); :meth:`from_dict` reads it back."""
        return {
            "mean": list(self.mean), "std": list(self.std), "value_range": self.value_range,
            "channel_order": self.channel_order, "resize": self.resize, "size": list(self.size),
            "size_divisor": self.size_divisor, "interpolation": self.interpolation,
            "label_interpolation": self.label_interpolation,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, meta: dict, source: str = "metadata", default: Preprocessing | None = None) -> Preprocessing:
        """The preprocessing a model file's metadata states; keys it does not give come from ``default``.

        Args:
            meta: a dict with any of :data:`KEYS` (other keys are ignored); values may be JSON text, as in ONNX
                ``metadata_props``, whose values are strings.
            source: the file, for messages.
            default: for keys ``meta`` lacks (None: :class:`Preprocessing`'s defaults, ImageNet's mean/std).

        Raises:
            UserError: a value that is not JSON or out of range, naming ``source`` and the key.
        """
        base = (default or cls()).to_dict()
        values = {}
        for key in KEYS:
            value = meta.get(key, base[key])
            if isinstance(value, str) and key in ("mean", "std", "size", "value_range", "size_divisor"):
                try:
                    value = json.loads(value)
                except json.JSONDecodeError:
                    raise UserError(f"{source}: metadata {key!r} is not JSON: {value!r}") from None
            values[key] = value
        values["mean"] = rgb_triple(values["mean"], "mean", source)
        values["std"] = rgb_triple(values["std"], "std", source)
        if isinstance(values["size"], (int, float)):
            values["size"] = [values["size"]]
        out = cls.__new__(cls)
        for key, value in values.items():
            object.__setattr__(out, key, tuple(value) if isinstance(value, list) else value)
        out._check(source)
        return out

    @classmethod
    def from_hf(cls, config: dict, source: str = "preprocessor_config.json") -> Preprocessing:
        """The preprocessing of a Hugging Face image processor's ``preprocessor_config.json`` (as a dict).

        The processor computes ``(v * f - image_mean) / image_std`` on pixels ``v`` in 0..255, with
        ``f = rescale_factor`` (1/255 by default) when ``do_rescale`` (default true), else 1; without
        ``do_normalize`` (default true) it stops at ``v * f``. This gives the same input exactly: mean and std
        ``image_mean / (255 f)`` and ``image_std / (255 f)`` with ``value_range`` 1, or mean 0, std 1 and
        ``value_range = 255 f`` without normalisation. A missing ``image_mean``/``image_std`` is ImageNet's.
        ``size`` (``height``/``width``: fixed; ``shortest_edge``: shorter side; an int: shorter side for mask
        processors, else square) applies when ``do_resize`` (default true); ``size_divisor`` (or
        ``size_divisibility``) pads; ``resample`` (PIL's filter number) is the interpolation.

        Raises:
            UserError: a value out of range or of the wrong type, naming ``source`` and the key.
        """
        try:
            factor = float(config.get("rescale_factor", 1 / 255)) if config.get("do_rescale", True) else 1.0
        except (TypeError, ValueError):
            raise UserError(f"{source}: rescale_factor {config.get('rescale_factor')!r}: expected a number") from None
        if not factor > 0:
            raise UserError(f"{source}: rescale_factor {factor!r}: expected a positive number")
        if config.get("do_normalize", True):
            scale = 255.0 * factor
            mean = rgb_triple(config.get("image_mean") or IMAGENET_MEAN, "image_mean", source)
            std = rgb_triple(config.get("image_std") or IMAGENET_STD, "image_std", source)
            mean, std = tuple(v / scale for v in mean), tuple(v / scale for v in std)
            value_range = 1.0
        else:
            mean, std, value_range = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), round(255.0 * factor, 6)
        resize, size = _hf_size(config, source)
        divisor = config.get("size_divisor") or config.get("size_divisibility") or 0
        out = cls.__new__(cls)
        fields = {"mean": mean, "std": std, "value_range": value_range, "channel_order": "RGB", "resize": resize,
                  "size": size, "size_divisor": divisor if isinstance(divisor, int) else -1,
                  "interpolation": _PIL_RESAMPLE.get(config.get("resample"), "bilinear"),
                  "label_interpolation": "nearest"}  # fmt: skip
        for key, value in fields.items():
            object.__setattr__(out, key, value)
        out._check(source)
        return out

    def target_size(self, h: int, w: int) -> tuple[int, int]:
        """``(H, W)`` an ``h x w`` image is resized to by :attr:`resize` (before padding to :attr:`size_divisor`)."""
        if self.resize == "fixed":
            return self.size[0], self.size[1]
        if self.resize == "shorter_side":
            scale = self.size[0] / min(h, w)
            return max(1, round(h * scale)), max(1, round(w * scale))
        return h, w

    def run_resized(self, run, x: torch.Tensor) -> torch.Tensor:
        """``run``'s logits for ``x`` under this resize and size-divisor rule, at ``x``'s size.

        Args:
            run: maps a normalised ``(N, 3, h, w)`` input to logits ``(N, C, h', w')`` (any scale of the input).
            x: normalised images ``(N, 3, H, W)``.

        Returns:
            Logits ``(N, C, H, W)``: ``x`` is resized to :meth:`target_size` with :attr:`interpolation`, padded
            with zeros at the bottom and right to a multiple of :attr:`size_divisor`, run, the padding's share of
            the logits cropped off and the rest resized bilinearly to ``(H, W)``.
        """
        h, w = x.shape[-2:]
        th, tw = self.target_size(h, w)
        inp = x
        if (th, tw) != (h, w):
            corners = None if self.interpolation == "nearest" else False
            inp = F.interpolate(x, size=(th, tw), mode=self.interpolation, align_corners=corners)
        if self.size_divisor:
            inp = F.pad(inp, (0, (-tw) % self.size_divisor, 0, (-th) % self.size_divisor))
        logits = run(inp)
        if tuple(inp.shape[-2:]) != (th, tw):
            scale_h, scale_w = logits.shape[-2] / inp.shape[-2], logits.shape[-1] / inp.shape[-1]
            logits = logits[..., : max(1, round(th * scale_h)), : max(1, round(tw * scale_w))]
        if tuple(logits.shape[-2:]) != (h, w):
            logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
        return logits

    def resize_description(self) -> str:
        """The resize and padding rule in words (``"resized (fixed 512x512, bilinear); padded to a multiple of
        32"``), "" when there is none."""
        parts = []
        if self.resize != "none":
            parts.append(f"resized ({self.resize.replace('_', ' ')} {'x'.join(map(str, self.size))}, "
                         f"{self.interpolation})")  # fmt: skip
        if self.size_divisor:
            parts.append(f"padded to a multiple of {self.size_divisor}")
        return "; ".join(parts)

    def describe(self) -> str:
        """One line for model cards and reports, e.g. ``RGB 0..1, mean (0.485, 0.456, 0.406), std (...)``."""
        text = (f"{self.channel_order} input {self.value_range:g} * (x - mean) / std for x in 0..1, mean "
                f"({', '.join(f'{v:.4g}' for v in self.mean)}), std ({', '.join(f'{v:.4g}' for v in self.std)})")  # fmt: skip
        rule = self.resize_description()
        return f"{text}; {rule}" if rule else text


class Resized(nn.Module):
    """A network run under a :class:`Preprocessing`'s resize and size-divisor rule
    (:meth:`Preprocessing.run_resized`): normalised images ``(N, 3, H, W)`` in, logits ``(N, C, H, W)`` out, also
    for a network whose logits come out smaller than its input (resized bilinearly).

    Args:
        net: the network (normalised input in, logits out).
        preprocessing: the rule; None: no resize and no padding.
    """

    def __init__(self, net: nn.Module, preprocessing: Preprocessing | None = None) -> None:
        super().__init__()
        self.net = net
        self.preprocessing = preprocessing or Preprocessing()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.preprocessing.run_resized(self.net, x)


def as_preprocessing(preprocessing, std=None) -> Preprocessing:
    """``preprocessing`` itself, or, for the APIs that took a mean and std before :class:`Preprocessing`
    existed, ``Preprocessing(mean=preprocessing, std=std)``.

    Raises:
        TypeError: ``std`` given with a :class:`Preprocessing`, or a mean without ``std``.
        UserError: a mean or std out of range.
    """
    if isinstance(preprocessing, Preprocessing):
        if std is not None:
            raise TypeError(f"std {std!r} given with a Preprocessing (which holds the std); give the device by name")
        return preprocessing
    if std is None:
        raise TypeError("expected a Preprocessing, or a mean and a std")
    return Preprocessing(mean=tuple(preprocessing), std=tuple(std))


def rgb_triple(value, what: str, source: str) -> tuple[float, float, float]:
    """``value`` as 3 finite floats (R, G, B).

    Raises:
        UserError: not 3 finite numbers, naming ``source`` and ``what``.
    """
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise UserError(f"{source}: {what} must be 3 numbers (R G B), got {value!r}") from None
    if len(out) != 3:
        raise UserError(f"{source}: {what} must be 3 numbers (R G B), got {len(out)}")
    if any(not math.isfinite(v) for v in out):
        raise UserError(f"{source}: {what} must be 3 finite numbers (R G B), got {list(out)}")
    return out


def _hf_size(config: dict, source: str) -> tuple[str, tuple[int, ...]]:
    size = config.get("size")
    if not config.get("do_resize", True) or not isinstance(size, (dict, int)) or isinstance(size, bool):
        return "none", ()
    try:
        if isinstance(size, int):
            mask = "mask" in str(config.get("image_processor_type", "")).lower()
            return ("shorter_side", (size,)) if mask else ("fixed", (size, size))
        if "height" in size and "width" in size:
            return "fixed", (int(size["height"]), int(size["width"]))
        if "shortest_edge" in size:
            return "shorter_side", (int(size["shortest_edge"]),)
    except (TypeError, ValueError):
        raise UserError(f"{source}: size {size!r}: expected pixel sizes") from None
    return "none", ()
