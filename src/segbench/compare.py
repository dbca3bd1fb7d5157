"""``compare``, segbench's main job: several models on the same images and the same hardware, one report.

For each model, and each backend it runs with (eager PyTorch by default; ONNX Runtime, OpenVINO, bf16, ... see
:mod:`segbench.bench.backends`): accuracy on the dataset (pixel accuracy, mean accuracy, per-class IoU, mIoU;
skipped when the images have no labels or the model predicts other classes; with several backends also the
agreement with the first backend's label maps), then size, GFLOPs, latency, throughput and peak memory, measured by default in a fresh subprocess per
(model, backend) (:func:`segbench.bench.runner.run_isolated`, as ``segbench benchmark`` does, so one model's
memory and caches do not shift the next one's figures); the masks of a few images side by side, and every
evaluated image's masks saved as they come (``OUT/browser``, :mod:`segbench.report.masks`) for report.html's
image browser. A model or backend that fails
to load or run becomes a row holding its error, and the others go on.

Stages: :func:`plan` (data, backends, grid images, input size) -> per model :func:`_compare_model`
(evaluate, then benchmark, each backend) -> :func:`report`. Settings: :class:`CompareOptions`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch

from segbench.bench import benchmark_model, environment_info
from segbench.bench.budget import DEFAULT_TIME_BUDGET_S, TimeBudget
from segbench.bench.backends import calibration_for, check_backend, prepare
from segbench.bench.hardware import hardware_profile, hardware_summary
from segbench.bench.case import make_case
from segbench.bench.env import busy_warning
from segbench.bench.isolate import run_isolated, start_warm_server
from segbench.bench.select import BEST, expand_backends, mark_best
from segbench.data.datasets import open_dataset
from segbench.data.io import write_bytes_atomic
from segbench.data.transforms import preprocess
from segbench.engine.crf import CRFConfig
from segbench.engine.device import check_device
from segbench.engine.inference import InferenceConfig
from segbench.engine.robustness import CorruptionPlan, Runner, corruption_sweep
from segbench.engine.sharded import broadcast_weights, evaluate_sharded, is_main
from segbench.errors import UserError, first_line
from segbench.external import ModelInputs, class_mapping, load_any, read_class_map_file
from segbench.metrics import ConfusionMatrix
from segbench.metrics.per_image import DistanceCache, ScoreOptions
from segbench.metrics.summary import comparison_list, confusions_npz, flat_scores, ranking, summarise
from segbench.models.weights import zoo_tags
from segbench.report import display_name, write_report
from segbench.report.masks import MAX_PALETTE_CLASSES, MaskStore


def zoo_models() -> list[str]:
    """Tags of every model shipped in segbench's zoo (``ARCH.TAG``)."""
    return [f"{arch}.{tag}" for arch, tags in sorted(zoo_tags().items()) for tag in sorted(tags)]


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
_CASE_KEYS = ("model", "weights", "num_classes", "error_kind", "model_notes")


