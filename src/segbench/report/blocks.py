"""The report's sections and prose, as blocks for :mod:`segbench.report.render`.

Sections, in order: the answer (which model to use) and a summary, Results (a compact main table that fits a
1400 px screen, then every column and what each means, folded), What to deploy (``--backend best``), the three
figures, the image browser, Test-time augmentation and CRF (when measured), Per-class IoU, Model comparisons,
Errors, Skipped inputs, and last Settings and Environment, folded.
Accuracy columns are percentages of fractions in [0, 1]; the notes under the main table state every unit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from segbench.engine.memory import MEMORY_KINDS
from segbench.report.answer import answer_blocks
from segbench.report.render import Table
from segbench.report.svgplot import interval
from segbench.report.values import DASH, fmt, fmt_interval, fmt_pct, fmt_value, num

FIGURES = (
    ("pareto_png", "Accuracy vs latency", "mIoU vs latency with Pareto front"),
    ("bars_png", "Speed, size and memory", "bar charts of latency, size and memory"),
    ("grid_png", "Examples", "example predictions side by side"),
)
"""(key, heading, alt text) of each figure, in the report's order."""

Column = tuple[str, str, Callable[[Any], str], str | None]  # header, row key, formatter, best ("max"/"min")


def explain_memory_kind(kind: str) -> str:
    """One sentence on what a ``memory_kind`` value measures (:data:`segbench.engine.memory.MEMORY_KINDS`)."""
    return MEMORY_KINDS.get(kind, f"peak memory of kind `{kind}`")


def _kv_table(d: dict) -> Table:
    return Table(["Key", "Value"], [[str(k), fmt_value(v)] for k, v in d.items()], ["l", "l"])


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


def _summary(rows: list[dict], has_acc: bool, env: dict, settings: dict, front: list[str], generated: str,
             comparisons: list[dict] | None) -> list[tuple]:
    """The opening: the answer (:mod:`segbench.report.answer`), then how many models ran and the Pareto front."""
    n_ok = sum(1 for r in rows if not r["error"])
    intro = f"{len(rows)} model(s) compared on the same images and hardware ({n_ok} ran, {len(rows) - n_ok} failed)."
    if "date" not in env:
        intro += f" Generated {generated}."
    if not rows:
        return [("p", intro), ("p", "No models were compared.")]
    blocks = answer_blocks(rows, comparisons, settings, has_acc)
    if not has_acc:
        reason = settings.get("accuracy_note") or "No labels: accuracy not measured."
        intro += f" **{reason}** Only speed, size and memory are compared, and the masks are shown side by side."
    elif front:
        intro += " Pareto-optimal (no other model is both faster and more accurate): " + ", ".join(front) + "."
    blocks.append(("p", intro))
    return blocks


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


def _results(rows: list[dict], has_acc: bool, settings: dict) -> list[tuple]:
    """Section "Results": the compact main table, then every column and its notes folded."""
    kinds = sorted({str(r["memory_kind"]) for r in rows if r.get("memory_kind")})
    table, keys = _compact_table(rows, has_acc, len(kinds) > 1)
    cols = _main_columns(rows, has_acc)
    detail = _main_table(rows, cols, len(kinds) > 1)
    detail.id = "sb-results-all"
    return [("h", 2, "Results"), ("table", table), ("p", _compact_notes(keys, rows, settings)),
            ("details", "All columns", [("table", detail), ("ul", _column_notes(rows, cols, has_acc, settings, kinds))])]


