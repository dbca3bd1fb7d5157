"""Evaluation sharded over the processes of a ``torchrun`` launch, with the results gathered on rank 0.

Process ``r`` of ``W`` evaluates images ``r, r + W, r + 2W, ...`` of the (first ``max_images``) images, so
every image is evaluated exactly once: no sampler padding repeats an image to even out the shards. The
confusion matrices of every step (plain, +TTA, +CRF), the image counts, the skipped files and the kept label
maps are gathered on rank 0 and merged there; the merged confusion matrix is the sum of the shards', which
is exactly the one process's matrix. Boundary IoU, trimap accuracy and ECE are merged the same way: every
image's counts (boundary intersection and union per class, band confusion matrices, calibration bins) are
gathered and added up again in image order (:meth:`~segbench.metrics.per_image.ImageScores.replay`), so the
merged scores (and their bootstrap intervals) are those of one process, not an average of the shards' ratios. Rank 0 alone then writes files, benchmarks and reports. A failure on
any rank (a bad file, a backend error) is raised on every rank with the same message, so no process waits
for the others forever.

Outside a process group (a plain ``segbench evaluate``) every function here is the single-process one.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from segbench.classes import IGNORE_INDEX
from segbench.data.base import SegmentationDataset
from segbench.engine.evaluate import EvalResult, Variant, evaluate
from segbench.errors import UserError, first_line
from segbench.metrics import ConfusionMatrix
from segbench.metrics.per_image import ImageScores, ScoreOptions
from segbench.preprocessing import Preprocessing

__all__ = ["broadcast_weights", "evaluate_sharded", "is_main", "merge_payloads", "on_main", "rank_world", "result_payload",
           "shard_indices"]


def rank_world() -> tuple[int, int]:
    """``(rank, world size)`` of this process: ``(0, 1)`` without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """True for the process that writes outputs (rank 0, or the only process)."""
    return rank_world()[0] == 0


def shard_indices(n: int, rank: int, world_size: int) -> list[int]:
    """The images of process ``rank``: ``rank, rank + world_size, ...`` below ``n``. Over all ranks every
    index in ``0..n-1`` appears exactly once (a rank may get one image fewer, or none)."""
    return list(range(rank, n, world_size))


def _mark_shared(exc: UserError) -> UserError:
    exc.all_ranks = True  # raised on every rank alike: the CLI prints it on rank 0 only
    return exc


def _agree(error: str | None, user: bool) -> None:
    """Raise the first rank's error (in rank order) on every rank; return when no rank failed."""
    _, world = rank_world()
    if world == 1:
        if error is not None:
            raise (UserError if user else RuntimeError)(error)
        return
    errors = [None] * world
    dist.all_gather_object(errors, (error, user))
    for rank, (message, is_user) in enumerate(errors):
        if message is not None:
            text = message if is_user else f"rank {rank}: {message}"
            raise _mark_shared(UserError(text)) if is_user else RuntimeError(text)


def on_main(fn, *args, **kwargs):
    """Run ``fn`` on rank 0 only (e.g. prepare the output folder) and raise its :class:`UserError` on every
    rank; returns ``fn``'s result on rank 0, None elsewhere."""
    rank, world = rank_world()
    if world == 1:
        return fn(*args, **kwargs)
    result, error = None, None
    if rank == 0:
        try:
            result = fn(*args, **kwargs)
        except UserError as exc:
            error = str(exc)
    status = [error]
    dist.broadcast_object_list(status, src=0)
    if status[0] is not None:
        raise _mark_shared(UserError(status[0]))
    return result


def broadcast_weights(model: nn.Module, device: str | torch.device) -> nn.Module:
    """Give every process rank 0's parameters and buffers (random initialisation differs per process),
    on ``device`` (NCCL needs them on the GPU). A no-op in a single process and for runners that are not an
    ``nn.Module``."""
    if rank_world()[1] == 1 or not isinstance(model, nn.Module):  # an ONNX file's runner holds no tensors
        return model
    model.to(device)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            dist.broadcast(tensor, src=0)
    return model


def result_payload(res: EvalResult, indices: list[int], shard: SegmentationDataset, seen: list | None = None) -> dict:
    """What one rank sends to rank 0: per step its confusion matrix and summed seconds, the counts, and the
    skipped files, kept label maps and ``on_image`` calls (``seen``: ``(path, label map, confidence)``)
    under their global image index."""
    index_of = {str(shard.pairs[k][0]): i for k, i in enumerate(indices)}
    name_index = {shard.pairs[k][0].stem: i for k, i in enumerate(indices)}
    steps = []
    for v in res.variants:
        conf = None if v.metrics is None else np.asarray(v.metrics.confusion, dtype=np.int64)
        steps.append((v.name, conf, v.ms_per_image, v.confusions, v.counts))
    return {
        "num_images": res.num_images, "steps": steps,
        "image_order": [name_index.get(name, -1) for name in res.image_names],
        "image_names": list(res.image_names),
        "skipped": [(index_of.get(s["file"], -1), s) for s in res.skipped],
        "predictions": [(name_index.get(k, -1), k, np.asarray(p)) for k, p in res.predictions.items()],
        "seen": [(index_of.get(path, -1), pred, conf) for path, pred, conf in seen or []],
    }  # fmt: skip


