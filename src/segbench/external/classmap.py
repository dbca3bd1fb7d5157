"""Scoring a model on data labelled with other classes: a mapping from the model's classes to the data's.

The mapping comes from an explicit ``--class-map map.yaml`` (``model class: dataset class`` per line; model
classes not listed are ignored), or else from the class names: equal ignoring case, spaces, ``-`` and ``_``,
or one of the documented synonyms (:data:`SYNONYMS`, e.g. ``person`` = ``pedestrian``).

How a mapped model is scored (the way cross-dataset results are usually computed):

- the logits of the model classes mapped onto one dataset class are combined by ``logsumexp`` (their softmax
  probabilities add up), so the output is ``(N, C_data, H, W)``; model classes mapped to nothing are left out
  of the prediction (the softmax is renormalised over the mapped ones);
- dataset classes no model class maps onto cannot be predicted: their pixels are ignored (set to the ignore
  index), so they have no IoU and are left out of mIoU.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from segbench.classes import IGNORE_INDEX
from segbench.errors import UserError
from segbench.files import read_text

__all__ = [
    "SYNONYMS", "ClassMapping", "MappedLogits", "MappedTargets", "class_mapping", "read_class_map", "read_class_map_file",
]  # fmt: skip

SYNONYMS: tuple[frozenset[str], ...] = tuple(frozenset(group) for group in (
    {"person", "pedestrian", "people", "human"},
    {"bicycle", "bicyclist", "bike", "cyclist"},
    {"motorcycle", "motorbike"},
    {"car", "automobile"},
    {"road", "street"},
    {"sidewalk", "pavement"},
    {"vegetation", "tree", "plant"},
    {"traffic sign", "signsymbol", "sign symbol", "sign"},
    {"pole", "column pole"},
    {"aeroplane", "airplane"},
    {"tvmonitor", "tv monitor", "monitor"},
))  # fmt: skip
"""Groups of class names taken to mean the same class (compared ignoring case, spaces, ``-`` and ``_``)."""


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", str(name).strip().lower())


_SYNONYM_KEYS = tuple(frozenset(_key(n) for n in g) for g in SYNONYMS)


def _same(a: str, b: str) -> bool:
    ka, kb = _key(a), _key(b)
    return ka == kb or any(ka in g and kb in g for g in _SYNONYM_KEYS)


@dataclass(frozen=True)
class ClassMapping:
    """Model class index -> dataset class index, for the model classes that map onto one.

    Attributes:
        pairs: ``(model index, dataset index)`` for every mapped model class.
        model_names: the model's class names.
        data_names: the dataset's class names.
        how: ``"names"`` (matched by name) or the class-map file.
    """

    pairs: tuple[tuple[int, int], ...]
    model_names: tuple[str, ...]
    data_names: tuple[str, ...]
    how: str

    @property
    def unmatched_data(self) -> list[str]:
        """Dataset classes no model class maps onto (ignored in scoring)."""
        hit = {d for _, d in self.pairs}
        return [n for i, n in enumerate(self.data_names) if i not in hit]

    def describe(self) -> str:
        """One line: the pairs, the dataset classes ignored and the model classes left out."""
        mapped = ", ".join(f"{self.model_names[m]} -> {self.data_names[d]}" for m, d in self.pairs)
        left = [n for i, n in enumerate(self.model_names) if i not in {m for m, _ in self.pairs}]
        how = "matched by class name" if self.how == "names" else f"from {self.how}"
        text = f"classes {how}: {mapped}"
        if self.unmatched_data:
            text += f"; dataset classes without a model class (ignored): {', '.join(self.unmatched_data)}"
        if left:
            text += f"; model classes not mapped (left out): {', '.join(left)}"
        return text

    def map_labels(self, mask: np.ndarray) -> np.ndarray:
        """A label map ``(H, W)`` with the labels of :attr:`unmatched_data` (and any label outside the dataset's
        classes) set to the ignore index; the same dtype."""
        lut = np.full(max(256, len(self.data_names) + 1), IGNORE_INDEX, np.int64)
        for _, d in self.pairs:
            lut[d] = d
        keep = (mask >= 0) & (mask < len(lut))
        mapped = np.full_like(mask, IGNORE_INDEX)
        mapped[keep] = lut[mask[keep]]
        return mapped

    def wrap(self, runner: nn.Module) -> MappedLogits:
        """``runner`` with its logits mapped onto the dataset's classes."""
        return MappedLogits(runner, self)

    def targets(self, dataset) -> MappedTargets:
        """``dataset`` with the labels of :attr:`unmatched_data` set to the ignore index."""
        return MappedTargets(dataset, self)


