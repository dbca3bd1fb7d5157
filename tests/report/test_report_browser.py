"""The interactive report.html of ``segbench compare``, opened in a real headless Chromium.

A tiny compare run (two shipped CamVid models, three frames of the shipped sample, latency barely timed) builds
the report once; the browser tests then open it as a person would: no console error, no failed or outside
request, flip the model, change the opacity, sort the per-image table and open its worst image, zoom, hover,
and check at 1400 x 900 and 390 x 844 (a phone) that no table runs off the screen. They need Debian's
``chromium`` and ``chromium-driver`` and the ``selenium`` package (``pip install -e .[test]``; .ci/run installs
the browser) and are skipped, saying which is missing, without them. The tests without a browser check the
saved masks and per-image mIoU against the model itself.

Set ``SEGBENCH_SCREENSHOTS=DIR`` to keep the screenshots (docs/report-browser.png comes from here).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segbench.compare import compare
from segbench.data.datasets import open_dataset, sample_dir
from segbench.engine.evaluate import predict_logits, predict_mask
from segbench.models import load_model
from segbench.report.masks import image_miou

MODELS = ["fast_scnn.camvid", "lraspp_mobilenet_v3_large.camvid"]
N_IMAGES = 3
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def _report(out: Path) -> Path:
    compare(MODELS, sample_dir(), out, max_images=N_IMAGES, min_time_s=0.01, isolate=False, progress=False)
    return out


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    return _report(tmp_path_factory.mktemp("report"))


def test_masks_and_per_image_miou_saved_for_every_image(report_dir):
    data = json.loads((report_dir / "results.json").read_text())
    labels = [r["model"] for r in data["rows"]]
    assert [e["name"] for e in data["images"]] == [f"0016E5_0{n}" for n in (7959, 7985, 8011)]
    dataset = open_dataset(sample_dir(), "val")
    model = load_model(MODELS[0])
    model.model.eval()
    for k, entry in enumerate(data["images"]):
        item = dataset[k]
        for row, label in enumerate(labels):
            with Image.open(report_dir / "browser" / f"m{row}" / f"{entry['file']}.png") as png:
                assert png.mode == "P"
                saved = np.asarray(png)
            if row == 0:  # the saved mask is the model's own prediction, its confidence the largest probability
                info = model.info
                assert np.array_equal(saved, predict_mask(model.model, item["image"], info.preprocessing))
                logits = predict_logits(model.model, item["image"], info.preprocessing)
                best = torch.softmax(logits, 1)[0].max(0).values.numpy()
                with Image.open(report_dir / "browser" / "c0" / f"{entry['file']}.png") as png:
                    assert png.mode == "L"
                    conf = np.asarray(png) / 255.0
                assert np.abs(conf - best).max() <= 0.025 + 1 / 255  # rounded to 5% steps
                assert len(np.unique(np.asarray(png))) <= 21
            assert entry["miou"][label] == pytest.approx(image_miou(saved, item["mask"], 11))
        assert 0.0 <= entry["disagreement"] <= 1.0
    # the per-image mIoU is each image's own: the mean of its IoUs over the classes present in it
    iou = []
    with Image.open(report_dir / "browser" / "m0" / f"{data['images'][0]['file']}.png") as png:
        pred = np.asarray(png).astype(np.int64)
    target = dataset[0]["mask"]
    for c in range(11):
        union = ((pred == c) | (target == c)) & (target < 11)
        if union.any():
            iou.append((((pred == c) & (target == c)) & (target < 11)).sum() / union.sum())
    assert data["images"][0]["miou"][labels[0]] == pytest.approx(float(np.mean(iou)))


def test_markdown_keeps_the_tables_and_html_has_no_outside_reference(report_dir):
    md = (report_dir / "report.md").read_text()
    assert "## Per-image mIoU" in md and "0016E5_07959" in md and "<script" not in md
    page = (report_dir / "report.html").read_text()
    for outside in ("http://", "https://", "//cdn", "@import", "<link", "<iframe", "src=\"/"):
        assert outside not in page, outside
    assert page.count('type="application/json" id="sb-img-') == N_IMAGES  # every image embedded (under the limit)


# --- in a real browser ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip("no Chromium: install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e .[test])")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)  # a driver path: no Selenium Manager
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


def _viewport(driver, width: int, height: int) -> None:
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})  # fmt: skip


def _requests(driver) -> tuple[list[str], list[str]]:
    """URLs the page asked for and the failures (``Network.loadingFailed``) since the last call."""
    urls, failed = [], []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
        elif msg["method"] == "Network.loadingFailed":
            failed.append(f"{msg['params'].get('errorText')} {msg['params'].get('requestId')}")
    return urls, failed


def _open(driver, page: Path, width: int = 1400, height: int = 900, timeout: float = 30.0) -> float:
    """Open ``page``; seconds until the browser shows its first image. Fails on console errors and requests
    that failed or left the machine."""
    _viewport(driver, width, height)
    driver.get_log("browser"), driver.get_log("performance")
    t0 = time.perf_counter()
    driver.get(page.as_uri())
    while driver.execute_script("var b = document.getElementById('sb-browser'); return b && b.dataset.ready") != "1":
        assert time.perf_counter() - t0 < timeout, "the image browser did not show its first image"
        time.sleep(0.05)
    seconds = time.perf_counter() - t0
    _assert_clean(driver)
    return seconds


def _assert_clean(driver) -> None:
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert not errors, errors
    urls, failed = _requests(driver)
    assert not failed, failed
    outside = [u for u in urls if not u.startswith(("file:", "data:", "blob:"))]
    assert not outside, outside


def _state(driver, key: str) -> str:
    return driver.execute_script(f"return document.getElementById('sb-browser').dataset.{key}")


def _wait_ready(driver, image: str | None = None) -> None:
    """Wait until the browser shows an image, ``image`` if given. A link to ``#image=...`` switches the image
    on the ``hashchange`` event, which fires after the click has returned: until then the old image is still
    shown and ready, so a test that follows a link waits for the image it names."""
    t0 = time.perf_counter()
    while _state(driver, "ready") != "1" or (image is not None and _state(driver, "image") != image):
        assert time.perf_counter() - t0 < 20, (image, _state(driver, "image"))
        time.sleep(0.05)


def _pixel(driver, kind: str) -> list[int]:
    return driver.execute_script(
        "var c = document.querySelector('#sb-panels figure[data-kind=' + arguments[0] + '] canvas');"
        "return Array.from(c.getContext('2d').getImageData(c.width >> 1, c.height >> 1, 1, 1).data);", kind)


def _check_hover(text: str, report_dir: Path, labels: list[str]) -> None:
    """The hover line names the classes of the pixel it gives, read back from the saved masks."""
    from segbench.classes import CAMVID

    parts = dict(p.split(": ", 1) for p in text.split(" \u00b7 ")[1:])
    x, y = (int(v.split()[1]) for v in text.split(" \u00b7 ")[0].split(", "))
    stem = json.loads((report_dir / "results.json").read_text())["images"][0]["file"]
    names = list(CAMVID.names)

    def name_at(folder: str) -> str:
        with Image.open(report_dir / "browser" / folder / f"{stem}.png") as png:
            k = int(np.asarray(png)[y, x])
        return "ignore" if k == 255 else names[k]

    assert parts["truth"] == name_at("truth")
    for row, label in enumerate(labels):
        assert parts[label].split(" (")[0] == name_at(f"m{row}")
        with Image.open(report_dir / "browser" / f"c{row}" / f"{stem}.png") as png:
            conf = int(np.asarray(png)[y, x])
        assert f"({round(conf / 2.55)}%)" in parts[label]  # the model's confidence at that pixel


def _no_table_overflows(driver) -> None:
    width = driver.execute_script("return window.innerWidth")
    assert driver.execute_script("return document.documentElement.scrollWidth") <= width
    boxes = driver.execute_script(
        "return Array.from(document.querySelectorAll('.table-wrap, .panels, .plot')).map(function (e) {"
        "var r = e.getBoundingClientRect(); return [r.left, r.right]; });")
    assert boxes and all(left >= 0 and right <= width + 0.5 for left, right in boxes), (width, boxes)


def _screenshot(driver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    driver.save_screenshot(str(path))
    with Image.open(path) as img:
        assert img.size[0] > 300
    keep = os.environ.get("SEGBENCH_SCREENSHOTS")
    if keep:  # a small copy for the README: at most 1000 px wide, 128 colours
        Path(keep).mkdir(parents=True, exist_ok=True)
        with Image.open(path) as img:
            w = min(img.width, 1000)
            small = img.convert("RGB").resize((w, round(img.height * w / img.width)), Image.LANCZOS)
            small.quantize(colors=128, dither=Image.Dither.NONE).save(Path(keep) / name, optimize=True)
    return path


def test_browser_click_through(browser, report_dir, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    d = browser
    _open(d, report_dir / "report.html")
    labels = [r["model"] for r in json.loads((report_dir / "results.json").read_text())["rows"]]
    root = d.find_element(By.ID, "sb-browser")
    assert _state(d, "image") == "0016E5_07959" and _state(d, "model") == labels[0]
    kinds = [f.get_attribute("data-kind") for f in d.find_elements(By.CSS_SELECTOR, "#sb-panels figure")]
    assert kinds == ["image", "truth", "model"]
    assert "Pedestrian" in d.find_element(By.ID, "sb-legend").text  # the class legend beside the masks

    # flip the model with a key, and back with a click on its button
    before = _pixel(d, "model")
    d.find_element(By.CSS_SELECTOR, "#sb-panels figure[data-kind=model] figcaption").click()
    root.send_keys(" ")
    assert _state(d, "model") == labels[1]
    assert labels[1] in d.find_element(By.CSS_SELECTOR, "#sb-panels figure[data-kind=model] figcaption").text
    d.find_elements(By.CSS_SELECTOR, "#sb-models button")[0].click()
    assert _state(d, "model") == labels[0] and _pixel(d, "model") == before

    # opacity 0 shows the bare image in the mask panels; the error view paints wrong pixels red
    d.execute_script("var s = document.getElementById('sb-opacity'); s.value = 0;"
                     "s.dispatchEvent(new Event('input'));")  # fmt: skip
    assert _state(d, "opacity") == "0" and _pixel(d, "model") == _pixel(d, "image")
    d.execute_script("var s = document.getElementById('sb-opacity'); s.value = 100;"
                     "s.dispatchEvent(new Event('input'));")  # fmt: skip
    d.find_element(By.ID, "sb-errors").click()
    assert _state(d, "view") == "errors"
    reds = d.execute_script(
        "var c = document.querySelector('#sb-panels figure[data-kind=model] canvas'), p = c.getContext('2d')"
        ".getImageData(0, 0, c.width, c.height).data, n = 0; for (var i = 0; i < p.length; i += 4)"
        " if (p[i] === 230 && p[i + 1] === 20 && p[i + 2] === 20) n++; return n / (p.length / 4);")
    miou = json.loads((report_dir / "results.json").read_text())["images"][0]["miou"][labels[0]]
    assert 0.0 < reds < 1.0 and miou < 1.0  # some, not all, pixels are wrong

    # zoom in (all panels together) and hover a pixel
    d.find_element(By.ID, "sb-zoom-in").click()
    assert float(_state(d, "zoom")) > 1
    transforms = d.execute_script("return Array.from(document.querySelectorAll('#sb-panels canvas'))"
                                  ".map(function (c) { return c.style.transform; });")  # fmt: skip
    assert len(set(transforms)) == 1 and "scale(1.5)" in transforms[0]
    ActionChains(d).move_to_element(d.find_element(By.CSS_SELECTOR, "#sb-panels figure[data-kind=truth] .view")).perform()
    hover = d.find_element(By.ID, "sb-hover").text
    assert "truth: " in hover and all(f"{m}: " in hover for m in labels)
    _check_hover(hover, report_dir, labels)

    # sort the per-image table by the first model's mIoU, lowest first, and open the worst image
    header = d.find_elements(By.CSS_SELECTOR, "#sb-per-image thead th")[1]
    header.click()
    assert header.get_attribute("aria-sort") == "ascending"
    cells = [float(r.find_elements(By.TAG_NAME, "td")[1].text) for r in d.find_elements(By.CSS_SELECTOR, "#sb-per-image tbody tr")]
    assert cells == sorted(cells) and len(cells) == N_IMAGES
    first = d.find_element(By.CSS_SELECTOR, "#sb-per-image tbody tr td a")
    worst = first.text
    entries = json.loads((report_dir / "results.json").read_text())["images"]
    assert worst == min(entries, key=lambda e: e["miou"][labels[0]])["name"]
    assert worst != _state(d, "image"), "the sample's worst image is its first: the click would change nothing"
    first.click()
    _wait_ready(d, worst)

    # the A - B column follows the two models chosen
    rows = d.find_elements(By.CSS_SELECTOR, "#sb-per-image tbody tr")
    def delta(tr):
        return float(tr.find_elements(By.TAG_NAME, "td")[-1].text)
    a_b = [delta(tr) for tr in rows]
    d.execute_script("var s = document.getElementById('sb-delta-a'); s.selectedIndex = 1;"
                     "s.dispatchEvent(new Event('change'));"
                     "var t = document.getElementById('sb-delta-b'); t.selectedIndex = 0;"
                     "t.dispatchEvent(new Event('change'));")  # fmt: skip
    assert [delta(tr) for tr in rows] == [-v for v in a_b]
    for tr, v in zip(rows, a_b):
        cells = [float(td.text) for td in tr.find_elements(By.TAG_NAME, "td")[1:3]]
        assert v == pytest.approx(cells[0] - cells[1], abs=0.051)

    # the Pareto plot: hovering a point shows its model and figures; a backend can be hidden
    point = d.find_element(By.CSS_SELECTOR, "#sb-pareto .pt")
    ActionChains(d).move_to_element(point).perform()
    tip = d.find_element(By.CSS_SELECTOR, "#sb-pareto .tip")
    assert tip.is_displayed() and "mIoU" in tip.text and "latency p50" in tip.text
    d.find_element(By.CSS_SELECTOR, ".toggles input").click()
    assert not point.is_displayed()

    # every table sorts
    main = d.find_element(By.ID, "sb-results")
    main.find_element(By.CSS_SELECTOR, "th").click()
    assert main.find_element(By.CSS_SELECTOR, "th").get_attribute("aria-sort") == "ascending"
    root.send_keys(Keys.ARROW_RIGHT)
    _wait_ready(d)
    _assert_clean(d)


@pytest.mark.parametrize("size", [(1400, 900), (390, 844)], ids=["laptop", "phone"])
def test_screenshots_no_table_overflows(browser, report_dir, tmp_path, size):
    d = browser
    _open(d, report_dir / "report.html", *size)
    _no_table_overflows(d)
    name = "report-browser.png" if size[0] == 1400 else "report-phone.png"
    d.execute_script("document.getElementById('sb-browser').scrollIntoView()")
    _screenshot(d, tmp_path, name)
    d.execute_script("window.scrollTo(0, 0)")
    _screenshot(d, tmp_path, "top-" + name)


def _top(driver, selector: str) -> float:
    return driver.execute_script("return document.querySelector(arguments[0]).getBoundingClientRect().top"
                                 " + window.scrollY", selector)  # fmt: skip


def test_first_screen_answers(browser, report_dir):
    """At 1400 x 900 the answer and the results table start on the first screen, the settings come after the
    results, and no table shown scrolls sideways; on a phone (390 x 844) the page itself never scrolls
    sideways, with every folded section opened too."""
    d = browser
    _open(d, report_dir / "report.html", 1400, 900)
    d.execute_script("window.scrollTo(0, 0)")
    assert _top(d, "#sb-answer") < 900 and _top(d, "#sb-results") < 900
    assert "Which model to use" in d.find_element("id", "sb-answer").text
    results_bottom = d.execute_script("return document.getElementById('sb-results').getBoundingClientRect().bottom"
                                      " + window.scrollY")  # fmt: skip
    settings = d.execute_script("return Array.from(document.querySelectorAll('summary')).filter(function (s) {"
                                "return s.textContent === 'Settings'; })[0].getBoundingClientRect().top + window.scrollY")
    assert settings > results_bottom
    sideways = d.execute_script(
        "return Array.from(document.querySelectorAll('.table-wrap')).filter(function (e) {"
        "return e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1; }).map(function (e) {"
        "return e.querySelector('th').textContent; });")
    assert not sideways, sideways
    headers = [th.text for th in d.find_elements("css selector", "#sb-results thead th")]
    assert headers[:4] == ["Model", "mIoU (%) [95% CI]", "Boundary IoU (%)", "ECE (%)"]  # on by default
    _open(d, report_dir / "report.html", 390, 844)
    assert d.execute_script("return document.documentElement.scrollWidth") <= 390
    d.execute_script("document.querySelectorAll('details').forEach(function (e) { e.open = true; })")
    assert d.execute_script("return document.documentElement.scrollWidth") <= 390


def test_roofline_plot_has_one_point_per_row(browser, report_dir):
    """The roofline plot comes after the Pareto plot and before the image browser, draws its ceilings and one
    point per row of results.json (each with the row's roofline columns), and hovering a point shows its figures."""
    from selenium.webdriver.common.action_chains import ActionChains

    rows = json.loads((report_dir / "results.json").read_text())["rows"]
    assert rows and all(r["roofline_ceiling"] in ("compute", "memory") and r["roofline_bound_ms"] > 0 for r in rows)
    d = browser
    _open(d, report_dir / "report.html")
    points = d.find_elements("css selector", "#sb-roofline svg circle.pt")
    assert len(points) == len(rows)
    titles = sorted(p.find_element("tag name", "title").get_attribute("textContent") for p in points)
    assert titles == sorted(r["model"] for r in rows)  # one backend: each point is labelled with its model
    assert len(d.find_elements("css selector", "#sb-roofline path.roof")) >= 1  # at least the theoretical roof
    assert _top(d, "#sb-pareto") < _top(d, "#sb-roofline") < _top(d, "#sb-browser")
    d.execute_script("document.getElementById('sb-roofline').scrollIntoView()")
    ActionChains(d).move_to_element(points[0]).perform()
    tip = d.find_element("css selector", "#sb-roofline .tip")
    assert tip.is_displayed() and "FLOP/byte" in tip.text and "bound" in tip.text
    _assert_clean(d)


def test_pictures_loaded_from_the_folder_past_the_limit(browser, tmp_path, monkeypatch):
    import segbench.report.browser as browser_module

    monkeypatch.setattr(browser_module, "EMBED_LIMIT_MB", 0.0)
    out = _report(tmp_path / "linked")
    page = (out / "report.html").read_text()
    assert 'id="sb-img-' not in page and len(list((out / "browser" / "js").glob("*.js"))) == N_IMAGES
    _open(browser, out / "report.html")
    assert _state(browser, "image") == "0016E5_07959"
    browser.find_element("id", "sb-next").click()
    _wait_ready(browser, "0016E5_07985")
    urls, _ = _requests(browser)
    assert any(u.endswith("/browser/js/0016E5_07985.js") for u in urls), urls
    _assert_clean(browser)


FULL_REPORT_OPEN_S = 15.0  # s: the stated bound for a full report (CamVid val: 101 images, five models)
FULL_REPORT_STEP_S = 3.0  # s: the stated bound for showing the next image


@pytest.mark.slow
def test_full_report_opens_and_responds(browser):
    """A report made beforehand (``SEGBENCH_FULL_REPORT=FOLDER``, e.g. of the CamVid val split with the zoo)
    opens and shows its first image within :data:`FULL_REPORT_OPEN_S`, and the next one within
    :data:`FULL_REPORT_STEP_S`."""
    folder = os.environ.get("SEGBENCH_FULL_REPORT")
    if not folder:
        pytest.skip("set SEGBENCH_FULL_REPORT to a compare report folder to time it in the browser")
    page = Path(folder) / "report.html"
    seconds = _open(browser, page, timeout=FULL_REPORT_OPEN_S)
    t0 = time.perf_counter()
    browser.find_element("id", "sb-next").click()
    _wait_ready(browser)
    step = time.perf_counter() - t0
    header = browser.find_elements("css selector", "#sb-per-image thead th")[1]
    t1 = time.perf_counter()
    header.click()
    sort = time.perf_counter() - t1
    print(f"opened in {seconds:.2f} s, next image in {step:.2f} s, table sorted in {sort:.2f} s")
    assert step < FULL_REPORT_STEP_S and sort < FULL_REPORT_STEP_S
    _no_table_overflows(browser)
    _assert_clean(browser)


def test_unlabelled_photos_of_two_sizes_and_a_failed_model(browser, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(photos / "a.png")
    Image.fromarray(rng.integers(0, 256, (36, 30, 3), dtype=np.uint8)).save(photos / "b.jpg")
    out = tmp_path / "report"
    compare([MODELS[0], "nosuchnet"], photos, out, min_time_s=0.01, isolate=False, progress=False)
    data = json.loads((out / "results.json").read_text())
    assert [e["name"] for e in data["images"]] == ["a", "b"] and data["images"][0]["miou"] == {MODELS[0]: None}
    _open(browser, out / "report.html")
    kinds = [f.get_attribute("data-kind") for f in browser.find_elements("css selector", "#sb-panels figure")]
    assert kinds == ["image", "model"]  # no ground truth, and the failed model has no panel
    assert not browser.find_element("id", "sb-errors").is_enabled()
    browser.find_element("id", "sb-next").click()
    _wait_ready(browser, "b")
    size = browser.execute_script("var c = document.querySelector('#sb-panels canvas'); return [c.width, c.height]")
    assert _state(browser, "image") == "b" and size == [30, 36]
    _assert_clean(browser)