def _replay(payloads: list[dict], dataset: SegmentationDataset, on_image) -> None:
    """Call ``on_image(item, label map, confidence)`` on rank 0 for every image any rank evaluated, in
    image order, with the item read again here (its image and mask are not sent)."""
    for index, pred, conf in sorted((t for p in payloads for t in p.get("seen", [])), key=lambda t: t[0]):
        item = dataset[index]
        if "error" not in item:
            on_image(item, pred, conf)


def _merged_counts(payloads: list[dict], k: int, order: list[tuple]) -> dict | None:
    """Step ``k``'s per-image counts of every rank, in image order (None when no rank has them)."""
    held = [p["steps"][k][4] for p in payloads if len(p["steps"][k]) > 4 and p["steps"][k][4] is not None]
    if not held or not order:
        return None
    return {key: np.stack([payloads[r]["steps"][k][4][key][j] for _, r, j in order]) for key in held[0]}


def merge_payloads(payloads: list[dict], num_classes: int, scores: ScoreOptions | None = None,
           class_names: list[str] | None = None) -> EvalResult:  # fmt: skip
    """One :class:`EvalResult` from every rank's :func:`result_payload`, as a single process would have made it
    (``scores`` and ``class_names``: as given to ``evaluate``)."""
    total = sum(p["num_images"] for p in payloads)
    # every evaluated image's place in the whole dataset, and the (payload, row) its per-image matrix is in
    order = sorted((i, r, j) for r, p in enumerate(payloads) for j, i in enumerate(p["image_order"]))
    variants = []
    for k, (name, conf, *_) in enumerate(payloads[0]["steps"]):
        v = Variant(name)
        timed = [(p["steps"][k][2], p["num_images"]) for p in payloads if p["steps"][k][2] is not None]
        if total and timed:
            v.ms_per_image = sum(ms * n for ms, n in timed) / sum(n for _, n in timed)
        if conf is not None:
            cm = ConfusionMatrix(num_classes)
            cm.mat = torch.from_numpy(sum(p["steps"][k][1] for p in payloads))
            v.metrics = cm.compute()
        if conf is not None and order:  # each rank that evaluated an image holds its per-image matrices
            v.confusions = np.stack([payloads[r]["steps"][k][3][j] for _, r, j in order])
        counts = _merged_counts(payloads, k, order) if conf is not None else None
        if counts is not None:  # the optional scores, from every image's counts added up in image order
            replayed = ImageScores.replay(num_classes, IGNORE_INDEX, scores or ScoreOptions(), counts)
            v.trimap_confusions, v.extra, v.counts = replayed.stacked_trimap(), replayed.extra(class_names), counts
        variants.append(v)
    skipped = [s for _, s in sorted((s for p in payloads for s in p["skipped"]), key=lambda t: t[0])]
    preds = sorted((t for p in payloads for t in p["predictions"]), key=lambda t: t[0])
    metrics = variants[-1].metrics if variants else None
    names = [payloads[r]["image_names"][j] for _, r, j in order]
    return EvalResult(metrics, total, skipped=skipped, predictions={k: a for _, k, a in preds}, variants=variants,
                      image_names=names)  # fmt: skip


def evaluate_sharded(model, dataset: SegmentationDataset, num_classes: int, preprocessing: Preprocessing,
                     device: str = "cpu", max_images: int = 0, progress: bool = True,
                     **kwargs) -> EvalResult:  # fmt: skip
    """:func:`segbench.engine.evaluate.evaluate` over this process's shard of ``dataset`` (see the module
    docstring), merged on rank 0.

    Args:
        model, dataset, num_classes, preprocessing, device, max_images, progress: as for ``evaluate``
            (``max_images`` counts over all processes; only rank 0 shows progress).
        **kwargs: the other keywords of ``evaluate`` (``keep``, ``desc``, ``with_metrics``, ``inference``,
            ``crf``, and ``on_image`` where ``evaluate`` has it: called on rank 0 only, for every image of
            every rank in image order, after the gather; the label maps and confidences of all images are
            then held in rank 0's memory at once).

    Returns:
        On rank 0 (and in a single process) the result over all images; on the other ranks their own
        shard's result, which they should not report.

    Raises:
        UserError: the first rank's user error, on every rank. RuntimeError: any other failure of a rank.
    """
    rank, world = rank_world()
    if world == 1:
        return evaluate(model, dataset, num_classes, preprocessing, device=device, max_images=max_images,
                        progress=progress, **kwargs)  # fmt: skip
    on_image, seen = kwargs.pop("on_image", None), []
    if on_image is not None:  # replayed on rank 0 after the gather, so only rank 0 writes
        kwargs["on_image"] = lambda item, pred, conf: seen.append((item["path"], np.asarray(pred), conf))
    n = len(dataset) if not max_images else min(max_images, len(dataset))
    indices = shard_indices(n, rank, world)
    shard = dataset.subset([dataset.pairs[i] for i in indices])
    res, error, user = None, None, False
    try:
        res = evaluate(model, shard, num_classes, preprocessing, device=device, progress=progress and rank == 0,
                       **kwargs)
    except Exception as exc:  # noqa: BLE001 - every rank must learn of it, or the others wait forever
        error, user = (str(exc), True) if isinstance(exc, UserError) else (first_line(exc), False)
    _agree(error, user)
    gathered = [None] * world if rank == 0 else None
    dist.gather_object(result_payload(res, indices, shard, seen), gathered, dst=0)
    if rank != 0:
        return res
    if on_image is not None:
        _replay(gathered, dataset, on_image)
    return merge_payloads(gathered, num_classes, kwargs.get("scores"), kwargs.get("class_names"))
