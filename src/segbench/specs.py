"""Model specs as a list the user typed: each model once, and one label per model.

A spec is what the command line takes for a model (``fast_scnn.camvid``, ``runs/a/last.pt``, ``smp:Unet:resnet18``);
this module only compares the strings and, for files, their resolved paths: nothing is loaded.
"""

from __future__ import annotations

from pathlib import Path


def _identity(spec: str) -> str:
    """The same file named two ways (``a/last.pt``, ``./a/last.pt``) is one model; other specs are their text."""
    path = Path(spec)
    try:
        return str(path.resolve()) if path.is_file() else spec
    except OSError:
        return spec


def unique_specs(specs: list[str]) -> tuple[list[str], list[str]]:
    """``(specs, notes)``: ``specs`` in order with every repeat left out (the same text, or the same file), and
    one note line per model that was named more than once.

    >>> unique_specs(["fcn", "unet", "fcn"])
    (['fcn', 'unet'], ['fcn: named 2 times, measured once'])
    """
    first: dict[str, str] = {}
    times: dict[str, int] = {}
    for spec in specs:
        key = _identity(spec)
        first.setdefault(key, spec)
        times[key] = times.get(key, 0) + 1
    notes = [f"{first[k]}: named {n} times, measured once" for k, n in times.items() if n > 1]
    return list(first.values()), notes


def unique_label(name: str, spec: str, taken: set[str] | list[str]) -> str:
    """``name`` when no earlier model took it, else ``name`` with where ``spec`` comes from: the parent folder
    and file name for a file (``fast_scnn (run_a/last.pt)``), the spec otherwise; ``#2``, ``#3``, ... when even
    that is taken."""
    if name not in taken:
        return name
    path = Path(spec)
    where = f"{path.parent.name}/{path.name}" if path.parent.name else path.name
    label = f"{name} ({where})" if where != name else name
    n = 2
    while label in taken:
        label, n = f"{name} ({where}) #{n}", n + 1
    return label
