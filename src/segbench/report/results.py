"""The machine-readable half of the report: result rows, the Pareto front, ``results.json`` and ``results.csv``.

Units follow the names (see ``segbench.bench.size`` and ``segbench.bench.latency``): ``miou``,
``pixel_accuracy``, ``mean_accuracy`` and ``iou`` are fractions in [0, 1]; ``latency_ms_*`` in milliseconds
per forward call of one batch; ``throughput_img_s`` in images per second; ``size_mb`` in megabytes of
10**6 bytes; ``memory_mib`` in mebibytes (2**20 bytes); ``params_m`` in millions; ``gflops`` / ``gmacs`` in
10**9 operations, counted by ``torch.utils.flop_counter.FlopCounterMode`` where one multiply-add = 2 FLOPs.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence

import numpy as np

from segbench.bench.schema import columns
from segbench.report.values import jsonable, num

ACC_KEYS = columns("miou", "pixel_accuracy", "mean_accuracy")
ROW_KEYS = columns(
    "model", "weights", "params_m", "size_mb", "size_mb_fp16", "gflops", "gmacs",
    "latency_ms_p50", "latency_ms_p90", "throughput_img_s", "memory_mib", "memory_kind",
    "pixel_accuracy", "mean_accuracy", "miou", "iou", "num_images", "error",
)  # fmt: skip
"""Keys every normalised row holds (None when not measured); other keys of a row are kept as given."""
CSV_COLUMNS = columns(
    "model", "weights", "backend", "miou", "miou_lo", "miou_hi", "per_image_miou_mean", "pixel_accuracy",
    "mean_accuracy", "boundary_miou", "ece", "corruption_miou", "corruption_relative", "agreement_miou",
    "pixel_agreement",
    "params_m", "size_mb", "size_mb_fp16", "gflops", "gmacs", "latency_ms_p50", "latency_ms_p90",
    "latency_ms_std", "throughput_img_s", "achieved_gflop_s", "peak_fraction",
    "bytes_per_forward_mb", "arithmetic_intensity_flop_per_byte", "roofline_bound_ms", "roofline_ceiling",
    "roofline_fraction", "memory_mib", "memory_reserved_mib",
    "memory_kind", "peak_rss_mib_total", "cpu_busy_before_pct", "num_images", "error",
)  # fmt: skip
"""Scalar columns of ``results.csv``, in order; ``iou_<class>`` columns follow."""


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the Pareto-optimal points for (latency, mIoU): lower latency and higher mIoU win.

    A point is dominated when another point has latency <= and mIoU >= with at least one strictly
    better. Points with a missing or non-finite coordinate are never on the front. Identical points
    do not dominate each other, so both are kept.

    Args:
        points: ``(latency_ms, miou)`` pairs, any units as long as lower latency / higher mIoU is
            better.

    Returns:
        Indices into ``points`` of the non-dominated points, sorted by increasing latency (then
        decreasing mIoU, then index). Along this order both latency and mIoU strictly increase,
        except between identical points.
    """
    valid = []
    for i, p in enumerate(points):
        x, y = num(p[0]), num(p[1])
        if x is not None and y is not None:
            valid.append((i, x, y))
    front = []
    for i, xi, yi in valid:
        dominated = any(
            xj <= xi and yj >= yi and (xj < xi or yj > yi) for j, xj, yj in valid if j != i
        )
        if not dominated:
            front.append((xi, -yi, i))
    return [i for _, _, i in sorted(front)]


def normalise_row(row: dict, class_names: list[str] | None) -> dict:
    """Copy of ``row`` with every key of :data:`ROW_KEYS` present (None when missing).

    ``iou`` becomes a dict of class name -> finite float or None (a list is named by ``class_names``, or by
    its indices), ``model`` a str (``"?"`` when missing) and ``error`` a str or None.
    """
    out = {k: row.get(k) for k in ROW_KEYS}
    out.update({k: v for k, v in row.items() if k not in out})
    out["model"] = str(row.get("model") or "?")
    iou = row.get("iou")
    if isinstance(iou, dict):
        out["iou"] = {str(k): num(v) for k, v in iou.items()}
    elif isinstance(iou, (list, tuple, np.ndarray)):
        names = class_names or [str(i) for i in range(len(iou))]
        out["iou"] = {names[i] if i < len(names) else str(i): num(v) for i, v in enumerate(iou)}
    else:
        out["iou"] = None
    err = row.get("error")
    out["error"] = str(err) if err not in (None, "") else None
    return out


def class_list(class_names: list[str] | None, rows: list[dict]) -> list[str]:
    """Class names to report: the given list, else the union of the normalised rows' IoU keys in order."""
    if class_names:
        return [str(c) for c in class_names]
    names: list[str] = []
    for r in rows:
        for k in r["iou"] or {}:
            if k not in names:
                names.append(k)
    return names


def results_json(results: dict) -> bytes:
    """``results.json``: strict JSON (NaN and inf as ``null``), indented, UTF-8, ending in a newline.

    Keys of ``results`` starting with ``_`` inside its rows are left out.
    """
    results = {**results, "rows": [{k: v for k, v in r.items() if not k.startswith("_")} for r in results["rows"]]}
    text = json.dumps(jsonable(results), indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def _csv_cell(value) -> str | int | float:
    if isinstance(value, str) or value is None:
        return "" if value is None else value
    x = num(value)
    return "" if x is None else (int(value) if isinstance(value, (int, np.integer)) else x)


def results_csv(rows: list[dict], classes: list[str]) -> bytes:
    """``results.csv``: one line per normalised row, :data:`CSV_COLUMNS` then one ``iou_<class>`` column each.

    Missing, NaN and infinite values are empty cells.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(CSV_COLUMNS) + [f"iou_{c}" for c in classes])
    for r in rows:
        iou = r["iou"] or {}
        line = [_csv_cell(r.get(k)) for k in CSV_COLUMNS]
        line += ["" if num(iou.get(c)) is None else num(iou.get(c)) for c in classes]
        writer.writerow(line)
    return buf.getvalue().encode("utf-8")
