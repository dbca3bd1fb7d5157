"""The result row of a benchmark, defined once: every column with its unit and meaning.

:data:`MEASURED` are the columns :func:`segbench.bench.runner.benchmark_model` always returns (None where a
step failed or does not apply); :data:`OPTIONAL` appear only when they apply; :data:`ROOFLINE` where a
hardware profile is at hand (:func:`segbench.bench.roofline.add_roofline`); :data:`CASE_RUN` are added by
:func:`segbench.bench.runner.run_case` and :func:`segbench.bench.isolate.run_isolated`. Column lists
elsewhere (the CSV of a report, the plain-text table) are derived from :data:`FIELDS`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CASE_RUN", "COMPARE", "FIELDS", "MEASURED", "OPTIONAL", "RESULT_KEYS", "ROOFLINE", "Field", "columns", "describe",
    "empty_row",
]  # fmt: skip


@dataclass(frozen=True)
class Field:
    """One column of a result row.

    Attributes:
        name: the key in the row (units live in the name: ``_ms``, ``_mib``, ``_mb``, ``_s``).
        unit: the unit of the value ("" for names, flags and counts).
        meaning: one line on what the value is.
    """

    name: str
    unit: str
    meaning: str


MEASURED = (
    Field("backend", "", "how the network runs (segbench.bench.backends.BACKENDS)"),
    Field("backend_notes", "", "what the backend did: precision, threads, export and calibration"),
    Field("params", "count", "parameters of the network"),
    Field("params_m", "millions", "parameters / 1e6"),
    Field("size_mb", "MB (10**6 bytes)", "safetensors size of the fp32 weights"),
    Field("size_mb_fp16", "MB (10**6 bytes)", "safetensors size of the fp16 weights"),
    Field("gflops", "GFLOP per image", "FLOPs at input_size, batch 1 (1 multiply-add = 2 FLOPs)"),
    Field("gmacs", "GMAC per image", "multiply-adds at input_size, batch 1"),
    Field("bytes_weights_mb", "MB (10**6 bytes)", "weights read once per forward: parameters and floating buffers at "
          "the width of roofline_precision (segbench.bench.roofline)"),
    Field("bytes_activations_mb", "MB per image", "each leaf module's input and output at batch 1, at that width"),
    Field("bytes_per_forward_mb", "MB per batch", "bytes_weights_mb + batch x bytes_activations_mb (no cache reuse)"),
    Field("arithmetic_intensity_flop_per_byte", "FLOP/byte", "gflops x batch / bytes_per_forward_mb of one call"),
    Field("roofline_precision", "", "precision whose width the bytes and whose peak the roofline use"),
    Field("latency_ms_p50", "ms per batch", "median latency of one call"),
    Field("latency_ms_p90", "ms per batch", "90th percentile latency"),
    Field("latency_ms_mean", "ms per batch", "mean latency"),
    Field("latency_ms_std", "ms per batch", "standard deviation of the latency"),
    Field("latency_ms_ci_low", "ms per batch", "lower end of the median's 95% interval"),
    Field("latency_ms_ci_high", "ms per batch", "upper end of the median's 95% interval"),
    Field("ci_rel", "fraction", "half-width of the median's 95% interval relative to the median"),
    Field("converged", "", "whether the interval got within rel_ci before the budget ran out"),
    Field("budget_cut", "", "whether the deadline of compare's --time-budget ended timing first (the interval is the one reached)"),
    Field("throughput_img_s", "images/s", "batch / median latency"),
    Field("iters", "count", "timed calls"),
    Field("timer", "", "how calls were timed (perf_counter or cuda_events)"),
    Field("batch", "images", "batch size"),
    Field("input_size", "px", "[H, W] of the input"),
    Field("device", "", "device the case ran on"),
    Field("memory_mib", "MiB (2**20 bytes)", "peak memory of one forward (see memory_kind)"),
    Field("memory_reserved_mib", "MiB (2**20 bytes)", "peak CUDA memory reserved by the caching allocator"),
    Field("memory_kind", "", "what memory_mib measures (segbench.engine.memory.MEMORY_KINDS)"),
    Field("achieved_gflop_s", "GFLOP/s", "gflops x batch / median latency in s"),
    Field("peak_precision", "", "precision the backend computes in (fp32, tf32, bf16, int8): the peak it is read against; None when emulated (peak_native)"),
    Field("peak_gflop_s", "GFLOP/s", "peak of the device in peak_precision (CPU: theoretical; CUDA: measured GEMM)"),
    Field("peak_fraction", "fraction", "achieved_gflop_s / peak_gflop_s"),
    Field("peak_kind", "", "theoretical or measured matmul peak"),
    Field("peak_formula", "", "how peak_gflop_s was computed"),
    Field("error", "", "None on success, else one line saying what failed (and during which stage)"),
    Field("env", "", "the environment (segbench.bench.env.environment_info)"),
)
OPTIONAL = (
    Field("error_kind", "", '"user" when error is a bad input (unknown backend, missing package)'),
    Field("matmul_gflop_s", "GFLOP/s", "measured large fp32 matmul on CPU (measure_peak)"),
    Field("peak_native", "", "False when the CPU has no unit for the backend's precision (cpuinfo flags): emulated "
          "through fp32, peak_precision None and the peak the fp32 rate"),
    Field("probe_gflop_s", "GFLOP/s", "this machine's measured GEMM rate in peak_precision (segbench.bench.peak probe)"),
    Field("probe_fraction", "fraction", "achieved_gflop_s / probe_gflop_s"),
    Field("peak_probe", "", "the probe: theoretical and measured peak per precision, cache file, busy_pct"),
)
ROOFLINE = (
    Field("roofline_peak_gflop_s", "GFLOP/s", "compute ceiling: theoretical peak of roofline_precision (profile)"),
    Field("roofline_bandwidth_gb_s", "GB/s (10**9 bytes)", "memory ceiling's slope: the profile's STREAM triad"),
    Field("roofline_bound_gflop_s", "GFLOP/s", "min(roofline_peak_gflop_s, intensity x roofline_bandwidth_gb_s)"),
    Field("roofline_bound_ms", "ms per batch", "the call's FLOPs at roofline_bound_gflop_s"),
    Field("roofline_ceiling", "", '"compute" or "memory": which ceiling binds'),
    Field("roofline_fraction", "fraction", "achieved_gflop_s / roofline_bound_gflop_s"),
    Field("roofline_gemm_gflop_s", "GFLOP/s", "the profile's measured GEMM rate in roofline_precision"),
    Field("roofline_gemm_bound_gflop_s", "GFLOP/s", "the bound with the measured GEMM rate as compute ceiling"),
    Field("roofline_gemm_fraction", "fraction", "achieved_gflop_s / roofline_gemm_bound_gflop_s"),
    Field("roofline_error", "", "why the roofline columns are None (no profile, peak, bandwidth or byte count)"),
)
"""Columns :func:`segbench.bench.roofline.add_roofline` adds where the machine's profile is at hand."""
CASE_RUN = (
    Field("model", "", "model name"),
    Field("weights", "", "weights tag or file"),
    Field("num_classes", "count", "classes the model predicts"),
    Field("rss_before_model_mib", "MiB (2**20 bytes)", "RSS of the worker before the model was loaded"),
    Field("cpu_busy_before_pct", "%", "how busy other processes kept the CPU in the 0.5 s before timing"),
    Field("sample_miou", "fraction", "mIoU on the end-to-end images when their classes are the model's"),
    Field("e2e_data", "", "images of the end-to-end time"),
    Field("e2e_ms_p50", "ms per image", "median end-to-end time: decode, preprocess, model, postprocess"),
    Field("e2e_decode_ms", "ms per image", "median time to read and decode the file"),
    Field("e2e_preprocess_ms", "ms per image", "median time to resize, normalise and move to the device"),
    Field("e2e_model_ms", "ms per image", "median time of the model"),
    Field("e2e_postprocess_ms", "ms per image", "median time of argmax, resize back and copy to the host"),
    Field("e2e_images", "count", "timed images"),
    Field("e2e_input_size", "px", "[h, w] the model ran at end to end"),
    Field("e2e_error", "", "why the end-to-end time is missing"),
    Field("e2e_pipelined_img_s", "images/s", "end-to-end throughput with decode, model and postprocess overlapped"),
    Field("e2e_pipelined_images", "count", "timed images of the overlapped end-to-end run"),
    Field("e2e_pipelined_vs_model", "fraction", "e2e_pipelined_img_s / throughput_img_s (model only)"),
    Field("peak_rss_mib", "MiB (2**20 bytes)", "peak RSS of the measuring process after the measurements"),
    Field("train_memory_mib", "MiB (2**20 bytes)", "peak memory of one training step"),
    Field("train_memory_reserved_mib", "MiB (2**20 bytes)", "peak CUDA memory reserved during the step"),
    Field("train_memory_kind", "", "what train_memory_mib measures (MEMORY_KINDS)"),
    Field("train_batch", "images", "batch of the training step (at least 2)"),
    Field("train_error", "", "why the training-step memory is missing"),
    Field("model_notes", "", "what cannot be measured for a model segbench did not build, and why (a list)"),
    Field("peak_rss_mib_total", "MiB (2**20 bytes)", "peak RSS of the worker over its whole life"),
    Field("peak_rss_kind", "", "set when not isolated: the RSS includes earlier cases"),
    Field("worker_exit", "", "exit code of the worker subprocess"),
    Field("worker_s", "s", "wall time of the worker subprocess"),
    Field("machine", "", "the machine that measured the row (segbench.bench.machines.machine_id)"),
)
COMPARE = (
    Field("miou", "fraction", "mean IoU over the classes present (segbench.metrics)"),
    Field("pixel_accuracy", "fraction", "correct labelled pixels / labelled pixels"),
    Field("mean_accuracy", "fraction", "mean of the per-class accuracies"),
    Field("iou", "fraction per class", "IoU of each class, by name"),
    Field("num_images", "count", "images evaluated"),
    Field("agreement_miou", "fraction", "mIoU of the backend's predictions scored against the first backend's"),
    Field("pixel_agreement", "fraction", "pixels the backend labels as the first backend does"),
    Field("class_mapping", "", "how the model's classes were mapped onto the data's (segbench.external.classmap)"),
    Field("best", "", "--backend best: whether this row is the model's chosen backend (segbench.bench.select)"),
    Field("best_choice", "", "--backend best: the choice, its speed-up, accuracy loss, band and the rejected backends"),
    Field("miou_lo", "fraction", "lower end of the mIoU's 95% bootstrap interval over images"),
    Field("miou_hi", "fraction", "upper end of the mIoU's 95% bootstrap interval over images"),
    Field("per_image_miou_mean", "fraction", "mean over images of each image's own mIoU"),
    Field("boundary_miou", "fraction", "mean Boundary IoU over classes (arXiv 2103.16562)"),
    Field("ece", "fraction", "expected calibration error of max-softmax, 15 bins (arXiv 1706.04599)"),
    Field("corruption_miou", "fraction", "mIoU averaged over the corruptions and severities run"),
    Field("corruption_relative", "fraction", "corruption_miou / clean mIoU of the same images"),
)
"""Columns :func:`segbench.compare.compare` adds to a benchmark row: accuracy and agreement."""

FIELDS = MEASURED + OPTIONAL + ROOFLINE + CASE_RUN + COMPARE
"""Every column a result row can hold, in order."""

RESULT_KEYS = tuple(f.name for f in MEASURED)
"""The columns of :func:`segbench.bench.runner.benchmark_model`'s row, in order."""

_BY_NAME = {f.name: f for f in FIELDS}


def describe(name: str) -> Field:
    """The :class:`Field` of a column.

    Raises:
        KeyError: ``name`` is not a column of the schema.
    """
    return _BY_NAME[name]


def columns(*names: str) -> tuple[str, ...]:
    """``names`` checked against the schema: how a report or table picks its columns.

    Raises:
        KeyError: a name that is not a column of :data:`FIELDS`.
    """
    unknown = [n for n in names if n not in _BY_NAME]
    if unknown:
        raise KeyError(f"not result columns: {', '.join(unknown)}")
    return names


def empty_row() -> dict:
    """A :func:`~segbench.bench.runner.benchmark_model` row with every measured column None."""
    return dict.fromkeys(RESULT_KEYS)
