"""A comparison that stops keeps what finished: the finished models' rows, grid masks, per-image matrices and
browser masks are saved in ``OUT/compare.partial.npz`` beside a report marked partial, and ``--resume``
measures only the models that did not finish (:func:`save_partial`, :func:`load_partial`, :func:`restore`).

A model is finished when every one of its rows is done and no benchmark worker of it crashed (a worker killed
by a signal or exiting without a row: ``worker_exit`` other than 0); a model stopped part way leaves no row.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from segbench.errors import UserError
from segbench.files import write_bytes_atomic
from segbench.report.masks import MAX_PALETTE_CLASSES, MaskStore

STATE = "compare.partial.npz"
"""The finished models of a stopped comparison, in its report folder (read by ``--resume``)."""

_VERSION = 1


def crashed(rows: list[dict]) -> bool:
    """Whether a benchmark worker of these rows (one model's) died: killed, timed out, or exited without a row."""
    return any(r.get("worker_exit") not in (None, 0) for r in rows)


def fingerprint(data, p, opts) -> dict:
    """What a resumed run must share with the stopped one for their rows to sit in one report."""
    return {"data": str(Path(data).resolve()), "split": opts.split, "images": p.n_images,
            "input_size": list(p.input_size), "batch": opts.batch, "device": opts.device,
            "backends": list(p.backends), "min_time_s": opts.min_time_s}  # fmt: skip


def _plain(value):
    """numpy scalars and arrays as Python numbers and lists; anything else as its text (paths)."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def save_partial(folder: Path, finished: dict[str, tuple[int, int]], p, results, key: dict) -> Path:
    """Write ``folder/compare.partial.npz``: the rows (with their env), grid masks and per-image matrices of the
    ``finished`` models (spec -> their rows' span ``[first, end)`` in ``results.rows``) and the browser's state."""
    arrays: dict[str, np.ndarray] = {}
    grid = []
    for name, preds in results.grid_preds.items():
        for label, pred in preds.items():
            grid.append([name, label, f"grid{len(grid)}"])
            arrays[grid[-1][2]] = np.asarray(pred)
    matrices = []
    for label, m in results.matrices.items():
        matrices.append([label, f"matrix{len(matrices)}"])
        arrays[matrices[-1][1]] = np.asarray(m)
    state = {
        "version": _VERSION, "key": key, "models": [[spec, results.rows[a:b], a] for spec, (a, b) in finished.items()],
        "grid": grid, "matrices": matrices, "image_names": list(results.image_names), "skipped": results.skipped,
        "palette": p.palette, "class_names": p.class_names,
        "store": results.store.state() if results.store is not None else None,
    }  # fmt: skip
    arrays["state"] = np.array(json.dumps(state, default=_plain))
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return write_bytes_atomic(folder / STATE, buf.getvalue(), "the comparison's resume file")


def load_partial(folder: Path, key: dict) -> dict | None:
    """The state :func:`save_partial` left in ``folder`` (with its arrays under ``"arrays"``); None when there is
    none (every model is then measured).

    Raises:
        UserError: the file cannot be read, or it holds a comparison of other data or settings.
    """
    path = folder / STATE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        state = json.loads(str(arrays.pop("state")))
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"{path}: cannot read the stopped comparison ({exc}); run without --resume") from None
    if state.get("version") != _VERSION:
        raise UserError(f"{path}: written by another version of segbench; run without --resume")
    before = state["key"]
    differ = sorted(k for k in set(key) | set(before) if key.get(k) != before.get(k))
    if differ:
        was = ", ".join(f"{k} {before.get(k)}" for k in differ)
        raise UserError(f"--resume: {path} holds a comparison with other {', '.join(differ)} ({was}); give the "
                        "same options or run without --resume")  # fmt: skip
    state["arrays"] = arrays
    return state


def restore(state: dict, models: list[str], p, results, old_browser: Path) -> dict[str, tuple[int, int]]:
    """Put the finished models of ``state`` that are among ``models`` into ``results`` (rows renumbered in
    order, their grid masks, matrices and browser masks) and the palette into ``p``; returns spec -> span."""
    spans: dict[str, tuple[int, int]] = {}
    renumber: dict[int, int] = {}
    for spec, rows, first in state["models"]:
        if spec not in models or spec in spans:
            continue
        start = len(results.rows)
        renumber.update({first + i: start + i for i in range(len(rows))})
        results.rows.extend(rows)
        spans[spec] = (start, len(results.rows))
    arrays = state["arrays"]
    kept_models = {r.get("model") for r in results.rows}
    for name, label, key in state["grid"]:
        if any(label == m or label.startswith(f"{m} (") for m in kept_models):
            results.grid_preds.setdefault(name, {})[label] = arrays[key]
    for label, key in state["matrices"]:
        if any(label == m or label.startswith(f"{m} (") for m in kept_models):
            results.matrices[label] = arrays[key]
    results.image_names = list(state["image_names"]) if results.matrices else []
    results.skipped = state["skipped"]
    if p.palette is None and state["palette"] is not None:
        p.palette, p.class_names = state["palette"], state["class_names"]
    if state["store"] is not None and results.browser_dir is not None and old_browser.is_dir():
        n = len(p.class_names) if p.dataset.labelled and p.class_names else MAX_PALETTE_CLASSES
        results.store = MaskStore.restore(results.browser_dir, p.palette, n, state["store"], old_browser, renumber)
    return spans