def _variants(rows: list[dict]) -> list[tuple]:
    """Section "Test-time augmentation and CRF": per model, mIoU and ms per image of each step of the
    inference chain (plain, +TTA, +CRF) that ``evaluate`` measured, and what each step adds."""
    with_steps = [r for r in rows if isinstance(r.get("variants"), list) and len(r["variants"]) > 1]
    if not with_steps:
        return []
    t_rows = []
    for r in with_steps:
        base = r["variants"][0]
        for v in r["variants"]:
            miou, base_miou = num(v.get("miou")), num(base.get("miou"))
            delta = DASH if v is base or miou is None or base_miou is None else f"{(miou - base_miou) * 100:+.1f}"
            extra = num(v.get("extra_ms_per_image"))
            t_rows.append([r["_label"], str(v.get("name")), fmt_pct(miou), delta, fmt(v.get("ms_per_image")),
                           DASH if v is base or extra is None else f"{extra:+.1f}"])
    table = Table(["Model", "Step", "mIoU (%)", "Δ mIoU (points)", "Time (ms/image)", "Extra (ms/image)"],
                  t_rows, ["l", "l", "r", "r", "r", "r"])
    how = sorted({str(r["inference"]) for r in with_steps if r.get("inference")})
    return [("h", 2, "Test-time augmentation and CRF"), ("table", table),
            ("p", "Each model segmented every image several ways in one pass: **plain** (the inference mode alone"
                  + (f": {'; '.join(how)}" if how else "") + "), **tta** (probabilities averaged over the "
                  "scales and flips), **crf** / **tta+crf** (dense CRF on the softmax output, arXiv 1210.5644). "
                  "Time: mean wall-clock milliseconds per image to produce the label map on the Settings device "
                  "(a +crf step includes the step it refines); Extra: over plain. The main table's mIoU is the "
                  "last step's; its latency is one forward pass.")]


def _per_class(rows: list[dict], classes: list[str], has_acc: bool) -> list[tuple]:
    """Section "Per-class IoU (%)": one column per model with IoUs, the best per class in bold."""
    if not has_acc:
        return [("h", 2, "Per-class IoU (%)"), ("p", "No labels: accuracy not measured.")]
    iou_rows = [r for r in rows if r["iou"]]
    if not classes or not iou_rows:
        return []
    t_rows, bold = [], set()
    for i, c in enumerate(classes):
        vals = [num((r["iou"] or {}).get(c)) for r in iou_rows]
        t_rows.append([c] + [fmt_pct(v) for v in vals])
        fin = [v for v in vals if v is not None]
        if len(fin) >= 2:
            bold.update((i, j + 1) for j, v in enumerate(vals) if v == max(fin))
    table = Table(["Class"] + [r["_label"] for r in iou_rows], t_rows, ["l"] + ["r"] * len(iou_rows), bold)
    return [("h", 2, "Per-class IoU (%)"), ("table", table),
            ("p", (f"IoU in percent, one column per model; **bold** = best per class; {DASH} = class absent "
                   "from both labels and predictions (no IoU, left out of mIoU)."))]


def _figures(figures: dict[str, tuple[str | None, str]], pareto_html: str | None) -> list[tuple]:
    """One section per figure: the image when drawn (the Pareto plot as ``pareto_html`` in HTML when given),
    and its note (or why it is missing)."""
    blocks: list[tuple] = []
    for key, heading, alt in FIGURES:
        file_name, note = figures[key]
        blocks.append(("h", 2, heading))
        if file_name is not None and key == "pareto_png" and pareto_html:
            hint = "Hover a point for its figures; untick a backend to hide its points."
            blocks.append(("alt", [("raw", pareto_html), ("p", hint)], [("img", alt, file_name)]))
        elif file_name is not None:
            blocks.append(("img", alt, file_name))
        if note:
            blocks.append(("p", note))
    return blocks


def _comparisons(comparisons) -> list[tuple]:
    """Section "Model comparisons": each pair's difference with its interval and whether it is significant."""
    if not isinstance(comparisons, list) or not comparisons:
        return []
    cells = []
    for c in comparisons:
        if not isinstance(c, dict):
            continue
        iv = interval(c.get("interval"))
        diff = num(c.get("difference"))
        sig = c.get("significant")
        cells.append([str(c.get("a", "")), str(c.get("b", "")), DASH if diff is None else f"{diff * 100:+.1f}",
                      DASH if iv is None else f"[{iv[0] * 100:+.1f}, {iv[1] * 100:+.1f}]",
                      DASH if sig is None else ("yes" if sig else "no"), str(c.get("statement") or "")])
    table = Table(["A", "B", "Difference (points)", "Interval (points)", "Significant", "Statement"], cells,
                  ["l", "l", "r", "r", "l", "l"])
    return [("h", 2, "Model comparisons"), ("table", table)]


