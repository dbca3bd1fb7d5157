"""The report's sections on uncertainty, boundaries, calibration and robustness, as blocks and figures.

Inputs are the normalised rows (keys of :mod:`segbench.metrics.summary`:
``miou_interval``, ``per_image_miou_mean``, ``gains``, ``boundary``, ``trimap``, ``calibration``,
``variants``) and the comparison's ``analysis`` (``statements``, ``comparisons``, ``robustness``, ``scores``,
``bootstrap``). A section whose scores were not measured says which option turns them on.
"""

from __future__ import annotations

from segbench.report.figures import corruption_png, reliability_png, trimap_png
from segbench.report.render import Table
from segbench.report.values import DASH, fmt_interval, fmt_pct, num

__all__ = ["FIGURE_FILES", "analysis_blocks", "analysis_figures"]

FIGURE_FILES = {"trimap_png": "trimap.png", "reliability_png": "reliability.png", "corruptions_png": "corruptions.png"}
BAND_WIDTHS = (1, 2, 5, 10, 20, 40)


def _ci(value, pair) -> str:
    """``"72.31 [70.02, 74.40]"`` in percent, or the value alone without an interval."""
    if num(value) is None:
        return DASH
    if not pair or num(pair[0]) is None or num(pair[1]) is None:
        return fmt_pct(value)
    return f"{fmt_pct(value)} [{fmt_pct(pair[0])}, {fmt_pct(pair[1])}]"


def _trimap_series(rows: list[dict]) -> list[tuple[str, dict]]:
    series = []
    for r in rows:
        steps = [v for v in r.get("variants") or [] if v.get("trimap")]
        if len(steps) > 1:
            series += [(f"{r['_label']} ({v['name']})", v["trimap"]) for v in steps]
        elif r.get("trimap"):
            series.append((r["_label"], r["trimap"]))
    return series


def _calibration_series(rows: list[dict]) -> list[tuple[str, dict, float | None]]:
    return [(r["_label"], r["calibration"]["reliability"], num(r["calibration"].get("ece")))
            for r in rows if r.get("calibration")]  # fmt: skip


def analysis_figures(rows: list[dict], analysis: dict) -> dict[str, tuple[bytes | None, str]]:
    """Figure key of :data:`FIGURE_FILES` -> (PNG bytes or None, note)."""
    trimap, calibration = _trimap_series(rows), _calibration_series(rows)
    robustness = analysis.get("robustness")
    return {
        "trimap_png": (trimap_png(trimap) if trimap else None, ""),
        "reliability_png": (reliability_png(calibration) if calibration else None, ""),
        "corruptions_png": (corruption_png(robustness) if robustness and robustness.get("models") else None, ""),
    }


def _uncertainty(rows: list[dict], analysis: dict) -> list[tuple]:
    """Section "Uncertainty and rankings": the statements, intervals, per-image mIoU and step gains."""
    with_ci = [r for r in rows if r.get("miou_interval")]
    if not with_ci:
        return [("h", 2, "Uncertainty and rankings"),
                ("p", "No intervals: accuracy not measured, or `--bootstrap 0` was given.")]  # fmt: skip
    blocks: list[tuple] = [("h", 2, "Uncertainty and rankings")]
    if analysis.get("statements"):
        blocks.append(("ul", list(analysis["statements"])))
    t_rows = []
    for r in with_ci:
        q = r.get("per_image_miou_quantiles") or {}
        t_rows.append([r["_label"], _ci(r["miou"], r["miou_interval"]),
                       _ci(r["pixel_accuracy"], r.get("pixel_accuracy_interval")),
                       _ci(r.get("per_image_miou_mean"), r.get("per_image_miou_interval")),
                       f"{fmt_pct(q.get('median'))} [{fmt_pct(q.get('q25'))}, {fmt_pct(q.get('q75'))}]"])
    headers = ["Model", "mIoU (%) [95% CI]", "Pixel acc (%) [95% CI]", "Per-image mIoU mean (%) [95% CI]",
               "Per-image mIoU median [quartiles]"]  # fmt: skip
    blocks.append(("table", Table(headers, t_rows, ["l", "r", "r", "r", "r"])))
    b = with_ci[0].get("bootstrap") or {}
    blocks.append(("p", (
        f"Intervals: 95% percentile bootstrap over the {b.get('num_images', '?')} images (B = "
        f"{b.get('num_resamples', '?')} resamples with replacement, seed {b.get('seed', '?')}; each resample's "
        "metrics recomputed from its summed confusion matrices). **mIoU** is dataset-level: the confusion matrices "
        "of all images are summed, IoU is computed per class and averaged over classes. **Per-image mIoU** is "
        "each image's own mIoU (from its own matrix, classes absent from that image left out), averaged over "
        "images: every image weighs the same, so the two differ. A ranking statement is significant when the "
        "paired interval of the difference (both models on the same resamples) excludes 0; pairs are not "
        "corrected for multiple comparisons. Every pair is in `results.json` (`comparisons`) and the per-image "
        "matrices in `confusions.npz`.")))
    if isinstance(b.get("num_images"), int) and b["num_images"] < 10:
        blocks.append(("p", f"**Caution**: with {b['num_images']} images a bootstrap over images has few distinct "
                            "resamples and its intervals are too narrow; use more images before trusting a ranking."))
    gains = [f"{r['_label']}: {g['statement']}" for r in rows for g in r.get("gains") or []]
    if gains:
        blocks += [("p", "Gains of the inference steps, paired over the same images (95% intervals):"), ("ul", gains)]
        blocks += _band_gains(rows)
    return blocks


