"""``compare``, segbench's main job: several models on the same images and the same hardware, one report.

For each model, and each backend it runs with (eager PyTorch by default; ONNX Runtime, OpenVINO, bf16, ... see
:mod:`segbench.bench.backends`): accuracy on the dataset (pixel accuracy, mean accuracy, per-class IoU, mIoU;
skipped when the images have no labels or the model predicts other classes; with several backends also the
agreement with the first backend's label maps), then size, GFLOPs, latency, throughput and peak memory, measured by default in a fresh subprocess per
(model, backend) (:func:`segbench.bench.runner.run_isolated`, as ``segbench benchmark`` does, so one model's
memory and caches do not shift the next one's figures); the masks of a few images side by side. A model or backend that fails
to load or run becomes a row holding its error, and the others go on.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from segbench.bench import benchmark_model, environment_info
from segbench.bench.backends import check_backend, prepare
from segbench.bench.case import make_case
from segbench.bench.env import busy_warning
from segbench.bench.isolate import run_isolated
from segbench.data.datasets import open_dataset
from segbench.data.transforms import preprocess
from segbench.engine.crf import CRFConfig
from segbench.engine.evaluate import evaluate
from segbench.engine.inference import InferenceConfig
from segbench.errors import UserError, first_line
from segbench.export import sample_calibration
from segbench.metrics import ConfusionMatrix
from segbench.models import load_model
from segbench.models.weights import zoo_tags
from segbench.report import display_name, write_report


def zoo_models() -> list[str]:
    """Tags of every model shipped in segbench's zoo (``ARCH.TAG``)."""
    return [f"{arch}.{tag}" for arch, tags in sorted(zoo_tags().items()) for tag in sorted(tags)]


def check_device(device: str) -> str:
    """Raises UserError when ``device`` is not usable here."""
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UserError(f"--device {device!r}: expected cpu or cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device}: CUDA is not available on this machine")
    return device


def _agreement(preds: dict[str, np.ndarray], reference: dict[str, np.ndarray], num_classes: int) -> dict:
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


# Keys of a worker's row that describe the case rather than measure it (the comparison's own row has them).
_CASE_KEYS = ("model", "weights", "num_classes", "error_kind")