def _deploy(rows: list[dict]) -> list[tuple]:
    """Section "What to deploy" (``--backend best``): per model, the fastest backend within its precision's
    accuracy band against eager, its speed-up, its loss and the faster backends left out (and why)."""
    chosen = [r for r in rows if r.get("best") and isinstance(r.get("best_choice"), dict)]
    if not chosen:
        return []
    cells = []
    for r in chosen:
        c = r["best_choice"]
        rejected = "; ".join(f"{b} ({why})" for b, why in (c.get("rejected") or {}).items()) or "none"
        cells.append([str(r["model"]), str(c["backend"]), f"{c['speedup_vs_eager']:.2f}x",
                      fmt(c["latency_ms_p50"]), f"{c['loss_points']:.2f} ({c['basis']})", f"{c['band_points']:g}",
                      rejected])  # fmt: skip
    table = Table(["Model", "Backend", "Speed-up vs eager", "Latency p50 (ms)", "Accuracy loss (points)",
                   "Band (points)", "Faster, but outside the band"], cells, ["l", "l", "r", "r", "l", "r", "l"])  # fmt: skip
    return [("h", 2, "What to deploy (`--backend best`)"), ("table", table),
            ("p", "For each model, the fastest backend whose accuracy loss against eager PyTorch stays within the "
                  "band of its precision: the mIoU difference on the evaluated images when they are labelled, "
                  "else the disagreement with eager's label maps (100 - agreement mIoU).")]  # fmt: skip


def _errors_and_skipped(rows: list[dict], skipped: list[dict]) -> list[tuple]:
    """Sections "Errors" (each failed model's message) and "Skipped inputs", and the list of files."""
    blocks: list[tuple] = []
    failed = [r for r in rows if r["error"]]
    if failed:
        blocks.append(("h", 2, "Errors"))
        blocks.append(("p", "These models failed; their rows above show only what was measured before the failure."))
        for r in failed:
            blocks += [("h", 3, r["_label"]), ("code", r["error"])]
    blocks.append(("h", 2, "Skipped inputs"))
    if skipped:
        blocks.append(("p", f"{len(skipped)} input file(s) could not be used and were skipped:"))
        cells = [[str(s.get("file", "")), str(s.get("reason", ""))] for s in skipped]
        blocks.append(("table", Table(["File", "Reason"], cells, ["l", "l"])))
    else:
        blocks.append(("p", "None."))
    blocks.append(("p", ("Files: `results.json` (everything), `results.csv` (one row per model), figures as PNG "
                         "next to this report.")))
    return blocks


def build_blocks(*, title: str, rows: list[dict], classes: list[str], has_acc: bool, env: dict,
                 settings: dict, skipped: list[dict], figures: dict[str, tuple[str | None, str]],
                 front: list[str], generated: str, pareto_html: str | None = None,
                 browser: list[tuple] | None = None, comparisons: list[dict] | None = None) -> list[tuple]:
    """The whole report as blocks.

    Args:
        title: The report's title (heading 1).
        rows: Normalised result rows with a display label under ``_label``.
        classes: Class names, in order.
        has_acc: Whether any row has an accuracy metric.
        env: Environment, shown as a table.
        settings: Run settings, shown as a table (``split``, ``batch`` and ``accuracy_note`` are quoted).
        skipped: ``{"file": str, "reason": str}`` per skipped input.
        figures: Figure key -> (its file name, or None when not drawn; note), for the keys of :data:`FIGURES`.
        front: Labels of the Pareto-optimal models.
        generated: When the report was written, shown when ``env`` has no ``date``.
        pareto_html: The interactive Pareto plot, shown instead of pareto.png in HTML.
        browser: The image browser's blocks, after the figures.
        comparisons: Pairwise model comparisons ``{"a", "b", "difference", "interval", "significant",
            "statement"}`` (differences as fractions), shown as a table.
    """
    return [
        ("h", 1, title),
        *_summary(rows, has_acc, env, settings, front, generated, comparisons),
        *_results(rows, has_acc, settings),
        *_deploy(rows),
        *_figures(figures, pareto_html),
        *(browser or []),
        *_variants(rows),
        *_per_class(rows, classes, has_acc),
        *_comparisons(comparisons),
        *_errors_and_skipped(rows, skipped),
        ("h", 2, "Settings and environment"),
        ("details", "Settings", [("table", _kv_table(settings)) if settings else ("p", "None recorded.")]),
        ("details", "Environment", [("table", _kv_table(env)) if env else ("p", "None recorded.")]),
    ]  # fmt: skip