@dataclass
class CompareOptions:
    """Every setting of :func:`compare` but the models, the data and the output folder.

    Attributes:
        split: the dataset split evaluated.
        weights: weights for bare ``ARCH`` specs (a tag, a path or ``none``).
        input_size: benchmark input ``(H, W)`` in pixels; None: the first image's size.
        batch: benchmark batch size.
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        threads: torch CPU threads (None: torch's default).
        max_images: evaluate on the first N images only (0 = all).
        grid_images: how many images to show side by side.
        min_time_s: minimum timed seconds per latency measurement.
        progress: progress bars.
        inference: sliding window / TTA settings for the accuracy pass (None: whole image, no TTA); the
            window is resolved per model (its training crop size when known). With TTA or ``crf``, each row
            also holds ``variants`` (plain, +TTA, +CRF: mIoU and ms per image) and ``miou`` is the last one's.
        crf: dense CRF parameters (None: no CRF).
        backends: how each model runs (:data:`segbench.bench.backends.BACKENDS`); one row per (model,
            backend), each with its accuracy beside its speed. With several backends, every row after the first
            of a model also holds ``agreement_miou``: the mIoU of its predictions scored against the first
            backend's (1.0 = the same label maps), so a faster backend that segments differently shows even
            without labels.
        calibration: folder of images calibrating the int8 backends (None: the shipped CamVid sample).
        dataset: the layout of the data (``cityscapes``, ``voc``, ... see
            :func:`segbench.data.datasets.dataset_names`); None: detected from the folder.
        isolate: time each (model, backend) in a fresh ``python -m segbench.bench.worker`` subprocess (its row
            then also holds ``peak_rss_mib_total``, the worker's peak RSS, and on CUDA the memory of one
            training step); False: in this process, after the accuracy pass (faster to start, but the figures
            can depend on what ran before).
        inputs: classes, mean and std of models segbench did not build (``--classes``, ``--mean``, ``--std``)
            where their files do not say them (:class:`segbench.external.ModelInputs`).
        class_map: a YAML file mapping model classes onto the data's (``--class-map``); without it a model
            whose classes differ from the data's is mapped by class name (:mod:`segbench.external.classmap`)
            and the row's ``class_mapping`` says how.
        scores: bootstrap intervals, Boundary IoU and ECE (on by default), trimap
            (:class:`~segbench.metrics.per_image.ScoreOptions`); rows get ``miou_interval`` and the others, the
            report every pair's paired interval.
        corruptions: ImageNet-C corruptions for the robustness table (:mod:`segbench.engine.robustness`),
            with their severities and images; None: no robustness pass. The finished cells of the sweep are
            kept in ``out_dir/corruptions.partial.npz`` until it ends.
        resume: continue the corruption sweep from ``out_dir/corruptions.partial.npz`` (left by a run that
            stopped); everything else is measured again.
        time_budget_s: seconds for the whole comparison (None: no budget): each (model, backend) gets a share
            of what is left (:class:`~segbench.bench.budget.TimeBudget`), its evaluation counted in, and its
            timing stops at the share's end (the row's ``budget_cut``) if the interval is not narrow by then.
    """

    split: str = "val"
    weights: str | None = None
    input_size: tuple[int, int] | None = None
    batch: int = 1
    device: str = "cpu"
    threads: int | None = None
    max_images: int = 0
    grid_images: int = 4
    min_time_s: float = 2.0
    progress: bool = True
    inference: InferenceConfig | None = None
    crf: CRFConfig | None = None
    backends: Sequence[str] = ("eager",)
    calibration: str | Path | None = None
    isolate: bool = True
    inputs: ModelInputs | None = None
    class_map: str | Path | None = None
    dataset: str | None = None
    scores: ScoreOptions = field(default_factory=lambda: ScoreOptions(boundary=True, ece=True))
    corruptions: CorruptionPlan | None = None
    resume: bool = False
    time_budget_s: float | None = DEFAULT_TIME_BUDGET_S


CHECKPOINT = "corruptions.partial.npz"
"""The corruption sweep's finished cells, in the report folder while it runs."""


@dataclass
class _Plan:
    """What every model is compared on: the images, the grid's images, the benchmark input and the backends.
    ``several``: row labels name the backend (more than eager runs), and the grid's columns follow them."""

    dataset: object
    n_images: int
    grid_names: list[str]
    input_size: tuple[int, int]
    backends: list[str]
    several: bool
    palette: list | None = None
    class_names: list[str] | None = None
    distances: DistanceCache = field(default_factory=DistanceCache)
    budget: TimeBudget | None = None


@dataclass
class _Results:
    """What the models produce: result rows, the grid's label maps by image and row label, skipped files."""

    rows: list[dict] = field(default_factory=list)
    grid_preds: dict[str, dict] = field(default_factory=dict)
    skipped: list[dict] | None = None
    browser_dir: Path | None = None  # where every image's masks are saved as they come (None: nowhere)
    store: MaskStore | None = None

    def mask_hook(self, p: _Plan):
        """The ``on_image`` callback saving the next row's masks (None without a browser folder)."""
        if self.browser_dir is None:
            return None
        if self.store is None:
            n = len(p.class_names) if p.dataset.labelled and p.class_names else MAX_PALETTE_CLASSES
            self.store = MaskStore(self.browser_dir, p.palette, n)
        row, store = len(self.rows), self.store
        return lambda item, pred, confidence: store.add(row, item, pred, confidence)
    image_names: list[str] = field(default_factory=list)
    matrices: dict[str, np.ndarray] = field(default_factory=dict)  # row label -> per-image (N, C, C)


def _first_image(plan: _Plan) -> dict | None:
    return next((plan.dataset[i] for i in range(plan.n_images) if "error" not in plan.dataset[i]), None)


