"""The report's Results section: the compact main table (fits a 1400 px screen), then every column and what
each means, folded. Accuracy columns are percentages of fractions in [0, 1]; the notes under the tables state
every unit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from segbench.engine.memory import MEMORY_KINDS
from segbench.report.render import Table
from segbench.report.values import DASH, fmt, fmt_interval, fmt_pct, num

__all__ = ["explain_memory_kind", "results_blocks"]

Column = tuple[str, str, Callable[[Any], str], str | None]  # header, row key, formatter, best ("max"/"min")


def explain_memory_kind(kind: str) -> str:
    """One sentence on what a ``memory_kind`` value measures (:data:`segbench.engine.memory.MEMORY_KINDS`)."""
    return MEMORY_KINDS.get(kind, f"peak memory of kind `{kind}`")


def _best_cells(rows: list[dict], cols: list[Column]) -> set[tuple[int, int]]:
    """(row, col) of the best value in each column that has a direction ("max"/"min"), when at
    least two models (without errors) have a value."""
    bold = set()
    for j, (_, key, _, direction) in enumerate(cols):
        if direction is None:
            continue
        vals = [(i, num(r.get(key))) for i, r in enumerate(rows) if not r["error"]]
        vals = [(i, v) for i, v in vals if v is not None]
        if len(vals) < 2:
            continue
        best = (max if direction == "max" else min)(v for _, v in vals)
        bold.update((i, j) for i, v in vals if v == best)
    return bold


def _main_columns(rows: list[dict], has_acc: bool) -> list[Column]:
    """Columns of the main table: only those with something to show."""
    cols: list[Column] = [("Model", "model", str, None)]
    if any(r.get("weights") not in (None, "", r["model"]) for r in rows):  # the tag already names them
        cols.append(("Weights", "weights", lambda v: DASH if v in (None, "") else str(v), None))
    if has_acc:
        cols.append(("mIoU (%)", "miou", fmt_pct, "max"))
        if any(r.get("miou_interval") for r in rows):
            cols.append(("mIoU 95% CI", "miou_interval", fmt_interval, None))
        cols += [("Pixel acc (%)", "pixel_accuracy", fmt_pct, "max"), ("Mean acc (%)", "mean_accuracy", fmt_pct, "max")]
        if any(num(r.get("corruption_miou")) is not None for r in rows):
            cols.append(("Corrupted mIoU (%)", "corruption_miou", fmt_pct, "max"))
    if any(num(r.get("agreement_miou")) is not None for r in rows):
        cols.append(("Agreement mIoU (%)", "agreement_miou", fmt_pct, None))
    cols += [("Params (M)", "params_m", fmt, None), ("Size (MB)", "size_mb", fmt, "min")]
    if any(num(r["size_mb_fp16"]) is not None for r in rows):
        cols.append(("Size fp16 (MB)", "size_mb_fp16", fmt, "min"))
    cols += [("GFLOPs", "gflops", fmt, None), ("Latency p50 (ms)", "latency_ms_p50", fmt, "min"),
             ("Latency p90 (ms)", "latency_ms_p90", fmt, "min"),
             ("Throughput (img/s)", "throughput_img_s", fmt, "max"),
             ("Memory (MiB)", "memory_mib", fmt, "min")]
    if any(num(r.get("arithmetic_intensity_flop_per_byte")) is not None for r in rows):
        cols.append(("FLOP/byte", "arithmetic_intensity_flop_per_byte", fmt, None))
    if any(num(r.get("roofline_bound_ms")) is not None for r in rows):
        cols += [("Roofline bound (ms)", "roofline_bound_ms", fmt, None),
                 ("Bound by", "roofline_ceiling", lambda v: DASH if v is None else str(v), None),
                 ("% of roofline", "roofline_fraction", fmt_pct, None)]
    if has_acc and any(r.get("num_images") is not None for r in rows):
        cols.append(("Images", "num_images", lambda v: DASH if v is None else str(v), None))
    return cols


def _main_table(rows: list[dict], cols: list[Column], mixed_kinds: bool) -> Table:
    table_rows = []
    for r in rows:
        cells = []
        for _, key, formatter, _ in cols:
            if key == "model":
                cells.append(r["_label"] + (" (failed)" if r["error"] else ""))
            elif key == "memory_mib" and mixed_kinds and num(r["memory_mib"]) is not None and r.get("memory_kind"):
                cells.append(f"{fmt(r['memory_mib'])} ({r['memory_kind']})")
            else:
                cells.append(formatter(r.get(key)))
        table_rows.append(cells)
    return Table([c[0] for c in cols], table_rows, ["l", "l"] + ["r"] * (len(cols) - 2), _best_cells(rows, cols))


def _column_notes(rows: list[dict], cols: list[Column], has_acc: bool, settings: dict, kinds: list[str]) -> list[str]:
    """What each column of the main table means, with its unit."""
    notes = []
    if has_acc:
        split = settings.get("split")
        notes.append("**mIoU, Pixel acc, Mean acc** are percentages (0–100) over the labelled images"
                     + (f" of the `{split}` split" if split else "") + ". IoU = TP / (TP + FP + FN) per class; "
                     "mIoU averages it over the classes present in the labels or the predictions (a class absent "
                     "from both has no IoU and is left out). Pixel acc = correct pixels / labelled pixels; Mean acc "
                     "= per-class accuracy averaged over classes. Ignored pixels (void) are excluded.")
        if any(c[1] == "miou_interval" for c in cols):
            notes.append("**mIoU 95% CI**: bootstrap interval over images (see Uncertainty and rankings).")
        if any(c[1] == "corruption_miou" for c in cols):
            notes.append("**Corrupted mIoU (%)**: mIoU averaged over the corruptions and severities of the "
                         "robustness pass (see Robustness to corruptions).")
    fp16_col = any(c[1] == "size_mb_fp16" for c in cols)
    notes.append("**Params (M)**: parameters in millions. **Size (MB)**: the weights (state_dict) serialised "
                 "with safetensors, in megabytes of 10^6 bytes, fp32" + (" (fp16 in its own column)" if fp16_col else "")
                 + ".")
    notes.append("**GFLOPs**: 10^9 floating-point operations for one forward pass at the input size in Settings, "
                 "counted by `torch.utils.flop_counter.FlopCounterMode`, where one multiply-add = 2 FLOPs "
                 "(so GMACs = GFLOPs / 2; GMACs are in results.csv). Only convolutions, matmuls and attention are "
                 "counted. torchvision's published \"GFLOPS\" are multiply-adds, comparable with GMACs, not GFLOPs.")
    batch = settings.get("batch", settings.get("batch_size"))
    notes.append("**Latency p50 / p90 (ms)**: median and 90th percentile wall-clock time of one forward call"
                 + (f" on a batch of {batch}" if batch is not None else " on one batch") + " after warm-up, in "
                 "milliseconds (CUDA synchronised around each call). **Throughput (img/s)**: images per second = "
                 "batch / median latency.")
    if any(c[1] == "arithmetic_intensity_flop_per_byte" for c in cols):
        notes.append("**FLOP/byte**: arithmetic intensity, FLOPs of one forward call / bytes it moves (the weights "
                     "once plus each leaf layer's input and output at the backend's precision, no cache reuse). "
                     "**Roofline bound (ms)**: the call's FLOPs at min(theoretical peak of that precision, FLOP/byte "
                     "x measured STREAM triad bandwidth); **Bound by**: the ceiling that binds (compute or memory); "
                     "**% of roofline**: achieved GFLOP/s / that bound (see Roofline).")
    if kinds:
        notes.append("**Memory (MiB)**: mebibytes (2^20 bytes); "
                     + "; ".join(f"`{k}` = {explain_memory_kind(k)}" for k in kinds) + ".")
    else:
        notes.append("**Memory (MiB)**: peak memory in mebibytes (2^20 bytes) during inference.")
    if any(c[1] == "agreement_miou" for c in cols):
        ref = next((r.get("agreement_reference") for r in rows if r.get("agreement_reference")), "the first backend")
        notes.append(f"**Agreement mIoU (%)**: each backend's label maps scored as mIoU against {ref}'s on the same "
                     "images (100 = identical predictions); it shows a backend that segments differently even "
                     "without labels.")
    backend_notes = [f"{r['_label']}: {r['backend_notes']}" for r in rows if r.get("backend_notes")]
    if backend_notes:
        notes.append("**Backends**: " + "; ".join(backend_notes) + ".")
    notes += _model_notes(rows)
    notes.append(f"{DASH} = not measured (or the model failed). **Bold** = best value in its column.")
    return notes


def _model_notes(rows: list[dict]) -> list[str]:
    """Per model (once, whatever its backends): what could not be measured and why, and how its classes were
    mapped onto the data's."""
    measured, mapped = {}, {}
    for r in rows:
        if r.get("model_notes"):
            measured.setdefault(r["model"], "; ".join(str(n) for n in r["model_notes"]))
        if r.get("class_mapping"):
            mapped.setdefault(r["model"], str(r["class_mapping"]))
    out = []
    if measured:
        out.append("**Model notes** (models segbench did not build: what is not measured, and why): "
                   + "; ".join(f"{m}: {n}" for m, n in measured.items()) + ".")
    if mapped:
        out.append("**Class mapping** (a model scored on the data's classes): "
                   + "; ".join(f"{m}: {n}" for m, n in mapped.items()) + ".")
    return out


