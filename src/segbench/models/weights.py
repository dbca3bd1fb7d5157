"""Weights: tags, files and checkpoints.

A weights *tag* names trained weights of a network: ``ARCH.TAG``.

- ``coco_voc``: torchvision's official COCO-with-VOC-labels checkpoints (21 VOC classes), downloaded through
  torchvision's weights API into torch's hub cache (``$TORCH_HOME/hub/checkpoints``) and checked against the
  sha256 prefix in the file name. Offline, loading fails with one line saying which file to place where.
- ``camvid`` and other segbench zoo tags: fp16 safetensors files shipped in ``segbench/zoo``.

A weights *file* is a segbench ``.safetensors`` file (metadata: arch, classes, normalisation), a segbench
training checkpoint (``.pt``: ``{"model": state_dict, "meta": {...}, ...}``), or a raw state_dict of the
named architecture (for example torchvision's ``.pth``).

Loading is strict: missing or unexpected keys are an error that lists them. Random initialisation happens
only when asked for with ``weights="none"``.
"""

from __future__ import annotations

import json
import re
import urllib.error
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open
from torch import nn
from torchvision.models import segmentation as tvseg

from segbench.classes import VOC, ClassSet, default_palette
from segbench.errors import UserError, first_line

_NUMPY_ARRAY_GLOBALS = [
    (getattr(np, "_core", None) or np.core).multiarray._reconstruct,
    np.ndarray,
    np.dtype,
    type(np.dtype(np.uint32)),
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FORMAT_VERSION = "1"

# torchvision's weights enums for its COCO-with-VOC-labels checkpoints (the ``coco_voc`` tag), by segbench model
# name. The checkpoints are in torchvision's layout (``backbone.*``, ``classifier.*``, ``aux_classifier.*``) and
# converted on loading (:func:`to_segbench_layout`); their ``meta`` holds torchvision's published
# ``num_params`` and ``_ops`` (multiply-adds at 520 x 520, in G).
TORCHVISION_WEIGHTS = {
    "fcn_resnet50": tvseg.FCN_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1,
    "fcn_resnet101": tvseg.FCN_ResNet101_Weights.COCO_WITH_VOC_LABELS_V1,
    "deeplabv3_resnet50": tvseg.DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1,
    "deeplabv3_resnet101": tvseg.DeepLabV3_ResNet101_Weights.COCO_WITH_VOC_LABELS_V1,
    "deeplabv3_mobilenet_v3_large": tvseg.DeepLabV3_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1,
    "lraspp_mobilenet_v3_large": tvseg.LRASPP_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1,
}


@dataclass
class ModelInfo:
    """What a loaded model needs around it: classes, input normalisation, provenance."""

    arch: str
    weights: str  # tag, file path, or "none"
    num_classes: int
    class_names: list[str]
    palette: list[tuple[int, int, int]]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    meta: dict = field(default_factory=dict)  # recipe, metrics, ... as stored with the weights

    @property
    def name(self) -> str:
        if self.weights == "none":
            return self.arch
        if self.weights.startswith(self.arch + "."):
            return self.weights
        if "/" in self.weights or self.weights.endswith((".pt", ".pth", ".safetensors")):
            return f"{self.arch}({Path(self.weights).name})"
        return f"{self.arch}.{self.weights}"

    @property
    def class_set(self) -> ClassSet:
        return ClassSet(self.arch, tuple(self.class_names), tuple(tuple(c) for c in self.palette))


@dataclass
class LoadedModel:
    model: nn.Module
    info: ModelInfo


def zoo_dir() -> Path:
    """The folder of the weights shipped with segbench."""
    return Path(str(resources.files("segbench") / "zoo"))


def zoo_tags() -> dict[str, dict[str, Path]]:
    """The shipped weights by architecture and tag: ``{"fast_scnn": {"camvid": Path(...)}}``, read from the
    file names ``ARCH.TAG.safetensors`` in :func:`zoo_dir`."""
    tags: dict[str, dict[str, Path]] = {}
    for f in sorted(zoo_dir().glob("*.safetensors")):
        arch, _, tag = f.name[: -len(".safetensors")].partition(".")
        tags.setdefault(arch, {})[tag] = f
    return tags


def available_weights(arch: str) -> list[str]:
    """Weights tags available for ``arch`` (shipped zoo tags and torchvision's ``coco_voc``)."""
    tags = sorted(zoo_tags().get(arch, {}))
    if arch in TORCHVISION_WEIGHTS:
        tags.append("coco_voc")
    return tags


def _strict_load(model: nn.Module, state: dict, source: str) -> None:
    result = model.load_state_dict(state, strict=False)
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:

        def short(keys):
            return ", ".join(keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")

        raise UserError(
            f"{source}: weights do not fit the model: missing keys [{short(missing)}], unexpected keys [{short(unexpected)}]"
        )


def _load_state_into(model: nn.Module, state: dict, source: str) -> None:
    try:
        _strict_load(model, state, source)
    except RuntimeError as exc:  # shape mismatches
        first = str(exc).strip().splitlines()
        detail = next((ln.strip() for ln in first if "size mismatch" in ln), first[-1] if first else "")
        raise UserError(f"{source}: weights do not fit the model ({detail})") from None


def torchvision_file(weights, what: str) -> Path:
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


def _read_checkpoint(path: Path) -> tuple[dict, dict]:
    """Return (state_dict, meta) from a .safetensors, segbench .pt checkpoint or raw state_dict file."""
    if not path.is_file():
        raise UserError(f"{path}: no such weights file")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    try:
        # Training checkpoints hold numpy's RNG state (an array): allow exactly those types, nothing else.
        with torch.serialization.safe_globals(_NUMPY_ARRAY_GLOBALS):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise UserError(f"{path}: cannot read checkpoint ({first_line(exc)})") from None
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        return obj["model"], dict(obj.get("meta", {}))
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj, {}
    raise UserError(f"{path}: not a state_dict or segbench checkpoint")


def _build(arch: str, num_classes: int, aux: bool) -> nn.Module:
    from segbench.models import build_model

    kwargs = {"num_classes": num_classes}
    if aux:
        kwargs["aux_loss"] = True
    return build_model(arch, **kwargs)


def _has_aux(state: dict) -> bool:
    return any(k.startswith(("aux_classifier.", "aux_head.")) for k in state)


def _num_classes_from_state(state: dict) -> int | None:
    for key in ("classifier.4.weight", "classifier.3.weight", "classifier.low_classifier.weight", "classifier.weight"):
        if key in state:
            return int(state[key].shape[0])
    return None


def to_segbench_layout(arch: str, state: dict) -> dict:
    """Convert a state_dict in torchvision's layout (``backbone.*``) to segbench's module names.

    Applies to the networks torchvision publishes checkpoints for (the keys of ``TORCHVISION_WEIGHTS``),
    which segbench implements itself with other module names; any other state_dict, or one already in
    segbench's layout, is returned unchanged.

    Args:
        arch: the registered model name.
        state: a state_dict (torchvision's ``.pth``, or a segbench file from before the conversion existed).
    """
    from segbench.models import deeplabv3, lraspp

    converters = {
        "fcn_resnet50": deeplabv3.convert_torchvision_state,
        "fcn_resnet101": deeplabv3.convert_torchvision_state,
        "deeplabv3_resnet50": deeplabv3.convert_torchvision_state,
        "deeplabv3_resnet101": deeplabv3.convert_torchvision_state,
        "deeplabv3_mobilenet_v3_large": deeplabv3.convert_torchvision_mobilenet_v3_state,
        "lraspp_mobilenet_v3_large": lraspp.convert_torchvision_state,
    }
    if arch in converters and deeplabv3.is_torchvision_state(state):
        return converters[arch](state)
    return state


def load_weights_file(path: str | Path, arch: str | None = None, label: str | None = None) -> LoadedModel:
    """Load a model from a weights file; ``arch`` is needed only for raw state_dicts without metadata.

    Raises:
        UserError: unreadable file, unknown architecture, or weights that do not fit.
    """
    path = Path(path)
    state, meta = _read_checkpoint(path)
    arch = meta.get("arch") or arch
    if not arch:
        raise UserError(f"{path}: the file does not say its architecture; give it: MODEL --weights {path}")
    state = to_segbench_layout(arch, state)
    num_classes = int(meta.get("num_classes") or _num_classes_from_state(state) or 21)
    model = _build(arch, num_classes, _has_aux(state))
    _load_state_into(model, {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, str(path))
    names = meta.get("class_names") or (list(VOC.names) if num_classes == 21 else [str(i) for i in range(num_classes)])
    palette = meta.get("palette") or (list(VOC.palette) if num_classes == 21 else default_palette(num_classes))
    info = ModelInfo(
        arch=arch,
        weights=label or str(path),
        num_classes=num_classes,
        class_names=list(names),
        palette=[tuple(c) for c in palette],
        mean=tuple(meta.get("mean", IMAGENET_MEAN)),
        std=tuple(meta.get("std", IMAGENET_STD)),
        meta=meta,
    )
    return LoadedModel(model, info)


def load_model(spec: str, weights: str | None = None, num_classes: int | None = None) -> LoadedModel:
    """Build a network and load its weights.

    Args:
        spec: ``ARCH.TAG`` (for example ``fast_scnn.camvid``), ``ARCH`` together with ``weights``, or the
            path of a segbench checkpoint.
        weights: a tag, a weights file, or ``"none"`` for random initialisation (explicitly only).
        num_classes: classes for random initialisation (default: the builder's).

    Raises:
        UserError: unknown model or tag, missing file, weights that cannot be downloaded (offline: the
            message says where to place the file), weights that do not fit, or no weights given.
    """
    from segbench.models import MODELS, build_model

    path = Path(spec)
    if spec.endswith((".safetensors", ".pt", ".pth")) or path.is_file():
        return load_weights_file(path)
    arch, _, tag = spec.partition(".")
    MODELS.get(arch)  # unknown name -> UserError with suggestions
    if tag and weights and weights != tag:
        raise UserError(f"{spec}: the weights are given twice (tag {tag!r} and --weights {weights!r})")
    weights = tag or weights
    if not weights:
        tags = available_weights(arch)
        hint = f"{arch}.{tags[0]}" if tags else f"{arch} --weights PATH"
        raise UserError(f"{arch}: which weights? use {hint}, or --weights none for random initialisation")
    if weights == "none":
        model = build_model(arch, **({"num_classes": num_classes} if num_classes else {}))
        n = num_classes or _default_num_classes(model)
        names = list(VOC.names) if n == 21 else [str(i) for i in range(n)]
        palette = list(VOC.palette) if n == 21 else default_palette(n)
        return LoadedModel(model, ModelInfo(arch, "none", n, names, palette))
    if Path(weights).suffix in (".safetensors", ".pt", ".pth") or Path(weights).is_file():
        return load_weights_file(weights, arch)
    zoo = zoo_tags().get(arch, {})
    if weights in zoo:
        return load_weights_file(zoo[weights], label=f"{arch}.{weights}")
    if weights == "coco_voc" and arch in TORCHVISION_WEIGHTS:
        return load_weights_file(
            torchvision_file(TORCHVISION_WEIGHTS[arch], f"{arch}.coco_voc"), arch, label=f"{arch}.coco_voc"
        )
    raise UserError(f"{arch}: unknown weights {weights!r}; available: {', '.join(available_weights(arch)) or 'none'}")


def _default_num_classes(model: nn.Module) -> int:
    last = [m for m in model.modules() if isinstance(m, nn.Conv2d)][-1]
    return int(last.out_channels)