def plan(data: str | Path, opts: CompareOptions) -> _Plan:
    """Open the data and fix the backends, the grid's images and the benchmark input size.

    Raises:
        UserError: a bad device, backend or data path.
    """
    check_device(opts.device)
    several = len(set(opts.backends)) > 1 or any(b != "eager" for b in opts.backends)
    backends = expand_backends(opts.backends, opts.device) or ["eager"]  # "best": every candidate, eager first
    for b in backends:
        check_backend(b)
    if opts.class_map is not None:
        read_class_map_file(opts.class_map)  # a bad file fails before any work
    dataset = open_dataset(data, opts.split, opts.dataset)
    n_images = len(dataset) if not opts.max_images else min(opts.max_images, len(dataset))
    grid_names = [dataset.pairs[i][0].stem for i in range(min(opts.grid_images, n_images))]
    result = _Plan(dataset, n_images, grid_names, opts.input_size, backends, several,
                   distances=DistanceCache(opts.scores.max_width))  # fmt: skip
    if opts.input_size is None:
        first = _first_image(result)
        result.input_size = first["image"].shape[:2] if first else (360, 480)
    if dataset.labelled:
        result.palette, result.class_names = list(dataset.class_set.palette), list(dataset.class_set.names)
    return result


def _runner(loaded, backend: str, p: _Plan, opts: CompareOptions):
    """``(runner, calibration batch or None)``: the model itself for eager, else a prepared backend predictor."""
    if backend == "eager":
        return loaded.model, None
    info = loaded.info
    calib = calibration_for(backend, info.mean, info.std, opts.calibration)
    first = _first_image(p)
    example = preprocess(first["image"], info.mean, info.std) if first is not None else torch.randn(1, 3, *p.input_size)
    return prepare(loaded.model, backend, example, opts.device, calib), calib


def _accuracy(brow: dict, res, info, p: _Plan, names: list[str]) -> None:
    """Accuracy columns of ``brow`` from an evaluation result (or a note why there are none); ``names``: the
    classes the predictions are in (the data's when the model's were mapped onto them)."""
    brow["num_images"] = res.num_images
    if res.metrics is not None:
        m = res.metrics.to_dict(names)
        brow.update(pixel_accuracy=m["pixel_accuracy"], mean_accuracy=m["mean_accuracy"], miou=m["miou"], iou=m["iou"])
    elif p.dataset.labelled:
        brow["note"] = (f"{info.num_classes} classes ({info.class_names[0]}, ...) differ from the data's: "
                        "accuracy not measured")  # fmt: skip


def _scores(brow: dict, res, opts: CompareOptions, label: str, out: _Results) -> None:
    """Intervals, per-image mIoU and the optional scores of a row; its per-image matrices kept for the pairs."""
    summary = summarise(res, opts.scores)
    if not summary:
        return
    brow.update(summary)
    brow.update(flat_scores(summary))
    out.matrices[label] = res.variants[-1].confusions
    out.image_names = out.image_names or list(res.image_names)


def _evaluate_backend(loaded, backend: str, p: _Plan, opts: CompareOptions, label: str, mapping=None,
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
        runner, dataset, num_classes, info.mean, info.std, opts.device,
        max_images=opts.max_images, keep=keep, progress=opts.progress, desc=label,
        with_metrics=same_classes, inference=model_inference, crf=opts.crf, on_image=on_image,
        scores=opts.scores, cache=p.distances,
        class_names=list(mapping.data_names) if mapping is not None else list(info.class_names),
    )  # fmt: skip
    notes = getattr(runner, "notes", None) if backend != "eager" else None
    return res, model_inference, calib, notes


def _benchmark(spec: str, loaded, backend: str, calib, p: _Plan, opts: CompareOptions,
               deadline: float | None = None) -> dict:  # fmt: skip
    """Size, GFLOPs, latency and memory of one (model, backend): in a fresh worker or in this process; timing
    ends by ``deadline`` (``time.time()`` seconds) when given."""
    if opts.isolate:
        latency = {"min_time_s": opts.min_time_s, **({} if deadline is None else {"deadline": deadline})}
        case = make_case(
            spec, backend=backend, batch=opts.batch, input_size=tuple(p.input_size), device=opts.device,
            threads=opts.threads, weights=opts.weights, latency=latency,
            data=None if opts.calibration is None else str(opts.calibration), e2e=False,
            train_step=opts.device.startswith("cuda"),
            trust_remote_code=bool(opts.inputs is not None and opts.inputs.trust_remote_code),
        )  # fmt: skip
        return {k: v for k, v in run_isolated(case).items() if k not in _CASE_KEYS}
    return benchmark_model(
        loaded.model, input_size=tuple(p.input_size), batch=opts.batch, device=opts.device, threads=opts.threads,
        min_time_s=opts.min_time_s, backend=backend, calibration=calib, deadline=deadline,
    )


