"""What an external model needs around it: class names, palette, input normalisation, and where they came from.

A file's own metadata is used first (segbench's ONNX exports carry ``classes``, ``palette`` and their
:class:`~segbench.preprocessing.Preprocessing` (``mean``, ``std``, ``channel_order``, ...) in ``metadata_props``;
TorchScript and ``torch.export`` files may carry the same keys as JSON in an extra file ``segbench.json``); the
user's ``--classes FILE --mean R G B --std R G B`` fill in or replace them.
What is still missing is listed in one line (:attr:`ExternalInfo.missing`), and the defaults used instead
(classes named by their index, ImageNet normalisation) are stated there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from segbench.classes import check_unique_names, default_palette
from segbench.errors import UserError
from segbench.files import read_text
from segbench.models import ModelInfo
from segbench.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, rgb_triple

__all__ = ["ExternalInfo", "ModelInputs", "read_class_file", "resolve_info"]

METADATA_FILE = "segbench.json"
"""Name of the extra file holding the metadata of a TorchScript or ``torch.export`` file (JSON)."""


@dataclass(frozen=True)
class ModelInputs:
    """The user's statements about a model's inputs and outputs (``--classes``, ``--mean``, ``--std``).

    Attributes:
        classes: a class file: YAML with ``names`` (and optionally ``palette``), or plain text with one name
            per line.
        mean: input normalisation mean (RGB, for inputs scaled to 0..1).
        std: input normalisation standard deviation.
        trust_remote_code: ``--trust-remote-code``: a file someone else made may run code of its own (an
            ``hf:`` folder's modeling code, a ``.pt2`` whose parts need full unpickling). False: such files are
            refused in one line.
    """

    classes: str | Path | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    trust_remote_code: bool = False


@dataclass
class ExternalInfo(ModelInfo):
    """:class:`segbench.models.ModelInfo` of a model segbench did not build.

    Attributes:
        label: the name shown in reports (``model.onnx``, ``smp:Unet:resnet34``).
        kind: ``onnx``, ``torchscript``, ``torch.export``, ``py``, ``smp`` or ``hf``.
        missing: one line saying what the model's file did not say and which default replaced it ("" when
            nothing is missing).
        notes: what cannot be measured for this model and why (``GFLOPs: ...``), for the report's notes.
    """

    label: str = ""
    kind: str = ""
    missing: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.label or self.arch


def read_class_file(path: str | Path) -> tuple[list[str], list[tuple[int, int, int]] | None]:
    """Class names (and palette, when given) from ``--classes FILE``.

    Raises:
        UserError: unreadable file, a YAML file without a list ``names``, no names at all, or a name given twice.
    """
    path = Path(path)
    text = read_text(path, "class file")
    palette = None
    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UserError(f"--classes {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        names = data.get("names") if isinstance(data, dict) else data
        if isinstance(data, dict) and data.get("palette") is not None:
            palette = [tuple(int(v) for v in c[:3]) for c in data["palette"]]
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if not isinstance(names, list) or not names or not all(isinstance(n, (str, int)) for n in names):
        raise UserError(f"--classes {path}: expected a list of class names ('names: [road, car, ...]' or one per line)")
    names = [str(n) for n in names]
    check_unique_names(names, f"--classes {path}")
    return names, palette


def _decoded(value, source: str, what: str, expected: str):
    """``value`` itself, or parsed from JSON when a file's metadata holds it as text.

    Raises:
        UserError: text that is not JSON, naming ``source``, the metadata key and what was ``expected``.
    """
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        raise UserError(f"{source}: metadata {what!r} is not a JSON list of {expected}") from None


def _triple(value, what: str, source: str) -> tuple[float, float, float] | None:
    if value is None:
        return None
    return rgb_triple(_decoded(value, source, what, f"3 numbers: {value!r}"), what, source)


def _names(value, source: str) -> list[str] | None:
    if value is None:
        return None
    value = _decoded(value, source, "classes", "names")
    if isinstance(value, dict):  # id2label
        value = [value[k] for k in sorted(value, key=int)]
    return [str(v) for v in value]


def resolve_info(
    *, label: str, kind: str, source: str, num_classes: int | None, meta: dict, inputs: ModelInputs | None
) -> ExternalInfo:
    """The :class:`ExternalInfo` of a model: the user's statements over the file's metadata over defaults.

    Args:
        label: the model's name in reports.
        kind: the loader (``onnx``, ``torchscript``, ...).
        source: the spec or file, for messages.
        num_classes: classes the model predicts when known from its output shape (None: from the names).
        meta: the file's metadata (``classes`` or ``class_names``, ``palette``, and the keys of
            :meth:`segbench.preprocessing.Preprocessing.to_dict`: ``mean``, ``std``, ``channel_order``, ...).
        inputs: ``--classes``/``--mean``/``--std``.

    Raises:
        UserError: a class file or metadata value that cannot be read or is out of range (naming the key), or
            a class count that differs from the model's output channels.
    """
    inputs = inputs or ModelInputs()
    names = _names(meta.get("classes", meta.get("class_names")), source)
    palette = meta.get("palette")
    if isinstance(palette, str):
        palette = json.loads(palette)
    if inputs.classes is not None:
        names, given_palette = read_class_file(inputs.classes)
        palette = given_palette or None
    mean = _triple(inputs.mean, "--mean", source) or _triple(meta.get("mean"), "mean", source)
    std = _triple(inputs.std, "--std", source) or _triple(meta.get("std"), "std", source)
    preprocessing = Preprocessing.from_dict({**meta, "mean": mean or IMAGENET_MEAN, "std": std or IMAGENET_STD},
                                            source)  # fmt: skip
    missing = [what for what, value in (("class names", names), ("mean", mean), ("std", std)) if value is None]
    if names is not None and num_classes is not None and len(names) != num_classes:
        raise UserError(f"{source}: predicts {num_classes} classes but {len(names)} class names are given")
    n = num_classes if num_classes is not None else len(names or [])
    if n < 1:
        raise UserError(f"{source}: cannot tell how many classes the model predicts; pass --classes FILE")
    line = ""
    if missing:
        line = (f"{source}: no {', '.join(missing)} in its metadata; using "
                + ", ".join(filter(None, ["classes named 0..N-1" if names is None else "",
                                          "ImageNet mean/std" if mean is None or std is None else ""]))
                + " (pass " + " ".join(f for f, m in (("--classes FILE", names is None), ("--mean R G B", mean is None),
                                                      ("--std R G B", std is None)) if m) + ")")  # fmt: skip
    palette = [tuple(int(v) for v in c[:3]) for c in palette] if palette else []
    if len(palette) < n:
        palette += default_palette(n)[len(palette) :]
    rule = preprocessing.resize_description()
    notes = [f"{source}: inputs {rule} as its metadata says, logits back at the image's size"] if rule else []
    return ExternalInfo(
        arch=kind, weights=source, num_classes=n, class_names=names or [str(i) for i in range(n)],
        palette=palette[:n], preprocessing=preprocessing, meta=dict(meta),
        label=label, kind=kind, missing=line, notes=notes,
    )  # fmt: skip
