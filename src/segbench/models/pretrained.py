"""Reading weights files and loading them strictly: torchvision checkpoints through torch's hub cache,
segbench ``.safetensors`` and ``.pt`` files, and the ImageNet weights of the encoders.

Trained weights of the networks are data too: each architecture module lists its :class:`Weights` (the
``coco_voc`` torchvision checkpoints, the CamVid models of ``segbench/zoo``) beside its builders.

Every encoder that has ImageNet weights names them with an :class:`ImagenetWeights` (torchvision's weights
enum and the function that maps its state_dict to the encoder's keys); :func:`load_imagenet` is the one
place that fetches, converts and loads them.
"""

from __future__ import annotations

import json
import re
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open
from torch import nn
from torchvision.models import WeightsEnum

from segbench.classes import CAMVID, VOC, ClassSet
from segbench.errors import UserError, first_line
from segbench.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImagenetWeights",
    "Weights",
    "check_weights_backbone",
    "drop_prefixes",
    "imagenet_state_dict",
    "load_imagenet",
    "load_state_strict",
    "read_checkpoint",
    "torchvision_coco_voc",
    "torchvision_file",
    "zoo_camvid",
]

# numpy's RNG state in a training checkpoint is ("MT19937", ndarray[uint32], int, int, float): unpickling the
# ndarray needs exactly these four globals, and nothing else is allowed.
NUMPY_RNG_GLOBALS = [
    (getattr(np, "_core", None) or np.core).multiarray._reconstruct,
    np.ndarray,
    np.dtype,
    type(np.dtype(np.uint32)),
]


def load_pickle_safely(path: Path, map_location: str | torch.device = "cpu"):
    """``torch.load`` that cannot run code from the file: ``weights_only=True`` with only
    :data:`NUMPY_RNG_GLOBALS` allowed beyond tensors and plain containers. The one place segbench unpickles
    a file a user may have received.

    Raises:
        Exception: whatever torch raises for a corrupt, truncated or crafted file (callers turn it into one
            :class:`UserError` line naming the file).
    """
    with torch.serialization.safe_globals(NUMPY_RNG_GLOBALS):
        return torch.load(path, map_location=map_location, weights_only=True)


def torchvision_file(weights: WeightsEnum, what: str) -> Path:
    """Path of a torchvision checkpoint in torch's hub cache, downloaded there once if absent.

    The download goes through ``torch.hub`` and is checked against the sha256 prefix in the file name.

    Args:
        weights: a torchvision weights enum member (for example ``ResNet18_Weights.IMAGENET1K_V1``).
        what: what the weights are, for the error message (``"fcn_resnet50.coco_voc"``).

    Raises:
        UserError: the file is absent and cannot be downloaded; the message names the file, where to
            place it, and the alternative of passing the file.
    """
    url = weights.url
    target = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if target.is_file():
        return target
    found = re.search(r"-([a-f0-9]{6,})\.", target.name)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(target), hash_prefix=found.group(1) if found else None, progress=True)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(
            f"cannot download {what} weights from {url} ({reason}); place that file at {target} "
            f"or pass the weights file: --weights /path/to/{target.name}"
        ) from None
    return target


def _read_safetensors(path: Path) -> tuple[dict, dict]:
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read safetensors file ({exc})") from None
    decoded = {}
    for k, v in meta.items():
        try:
            decoded[k] = json.loads(v)
        except json.JSONDecodeError:
            decoded[k] = v
    return state, decoded


def read_checkpoint(path: Path) -> tuple[dict, dict]:
    """``(state_dict, meta)`` of a ``.safetensors`` file, a segbench ``.pt`` checkpoint or a raw state_dict.

    Raises:
        UserError: no such file, an unreadable or corrupt file, or one that holds no state_dict.
    """
    if not path.is_file():
        raise UserError(f"{path}: no such weights file")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    try:
        obj = load_pickle_safely(path)
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise UserError(f"{path}: cannot read checkpoint ({first_line(exc)})") from None
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        return obj["model"], dict(obj.get("meta", {}))
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj, {}
    raise UserError(f"{path}: not a state_dict or segbench checkpoint")