def _compare_model(spec: str, p: _Plan, opts: CompareOptions, out: _Results) -> None:
    """The rows of one model, one per backend: accuracy (and agreement with the first backend), then speed."""
    row: dict = {"model": spec, "weights": opts.weights}
    first, t0 = len(out.rows), time.perf_counter()
    try:
        loaded = load_any(spec, weights=opts.weights, inputs=opts.inputs, device=opts.device)
        info = loaded.info
        mapping = class_mapping(info.class_names, p.dataset.class_set.names, opts.class_map) if p.dataset.labelled else None
    except UserError as exc:
        out.rows.append({**row, "error": str(exc)})
        return
    broadcast_weights(loaded.model, opts.device)  # the same weights on every torchrun process
    row.update(model=info.name, weights=info.weights, num_classes=info.num_classes)
    notes = [n for n in (getattr(info, "missing", ""), *getattr(info, "notes", [])) if n]
    if notes:
        row["model_notes"] = notes
    if mapping is not None:
        row["class_mapping"] = mapping.describe()
    names = list(mapping.data_names) if mapping is not None else list(info.class_names)
    if p.palette is None:
        p.palette, p.class_names = list(info.palette), list(info.class_names)
    reference: dict[str, np.ndarray] | None = None
    for b_index, backend in enumerate(p.backends):
        brow = {**row, "backend": backend}
        label = display_name(info.name, backend, p.several)
        tb, deadline = time.perf_counter(), p.budget.begin_case() if p.budget is not None else None
        try:
            res, model_inference, calib, notes = _evaluate_backend(loaded, backend, p, opts, label, mapping,
                                                                   out.mask_hook(p))  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - one failing (model, backend) must not stop the comparison
            out.rows.append({**brow, "error": f"{backend}: {first_line(exc)}"})
            continue
        if notes is not None:
            brow["backend_notes"] = notes
        out.skipped = res.skipped if out.skipped is None else out.skipped
        _accuracy(brow, res, info, p, names)
        _scores(brow, res, opts, label, out)
        if len(p.backends) > 1:
            if reference is None:
                small = np.uint8 if len(names) <= 256 else np.int32
                reference = {k: np.asarray(v).astype(small) for k, v in res.predictions.items()}
                brow["agreement_reference"] = backend
            else:
                brow.update(_agreement(res.predictions, reference, len(names)))
                brow["agreement_reference"] = p.backends[0] if b_index else backend
        brow["eval_s"] = time.perf_counter() - tb + ((tb - t0) if b_index == 0 else 0.0)  # the first: + loading
        if len(res.variants) > 1:
            brow["variants"] = res.variants_dicts(names if res.metrics is not None else None)
            brow["inference"] = model_inference.describe()
        for name, pred in res.predictions.items():
            if name in p.grid_names:
                out.grid_preds.setdefault(name, {})[label] = pred
        del res
        bench = _benchmark(spec, loaded, backend, calib, p, opts, deadline) if is_main() else {}  # rank 0 alone times
        env = bench.pop("env", None)
        brow.update({k: v for k, v in bench.items() if k not in ("error",) or v})
        brow["env"] = env
        out.rows.append(brow)
    if BEST in opts.backends:
        mark_best(out.rows[first:], opts.device)


