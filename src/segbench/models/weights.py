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

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from torch import nn

from segbench.classes import VOC, ClassSet, default_palette
from segbench.errors import UserError
from segbench.models.builders import MODELS, WEIGHTS, build_model
from segbench.models.convert import is_torchvision_state
from segbench.models.pretrained import (
    Weights,
    load_state_strict,
    read_checkpoint,
    torchvision_file,
)
from segbench.preprocessing import Preprocessing

# torchvision's weights enums of its COCO-with-VOC-labels checkpoints (the ``coco_voc`` tag), by model name: a
# view of the specs in :data:`~segbench.models.builders.WEIGHTS`. Their ``meta`` holds torchvision's published
# ``num_params`` and ``_ops`` (multiply-adds at 520 x 520, in G).
TORCHVISION_WEIGHTS = {
    arch: spec.torchvision for arch, tags in WEIGHTS.items() for spec in tags.values() if spec.torchvision is not None
}


@dataclass
class ModelInfo:
    """What a loaded model needs around it: classes, input preprocessing, provenance.

    ``preprocessing`` (a :class:`segbench.preprocessing.Preprocessing`) is what the network expects of its
    input; ``mean`` and ``std`` read its normalisation (RGB, 0..1 units).
    """

    arch: str
    weights: str  # tag, file path, or "none"
    num_classes: int
    class_names: list[str]
    palette: list[tuple[int, int, int]]
    preprocessing: Preprocessing = Preprocessing()
    meta: dict = field(default_factory=dict)  # recipe, metrics, ... as stored with the weights

    @property
    def mean(self) -> tuple[float, float, float]:
        return self.preprocessing.mean

    @property
    def std(self) -> tuple[float, float, float]:
        return self.preprocessing.std

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
    """Weights tags available for ``arch``: the zoo files present (sorted), then torchvision's checkpoints
    (``coco_voc``), which download on first use."""
    downloadable = [tag for tag, spec in WEIGHTS.get(arch, {}).items() if spec.torchvision is not None]
    return sorted(zoo_tags().get(arch, {})) + downloadable


def _build(arch: str, num_classes: int, aux: bool) -> nn.Module:
    kwargs = {"num_classes": num_classes}
    if aux:
        kwargs["aux_loss"] = True
    return build_model(arch, **kwargs)


def _has_aux(state: dict) -> bool:
    return any(k.startswith("aux_head.") for k in state)


def _num_classes_from_state(arch: str, state: dict) -> int | None:
    declared = [spec.classifier for spec in WEIGHTS.get(arch, {}).values()]
    for key in (*declared, "classifier.weight", "classifier.3.weight", "classifier.low_classifier.weight"):
        if key in state:
            return int(state[key].shape[0])
    return None


def to_segbench_layout(arch: str, state: dict) -> dict:
    """Convert a state_dict in torchvision's layout (``backbone.*``) to segbench's module names.

    Applies to the networks whose weights specs name a converter (torchvision's ``coco_voc`` checkpoints),
    which segbench implements itself with other module names; any other state_dict, or one already in
    segbench's layout, is returned unchanged.

    Args:
        arch: the registered model name.
        state: a state_dict, in torchvision's layout (its ``.pth``) or already in segbench's.
    """
    converters = [spec.convert for spec in WEIGHTS.get(arch, {}).values() if spec.convert is not None]
    if converters and is_torchvision_state(state):
        return converters[0](state)
    return state


def load_weights_file(path: str | Path, arch: str | None = None, label: str | None = None,
                      preprocessing: Preprocessing | None = None) -> LoadedModel:  # fmt: skip
    """Load a model from a weights file; ``arch`` is needed only for raw state_dicts without metadata.

    The model's :class:`~segbench.preprocessing.Preprocessing` is what the file's metadata states
    (``mean``, ``std``, ...), the rest from ``preprocessing`` (a weights spec's; default ImageNet's).

    Raises:
        UserError: unreadable file, unknown architecture, a file of another architecture than ``arch``,
            weights that do not fit, or preprocessing metadata out of range.
    """
    path = Path(path)
    state, meta = read_checkpoint(path)
    if arch and meta.get("arch") and meta["arch"] != arch:
        raise UserError(f"{path}: holds {meta['arch']} weights, not {arch}; use {meta['arch']} --weights {path}")
    arch = meta.get("arch") or arch
    if not arch:
        raise UserError(f"{path}: the file does not say its architecture; give it: MODEL --weights {path}")
    state = to_segbench_layout(arch, state)
    num_classes = int(meta.get("num_classes") or _num_classes_from_state(arch, state) or 21)
    model = _build(arch, num_classes, _has_aux(state))
    load_state_strict(model, {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, str(path))
    names = meta.get("class_names") or (list(VOC.names) if num_classes == 21 else [str(i) for i in range(num_classes)])
    palette = meta.get("palette") or (list(VOC.palette) if num_classes == 21 else default_palette(num_classes))
    info = ModelInfo(
        arch=arch,
        weights=label or str(path),
        num_classes=num_classes,
        class_names=list(names),
        palette=[tuple(c) for c in palette],
        preprocessing=Preprocessing.from_dict(meta, str(path), default=preprocessing),
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
        spec = WEIGHTS.get(arch, {}).get(weights)
        return load_weights_file(zoo[weights], label=f"{arch}.{weights}", preprocessing=spec and spec.preprocessing)
    spec = WEIGHTS.get(arch, {}).get(weights)
    if spec is not None:
        return load_weights_file(_weights_path(spec), arch, label=spec.name, preprocessing=spec.preprocessing)
    raise UserError(f"{arch}: unknown weights {weights!r}; available: {', '.join(available_weights(arch)) or 'none'}")


def _weights_path(spec: Weights) -> Path:
    """The local file of ``spec``: torchvision's checkpoint (downloaded once), or the zoo file.

    Raises:
        UserError: the file cannot be downloaded, or the zoo file is missing; the message says how to
            supply it.
    """
    if spec.torchvision is not None:
        return torchvision_file(spec.torchvision, spec.name)
    path = zoo_dir() / spec.file
    if not path.is_file():
        raise UserError(
            f"{spec.name}: the weights file {spec.file} is missing from {zoo_dir()}; place it there, "
            f"or pass a weights file: {spec.arch} --weights /path/to/{spec.file}"
        )
    return path


def _default_num_classes(model: nn.Module) -> int:
    last = [m for m in model.modules() if isinstance(m, nn.Conv2d)][-1]
    return int(last.out_channels)
