"""A stopped evaluation, kept and continued (``segbench evaluate --output DIR --resume``).

On a stop :func:`segbench.engine.evaluate.evaluate` hands back what it scored (the ``partial`` attribute of the
``KeyboardInterrupt``). :func:`save_partial` writes it to ``DIR/evaluate.partial.npz``: per step of the inference
chain the per-image confusion matrices and the per-image counts behind Boundary IoU, trimap and ECE, the image
names, the skipped files and the settings they were measured with; arrays and JSON text only, read back with
``allow_pickle=False``. :func:`load_partial` reads it for a run with the same settings, and :func:`merge_results`
joins it with the resumed run's images exactly as a torchrun evaluation joins its processes' shards
(:func:`segbench.engine.sharded.merge_payloads`), so every metric equals that of one uninterrupted run.

Under torchrun each process holds only its own shard when the stop comes, and a collective to gather them may
never return (the other processes are being stopped too), so each process writes its own file
(:func:`partial_name`) with no communication; :func:`load_partials` joins whatever files are there, each image
once, so the resume may run with another number of processes.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import torch

from segbench.data.base import SegmentationDataset
from segbench.data.io import write_bytes_atomic
from segbench.engine.evaluate import EvalResult, Variant
from segbench.engine.sharded import merge_payloads, result_payload
from segbench.errors import UserError, first_line
from segbench.metrics import ConfusionMatrix
from segbench.metrics.per_image import ScoreOptions

__all__ = ["PARTIAL", "load_partial", "load_partials", "merge_results", "partial_files", "partial_name",
           "remaining_pairs", "save_partial"]

PARTIAL = "evaluate.partial.npz"
"""The file a stopped ``segbench evaluate --output DIR`` leaves in ``DIR`` (removed once a run finishes)."""


def partial_name(rank: int = 0, world: int = 1) -> str:
    """The file a stopped process leaves: :data:`PARTIAL` alone, ``evaluate.partial.rank{R}.npz`` for rank ``R``
    of a torchrun evaluation. Each holds the images that process finished and, after a resume, every image the
    stopped run had kept, so that any one file lost costs only its own process's new images."""
    return PARTIAL if world == 1 else f"evaluate.partial.rank{rank}.npz"


def partial_files(folder: str | Path) -> list[Path]:
    """Every stopped run's file in ``folder``: :data:`PARTIAL` first, then the torchrun processes' by rank."""
    folder = Path(folder)
    ranks = sorted(folder.glob("evaluate.partial.rank*.npz"), key=lambda q: (len(q.name), q.name))
    return [q for q in (folder / PARTIAL, *ranks) if q.is_file()]


def _summed(confusions: np.ndarray, num_classes: int):
    """The metrics of per-image confusion matrices ``(N, C, C)`` summed over the images."""
    total = ConfusionMatrix(num_classes)
    total.mat = torch.from_numpy(np.asarray(confusions).sum(axis=0))
    return total.compute()


def save_partial(path: str | Path, res: EvalResult, settings: dict) -> Path:
    """Write the images ``res`` scored, and the ``settings`` they were scored with, to ``path`` (atomically).

    Raises:
        WriteError: the file cannot be written (one line naming it).
    """
    arrays = {"settings": np.array(json.dumps(settings, sort_keys=True)),
              "image_names": np.array(list(res.image_names), dtype=str),
              "skipped": np.array(json.dumps(res.skipped))}  # fmt: skip
    steps = []
    for k, v in enumerate(res.variants):
        steps.append({"name": v.name, "ms_per_image": v.ms_per_image, "counts": sorted(v.counts or {})})
        if v.confusions is not None:
            arrays[f"step{k}_confusions"] = np.asarray(v.confusions, dtype=np.int64)
        for key, value in (v.counts or {}).items():
            arrays[f"step{k}_counts_{key}"] = np.asarray(value)
    arrays["steps"] = np.array(json.dumps(steps))
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return write_bytes_atomic(Path(path), buf.getvalue())