def _settings(data: str | Path, p: _Plan, opts: CompareOptions, rows: list[dict]) -> dict:
    """The report's settings table: data, images, input, device and threads, backends, inference, warnings."""
    settings = {
        "data": str(data),
        "split": opts.split if p.dataset.labelled else "(unlabelled images)",
        "images": p.n_images,
        "input_size": list(p.input_size),
        "batch": opts.batch,
        "device": opts.device,
        "threads": opts.threads or torch.get_num_threads(),
    }
    if p.several:
        settings["backends"] = ", ".join(p.backends)
        if len(p.backends) > 1:
            settings["agreement"] = (f"agreement mIoU: each backend's label maps scored against {p.backends[0]}'s "
                                     "(100 = identical)")  # fmt: skip
    inference = opts.inference
    if inference is not None and (inference.mode != "whole" or inference.tta):
        settings["inference"] = inference.describe()
    if opts.crf is not None:
        settings["crf"] = opts.crf.describe()
    busy = busy_warning(rows)
    if busy:
        settings["warning"] = busy.removeprefix("warning: ")
    if p.dataset.labelled and not any(r.get("miou") is not None for r in rows):
        settings["accuracy_note"] = "Accuracy not measured: no model predicts the data's classes."
    return settings


def analyse(models: list[str], p: _Plan, opts: CompareOptions, results: _Results,
            checkpoint: Path | None = None) -> dict:  # fmt: skip
    """Paired comparisons of every pair of rows evaluated on the same images (same resamples), ranking
    statements, and the robustness table when corruptions were asked for (its finished cells saved to
    ``checkpoint`` while it runs)."""
    analysis: dict = {"scores": opts.scores.enabled(), "bootstrap": opts.scores.bootstrap}
    shapes = {m.shape for m in results.matrices.values()}
    if opts.scores.bootstrap and len(results.matrices) > 1 and len(shapes) == 1:
        rank = ranking(results.matrices, opts.scores.bootstrap, opts.scores.seed)
        analysis.update(comparisons=comparison_list(rank), statements=rank.statements(), tiers=rank.tiers)
    if opts.corruptions is not None and p.dataset.labelled:
        analysis["robustness"] = _robustness(models, p, opts, results, checkpoint)
    return analysis


def corruption_runners(specs: list[str], weights: str | None, class_names: list[str], device: str = "cpu",
                       inputs: ModelInputs | None = None, class_map: str | Path | None = None) -> dict:  # fmt: skip
    """Name -> :class:`~segbench.engine.robustness.Runner` for the corruption sweep: every spec that loads
    (segbench's own or external, :func:`~segbench.external.load_any`) and predicts ``class_names``, directly or
    through a class mapping (:func:`~segbench.external.class_mapping`, with ``class_map`` when given). A spec that fails to load, or
    whose classes do not map onto ``class_names``, is left out: its comparison row holds the error or note."""
    runners = {}
    for spec in dict.fromkeys(specs):
        try:
            loaded = load_any(spec, weights=weights, inputs=inputs, device=device)
            mapping = class_mapping(loaded.info.class_names, class_names, class_map)
        except UserError:
            continue
        info, model = loaded.info, loaded.model.eval().to(device)
        if mapping is not None:
            runners[info.name] = Runner(mapping.wrap(model), info.mean, info.std, len(class_names), mapping)
        elif list(info.class_names) == list(class_names):
            runners[info.name] = Runner(model, info.mean, info.std, info.num_classes)
    return runners


def sweep_saving_cells(runners: dict, dataset, num_images: int, plan: CorruptionPlan, device: str, progress: bool,
                       checkpoint: Path | None, resume: bool, bootstrap: int) -> dict:  # fmt: skip
    """:func:`~segbench.engine.robustness.corruption_sweep` with its finished cells saved to ``checkpoint``;
    when it is interrupted (Ctrl-C, SIGTERM), one line on stderr says where they are and how to resume."""
    try:
        return corruption_sweep(runners, dataset, num_images, plan, device, progress, checkpoint=checkpoint,
                                resume=resume, bootstrap=bootstrap)  # fmt: skip
    except KeyboardInterrupt:
        if checkpoint is not None and checkpoint.exists():
            print(f"segbench: the corruption sweep's finished cells are saved in {checkpoint}; run the same "
                  "command with --resume to continue from them", file=sys.stderr)  # fmt: skip
        raise


def _robustness(models: list[str], p: _Plan, opts: CompareOptions, results: _Results,
                checkpoint: Path | None = None) -> dict:  # fmt: skip
    """The corruption sweep over every model predicting the data's classes, directly or through a class mapping
    (eager PyTorch, or the model's own runtime for external files); its summary columns
    ``corruption_miou`` and ``corruption_relative`` on the eager rows."""
    runners = corruption_runners(models, opts.weights, list(p.dataset.class_set.names), opts.device, opts.inputs,
                           opts.class_map)  # fmt: skip
    table = sweep_saving_cells(runners, p.dataset, p.n_images, opts.corruptions, opts.device, opts.progress,
                               checkpoint, opts.resume, opts.scores.bootstrap)  # fmt: skip
    for r in results.rows:
        t = table["models"].get(r.get("model"))
        if t is not None and r.get("miou") is not None and r.get("backend", "eager") == "eager":
            r.update(corruption_miou=t["mean_miou"], corruption_relative=t["relative_miou"])
    return table


