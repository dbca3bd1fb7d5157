"""What every dataset layout declares: how to recognise its folder, its splits, and how to open one.

A layout is data plus three functions, so :mod:`segbench.data.layouts` can list the supported layouts,
detect one from a folder and describe what it found, without knowing any layout's rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from segbench.data.base import SegmentationDataset
from segbench.errors import UserError
from segbench.files import read_text


@dataclass(frozen=True)
class Layout:
    """One dataset layout, as published.

    Attributes:
        name: what ``--dataset`` takes (``cityscapes``, ``voc``, ...).
        title: the dataset's name as its authors write it.
        sketch: the folders and file names it expects, one line.
        marker: the few folders or files that identify it (for "not a dataset" messages).
        find_root: ``(path, split) -> root | None``: the dataset's root at or just below ``path`` (an
            archive's top folder such as ``VOCdevkit/VOC2012``), or None when ``path`` is not this layout.
        splits: ``root -> split names`` present in the folder.
        open: ``(root, split) -> SegmentationDataset``; raises :class:`UserError` naming what is missing.
    """

    name: str
    title: str
    sketch: str
    marker: str
    find_root: Callable[[Path, str], Path | None]
    splits: Callable[[Path], list[str]]
    open: Callable[[Path, str], SegmentationDataset]


def first_dir(candidates: list[Path], *required: str) -> Path | None:
    """The first of ``candidates`` that holds every sub-folder in ``required``, or None."""
    return next((c for c in candidates if all((c / r).is_dir() for r in required)), None)


def read_id_list(path: Path) -> list[str]:
    """Image ids of a split listing, one per line: the stem of the line's first field, so both VOC's
    ``2007_000032`` and DeepLab's ``/JPEGImages/2007_000032.jpg /SegmentationClassAug/2007_000032.png``
    give ``2007_000032``.

    Raises:
        UserError: the file cannot be read as UTF-8 text.
    """
    return [Path(line.split()[0]).stem for line in read_text(path, "split listing").splitlines() if line.strip()]


def no_split(root: Path, split: str, found: list[str], expected: str) -> UserError:
    """The error for a split that is not there, naming the splits that are."""
    have = ", ".join(found) if found else "none"
    return UserError(f"{root}: no split {split!r} (expected {expected}; splits found: {have})")