def _short(keys: list[str]) -> str:
    return ", ".join(keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")


def load_state_strict(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``module``; every key must match by name and shape.

    Args:
        module: the network or encoder.
        state: its state_dict.
        source: where the weights come from, for the error message.

    Raises:
        UserError: missing or unexpected keys (the first four of each listed), or a shape mismatch.
    """
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        lines = str(exc).strip().splitlines()
        detail = next((ln.strip() for ln in lines if "size mismatch" in ln), lines[-1] if lines else "")
        raise UserError(f"{source}: weights do not fit the model ({detail})") from None
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:
        raise UserError(
            f"{source}: weights do not fit the model: missing keys [{_short(missing)}], "
            f"unexpected keys [{_short(unexpected)}]"
        )


def check_weights_backbone(weights_backbone: str | None) -> None:
    """Raise :class:`UserError` unless ``weights_backbone`` is ``None`` or ``"imagenet"``."""
    if weights_backbone not in (None, "imagenet"):
        raise UserError(f"weights_backbone must be None (random initialisation) or 'imagenet', got {weights_backbone!r}")


def imagenet_state_dict(weights: WeightsEnum) -> dict[str, torch.Tensor]:
    """The state_dict of a torchvision ImageNet checkpoint, downloaded once into torch's hub cache.

    Args:
        weights: a torchvision weights enum, for example ``torchvision.models.ResNet18_Weights.IMAGENET1K_V1``.

    Raises:
        UserError: the file is absent and cannot be downloaded (the message names the file and where to
            place it), or it cannot be read.
    """
    state, _ = read_checkpoint(torchvision_file(weights, "the ImageNet backbone"))
    return state


def drop_prefixes(*prefixes: str) -> Callable[[dict], dict]:
    """A converter that drops the keys starting with any of ``prefixes`` (an ImageNet classifier's ``fc.``)."""

    def convert(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v for k, v in state.items() if not k.startswith(prefixes)}

    return convert


@dataclass(frozen=True)
class ImagenetWeights:
    """The ImageNet weights of an encoder, as data.

    Attributes:
        weights: torchvision's weights enum member (URL with the sha256 prefix in the file name).
        convert: maps torchvision's state_dict to the encoder's keys (drops the classifier, reshapes).
        name: the network's name in messages (``"resnet50"``).
    """

    weights: WeightsEnum
    convert: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]
    name: str


def load_imagenet(build: Callable[[], nn.Module], spec: ImagenetWeights | None, weights_backbone: str | None) -> nn.Module:
    """Build an encoder and, with ``weights_backbone="imagenet"``, load its ImageNet weights strictly.

    The file is fetched before the encoder is built, so an offline failure is quick.

    Args:
        build: builds the randomly initialised encoder.
        spec: the encoder's ImageNet weights, None where there are none.
        weights_backbone: ``None`` (random initialisation) or ``"imagenet"``.

    Raises:
        UserError: ``weights_backbone`` not None/"imagenet"; ``"imagenet"`` for an encoder without such
            weights; the file absent and not downloadable (the message says where to place it); weights
            that do not fit.
    """
    check_weights_backbone(weights_backbone)
    if weights_backbone is None:
        return build()
    if spec is None:
        raise UserError("weights_backbone='imagenet': this encoder has no ImageNet weights; use None")
    state = spec.convert(imagenet_state_dict(spec.weights))
    encoder = build()
    load_state_strict(encoder, state, f"{spec.name} ImageNet weights")
    return encoder


@dataclass(frozen=True)
class Weights:
    """Trained weights of a network, as data: the ``ARCH.TAG`` it answers to, where the file comes from, and
    what the network needs around it (as torchvision's ``Weights`` enums).

    Exactly one of ``torchvision`` (a checkpoint downloaded into torch's hub cache, URL with the sha256 prefix
    in its file name) and ``file`` (a file shipped in ``segbench/zoo``) is set.

    Attributes:
        arch: the registered network (``lraspp_mobilenet_v3_large``).
        tag: the weights tag (``coco_voc``, ``camvid``).
        classes: the class set the weights predict (names and palette).
        num_params: parameters of the network these weights fill (tested against the builder).
        aux: whether the checkpoint holds the auxiliary head (built with ``aux_loss=True``).
        classifier: key of the final classifier's weight, in segbench's layout (its dim 0 is ``num_classes``).
        torchvision: torchvision's weights enum member, for its checkpoints.
        file: the zoo file name (``ARCH.TAG.safetensors``), for segbench's own weights.
        convert: maps the checkpoint's state_dict to segbench's module names (None: already segbench's).
        preprocessing: what the network expects of its input (mean/std, channel order, ...), as a
            :class:`segbench.preprocessing.Preprocessing`; ImageNet's normalisation by default.
    """

    arch: str
    tag: str
    classes: ClassSet
    num_params: int
    aux: bool
    classifier: str
    torchvision: WeightsEnum | None = None
    file: str | None = None
    convert: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None
    preprocessing: Preprocessing = Preprocessing()

    def __post_init__(self) -> None:
        if (self.torchvision is None) == (self.file is None):
            raise ValueError(f"{self.arch}.{self.tag}: give exactly one of torchvision= and file=")

    @property
    def name(self) -> str:
        """``ARCH.TAG``."""
        return f"{self.arch}.{self.tag}"

    @property
    def url(self) -> str | None:
        """The download URL (torchvision checkpoints), None for zoo files."""
        return self.torchvision.url if self.torchvision is not None else None


def torchvision_coco_voc(arch: str, weights: WeightsEnum, convert: Callable, classifier: str, aux: bool) -> Weights:
    """The :class:`Weights` of a torchvision COCO-with-VOC-labels checkpoint (the ``coco_voc`` tag): 21 VOC
    classes, ImageNet normalisation, torchvision's published ``num_params``."""
    return Weights(
        arch, "coco_voc", VOC, int(weights.meta["num_params"]), aux, classifier, torchvision=weights, convert=convert
    )


def zoo_camvid(arch: str, num_params: int, classifier: str) -> Weights:
    """The :class:`Weights` of a segbench CamVid model shipped as ``zoo/ARCH.camvid.safetensors`` (11 classes,
    ImageNet normalisation, no auxiliary head)."""
    return Weights(arch, "camvid", CAMVID, num_params, False, classifier, file=f"{arch}.camvid.safetensors")