def compare(
    models: list[str],
    data: str | Path,
    out_dir: str | Path,
    *,
    split: str = "val",
    weights: str | None = None,
    input_size: tuple[int, int] | None = None,
    batch: int = 1,
    device: str = "cpu",
    threads: int | None = None,
    max_images: int = 0,
    grid_images: int = 4,
    min_time_s: float = 2.0,
    progress: bool = True,
    inference: InferenceConfig | None = None,
    crf: CRFConfig | None = None,
    backends: Sequence[str] = ("eager",),
    calibration: str | Path | None = None,
    isolate: bool = True,
) -> dict:
    """Compare ``models`` on ``data`` and write the report folder ``out_dir``.

    Args:
        models: model specs (``fast_scnn.camvid``, ``ARCH`` with ``weights``, or checkpoint paths).
        data: a dataset folder (CamVid layout, images/ + masks/) or a folder / file of unlabelled images.
        weights: weights for bare ``ARCH`` specs (a tag, a path or ``none``).
        input_size: benchmark input (H, W); default the first image's size.
        batch: benchmark batch size.
        max_images: evaluate on the first N images only (0 = all).
        grid_images: how many images to show side by side.
        min_time_s: minimum timed seconds per latency measurement.
        inference: sliding window / TTA settings for the accuracy pass (None: whole image, no TTA); the
            window is resolved per model (its training crop size when known). With TTA or ``crf``, each row
            also holds ``variants`` (plain, +TTA, +CRF: mIoU and ms per image) and ``miou`` is the last one's.
        crf: dense CRF parameters (None: no CRF).
        backends: how each model runs (:data:`segbench.bench.backends.BACKENDS`); one row per (model,
            backend), each with its accuracy beside its speed. With several backends, every row after the first
            of a model also holds ``agreement_miou``: the mIoU of its predictions scored against the first
            backend's (1.0 = the same label maps), so a faster backend that segments differently shows even
            without labels.
        calibration: folder of images calibrating the int8 backends (default: the shipped CamVid sample).
        isolate: time each (model, backend) in a fresh ``python -m segbench.bench.worker`` subprocess
            (default; its row then also holds ``peak_rss_mib_total``, the worker's peak RSS, and on CUDA the
            memory of one training step); False: in this process, after the accuracy pass (faster to start,
            but the figures can depend on what ran before).

    Returns:
        ``{"rows": [...], "skipped": [...], "files": {name: path}}``.

    Raises:
        UserError: bad data path or device. Model failures become rows with an ``error``.
    """
    check_device(device)
    # Row labels name the backend when more than eager runs (and the grid's columns follow the labels).
    several = len(set(backends)) > 1 or any(b != "eager" for b in backends)
    backends = list(dict.fromkeys(backends)) or ["eager"]
    for b in backends:
        check_backend(b)
    dataset = open_dataset(data, split)
    n_images = len(dataset) if not max_images else min(max_images, len(dataset))
    grid_names = [dataset.pairs[i][0].stem for i in range(min(grid_images, n_images))]
    if input_size is None:
        first = next((dataset[i] for i in range(n_images) if "error" not in dataset[i]), None)
        input_size = first["image"].shape[:2] if first else (360, 480)
    rows, grid_preds, skipped, palette, class_names = [], {}, None, None, None
    if dataset.labelled:
        palette, class_names = list(dataset.class_set.palette), list(dataset.class_set.names)
    for spec in models:
        row: dict = {"model": spec, "weights": weights}
        t0 = time.perf_counter()
        try:
            loaded = load_model(spec, weights=weights)
        except UserError as exc:
            rows.append({**row, "error": str(exc)})
            continue
        info = loaded.info
        row.update(model=info.name, weights=info.weights, num_classes=info.num_classes)
        if palette is None:
            palette, class_names = list(info.palette), list(info.class_names)
        same_classes = dataset.labelled and list(dataset.class_set.names) == list(info.class_names)
        reference: dict[str, np.ndarray] | None = None
        for b_index, backend in enumerate(backends):
            brow = {**row, "backend": backend}
            label = display_name(info.name, backend, several)
            tb = time.perf_counter()
            try:
                model_inference = (inference or InferenceConfig()).for_model(info)
                runner = loaded.model
                calib = None
                if backend != "eager":
                    if backend.endswith("_int8"):
                        calib = sample_calibration(info.mean, info.std, folder=calibration)
                    first = next((dataset[i] for i in range(n_images) if "error" not in dataset[i]), None)
                    example = (preprocess(first["image"], info.mean, info.std) if first is not None
                               else torch.randn(1, 3, *input_size))
                    runner = prepare(loaded.model, backend, example, device, calib)
                    brow["backend_notes"] = runner.notes
                keep = set(grid_names) if len(backends) == 1 else {dataset.pairs[i][0].stem for i in range(n_images)}
                res = evaluate(
                    runner, dataset, info.num_classes, info.mean, info.std, device,
                    max_images=max_images, keep=keep, progress=progress, desc=label,
                    with_metrics=same_classes, inference=model_inference, crf=crf,
                )
                del runner
            except Exception as exc:  # noqa: BLE001 - one failing (model, backend) must not stop the comparison
                brow["error"] = f"{backend}: {first_line(exc)}"
                rows.append(brow)
                continue
            skipped = res.skipped if skipped is None else skipped
            brow["num_images"] = res.num_images
            if res.metrics is not None:
                m = res.metrics.to_dict(list(info.class_names))
                brow.update(pixel_accuracy=m["pixel_accuracy"], mean_accuracy=m["mean_accuracy"], miou=m["miou"],
                            iou=m["iou"])
            elif dataset.labelled:
                brow["note"] = (f"{info.num_classes} classes ({info.class_names[0]}, ...) differ from the data's: "
                                "accuracy not measured")
            if len(backends) > 1:
                if reference is None:
                    small = np.uint8 if info.num_classes <= 256 else np.int32
                    reference = {k: np.asarray(v).astype(small) for k, v in res.predictions.items()}
                    brow["agreement_reference"] = backend
                else:
                    brow.update(_agreement(res.predictions, reference, info.num_classes))
                    brow["agreement_reference"] = backends[0] if b_index else backend
            brow["eval_s"] = time.perf_counter() - tb + ((tb - t0) if b_index == 0 else 0.0)  # the first: + loading
            if len(res.variants) > 1:
                brow["variants"] = res.variants_dicts(list(info.class_names) if res.metrics is not None else None)
                brow["inference"] = model_inference.describe()
            for name, pred in res.predictions.items():
                if name in grid_names:
                    grid_preds.setdefault(name, {})[label] = pred
            del res
            if isolate:
                case = make_case(
                    spec, backend=backend, batch=batch, input_size=tuple(input_size), device=device,
                    threads=threads, weights=weights, latency={"min_time_s": min_time_s},
                    data=None if calibration is None else str(calibration), e2e=False,
                    train_step=device.startswith("cuda"),
                )
                bench = {k: v for k, v in run_isolated(case).items() if k not in _CASE_KEYS}
            else:
                bench = benchmark_model(
                    loaded.model, input_size=tuple(input_size), batch=batch, device=device, threads=threads,
                    min_time_s=min_time_s, backend=backend, calibration=calib,
                )
            env = bench.pop("env", None)
            brow.update({k: v for k, v in bench.items() if k not in ("error",) or v})
            brow["env"] = env
            rows.append(brow)
        del loaded
    grid = []
    for i in range(min(grid_images, n_images)):
        item = dataset[i]
        if "error" in item:
            continue
        grid.append({"name": item["name"], "image": item["image"], "target": item["mask"], "preds": grid_preds.get(item["name"], {})})
    env = next((r["env"] for r in rows if r.get("env")), None) or environment_info(device)
    for r in rows:
        r.pop("env", None)
    settings = {
        "data": str(data),
        "split": split if dataset.labelled else "(unlabelled images)",
        "images": n_images,
        "input_size": list(input_size),
        "batch": batch,
        "device": device,
        "threads": threads or torch.get_num_threads(),
    }
    if several:
        settings["backends"] = ", ".join(backends)
        if len(backends) > 1:
            settings["agreement"] = (f"agreement mIoU: each backend's label maps scored against {backends[0]}'s "
                                     "(100 = identical)")
    if inference is not None and (inference.mode != "whole" or inference.tta):
        settings["inference"] = inference.describe()
    if crf is not None:
        settings["crf"] = crf.describe()
    busy = busy_warning(rows)
    if busy:
        settings["warning"] = busy.removeprefix("warning: ")
    if dataset.labelled and not any(r.get("miou") is not None for r in rows):
        settings["accuracy_note"] = "Accuracy not measured: no model predicts the data's classes."
    files = write_report(
        out_dir, rows=rows, class_names=class_names, palette=palette, grid=grid, env=env,
        settings=settings, skipped=skipped or [],
    )
    return {"rows": rows, "skipped": skipped or [], "files": files}
