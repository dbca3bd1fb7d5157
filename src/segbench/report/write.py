"""The report folder of ``segbench compare``: one folder a person can read.

:func:`write_report` takes the per-model measurements of a comparison run (accuracy, cost, speed, memory),
a few example predictions, and the run's settings and environment, and writes into one folder:

``results.json``
    Everything, machine-readable (settings, env, rows, skipped inputs; NaN and inf become ``null``).
``results.csv``
    One row per model, flat scalar columns plus one ``iou_<class>`` column per class.
``pareto.png``
    mIoU (%) against median latency (ms), with the Pareto front (faster and more accurate) as a
    step line. Not written when no model has an mIoU (unlabelled images) or a latency.
``roofline.svg``
    Achieved GFLOP/s against arithmetic intensity (FLOP/byte), log-log, under the memory and compute
    ceilings (:mod:`segbench.report.roofline`); inline in report.html. Not written when no row has both.
``bars.png``
    Median latency (ms), weights size (MB) and peak memory (MiB), one bar per model.
``grid.png``
    Example images | ground truth | each model's colourised label map, with a class colour legend.
``report.md`` and ``report.html``
    The same content as Markdown (images linked by relative path) and as one self-contained HTML
    file (images inlined as base64 data URIs, inline CSS, no external resources); with ``interactive``
    the page also has an inline script: sortable tables, the Pareto plot as SVG, the image browser.
``browser/``
    Given ``masks`` (written by :class:`segbench.report.masks.MaskStore` while ``compare`` ran): every
    evaluated image, its ground truth and each row's mask; results.json then has ``images``.

Every file is written atomically: to a temporary file in the same folder, then ``os.replace``, so a
reader never sees a half-written file. Figures that are not produced this time (e.g. ``pareto.png``
for unlabelled data) are removed from the folder if an earlier run left them, so the folder never
shows a stale figure. Units are those of :mod:`segbench.report.results`.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from segbench.data.io import write_bytes_atomic
from segbench.files import write_skipped
from segbench.report import browser as _browser
from segbench.report.analysis import FIGURE_FILES, analysis_blocks, analysis_figures
from segbench.report.blocks import build_blocks
from segbench.report.figures import bars_png, model_colours, pareto_png
from segbench.report.grid import grid_png
from segbench.report.masks import MaskStore
from segbench.report.render import render_html, render_md
from segbench.report.results import ACC_KEYS, class_list, normalise_row, results_csv, results_json
from segbench.report.roofline import roofline_note, roofline_svg
from segbench.report.svgplot import pareto_svg
from segbench.report.values import num

FILE_NAMES = {
    "results_json": "results.json",
    "results_csv": "results.csv",
    "pareto_png": "pareto.png",
    "roofline_svg": "roofline.svg",
    "bars_png": "bars.png",
    "grid_png": "grid.png",
    "report_md": "report.md",
    "report_html": "report.html",
    **FIGURE_FILES,
}


def display_name(model: str, backend: str | None, several: bool) -> str:
    """A row's name in tables and figures: ``model``, or ``model (backend)`` when the report holds more than
    eager PyTorch (``several``)."""
    return f"{model} ({backend})" if several and backend else model


def _label_rows(rows: list[dict]) -> None:
    """Give each normalised row its ``_name`` (model, with the backend when more than eager runs) and a
    unique ``_label`` (the name, plus the weights when one name appears more than once)."""
    used = {r.get("backend") or "eager" for r in rows}
    several = len(used) > 1 or used != {"eager"}
    counts: dict[str, int] = {}
    for r in rows:
        r["_name"] = display_name(r["model"], r.get("backend"), several)
        counts[r["_name"]] = counts.get(r["_name"], 0) + 1
    seen: set[str] = set()
    for i, r in enumerate(rows):
        label = r["_name"] if counts[r["_name"]] == 1 else f"{r['_name']} [{r['weights'] or i}]"
        while label in seen:
            label += f" #{i}"
        seen.add(label)
        r["_label"] = label


def _draw_figures(rows: list[dict], classes: list[str], names_given: bool, palette, grid: list[dict] | None,
                  settings: dict) -> tuple[dict[str, tuple[bytes | None, str]], list[str]]:
    """Figure key -> (PNG or SVG bytes, or None; note), and the labels on the Pareto front."""
    colours = model_colours([r["_label"] for r in rows])
    pareto, pareto_note, front = pareto_png(rows, colours, settings)
    roofline = roofline_svg(rows, colours, standalone=True)
    figures = {"pareto_png": (pareto, pareto_note), "bars_png": bars_png(rows, colours),
               "roofline_svg": (roofline.encode("utf-8") if roofline else None, roofline_note(rows))}
    if grid:
        figures["grid_png"] = grid_png(list(grid), [r["_name"] for r in rows], classes, names_given, palette)
    else:
        figures["grid_png"] = (None, "No example images were given.")
    return figures, front


def _with_analysis(blocks: list[tuple], extra: list[tuple]) -> list[tuple]:
    """``extra`` inserted before the "Per-class IoU" section (else before the figures)."""
    at = next((i for i, b in enumerate(blocks) if b[0] == "h" and b[1] == 2 and b[2].startswith("Per-class")), None)
    if at is None:
        at = next((i for i, b in enumerate(blocks) if b[0] == "h" and b[1] == 2 and b[2] == "Accuracy vs latency"),
                  len(blocks))  # fmt: skip
    return blocks[:at] + extra + blocks[at:]


def _write_figures(out: Path, figures: dict[str, tuple[bytes | None, str]]) -> dict[str, Path]:
    """Write the drawn figures; remove a figure not drawn this time that an earlier run left in ``out``."""
    written = {}
    for key, (data, _) in figures.items():
        path = out / FILE_NAMES[key]
        if data is not None:
            written[key] = write_bytes_atomic(path, data)
        elif path.exists():
            path.unlink()
    return written


def _limit(embed_limit_mb: float | None) -> float:
    return _browser.EMBED_LIMIT_MB if embed_limit_mb is None else embed_limit_mb


def write_report(
    out_dir: str | Path,
    *,
    rows: list[dict],
    class_names: list[str] | None,
    palette: list[tuple[int, int, int]] | None,
    grid: list[dict] | None,
    env: dict,
    settings: dict,
    skipped: list[dict] | None = None,
    title: str = "segbench compare",
    masks: MaskStore | None = None,
    interactive: bool = False,
    embed_limit_mb: float | None = None,
    analysis: dict | None = None,
    partial: dict | None = None,
) -> dict[str, Path]:
    """Write the comparison report folder.

    Args:
        out_dir: Folder to write into; created (with parents) if missing. Files of the same names
            are replaced atomically.
        rows: One dict per model. Keys (each may be missing or None when not measured): ``model``
            (str), ``weights`` (tag or path), ``params_m`` (millions), ``size_mb``, ``size_mb_fp16``
            (MB = 10**6 bytes), ``gflops``, ``gmacs`` (10**9 ops per forward pass),
            ``latency_ms_p50``, ``latency_ms_p90`` (ms per forward call), ``throughput_img_s``
            (images/s), ``memory_mib`` (MiB = 2**20 bytes), ``memory_kind`` (str, what memory was
            measured), ``pixel_accuracy``, ``mean_accuracy``, ``miou`` (fractions in [0, 1]),
            ``iou`` (class name -> fraction or None), ``num_images`` (int), ``error`` (str; the
            model failed but is still reported). Extra keys are kept in results.json.
        class_names: Class names, index i = class i; None to use the rows' ``iou`` keys (and
            ``class i`` in the legend).
        palette: RGB colours, index i = class i; None (or too short) -> a deterministic
            generated palette.
        grid: Examples for grid.png, each ``{"name": str, "image": uint8 (H, W, 3),
            "target": int (H, W) or None, "preds": {model: int (H, W)}}``. None or empty -> no
            grid.png. Target values 255 or ``>= len(class_names)`` are "ignore", drawn black.
        env: Environment (torch version, CPU, threads, device, date, ...), shown as a table.
        settings: Run settings (input size, batch, device, data path, split, number of images),
            shown as a table; ``device``, ``input_size``, ``batch`` and ``split`` are also quoted
            in figures and notes when present.
        skipped: ``{"file": str, "reason": str}`` for each input skipped as bad.
        title: Title of report.md / report.html.
        masks: Every evaluated image's saved masks (``OUT/browser``, rows numbered as ``rows``): adds
            ``images`` to results.json (per-image mIoU by row label, pixel disagreement), the per-image
            table, and with ``interactive`` the image browser.
        interactive: Make report.html interactive (one inline script, still no external resource): sortable
            tables, the Pareto plot as SVG with tooltips and backend toggles, the image browser.
        embed_limit_mb: Most MB of pictures the browser embeds (None: :data:`segbench.report.browser.EMBED_LIMIT_MB`);
            past it report.html loads them from ``OUT/browser``.
        analysis: What compares the rows (:func:`segbench.compare.analyse`): ``comparisons`` (every pair's
            paired interval), ``statements``, ``robustness``; its keys go to the top level of results.json,
            and the report gets sections on uncertainty, boundaries, calibration and robustness.
        partial: The run stopped before it finished: ``message`` (one sentence) opens report.md and
            report.html as a banner, and results.json gets ``"partial": true`` and the other keys.

    Returns:
        Name -> path of each file written: ``results_json``, ``results_csv``, ``report_md``,
        ``report_html``, ``skipped_txt`` when inputs were skipped (:data:`segbench.files.SKIPPED_FILE`), and ``pareto_png``, ``roofline_svg``, ``bars_png``, ``grid_png`` when drawn.

    Raises:
        OSError: If the folder cannot be created or written.
        ValueError: If a grid example's arrays have an impossible shape.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    env, settings = env or {}, settings or {}
    names_given = [str(c) for c in class_names] if class_names else None
    rows_n = [normalise_row(r, names_given) for r in rows]
    skipped_n = [{**s, "file": str(s.get("file", "")), "reason": str(s.get("reason", ""))} for s in (skipped or [])]
    classes = class_list(names_given, rows_n)
    has_acc = any(num(r[k]) is not None for r in rows_n for k in ACC_KEYS)
    _label_rows(rows_n)
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    analysis = analysis or {}
    figures, front = _draw_figures(rows_n, classes, names_given is not None, palette, grid, settings)
    figures.update(analysis_figures(rows_n, analysis))
    written = _write_figures(out, figures)
    entries = _browser.image_entries(masks, rows_n) if masks is not None else None

    results = {
        "title": title, "generated": generated, "settings": settings, "env": env, "class_names": classes,
        "accuracy_measured": has_acc, "pareto_front": front, "rows": rows_n, "skipped": skipped_n,
        "comparisons": [], **analysis,
    }  # fmt: skip
    if partial:
        results.update({k: v for k, v in partial.items() if k != "message"}, partial=True)
    if entries is not None:
        results["images"] = entries
    written["results_json"] = write_bytes_atomic(out / FILE_NAMES["results_json"], results_json(results))
    written["results_csv"] = write_bytes_atomic(out / FILE_NAMES["results_csv"], results_csv(rows_n, classes))
    if skipped_n:
        written["skipped_txt"] = write_skipped(out, skipped_n)

    shown = {k: (FILE_NAMES[k] if data is not None else None, note) for k, (data, note) in figures.items()}
    colours = model_colours([r["_label"] for r in rows_n])
    browser = None
    if entries is not None:
        browser = _browser.browser_blocks(masks, rows_n, classes, entries, _limit(embed_limit_mb), interactive)
    blocks = build_blocks(title=title, rows=rows_n, classes=classes, has_acc=has_acc, env=env, settings=settings,
                          skipped=skipped_n, figures=shown, front=front, generated=generated,
                          pareto_html=pareto_svg(rows_n, colours) if interactive else None, browser=browser,
                          comparisons=results.get("comparisons"),
                          roofline_html=roofline_svg(rows_n, colours))  # fmt: skip
    blocks = _with_analysis(blocks, analysis_blocks(rows_n, analysis, {k: v[0] for k, v in shown.items()}))
    if partial:
        blocks.insert(1, ("p", f"**Partial report.** {partial.get('message', 'The run stopped before it finished.')}"))
    written["report_md"] = write_bytes_atomic(out / FILE_NAMES["report_md"], render_md(blocks).encode("utf-8"))
    images = {FILE_NAMES[k]: data for k, (data, _) in figures.items() if data is not None}
    page = render_html(blocks, title, images, interactive)
    written["report_html"] = write_bytes_atomic(out / FILE_NAMES["report_html"], page.encode("utf-8"))
    return written
