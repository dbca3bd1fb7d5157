"""Markdown tables of a corruption sweep, from the results.json of a `segbench compare --corruptions` report.

    python benchmarks/corruption_table.py REPORT_DIR/results.json

Prints three tables, mIoU in %: per corruption (mean over the severities), per severity (mean over the
corruptions) and per group of ImageNet-C (noise, blur, weather, digital: mean over its corruptions and the
severities), each with the clean mIoU of the same images and the mean relative to it; with the sweep's
bootstrap intervals (over its images) on those rows, and every pair's paired differences when it has them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from segbench.engine.robustness import GROUPS


def _pct(v) -> str:
    return "-" if v is None or np.isnan(v) else f"{v * 100:.1f}"


def _row(label: str, values) -> str:
    return f"| {label} | " + " | ".join(_pct(v) for v in values) + " |"


def _ci_row(label: str, pairs) -> str:
    """A row of values with their 95% intervals where the sweep has them: ``27.7 [26.1, 29.0]``."""
    cells = [_pct(v) + ("" if not iv else f" [{_pct(iv[0])}, {_pct(iv[1])}]") for v, iv in pairs]
    return f"| {label} | " + " | ".join(cells) + " |"


def tables(table: dict) -> str:
    """The three tables of one sweep (``results.json``'s ``robustness``)."""
    names, corr, sev = list(table["models"]), table["corruptions"], table["severities"]
    per = {n: np.array([table["models"][n]["miou"][c] for c in corr]) for n in names}  # (corruptions, severities)
    head = lambda first: [f"| {first} | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]  # noqa: E731
    t = table["models"]
    clean = _ci_row("clean (same images)", [(t[n]["clean_miou"], t[n].get("clean_miou_interval")) for n in names])
    mean = _ci_row("**mean**", [(t[n]["mean_miou"], t[n].get("mean_miou_interval")) for n in names])
    rel = _ci_row("mean / clean", [(t[n]["relative_miou"], t[n].get("relative_miou_interval")) for n in names])
    out = head("corruption (mean over severities " + ",".join(map(str, sev)) + ")")
    out += [_row(c, [per[n][j].mean() for n in names]) for j, c in enumerate(corr)] + [mean, rel, clean]
    out += [""] + head("severity (mean over the corruptions)")
    out += [_row(str(s), [per[n][:, k].mean() for n in names]) for k, s in enumerate(sev)] + [clean]
    groups = [(g, [corr.index(c) for c in members if c in corr]) for g, members in GROUPS.items()]
    out += [""] + head("group (mean over its corruptions and severities)")
    out += [_row(g, [per[n][idx].mean() for n in names]) for g, idx in groups if idx] + [clean]
    if table.get("comparisons"):
        out += ["", "| pair (paired 95% CI; bold: excludes 0) | corrupted mIoU difference (points) | "
                "relative-to-clean difference (points) |", "| --- | ---: | ---: |"]
        out += [f"| {p['a']} vs {p['b']} | {_points(p['mean_miou_difference'], p['significant'])} | "
                f"{_points(p['relative_difference'], p['relative_significant'])} |" for p in table["comparisons"]]
    return "\n".join(out)


def _points(d: dict, significant: bool) -> str:
    text = f"{d['estimate'] * 100:+.1f} [{d['low'] * 100:.1f}, {d['high'] * 100:.1f}]"
    return f"**{text}**" if significant else text


def main(path: Path) -> None:
    results = json.loads(path.read_text())
    table = results.get("robustness")
    if not table or not table.get("models"):
        sys.exit(f"{path}: no corruption sweep in it (run segbench compare with --corruptions)")
    print(f"{table['num_images']} images (dataset indices {table['image_indices']}), seed {table['seed']}\n")
    print(tables(table))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python benchmarks/corruption_table.py REPORT_DIR/results.json")
    main(Path(sys.argv[1]))
