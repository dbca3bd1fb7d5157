"""Benchmark runs in this process: one case (:func:`run_case`) around one model's (:func:`benchmark_model`,
in :mod:`segbench.bench.measure`, re-exported here).

A case (:class:`segbench.bench.case.Case`) is one (model, backend, input size, batch) with its settings;
:func:`segbench.bench.isolate.run_isolated` runs it in a fresh subprocess and :func:`segbench.bench.sweep.sweep`
runs many. The row's columns are defined in :mod:`segbench.bench.schema`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from segbench.bench import backends
from segbench.bench.case import Case, as_case
from segbench.bench.e2e import measure_end_to_end, measure_pipelined
from segbench.bench.env import cpu_busy_pct
from segbench.bench.measure import add_probe, benchmark_model, one_line, prepare_backend, run_benchmark
from segbench.bench.memory import current_rss_mib, process_peak_rss_mib, train_step_memory_mib
from segbench.bench.peak import probe_peaks
from segbench.errors import UserError

__all__ = ["add_probe", "benchmark_model", "prepare_backend", "run_case"]


def _e2e_inputs(data: str | None, info, limit: int = 8) -> tuple[list[Path], list | None]:
    """Image paths (at most ``limit``) and, when the data's classes are the model's, their label maps."""
    from segbench.data.datasets import open_dataset, sample_dir

    dataset = open_dataset(data or sample_dir(), "val")
    n = min(limit, len(dataset))
    paths = [dataset.pairs[i][0] for i in range(n)]
    if dataset.labelled and list(dataset.class_set.names) == list(info.class_names):
        items = [dataset.load(i) for i in range(n)]
        return paths, [it["mask"] for it in items]
    return paths, None


def _calibration(paths: list[Path], info, size: tuple[int, int]) -> list[torch.Tensor]:
    import torch.nn.functional as F

    from segbench.data.io import read_image
    from segbench.data.transforms import preprocess

    return [F.interpolate(preprocess(read_image(p), info.preprocessing), size=size, mode="bilinear",
                          align_corners=False) for p in paths]  # fmt: skip


def _needs_calibration(backend: str) -> bool:
    """Whether ``backend`` is calibrated (False for an unknown name: preparing it records the error in the row)."""
    try:
        return backends.get_backend(backend).needs_calibration
    except UserError:
        return False


def run_case(case: Case | dict) -> dict:
    """Measure one case (a :class:`~segbench.bench.case.Case` or its dict) in this process and return its row.

    Steps: set threads and ``cudnn.benchmark``; load the model; :func:`benchmark_model`'s measurements
    with the case's backend (statically quantised backends are calibrated on the data's images at
    the case's size); for batch-1 cases the end-to-end time per image on the data's images
    (``e2e_*``, and the mIoU on them as ``sample_miou`` when the data's classes are the model's);
    ``peak_rss_mib``, this process's peak RSS so far (``ru_maxrss``; ``rss_before_model_mib`` is the RSS
    before the model was loaded: Python, torch and segbench); last, for the ``eager`` backend,
    the memory of one training step at batch ``max(batch, 2)`` (``train_*``; it changes the weights,
    which is why it comes last).

    Returns:
        The row; failures are recorded in ``error`` (``error_kind = "user"`` for bad input),
        ``e2e_error`` or ``train_error``, never raised.
    """
    from segbench.external import ModelInputs, external_kind, load_any

    case = as_case(case)
    row = case.base_row()
    row["rss_before_model_mib"] = current_rss_mib()
    if case.threads:
        torch.set_num_threads(int(case.threads))
    torch.backends.cudnn.benchmark = case.cudnn_benchmark
    try:
        kind = external_kind(case.model)
        bare = ("." not in case.model and not Path(case.model).exists()) if kind is None else kind == "smp"
        trust = ModelInputs(trust_remote_code=True) if case.trust_remote_code else None
        loaded = load_any(case.model, weights=case.weights or ("none" if bare else None), inputs=trust,
                          device=case.device)  # fmt: skip
    except UserError as exc:
        row.update(error=str(exc), error_kind="user")
        return row
    except Exception as exc:  # noqa: BLE001
        row["error"] = one_line(exc, "load model")
        return row
    info = loaded.info
    loaded.model.eval()
    row.update(model=info.name, weights=info.weights, num_classes=info.num_classes)
    if getattr(info, "notes", None):
        row["model_notes"] = list(info.notes)
    size, calibrated = tuple(case.input_size), _needs_calibration(case.backend)
    paths, masks, data_error = [], None, None
    if (case.e2e and case.batch == 1) or calibrated:
        try:
            paths, masks = _e2e_inputs(case.data, info)
        except UserError as exc:
            data_error = str(exc)
    calibration = None
    if calibrated:
        if not paths:
            row.update(error=f"--backend {case.backend}: needs calibration images ({data_error or 'none found'})",
                       error_kind="user")  # fmt: skip
            return row
        calibration = _calibration(paths, info, size)
    if not str(case.device).startswith("cuda"):
        # other processes' load, measured while this one sleeps (0.2 s where a time budget's deadline is set)
        row["cpu_busy_before_pct"] = cpu_busy_pct(0.2 if (case.latency or {}).get("deadline") else 0.5)
    bench, predictor = run_benchmark(
        loaded.model, input_size=size, batch=case.batch, device=case.device, threads=case.threads, in_channels=3,
        backend=case.backend, calibration=calibration, latency=case.latency, measure_peak=case.measure_peak,
    )  # fmt: skip
    row.update(bench)
    if row["error"] is None and case.probe_peak:
        add_probe(row, probe_peaks(case.device, case.threads))
    if row["error"] is None and case.e2e and case.batch == 1:
        row.update(_end_to_end(case, predictor, info, paths, masks, data_error))
    if row.get("e2e_pipelined_img_s") and row.get("throughput_img_s"):
        row["e2e_pipelined_vs_model"] = row["e2e_pipelined_img_s"] / row["throughput_img_s"]
    row["peak_rss_mib"] = process_peak_rss_mib()
    if row["error"] is None and case.train_step and case.backend == "eager":
        if getattr(loaded.model, "onnx_file", None) is not None:
            row["train_error"] = "an ONNX file has no PyTorch training step"
        elif getattr(loaded.model, "no_train_step", None):
            row["train_error"] = loaded.model.no_train_step
        else:
            row.update(_train_step(case, loaded.model, info.num_classes))
    return row


def _end_to_end(case: Case, predictor, info, paths, masks, data_error: str | None) -> dict:
    """The ``e2e_*`` columns (and ``sample_miou``), or ``e2e_error``."""
    if data_error:
        return {"e2e_error": data_error}
    try:
        e2e = measure_end_to_end(
            predictor, paths, info.preprocessing, input_size=tuple(case.input_size), device=case.device,
            min_time_s=float(case.latency.get("min_time_s", 1.0)), num_classes=info.num_classes, masks=masks,
        )  # fmt: skip
        piped = measure_pipelined(
            predictor, paths, info.preprocessing, input_size=tuple(case.input_size), device=case.device,
            min_time_s=float(case.latency.get("min_time_s", 1.0)), num_classes=info.num_classes, masks=masks,
        )  # fmt: skip
    except Exception as exc:  # noqa: BLE001
        return {"e2e_error": one_line(exc, "end to end")}
    piped.pop("miou", None)  # the same masks as the serial pass (tested)
    return {"sample_miou": e2e.pop("miou", None), "e2e_data": case.data or "segbench CamVid sample", **e2e, **piped}


def _train_step(case: Case, model: nn.Module, num_classes: int) -> dict:
    """The ``train_*`` columns of one training step at batch ``max(batch, 2)``, or ``train_error``."""
    try:
        return train_step_memory_mib(model, (max(case.batch, 2), 3, *case.input_size), num_classes, device=case.device)
    except Exception as exc:  # noqa: BLE001
        return {"train_error": one_line(exc, "training step")}
    finally:
        if torch.device(case.device).type == "cuda" and torch.cuda.is_available():
            torch.cuda.empty_cache()
