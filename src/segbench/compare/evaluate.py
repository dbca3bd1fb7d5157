"""The accuracy pass of one (model, backend) in a comparison: its predictor, its evaluation over the images,
the accuracy and score columns of its row, and the agreement of its label maps with the first backend's."""

from __future__ import annotations

import numpy as np
import torch

from segbench.bench.backends import calibration_for, prepare
from segbench.data.transforms import preprocess
from segbench.engine.inference import InferenceConfig
from segbench.engine.sharded import evaluate_sharded
from segbench.metrics import ConfusionMatrix
from segbench.metrics.summary import flat_scores, summarise


def first_image(p) -> dict | None:
    """The first readable item of the plan ``p``'s images (None when every one is bad)."""
    return next((p.dataset[i] for i in range(p.n_images) if "error" not in p.dataset[i]), None)


def agreement(preds: dict[str, np.ndarray], reference: dict[str, np.ndarray], num_classes: int) -> dict:
    """``agreement_miou``: mIoU of ``preds`` scored against ``reference`` (the label maps of the first backend),
    and ``pixel_agreement``: the fraction of pixels labelled the same; None when no image is in both."""
    cm = ConfusionMatrix(num_classes)
    same = total = 0
    for name, ref in reference.items():
        if name not in preds:
            continue
        pred = torch.from_numpy(np.asarray(preds[name]).astype(np.int64))
        target = torch.from_numpy(ref.astype(np.int64))
        cm.update(pred, target)
        same += int((pred == target).sum())
        total += target.numel()
    if not total:
        return {"agreement_miou": None, "pixel_agreement": None}
    return {"agreement_miou": cm.compute().miou, "pixel_agreement": same / total}


def _runner(loaded, backend: str, p, opts):
    """``(runner, calibration batch or None)``: the model itself for eager, else a prepared backend predictor."""
    if backend == "eager":
        return loaded.model, None
    info = loaded.info
    calib = calibration_for(backend, info.preprocessing, opts.calibration)
    first = first_image(p)
    example = preprocess(first["image"], info.preprocessing) if first is not None else torch.randn(1, 3, *p.input_size)
    return prepare(loaded.model, backend, example, opts.device, calib), calib


def accuracy(brow: dict, res, info, p, names: list[str]) -> None:
    """Accuracy columns of ``brow`` from an evaluation result (or a note why there are none); ``names``: the
    classes the predictions are in (the data's when the model's were mapped onto them)."""
    brow["num_images"] = res.num_images
    if res.metrics is not None:
        m = res.metrics.to_dict(names)
        brow.update(pixel_accuracy=m["pixel_accuracy"], mean_accuracy=m["mean_accuracy"], miou=m["miou"], iou=m["iou"])
    elif p.dataset.labelled:
        brow["note"] = (f"{info.num_classes} classes ({info.class_names[0]}, ...) differ from the data's: "
                        "accuracy not measured")  # fmt: skip


def scores(brow: dict, res, opts, label: str, out) -> None:
    """Intervals, per-image mIoU and the optional scores of a row; its per-image matrices kept for the pairs."""
    summary = summarise(res, opts.scores)
    if not summary:
        return
    brow.update(summary)
    brow.update(flat_scores(summary))
    out.matrices[label] = res.variants[-1].confusions
    out.image_names = out.image_names or list(res.image_names)


def evaluate_backend(loaded, backend: str, p, opts, label: str, mapping=None,
                      on_image=None):  # fmt: skip
    """``(evaluation result, model inference settings, calibration batch)`` of one (model, backend); with a class
    ``mapping``, the logits are mapped onto the data's classes and the data's unmapped classes ignored;
    ``on_image`` receives every image's prediction (the report's image browser)."""
    info = loaded.info
    model_inference = (opts.inference or InferenceConfig()).for_model(info)
    runner, calib = _runner(loaded, backend, p, opts)
    dataset, num_classes = p.dataset, info.num_classes
    if mapping is not None:
        runner, dataset, num_classes = mapping.wrap(runner), mapping.targets(p.dataset), len(mapping.data_names)
    same_classes = p.dataset.labelled and (mapping is not None or list(p.dataset.class_set.names) == list(info.class_names))
    keep = set(p.grid_names) if len(p.backends) == 1 else {p.dataset.pairs[i][0].stem for i in range(p.n_images)}
    res = evaluate_sharded(  # over the torchrun processes when there are several, merged on rank 0
        runner, dataset, num_classes, info.preprocessing, opts.device,
        max_images=opts.max_images, keep=keep, progress=opts.progress, desc=label,
        with_metrics=same_classes, inference=model_inference, crf=opts.crf, on_image=on_image,
        scores=opts.scores, cache=p.distances,
        class_names=list(mapping.data_names) if mapping is not None else list(info.class_names),
    )  # fmt: skip
    notes = getattr(runner, "notes", None) if backend != "eager" else None
    return res, model_inference, calib, notes