def _with_interval(value, lo, hi, formatter) -> str:
    """``"72.3 [70.0, 74.4]"``: a value and its interval, or the value alone."""
    text = formatter(value)
    if num(value) is None or num(lo) is None or num(hi) is None:
        return text
    return f"{text} [{formatter(lo)}, {formatter(hi)}]"


def _compact_columns(rows: list[dict], has_acc: bool) -> list[tuple[str, str, Callable[[dict], str], str | None]]:
    """The main table's columns (header, key ranked on, cell of a row, best): model, mIoU with interval, Boundary
    IoU, ECE, latency with interval, size, GFLOPs, peak memory; a score column only when some row has it."""
    cols: list[tuple[str, str, Callable[[dict], str], str | None]] = [("Model", "model", lambda r: "", None)]
    if has_acc:
        cols.append(("mIoU (%) [95% CI]", "miou",
                     lambda r: _with_interval(r["miou"], *(r.get("miou_interval") or (None, None)), fmt_pct), "max"))
        if any(num(r.get("boundary_miou")) is not None for r in rows):
            cols.append(("Boundary IoU (%)", "boundary_miou", lambda r: fmt_pct(r.get("boundary_miou")), "max"))
        if any(num(r.get("ece")) is not None for r in rows):
            cols.append(("ECE (%)", "ece", lambda r: fmt_pct(r.get("ece")), "min"))
    cols += [("Latency p50 (ms) [95% CI]", "latency_ms_p50",
              lambda r: _with_interval(r["latency_ms_p50"], r.get("latency_ms_ci_low"), r.get("latency_ms_ci_high"), fmt),
              "min"),
             ("Size (MB)", "size_mb", lambda r: fmt(r["size_mb"]), "min"),
             ("GFLOPs", "gflops", lambda r: fmt(r["gflops"]), None),
             ("Peak memory (MiB)", "memory_mib", lambda r: fmt(r["memory_mib"]), "min")]  # fmt: skip
    return cols


