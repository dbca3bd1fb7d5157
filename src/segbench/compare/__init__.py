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
(evaluate, :mod:`segbench.compare.evaluate`, then benchmark, each backend) -> :func:`analyse`
(:mod:`segbench.compare.robustness`) -> :func:`report` (:mod:`segbench.compare.output`). Settings:
:class:`CompareOptions`. The report folder is written aside and put in place as a whole; SIGTERM, SIGINT or a
crashed benchmark worker leave the finished models' rows in a report marked partial, and ``resume`` measures
only the others (:mod:`segbench.compare.resume`).
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from segbench.bench import benchmark_model
from segbench.bench.budget import DEFAULT_TIME_BUDGET_S, TimeBudget
from segbench.bench.backends import check_backend
from segbench.bench.case import make_case
from segbench.bench.hardware import hardware_profile
from segbench.bench.isolate import run_isolated, start_warm_server
from segbench.bench.select import BEST, expand_backends, mark_best
from segbench.compare.evaluate import accuracy, agreement, evaluate_backend, first_image, scores
from segbench.compare.output import check_replaceable, finish, in_place, report, settings_table
from segbench.compare.resume import crashed, fingerprint, load_partial, restore
from segbench.compare.robustness import CHECKPOINT, analyse, corruption_runners, sweep_saving_cells
from segbench.data.datasets import open_dataset
from segbench.engine.crf import CRFConfig
from segbench.engine.device import check_device
from segbench.engine.inference import InferenceConfig
from segbench.engine.robustness import CorruptionPlan
from segbench.engine.sharded import broadcast_weights, is_main
from segbench.errors import Terminated, UserError, first_line, stop_signals
from segbench.external import ModelInputs, class_mapping, load_any, read_class_map_file
from segbench.files import replace_folder, staging_folder
from segbench.metrics.per_image import DistanceCache, ScoreOptions
from segbench.models.weights import zoo_tags
from segbench.options import COMPARE_FIELDS, check_fields
from segbench.report import display_name
from segbench.report.masks import MAX_PALETTE_CLASSES, MaskStore
from segbench.specs import unique_label, unique_specs

__all__ = ["CHECKPOINT", "CompareOptions", "analyse", "compare", "corruption_runners", "plan", "report",
           "settings_table", "sweep_saving_cells", "zoo_models"]