class MappedLogits(nn.Module):
    """Logits ``(N, C_model, H, W)`` -> ``(N, C_data, H, W)``: ``logsumexp`` over the model classes mapped onto
    each dataset class, ``-1e4`` for dataset classes nothing maps onto (never predicted)."""

    def __init__(self, runner: nn.Module, mapping: ClassMapping) -> None:
        super().__init__()
        self.runner = runner
        self.mapping = mapping
        self.notes = getattr(runner, "notes", None)
        groups: dict[int, list[int]] = {}
        for m, d in mapping.pairs:
            groups.setdefault(d, []).append(m)
        self._groups = sorted(groups.items())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.runner(x).float()
        n, _, h, w = logits.shape
        out = logits.new_full((n, len(self.mapping.data_names), h, w), -1e4)
        for d, idx in self._groups:
            out[:, d] = torch.logsumexp(logits[:, idx], dim=1)
        return out


class MappedTargets:
    """A dataset view whose masks have the classes no model class maps onto set to the ignore index."""

    def __init__(self, dataset, mapping: ClassMapping) -> None:
        self.dataset = dataset
        self.mapping = mapping

    def __getattr__(self, name):
        return getattr(self.dataset, name)

    def __len__(self) -> int:
        return len(self.dataset)

    def _map(self, item: dict) -> dict:
        mask = item.get("mask")
        return item if mask is None else {**item, "mask": self.mapping.map_labels(mask)}

    def __getitem__(self, i: int) -> dict:
        return self._map(self.dataset[i])

    def load(self, i: int) -> dict:
        return self._map(self.dataset.load(i))


def read_class_map_file(path: str | Path) -> dict:
    """The pairs of a class-map file as written (``{model class: dataset class or None}``).

    Raises:
        UserError: the file cannot be read, is not YAML, or is not a mapping.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(read_text(path, "class map"))
    except yaml.YAMLError as exc:
        raise UserError(f"--class-map {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or not data:
        raise UserError(f"--class-map {path}: expected 'model class: dataset class' lines")
    return data


def read_class_map(path: str | Path, model_names: Sequence[str], data_names: Sequence[str]) -> ClassMapping:
    """The mapping of ``--class-map FILE``: YAML ``model class: dataset class`` (names, or indices).

    Raises:
        UserError: unreadable or invalid YAML, a name that is neither class of the model nor of the data, or
            no pair at all.
    """
    path = Path(path)
    data = read_class_map_file(path)

    def index(name, names: Sequence[str], whose: str) -> int:
        if isinstance(name, int) and not isinstance(name, bool) and 0 <= name < len(names):
            return name
        found = [i for i, n in enumerate(names) if _key(n) == _key(str(name))]
        if not found:
            raise UserError(f"--class-map {path}: {name!r} is not a class of the {whose} "
                            f"({', '.join(names[:12])}{', ...' if len(names) > 12 else ''})")  # fmt: skip
        return found[0]

    pairs = {index(m, model_names, "model"): index(d, data_names, "dataset") for m, d in data.items() if d is not None}
    if not pairs:
        raise UserError(f"--class-map {path}: maps no class")
    return ClassMapping(tuple(sorted(pairs.items())), tuple(model_names), tuple(data_names), str(path))


def class_mapping(model_names: Sequence[str], data_names: Sequence[str], class_map: str | Path | None = None):
    """The mapping from the model's classes to the data's: None when they are the same list; from
    ``class_map`` when given, else by name (None when no name matches).

    A model class matching several dataset classes maps onto the first exact match, else the first synonym.

    Raises:
        UserError: a bad ``class_map`` file (see :func:`read_class_map`).
    """
    if class_map is not None:
        return read_class_map(class_map, model_names, data_names)
    if list(model_names) == list(data_names):
        return None
    chosen: dict[int, int] = {}
    for m, mn in enumerate(model_names):
        hits = [d for d, dn in enumerate(data_names) if _same(mn, dn)]
        if hits:
            exact = [d for d in hits if _key(data_names[d]) == _key(mn)]
            chosen[m] = (exact or hits)[0]
    if not chosen:
        return None
    return ClassMapping(tuple(sorted(chosen.items())), tuple(model_names), tuple(data_names), "names")