def _compact_table(rows: list[dict], has_acc: bool, mixed_kinds: bool) -> tuple[Table, list[str]]:
    """The main table (fits a 1400 px screen) and the keys of its columns."""
    cols = _compact_columns(rows, has_acc)
    cells = []
    for r in rows:
        line = []
        for _, key, cell, _ in cols:
            if key == "model":
                name = r["_label"] + (" (failed)" if r["error"] else "")
                line.append(name + (" ★ best backend" if r.get("best") else ""))
            elif key == "memory_mib" and mixed_kinds and num(r["memory_mib"]) is not None and r.get("memory_kind"):
                line.append(f"{fmt(r['memory_mib'])} ({r['memory_kind']})")
            else:
                line.append(cell(r))
        cells.append(line)
    ranked: list[Column] = [(h, key, str, best) for h, key, _, best in cols]
    table = Table([c[0] for c in cols], cells, ["l"] + ["r"] * (len(cols) - 1), _best_cells(rows, ranked),
                  id="sb-results")
    return table, [c[1] for c in cols]


def _compact_notes(keys: list[str], rows: list[dict], settings: dict) -> str:
    """One paragraph under the main table: what its columns are, in which unit."""
    parts = []
    if "miou" in keys:
        parts.append("mIoU in % with its 95% bootstrap interval over the images")
    if "boundary_miou" in keys:
        parts.append("Boundary IoU in % (arXiv 2103.16562)")
    if "ece" in keys:
        parts.append("ECE = expected calibration error in % (lower is better calibrated)")
    batch = settings.get("batch", settings.get("batch_size"))
    parts.append("latency = median ms per forward call" + (f" of a batch of {batch}" if batch is not None else "")
                 + " with the 95% interval of the median")
    parts.append("size = fp32 weights in MB (10^6 bytes); GFLOPs = 10^9 FLOPs per forward pass; peak memory in MiB")
    text = "; ".join(parts) + f". **Bold** = best in its column; {DASH} = not measured."
    if any(r.get("best") for r in rows):
        text += " ★ = the backend `--backend best` chose for that model."
    return text + " Every column, with its definition, is in **All columns** below."


def results_blocks(rows: list[dict], has_acc: bool, settings: dict) -> list[tuple]:
    """Section "Results": the compact main table, then every column and its notes folded."""
    kinds = sorted({str(r["memory_kind"]) for r in rows if r.get("memory_kind")})
    table, keys = _compact_table(rows, has_acc, len(kinds) > 1)
    cols = _main_columns(rows, has_acc)
    detail = _main_table(rows, cols, len(kinds) > 1)
    detail.id = "sb-results-all"
    return [("h", 2, "Results"), ("table", table), ("p", _compact_notes(keys, rows, settings)),
            ("details", "All columns", [("table", detail), ("ul", _column_notes(rows, cols, has_acc, settings, kinds))])]
