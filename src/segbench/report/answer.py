"""The report's opening paragraph: which model to use, from the result rows and the paired comparisons.

It names the most accurate row (highest mIoU), the fastest (lowest median latency of the row's backend), the
smallest (weights size in MB) and the best trade-off: the fastest row not distinguishable from the most accurate
one. Two rows are *not distinguishable* when the paired 95% interval of their mIoU difference (both scored on
the same bootstrap resamples of the same images, ``comparisons``) includes 0; a pair without a paired interval
falls back to "their 95% mIoU intervals overlap", and the paragraph says which rule it used. With
``--backend best``, each model is represented by the backend chosen for it, and the paragraph names it.
"""

from __future__ import annotations

from segbench.report.render import inline_html
from segbench.report.values import fmt, fmt_pct, num

__all__ = ["answer_blocks", "candidates", "indistinguishable"]


def candidates(rows: list[dict]) -> list[dict]:
    """Rows that answer for their model: without an error; with ``--backend best`` (rows holding ``best``)
    only each model's chosen row."""
    ok = [r for r in rows if not r["error"]]
    chosen_models = {r["model"] for r in ok if r.get("best")}
    return [r for r in ok if r["model"] not in chosen_models or r.get("best")]


def _pair_key(r: dict) -> set[str]:
    return {str(r.get(k)) for k in ("_label", "_name") if r.get(k)}


def indistinguishable(a: dict, b: dict, comparisons: list[dict] | None) -> tuple[bool | None, str]:
    """Whether rows ``a`` and ``b`` are not distinguishable in mIoU, and the rule used: ``"paired"`` (the paired
    difference interval includes 0), ``"overlap"`` (their mIoU intervals overlap) or ``"none"`` (no interval:
    None)."""
    ka, kb = _pair_key(a), _pair_key(b)
    for c in comparisons or []:
        if not isinstance(c, dict) or c.get("significant") is None:
            continue
        if (str(c.get("a")) in ka and str(c.get("b")) in kb) or (str(c.get("a")) in kb and str(c.get("b")) in ka):
            return (not c["significant"]), "paired"
    ia, ib = a.get("miou_interval"), b.get("miou_interval")
    if ia and ib and None not in (num(ia[0]), num(ia[1]), num(ib[0]), num(ib[1])):
        return (num(ia[0]) <= num(ib[1]) and num(ib[0]) <= num(ia[1])), "overlap"
    return None, "none"


def _miou(r: dict) -> str:
    iv = r.get("miou_interval")
    if iv and num(iv[0]) is not None and num(iv[1]) is not None:
        return f"mIoU {fmt_pct(r['miou'])}% [{fmt_pct(iv[0])}, {fmt_pct(iv[1])}]"
    return f"mIoU {fmt_pct(r['miou'])}%"


def _latency(r: dict) -> str:
    lo, hi = num(r.get("latency_ms_ci_low")), num(r.get("latency_ms_ci_high"))
    text = f"{fmt(r['latency_ms_p50'])} ms"
    return text + (f" [{fmt(lo)}, {fmt(hi)}]" if lo is not None and hi is not None else "")


def _name(r: dict) -> str:
    return f"**{r['_label']}**"


def _sentences(rows: list[dict], comparisons: list[dict] | None, settings: dict, has_acc: bool) -> list[str]:
    rows = candidates(rows)
    if not rows:
        return ["No model ran, so there is no answer: see Errors below."]
    timed = [r for r in rows if num(r["latency_ms_p50"]) is not None]
    sized = [r for r in rows if num(r["size_mb"]) is not None]
    scored = [r for r in rows if num(r["miou"]) is not None] if has_acc else []
    n = settings.get("images", settings.get("num_images", rows[0].get("num_images")))
    where = f"on these {n} images" if isinstance(n, int) and not isinstance(n, bool) else "on these images"
    if settings.get("device"):
        where += f", on `{settings['device']}`"
    parts, out = [], []
    top = max(scored, key=lambda r: num(r["miou"])) if scored else None
    fast = min(timed, key=lambda r: num(r["latency_ms_p50"])) if timed else None
    if top:
        parts.append(f"most accurate {_name(top)}, {_miou(top)}")
    if fast:
        parts.append(f"fastest {_name(fast)}, {_latency(fast)} median latency per call")
    if sized:
        small = min(sized, key=lambda r: num(r["size_mb"]))
        parts.append(f"smallest {_name(small)}, {fmt(small['size_mb'])} MB of weights")
    if top:
        close = [r for r in scored if r is top or indistinguishable(top, r, comparisons)[0]]
        close_timed = [r for r in close if num(r["latency_ms_p50"]) is not None]
        if close_timed and len(scored) > 1:
            trade = min(close_timed, key=lambda r: num(r["latency_ms_p50"]))
            if trade is top:
                parts.append(f"best trade-off {_name(top)} itself (no faster model is indistinguishable from it in mIoU)")
            elif trade is fast:
                parts.append(f"best trade-off {_name(trade)} too: the fastest model is not distinguishable from "
                             f"{_name(top)} ({_miou(trade)})")
            else:
                parts.append(f"best trade-off {_name(trade)}, {_latency(trade)} and {_miou(trade)}: the fastest "
                             f"model not distinguishable from {_name(top)}")
    if not parts:
        return ["Nothing was measured that ranks the models: see Results below."]
    head = "**Which model to use** " + where + ": " + "; ".join(parts) + "."
    if not has_acc:
        head += " Accuracy was not measured (no labels), so only speed and size rank them."
    out.append(head)
    if top and len(scored) > 1:
        out.append(_ties(scored, comparisons))
    if settings.get("warning") and timed:
        out.append("**Caution**: the CPU was busy while timing (see Settings), so the latencies are not those of an "
                   "idle machine.")
    chosen = [r for r in rows if r.get("best") and isinstance(r.get("best_choice"), dict)]
    if chosen:
        out.append("`--backend best` chose " + ", ".join(
            f"`{r['best_choice'].get('backend', r.get('backend'))}` for {r['model']}" for r in chosen) + ".")
    return out


def _ties(scored: list[dict], comparisons: list[dict] | None) -> str:
    """Which pairs are not distinguishable, and by which rule."""
    ties, used = [], set()
    for i, a in enumerate(scored):
        for b in scored[i + 1:]:
            same, rule = indistinguishable(a, b, comparisons)
            used.add(rule)
            if same:
                ties.append(f"{a['_label']} and {b['_label']}")
    if used == {"none"}:
        return "Without intervals (`--bootstrap 0`) no difference can be judged, so the trade-off is the most accurate model."
    rule = ("the paired 95% interval of their mIoU difference, both on the same resamples of the same images, "
            "includes 0") if used == {"paired"} else (
            "their 95% mIoU intervals overlap, as no paired comparison was available" if used <= {"overlap", "none"}
            else "the paired interval of their mIoU difference includes 0, or, without one, their mIoU intervals overlap")
    if not ties:
        return f"Every pair differs in mIoU on these images (a pair is not distinguishable when {rule})."
    return f"Not distinguishable on these images ({rule}): " + "; ".join(ties) + "."


def answer_blocks(rows: list[dict], comparisons: list[dict] | None, settings: dict, has_acc: bool) -> list[tuple]:
    """The answer as blocks: one paragraph (``id="sb-answer"`` in HTML), the same text in Markdown."""
    text = " ".join(_sentences(rows, comparisons, settings, has_acc))
    return [("alt", [("raw", f'<p id="sb-answer" class="answer">{inline_html(text)}</p>')], [("p", text)])]