def report(data: str | Path, out_dir: str | Path, p: _Plan, opts: CompareOptions, results: _Results,
           analysis: dict | None = None) -> dict:  # fmt: skip
    """Write the report folder (and ``confusions.npz`` when accuracy was measured); returns ``{"rows",
    "skipped", "files"}`` and the ``comparisons``, ``statements`` and ``robustness`` of ``analysis``."""
    grid = []
    for i in range(min(opts.grid_images, p.n_images)):
        item = p.dataset[i]
        if "error" in item:
            continue
        grid.append({"name": item["name"], "image": item["image"], "target": item["mask"],
                     "preds": results.grid_preds.get(item["name"], {})})  # fmt: skip
    rows = results.rows
    env = next((r["env"] for r in rows if r.get("env")), None) or environment_info(opts.device)
    env = {**{k: v for k, v in env.items() if k != "hardware"}, **hardware_summary(hardware_profile(opts.device, opts.threads))}
    for r in rows:
        r.pop("env", None)
    files = write_report(
        out_dir, rows=rows, class_names=p.class_names, palette=p.palette, grid=grid, env=env,
        settings=_settings(data, p, opts, rows), skipped=results.skipped or [], masks=results.store,
        interactive=True, analysis=analysis,
    )  # fmt: skip
    if results.matrices:
        npz = confusions_npz(results.image_names, results.matrices, p.class_names)
        files["confusions_npz"] = write_bytes_atomic(Path(out_dir) / "confusions.npz", npz)
    kept = {k: v for k, v in (analysis or {}).items() if k in ("comparisons", "statements", "robustness")}
    return {"rows": rows, "skipped": results.skipped or [], "files": files, **kept}


def compare(models: list[str], data: str | Path, out_dir: str | Path, options: CompareOptions | None = None,
            **settings) -> dict:  # fmt: skip
    """Compare ``models`` on ``data`` and write the report folder ``out_dir``: plan, then per model evaluate
    and benchmark every backend, then report.

    Args:
        models: model specs (``fast_scnn.camvid``, ``ARCH`` with ``weights``, or checkpoint paths).
        data: a dataset folder (CamVid layout, images/ + masks/) or a folder / file of unlabelled images.
        out_dir: the report folder.
        options: the settings (:class:`CompareOptions`); default its defaults.
        **settings: fields of :class:`CompareOptions` given by name (``device="cuda"``), over ``options``.

    Returns:
        ``{"rows": [...], "skipped": [...], "files": {name: path}}``.

    Raises:
        TypeError: a keyword that is not a field of :class:`CompareOptions`.
        UserError: bad data path, device or backend. Model failures become rows with an ``error``.
    """
    unknown = sorted(set(settings) - {f.name for f in fields(CompareOptions)})
    if unknown:
        raise TypeError(f"compare() got unexpected keyword arguments {unknown}; "
                        f"expected fields of CompareOptions: {', '.join(f.name for f in fields(CompareOptions))}")  # fmt: skip
    opts = replace(options or CompareOptions(), **settings)
    start = time.time()
    p = plan(data, opts)
    if opts.time_budget_s is not None:
        if is_main():  # the hardware profile (cached for the report) before the shares, so they count its cost
            hardware_profile(opts.device, opts.threads)
            if opts.isolate:
                start_warm_server()  # its imports overlap the first evaluation
        p.budget = TimeBudget(opts.time_budget_s, len(models) * len(p.backends), start=start)
    results = _Results(browser_dir=Path(out_dir) / "browser")
    for spec in models:
        _compare_model(spec, p, opts, results)
    if not is_main():  # under torchrun, rank 0 alone writes the report
        return {"rows": results.rows, "skipped": results.skipped or [], "files": {}}
    return report(data, out_dir, p, opts, results, analyse(models, p, opts, results, Path(out_dir) / CHECKPOINT))
