"""The report's image browser and per-image table, drawn from the masks :class:`MaskStore` saved.

``results.json`` gets ``images``: one entry per evaluated image, ``{"name", "file", "miou": {row label:
per-image mIoU or None}, "disagreement"}`` (disagreement: the fraction of labelled pixels on which the models'
masks do not all agree). report.html gets the browser: the data as inline JSON, each image's input, ground
truth and masks as data URIs, one ``<script type="application/json">`` per image so that the page decodes
only the image shown, when their total stays under :data:`EMBED_LIMIT_MB`; past it, each image's record is
a small script in ``browser/js/`` next to the full-size PNGs, loaded when the image is opened (thumbnails
stay inline). report.md gets the ten images with the lowest mean per-image mIoU.
"""

from __future__ import annotations

import base64
import json

from segbench.files import write_bytes_atomic
from segbench.report.masks import MaskStore, StoredImage, pixel_disagreement
from segbench.report.render import Table
from segbench.report.values import DASH, fmt_pct, jsonable, num

EMBED_LIMIT_MB = 40.0
"""MB (10**6 bytes) of images and masks report.html embeds; past it they are loaded from ``browser/``."""
MD_WORST = 10  # images listed in report.md


def _uri(path, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def image_entries(store: MaskStore, rows: list[dict]) -> list[dict]:
    """``results.json``'s ``images``: per evaluated image its name, file stem, per-image mIoU of each row
    (by row label) and the models' pixel disagreement."""
    out = []
    for img in store.images.values():
        with_masks = [i for i in range(len(rows)) if i in img.rows]
        out.append({
            "name": img.name, "file": img.stem, "width": img.width, "height": img.height,
            "miou": {rows[i]["_label"]: img.miou.get(i) for i in with_masks},
            "disagreement": pixel_disagreement(store, img, with_masks),
        })  # fmt: skip
    return out


def _record(store: MaskStore, img: StoredImage, embed: bool) -> dict:
    """One image's input, truth and masks: data URIs, or (linked) paths relative to report.html."""
    def ref(path, mime):
        return _uri(path, mime) if embed else f"{store.folder.name}/{path.relative_to(store.folder).as_posix()}"

    rec = {"image": ref(store.folder / "images" / f"{img.stem}.jpg", "image/jpeg"), "masks": {}}
    if img.has_truth:
        rec["truth"] = ref(store.mask_path(None, img.stem), "image/png")
    rec["confidence"] = {}
    for r in img.rows:
        rec["masks"][str(r)] = ref(store.mask_path(r, img.stem), "image/png")
        conf = store.confidence_path(r, img.stem)
        if conf is not None:
            rec["confidence"][str(r)] = ref(conf, "image/png")
    return rec


def _embedded_size(store: MaskStore) -> int:
    """Bytes of every image and mask file the browser would embed."""
    return sum(p.stat().st_size for sub in store.folder.iterdir() if sub.is_dir() and sub.name != "thumbs"
               for p in sub.iterdir() if p.is_file())  # fmt: skip


def _json_script(ident: str, payload) -> str:
    text = json.dumps(jsonable(payload), ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    return f'<script type="application/json" id="{ident}">{text}</script>'


def _write_linked(store: MaskStore, records: list[tuple[StoredImage, dict]]) -> None:
    """``browser/js/STEM.js``: each image's record with its pictures as data URIs (a script a page opened from
    disk may load, where reading the pixels of a loose PNG is refused)."""
    folder = store.folder / "js"
    folder.mkdir(exist_ok=True)
    for img, _ in records:
        rec = _record(store, img, embed=True)
        text = json.dumps(rec, separators=(",", ":")).replace("</", "<\\/")
        write_bytes_atomic(folder / f"{img.stem}.js", f"window.sbChunk({json.dumps(img.stem)},{text});\n".encode())


def browser_html(store: MaskStore, rows: list[dict], classes: list[str], entries: list[dict],
                 limit_mb: float = EMBED_LIMIT_MB) -> tuple[str, str]:  # fmt: skip
    """The browser's HTML (its data as inline JSON) and a note on where its pictures are."""
    size = _embedded_size(store)
    embed = size <= limit_mb * 1e6
    images = list(store.images.values())
    models = [{"row": i, "label": r["_label"]} for i, r in enumerate(rows) if any(i in img.rows for img in images)]
    data = {
        "classes": classes, "palette": store.palette, "ncolours": min(store.num_classes, 255), "ignore": 255,
        "embedded": embed, "folder": store.folder.name, "models": models,
        "images": [{"name": img.name, "stem": img.stem, "w": img.width, "h": img.height, "truth": img.has_truth,
                    "rows": img.rows, "miou": {str(k): v for k, v in img.miou.items()},
                    "disagreement": e["disagreement"],
                    "thumb": _uri(store.folder / "thumbs" / f"{img.stem}.jpg", "image/jpeg")}
                   for img, e in zip(images, entries)],
    }  # fmt: skip
    parts = ['<section id="sb-browser" class="browser" aria-label="image browser"></section>',
             _json_script("sb-data", data)]
    if embed:
        parts += [_json_script(f"sb-img-{k}", _record(store, img, True)) for k, img in enumerate(images)]
        note = f"Pictures embedded in this page ({size / 1e6:.1f} MB, limit {limit_mb:g} MB)."
    else:
        _write_linked(store, [(img, {}) for img in images])
        note = (f"Pictures ({size / 1e6:.1f} MB, over the {limit_mb:g} MB embedding limit) are loaded from "
                f"`{store.folder.name}/` next to this page; keep the folder with it.")
    return "\n".join(parts), note


def per_image_table(entries: list[dict], labels: list[str], links: bool, worst: int | None = None) -> Table:
    """Per-image mIoU (%) of each model, the spread (best - worst model, points) and the pixel disagreement
    (%), one row per image; ``worst``: only that many images, lowest mean mIoU first."""
    chosen = entries
    if worst is not None:
        def mean(e):
            vals = [num(e["miou"].get(m)) for m in labels]
            vals = [v for v in vals if v is not None]
            return sum(vals) / len(vals) if vals else float("inf")
        chosen = sorted(entries, key=mean)[:worst]
    t_rows, link_cells = [], {}
    for r, e in enumerate(chosen):
        vals = [num(e["miou"].get(m)) for m in labels]
        fin = [v for v in vals if v is not None]
        spread = f"{(max(fin) - min(fin)) * 100:.1f}" if len(fin) >= 2 else DASH
        t_rows.append([e["name"]] + [fmt_pct(v) for v in vals] + [spread, fmt_pct(e.get("disagreement"))])
        if links:
            link_cells[(r, 0)] = f"#image={e['file']}"
    headers = ["Image"] + [f"{m} mIoU (%)" for m in labels] + ["Spread (points)", "Disagreement (%)"]
    return Table(headers, t_rows, ["l"] + ["r"] * (len(labels) + 2), links=link_cells,
                 id="sb-per-image" if links else None)


def browser_blocks(store: MaskStore, rows: list[dict], classes: list[str], entries: list[dict],
                   limit_mb: float = EMBED_LIMIT_MB, interactive: bool = True) -> list[tuple]:  # fmt: skip
    """Sections "Image browser" (interactive HTML; a pointer to the folder otherwise) and "Per-image mIoU"."""
    labels = [r["_label"] for i, r in enumerate(rows) if any(i in img.rows for img in store.images.values())]
    scored = [m for m in labels if any(num(e["miou"].get(m)) is not None for e in entries)]
    help_text = ("Keys: **← →** previous / next image, **space** or **1**–**9** flip the model, **e** error view, "
                 "**0** reset zoom. Wheel or +/− zooms, drag pans (all panels together); hover a pixel for its "
                 "true class and each model's (with its confidence). Error view: wrong pixels red, ignored pixels grey. ")
    where = ("p", f"{len(entries)} image(s): each input, ground truth and every model's mask are in `browser/` "
                  "(masks as palette PNGs, `m<row>/` per result row); report.html browses them.")
    blocks: list[tuple] = [("h", 2, "Image browser"), where]
    if interactive:
        page, note = browser_html(store, rows, classes, entries, limit_mb)
        blocks[1] = ("alt", [("raw", page), ("p", help_text + note)], [where])
    if not scored:
        return blocks
    what = ("Per-image mIoU: each image's own IoUs averaged over the classes in its labels or its prediction "
            "(a class a model misses costs that image a whole class), in percent. Spread: best minus worst model "
            "on the image, in points. Disagreement: labelled pixels on which the models' masks differ, in percent.")
    blocks += [
        ("h", 2, "Per-image mIoU"),
        ("alt", [("table", per_image_table(entries, scored, True)),
                 ("p", what + " Click a column to sort, an image to open it in the browser.")],
         [("table", per_image_table(entries, scored, False, MD_WORST if interactive else None)),
          ("p", f"The {min(MD_WORST, len(entries))} images with the lowest mean per-image mIoU. " + what
           + " Every image: `images` in results.json.")]),
    ]  # fmt: skip
    return blocks