def _band_gains(rows: list[dict]) -> list[tuple]:
    """Table of a step's mIoU gain inside trimap bands, where measured."""
    t_rows = []
    for r in rows:
        for g in r.get("gains") or []:
            for band in g.get("bands") or []:
                lo, hi = band["interval"]
                t_rows.append([r["_label"], g["label"], str(band["width_px"]),
                               f"{100 * band['difference']:+.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"])
    if not t_rows:
        return []
    return [("table", Table(["Model", "Step", "Band (px)", "Δ mIoU in band (points) [95% CI]"], t_rows,
                            ["l", "l", "r", "r"]))]  # fmt: skip


def _boundaries(rows: list[dict], figures: dict) -> list[tuple]:
    """Section "Boundaries": Boundary IoU per model, trimap scores per band width."""
    blocks: list[tuple] = [("h", 2, "Boundaries")]
    with_b = [r for r in rows if r.get("boundary")]
    if with_b:
        ratio = with_b[0]["boundary"].get("dilation_ratio")
        cells = [[r["_label"], fmt_pct(r["boundary"].get("boundary_miou")),
                  fmt_interval(r["boundary"].get("boundary_miou_interval")), fmt_pct(r["miou"])] for r in with_b]
        blocks += [("table", Table(["Model", "Boundary mIoU (%)", "95% CI", "mIoU (%)"], cells, ["l", "r", "r", "r"])),
                   ("p", f"Boundary IoU (Cheng et al., arXiv 2103.16562): IoU of the pixels within d of each "
                         f"class's contour in labels and prediction, d = {ratio} x the image diagonal; summed "
                         "over images, averaged over classes.")]  # fmt: skip
    series = _trimap_series(rows)
    if series:
        shown = [w for w in BAND_WIDTHS if w <= len(series[0][1]["width_px"])]
        cells = [[label] + [fmt_pct(t["miou"][w - 1]) for w in shown] for label, t in series]
        blocks.append(("table", Table(["Model"] + [f"{w} px" for w in shown], cells, ["l"] + ["r"] * len(shown))))
        blocks.append(("p", "Trimap mIoU (%) inside bands of that width around the labels' class boundaries "
                            "(Chen et al., arXiv 1412.7062); every width 1..40 px in `results.json`."))
        if figures.get("trimap_png"):
            blocks.append(("img", "trimap mIoU and pixel accuracy against band width", figures["trimap_png"]))
    if not with_b and not series:
        blocks.append(("p", "Not measured: run with `--boundary` (Boundary IoU) and/or `--trimap` (accuracy in "
                            "bands around boundaries; with `--crf` it shows where the CRF gains)."))
    return blocks


def _calibration(rows: list[dict], figures: dict) -> list[tuple]:
    """Section "Calibration": ECE and MCE per row (backends included), the reliability diagram."""
    with_c = [r for r in rows if r.get("calibration")]
    if not with_c:
        return [("h", 2, "Calibration"), ("p", "Not measured: run with `--ece` (expected calibration error and a "
                                               "reliability diagram, per backend).")]  # fmt: skip
    cells = [[r["_label"], fmt_pct(r["calibration"].get("ece")), fmt_pct(r["calibration"].get("mce"))] for r in with_c]
    blocks = [("h", 2, "Calibration"), ("table", Table(["Model", "ECE (%)", "MCE (%)"], cells, ["l", "r", "r"])),
              ("p", "ECE: expected calibration error of the max-softmax confidence over labelled pixels, 15 "
                    "equal-width bins (Guo et al., arXiv 1706.04599): the pixel-weighted mean |accuracy - "
                    "confidence| of the bins; MCE: the largest bin gap. 0 = a pixel predicted with confidence p "
                    "is right with probability p.")]  # fmt: skip
    if figures.get("reliability_png"):
        blocks.append(("img", "reliability diagram", figures["reliability_png"]))
    return blocks