def zoo_models() -> list[str]:
    """Tags of every model shipped in segbench's zoo (``ARCH.TAG``)."""
    return [f"{arch}.{tag}" for arch, tags in sorted(zoo_tags().items()) for tag in sorted(tags)]


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
        resume: continue a run that stopped: the models it finished are read from ``out_dir/compare.partial.npz``
            (:mod:`segbench.compare.resume`) and only the others measured; the corruption sweep continues from
            ``out_dir/corruptions.partial.npz``.
        time_budget_s: seconds for the whole comparison (None: no budget): each (model, backend) gets a share
            of what is left (:class:`~segbench.bench.budget.TimeBudget`), its evaluation counted in, and its
            timing stops at the share's end (the row's ``budget_cut``) if the interval is not narrow by then.
        budget_start: when the budget began, ``time.time()`` seconds (default: when :func:`compare` is
            called); ``segbench compare`` passes its process's start, so that its imports count too.
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
    budget_start: float | None = None

    def __post_init__(self) -> None:
        check_fields(self, COMPARE_FIELDS)  # the ranges of segbench.options, the same as the flags'


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
        first = first_image(result)
        result.input_size = first["image"].shape[:2] if first else (360, 480)
    if dataset.labelled:
        result.palette, result.class_names = list(dataset.class_set.palette), list(dataset.class_set.names)
    return result


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
    row: dict = {"model": spec, "spec": spec, "weights": opts.weights}  # model: the row's label, once loaded
    first, t0 = len(out.rows), time.perf_counter()
    try:
        loaded = load_any(spec, weights=opts.weights, inputs=opts.inputs, device=opts.device)
        info = loaded.info
        mapping = class_mapping(info.class_names, p.dataset.class_set.names, opts.class_map) if p.dataset.labelled else None
    except UserError as exc:
        out.rows.append({**row, "error": str(exc)})
        return
    broadcast_weights(loaded.model, opts.device)  # the same weights on every torchrun process
    name = unique_label(info.name, spec, {r["model"] for r in out.rows})  # two last.pt files: two labels
    row.update(model=name, weights=info.weights, num_classes=info.num_classes)
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
        label = display_name(name, backend, p.several)
        tb, deadline = time.perf_counter(), p.budget.begin_case() if p.budget is not None else None
        try:
            res, model_inference, calib, notes = evaluate_backend(loaded, backend, p, opts, label, mapping,
                                                                   out.mask_hook(p))  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - one failing (model, backend) must not stop the comparison
            out.rows.append({**brow, "error": f"{backend}: {first_line(exc)}"})
            continue
        if notes is not None:
            brow["backend_notes"] = notes
        out.skipped = res.skipped if out.skipped is None else out.skipped
        accuracy(brow, res, info, p, names)
        scores(brow, res, opts, label, out)
        if len(p.backends) > 1:
            if reference is None:
                small = np.uint8 if len(names) <= 256 else np.int32
                reference = {k: np.asarray(v).astype(small) for k, v in res.predictions.items()}
                brow["agreement_reference"] = backend
            else:
                brow.update(agreement(res.predictions, reference, len(names)))
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
        ``{"rows": [...], "skipped": [...], "files": {name: path}}``; with ``"partial": True`` and
        ``unfinished_models`` when a model's benchmark worker crashed (its row holds the error; ``resume``
        measures it again).

    Raises:
        TypeError: a keyword that is not a field of :class:`CompareOptions`.
        UserError: bad data path, device or backend; a non-empty ``out_dir`` holding no report; a resume file of
            other settings. Model failures become rows with an ``error``.
        KeyboardInterrupt: SIGINT, or :class:`~segbench.errors.Terminated` on SIGTERM, raised again once the
            finished models are written (results.json and the report marked partial, ``compare.partial.npz``).
    """
    unknown = sorted(set(settings) - {f.name for f in fields(CompareOptions)})
    if unknown:
        raise TypeError(f"compare() got unexpected keyword arguments {unknown}; "
                        f"expected fields of CompareOptions: {', '.join(f.name for f in fields(CompareOptions))}")  # fmt: skip
    opts = replace(options or CompareOptions(), **settings)
    models = unique_specs(models)[0]  # a model named twice is measured once
    out = Path(out_dir)
    if is_main():
        check_replaceable(out)
    start = opts.budget_start or time.time()
    p = plan(data, opts)
    if opts.time_budget_s is not None:
        if is_main():  # the hardware profile (cached for the report) before the shares, so they count its cost
            hardware_profile(opts.device, opts.threads)
            if opts.isolate:
                start_warm_server()  # its imports overlap the first evaluation
        p.budget = TimeBudget(opts.time_budget_s, len(models) * len(p.backends), start=start)
    if not is_main():  # under torchrun, rank 0 alone writes the report
        results = _Results()
        for spec in models:
            _compare_model(spec, p, opts, results)
        return {"rows": results.rows, "skipped": results.skipped or [], "files": {}}
    key = fingerprint(data, p, opts)
    previous = load_partial(out, key) if opts.resume else None
    stage = staging_folder(out)
    results = _Results(browser_dir=stage / "browser")
    try:
        spans = restore(previous, models, p, results, out / "browser") if previous is not None else {}
        with stop_signals():
            return _run_models(models, data, out, stage, p, opts, results, spans, key)
    finally:
        shutil.rmtree(stage, ignore_errors=True)  # gone already when it was put in place


def _run_models(models, data, out: Path, stage: Path, p: _Plan, opts: CompareOptions, results: _Results,
                spans: dict[str, tuple[int, int]], key: dict) -> dict:  # fmt: skip
    """The model loop, then the analysis and the report, written into ``stage`` and put in place of ``out``.
    On SIGTERM or SIGINT the finished models are written (rows, a report marked partial, the resume file) and
    the signal's exception raised again; a model whose worker crashed is not finished either."""
    resumed = set(spans)
    todo = [m for m in models if m not in resumed]
    try:
        for i, spec in enumerate(todo):
            first, matrices = len(results.rows), dict(results.matrices)
            grid = {k: dict(v) for k, v in results.grid_preds.items()}
            try:
                _compare_model(spec, p, opts, results)
            except KeyboardInterrupt:  # a model stopped part way leaves no row, grid mask or matrix
                del results.rows[first:]
                results.grid_preds, results.matrices = grid, matrices
                raise
            spans[spec] = (first, len(results.rows))
            if opts.progress:
                print(f"[{i + 1}/{len(todo)}] {spec}: finished", file=sys.stderr, flush=True)
        failed = [m for m, (a, b) in spans.items() if crashed(results.rows[a:b])]
        if failed:
            return finish(models, data, out, stage, p, opts, results, spans, key, failed, "a benchmark worker crashed")
        analysis = analyse(models, p, opts, results, out / CHECKPOINT)
        written = report(data, stage, p, opts, results, analysis)
    except KeyboardInterrupt as exc:
        why = "terminated by SIGTERM" if isinstance(exc, Terminated) else "interrupted by SIGINT"
        finish(models, data, out, stage, p, opts, results, spans, key, [], why)
        raise
    replace_folder(stage, out, "the report folder")
    return in_place(written, stage, out)
