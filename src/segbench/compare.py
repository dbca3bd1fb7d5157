"""``compare``, segbench's main job: several models on the same images and the same hardware, one report.

For each model: accuracy on the dataset (pixel accuracy, mean accuracy, per-class IoU, mIoU; skipped when
the images have no labels or the model predicts other classes), then size, GFLOPs, latency, throughput and
peak memory via :func:`segbench.bench.benchmark_model`; the masks of a few images side by side. A model
that fails to load or run becomes a row holding its error, and the others go on.
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

import torch

from segbench.bench import benchmark_model, environment_info
from segbench.bench.report import write_report
from segbench.data.datasets import open_dataset
from segbench.engine.crf import CRFConfig
from segbench.engine.evaluate import evaluate
from segbench.engine.inference import InferenceConfig
from segbench.errors import UserError
from segbench.models import load_model
from segbench.models.weights import zoo_tags


def sample_dir() -> Path:
    """The CamVid val sample shipped with segbench (CamVid layout, split ``val``)."""
    return Path(str(resources.files("segbench") / "sample" / "camvid"))


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

    Returns:
        ``{"rows": [...], "skipped": [...], "files": {name: path}}``.

    Raises:
        UserError: bad data path or device. Model failures become rows with an ``error``.
    """
    check_device(device)
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
        try:
            model_inference = (inference or InferenceConfig()).for_model(info)
            res = evaluate(
                loaded.model, dataset, info.num_classes, info.mean, info.std, device,
                max_images=max_images, keep=set(grid_names), progress=progress, desc=info.name,
                with_metrics=same_classes, inference=model_inference, crf=crf,
            )
        except (RuntimeError, UserError) as exc:
            rows.append({**row, "error": f"evaluation failed: {type(exc).__name__}: {str(exc).splitlines()[0]}"})
            continue
        skipped = res.skipped if skipped is None else skipped
        row["num_images"] = res.num_images
        if res.metrics is not None:
            m = res.metrics.to_dict(list(info.class_names))
            row.update(pixel_accuracy=m["pixel_accuracy"], mean_accuracy=m["mean_accuracy"], miou=m["miou"], iou=m["iou"])
        elif dataset.labelled:
            row["note"] = f"{info.num_classes} classes ({info.class_names[0]}, ...) differ from the data's: accuracy not measured"
        row["eval_s"] = time.perf_counter() - t0
        if len(res.variants) > 1:
            row["variants"] = res.variants_dicts(list(info.class_names) if res.metrics is not None else None)
            row["inference"] = model_inference.describe()
        for name, pred in res.predictions.items():
            grid_preds.setdefault(name, {})[info.name] = pred
        bench = benchmark_model(
            loaded.model, input_size=tuple(input_size), batch=batch, device=device, threads=threads, min_time_s=min_time_s
        )
        env = bench.pop("env", None)
        row.update({k: v for k, v in bench.items() if k not in ("error",) or v})
        row["env"] = env
        rows.append(row)
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
    if inference is not None and (inference.mode != "whole" or inference.tta):
        settings["inference"] = inference.describe()
    if crf is not None:
        settings["crf"] = crf.describe()
    if dataset.labelled and not any(r.get("miou") is not None for r in rows):
        settings["accuracy_note"] = "Accuracy not measured: no model predicts the data's classes."
    files = write_report(
        out_dir, rows=rows, class_names=class_names, palette=palette, grid=grid, env=env,
        settings=settings, skipped=skipped or [],
    )
    return {"rows": rows, "skipped": skipped or [], "files": files}