def _robustness(analysis: dict, figures: dict) -> list[tuple]:
    """Section "Robustness to corruptions": mean mIoU over severities and relative to clean, heat maps."""
    table = analysis.get("robustness")
    if not table or not table.get("models"):
        return [("h", 2, "Robustness to corruptions"),
                ("p", "Not measured: run with `--corruptions all` (or noise, blur, weather, digital) and "
                      "`--severities 1-5`; needs `pip install 'segbench[robustness]'`.")]  # fmt: skip
    names = list(table["models"])
    cells = [[c] + [f"{fmt_pct(table['models'][n]['mean'][c])} ({fmt_pct(table['models'][n]['relative'][c])})"
                    for n in names] for c in table["corruptions"]]  # fmt: skip
    t = table["models"]
    cells.append(["**mean**"] + [f"{_ci(t[n]['mean_miou'], t[n].get('mean_miou_interval'))} "
                                 f"({_ci(t[n]['relative_miou'], t[n].get('relative_miou_interval'))})" for n in names])  # fmt: skip
    cells.append(["clean"] + [_ci(t[n]["clean_miou"], t[n].get("clean_miou_interval")) for n in names])
    intervals = (f" On the **mean** and **clean** rows, 95% bootstrap intervals over the {table['num_images']} images "
                 f"(B = {table['bootstrap']}; the relative figure's resamples are the clean one's)."
                 if table.get("bootstrap") else "")  # fmt: skip
    blocks = [("h", 2, "Robustness to corruptions"), ("table", Table(["Corruption"] + names, cells, ["l"] + ["r"] * len(names))),
              ("p", f"mIoU (%) averaged over severities {', '.join(map(str, table['severities']))}, and in brackets "
                    f"relative to the clean mIoU of the same {table['num_images']} images (%), as Kamann and Rother "
                    "(arXiv 1908.04047). Corruptions of ImageNet-C (Hendrycks and Dietterich, arXiv 1903.12261) "
                    f"through `imagecorruptions`, each generated once per (image, corruption, severity) from seed "
                    f"{table['seed']} and shared by all models; whole-image inference, each model as loaded (eager "
                    "PyTorch for segbench's own)." + intervals)]  # fmt: skip
    pairs = table.get("comparisons") or []
    if pairs:
        rows = [[f"{p['a']} vs {p['b']}", _difference(p["mean_miou_difference"], p["significant"]),
                 _difference(p["relative_difference"], p["relative_significant"])] for p in pairs]  # fmt: skip
        blocks += [("table", Table(["Pair", "Corrupted mIoU difference (points) [95% CI]",
                                    "Relative-to-clean difference (points) [95% CI]"], rows, ["l", "r", "r"])),
                   ("p", "Paired intervals: both models of a pair scored on the same resamples of the same images; "
                         "**bold**: the interval excludes 0. Not corrected for multiple comparisons.")]  # fmt: skip
    if figures.get("corruptions_png"):
        blocks.append(("img", "mIoU by corruption and severity, per model", figures["corruptions_png"]))
    return blocks


def _difference(d: dict, significant: bool) -> str:
    """``"+5.1 [4.0, 6.2]"`` in points, bold when significant."""
    if num(d.get("estimate")) is None:
        return DASH
    text = f"{100 * d['estimate']:+.1f} [{100 * d['low']:.1f}, {100 * d['high']:.1f}]"
    return f"**{text}**" if significant else text


def analysis_blocks(rows: list[dict], analysis: dict, figures: dict[str, str | None]) -> list[tuple]:
    """The four sections as blocks; ``figures`` maps figure keys to file names (None when not drawn)."""
    if not any(num(r.get("miou")) is not None for r in rows):
        return []
    return [*_uncertainty(rows, analysis), *_boundaries(rows, figures), *_calibration(rows, figures),
            *_robustness(analysis, figures)]  # fmt: skip
