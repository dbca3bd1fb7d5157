"""The report's sections and prose, as blocks for :mod:`segbench.report.render`.

Sections, in order: the answer (which model to use) and a summary, Results (a compact main table that fits a
1400 px screen, then every column and what each means, folded), What to deploy (``--backend best``), the
figures (the Pareto plot, then the roofline, then speed/size/memory bars and examples), the image browser,
Test-time augmentation and CRF (when measured), Per-class IoU, Model comparisons, Errors, Skipped inputs, and
last Settings and Environment, folded.
Accuracy columns are percentages of fractions in [0, 1]; the notes under the main table state every unit.
"""

from __future__ import annotations

from segbench.files import SKIPPED_FILE, skipped_by_reason
from segbench.report.answer import answer_blocks
from segbench.report.render import Table
from segbench.report.svgplot import interval
from segbench.report.tables import explain_memory_kind, results_blocks
from segbench.report.values import DASH, fmt, fmt_pct, fmt_value, num

__all__ = ["FIGURES", "build_blocks", "explain_memory_kind"]

SKIPPED_SHOWN = 5
"""How many file names of each skip reason the report shows."""

FIGURES = (
    ("pareto_png", "Accuracy vs latency", "mIoU vs latency with Pareto front"),
    ("roofline_svg", "Roofline", "achieved GFLOP/s against FLOP per byte, log-log, memory and compute ceilings"),
    ("bars_png", "Speed, size and memory", "bar charts of latency, size and memory"),
    ("grid_png", "Examples", "example predictions side by side"),
)
"""(key, heading, alt text) of each figure, in the report's order."""


def _kv_table(d: dict) -> Table:
    return Table(["Key", "Value"], [[str(k), fmt_value(v)] for k, v in d.items()], ["l", "l"])


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


def _figures(figures: dict[str, tuple[str | None, str]], pareto_html: str | None,
             roofline_html: str | None = None) -> list[tuple]:  # fmt: skip
    """One section per figure: the image when drawn (the Pareto plot as ``pareto_html`` in HTML when given; the
    roofline's SVG inline in HTML, linked as a file in Markdown), and its note (or why it is missing)."""
    blocks: list[tuple] = []
    for key, heading, alt in FIGURES:
        file_name, note = figures.get(key, (None, ""))
        blocks.append(("h", 2, heading))
        if file_name is not None and key == "pareto_png" and pareto_html:
            hint = "Hover a point for its figures; untick a backend to hide its points."
            blocks.append(("alt", [("raw", pareto_html), ("p", hint)], [("img", alt, file_name)]))
        elif file_name is not None and key == "roofline_svg":  # an SVG: never a base64 PNG in HTML
            plot = [("raw", f'<div class="plot" id="sb-roofline">{roofline_html}<div class="tip" hidden></div></div>')]
            blocks.append(("alt", plot if roofline_html else [], [("img", alt, file_name)]))
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
    """Sections "Errors" (each failed model's message) and "Skipped inputs" (a line per reason, not per file:
    a folder of 10,000 bad files is one row), and the list of files."""
    blocks: list[tuple] = []
    failed = [r for r in rows if r["error"]]
    if failed:
        blocks.append(("h", 2, "Errors"))
        blocks.append(("p", "These models failed; their rows above show only what was measured before the failure."))
        for r in failed:
            blocks += [("h", 3, r["_label"]), ("code", r["error"])]
    blocks.append(("h", 2, "Skipped inputs"))
    if skipped:
        blocks.append(("p", f"{len(skipped)} input file(s) could not be used and were skipped; by reason, with the "
                            f"first {SKIPPED_SHOWN} files of each (every one is listed in `{SKIPPED_FILE}`):"))
        cells = []
        for reason, files in skipped_by_reason(skipped):
            more = f" and {len(files) - SKIPPED_SHOWN} more" if len(files) > SKIPPED_SHOWN else ""
            cells.append([reason, str(len(files)), ", ".join(files[:SKIPPED_SHOWN]) + more])
        blocks.append(("table", Table(["Reason", "Inputs", "Files"], cells, ["l", "r", "l"])))
    else:
        blocks.append(("p", "None."))
    listed = f", `{SKIPPED_FILE}` (every skipped input and why)" if skipped else ""
    blocks.append(("p", ("Files: `results.json` (everything), `results.csv` (one row per model)"
                         f"{listed}, figures as PNG next to this report.")))
    return blocks


def build_blocks(*, title: str, rows: list[dict], classes: list[str], has_acc: bool, env: dict,
                 settings: dict, skipped: list[dict], figures: dict[str, tuple[str | None, str]],
                 front: list[str], generated: str, pareto_html: str | None = None,
                 browser: list[tuple] | None = None, comparisons: list[dict] | None = None,
                 roofline_html: str | None = None) -> list[tuple]:
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
        roofline_html: The roofline plot's ``<svg>`` (:func:`segbench.report.roofline.roofline_svg`), inline in
            HTML; Markdown links ``roofline.svg``.
        browser: The image browser's blocks, after the figures.
        comparisons: Pairwise model comparisons ``{"a", "b", "difference", "interval", "significant",
            "statement"}`` (differences as fractions), shown as a table.
    """
    return [
        ("h", 1, title),
        *_summary(rows, has_acc, env, settings, front, generated, comparisons),
        *results_blocks(rows, has_acc, settings),
        *_deploy(rows),
        *_figures(figures, pareto_html, roofline_html),
        *(browser or []),
        *_variants(rows),
        *_per_class(rows, classes, has_acc),
        *_comparisons(comparisons),
        *_errors_and_skipped(rows, skipped),
        ("h", 2, "Settings and environment"),
        ("details", "Settings", [("table", _kv_table(settings)) if settings else ("p", "None recorded.")]),
        ("details", "Environment", [("table", _kv_table(env)) if env else ("p", "None recorded.")]),
    ]  # fmt: skip