def load_partial(path: str | Path, settings: dict, num_classes: int) -> EvalResult:
    """The stopped run's result from ``path``, checked against this run's ``settings``.

    Raises:
        UserError: the file is not a stopped evaluation's, or was written with other settings (naming them).
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            stored = json.loads(str(z["settings"]))
            names = [str(n) for n in z["image_names"]]
            skipped = json.loads(str(z["skipped"]))
            steps = json.loads(str(z["steps"]))
            arrays = {key: z[key] for key in z.files}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise UserError(f"--resume: {path} is not a stopped evaluation's file ({first_line(exc)}); "
                        "remove it or run without --resume") from None  # fmt: skip
    differ = sorted(k for k in set(stored) | set(settings) if stored.get(k) != settings.get(k))
    if differ:
        raise UserError(f"--resume: {path} was measured with other settings ({', '.join(differ)}); give the same "
                        "options as the stopped run, or run without --resume")  # fmt: skip
    variants = []
    for k, step in enumerate(steps):
        v = Variant(step["name"], ms_per_image=step["ms_per_image"])
        if f"step{k}_confusions" in arrays:
            v.confusions = arrays[f"step{k}_confusions"]
            v.metrics = _summed(v.confusions, num_classes)
        if step["counts"]:
            v.counts = {key: arrays[f"step{k}_counts_{key}"] for key in step["counts"]}
        variants.append(v)
    return EvalResult(variants[-1].metrics if variants else None, len(names), skipped=skipped, variants=variants,
                      image_names=names)  # fmt: skip


def _without(res: EvalResult, names: set[str], files: set[str], num_classes: int) -> EvalResult:
    """``res`` less the images named in ``names`` and the skipped ``files`` (those another file holds already)."""
    keep = [i for i, n in enumerate(res.image_names) if n not in names]
    variants = []
    for v in res.variants:
        w = Variant(v.name, ms_per_image=v.ms_per_image)
        if v.confusions is not None:
            w.confusions = np.asarray(v.confusions)[keep]
            w.metrics = _summed(w.confusions, num_classes)
        if v.counts:
            w.counts = {key: np.asarray(value)[keep] for key, value in v.counts.items()}
        variants.append(w)
    return EvalResult(variants[-1].metrics if variants else None, len(keep),
                      skipped=[s for s in res.skipped if s["file"] not in files], variants=variants,
                      image_names=[res.image_names[i] for i in keep])  # fmt: skip


def load_partials(folder: str | Path, settings: dict, dataset: SegmentationDataset, num_classes: int,
                  scores: ScoreOptions | None = None, class_names: list[str] | None = None) -> EvalResult | None:  # fmt: skip
    """Every stopped run's file in ``folder`` (:func:`partial_files`: one process's, or each torchrun process's,
    with any number of processes) as one result, each image once; None when there is none.

    Raises:
        UserError: a file is not a stopped evaluation's, or was written with other settings (naming them).
    """
    merged = None
    for path in partial_files(folder):
        part = load_partial(path, settings, num_classes)
        if merged is not None:
            part = _without(part, set(merged.image_names), {s["file"] for s in merged.skipped}, num_classes)
            if not (part.num_images or part.skipped):
                continue
            part = merge_results(merged, part, dataset, num_classes, scores, class_names)
        merged = part
    return merged


def remaining_pairs(dataset: SegmentationDataset, done: EvalResult, max_images: int = 0) -> list[tuple]:
    """The (image, mask) pairs of the first ``max_images`` items (0: all) that the stopped run neither scored nor
    skipped, in dataset order."""
    pairs = dataset.pairs[:max_images] if max_images else dataset.pairs
    scored, skipped = set(done.image_names), {s["file"] for s in done.skipped}
    return [p for p in pairs if p[0].stem not in scored and str(p[0]) not in skipped]


def merge_results(done: EvalResult, new: EvalResult, dataset: SegmentationDataset, num_classes: int,
                  scores: ScoreOptions | None = None, class_names: list[str] | None = None) -> EvalResult:  # fmt: skip
    """One result over the images of both runs, in dataset order, as one uninterrupted run would have made it
    (``scores`` and ``class_names``: as given to ``evaluate``); the kept label maps are the new run's."""
    everything = list(range(len(dataset)))
    parts = [r for r in (done, new) if r.num_images]
    if not parts:
        return EvalResult(None, 0, skipped=done.skipped + new.skipped, variants=new.variants)
    merged = merge_payloads([result_payload(r, everything, dataset) for r in parts], num_classes, scores, class_names)
    order = {str(p[0]): i for i, p in enumerate(dataset.pairs)}
    merged.skipped = sorted(done.skipped + new.skipped, key=lambda s: order.get(s["file"], -1))
    merged.predictions = dict(new.predictions)
    return merged
