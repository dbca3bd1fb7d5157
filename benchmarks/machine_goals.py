"""Speed on the machine at hand, side by side in one run (issue 26, item 6), as a section of benchmarks/RESULTS.md.

Per network (default lraspp_mobilenet_v3_large, deeplabv3_mobilenet_v3_large, fcn_resnet50) at one input size
(default 520 x 520), batch 1, all cores (torch's default thread count): torchvision's eager fp32 network; what a
user would do instead, each configured as its own documentation says (``torch.compile(model)``; an ONNX Runtime
``InferenceSession`` with default options; OpenVINO ``compile_model(..., "CPU", {"PERFORMANCE_HINT": "LATENCY"})``;
NNCF ``quantize(model, Dataset)`` with default settings, then compiled the same way); and segbench's ``best``
(every backend this CPU computes natively, :func:`segbench.bench.select.native_candidates`, run on segbench's own
network with the same weights, the fastest whose accuracy holds, :func:`segbench.bench.select.choose_best`).
Latency: median and its 95% interval from segbench's timing code (:func:`segbench.bench.latency.measure_latency`;
segbench's backends through :func:`segbench.bench.runner.benchmark_model`, whose rows also carry
``roofline_fraction`` where the roofline is measured).

Accuracy, on the CamVid sample shipped with segbench (8 val frames of drive 0016E5): pretrained torchvision
weights cannot be downloaded on the machines this runs on, so the two MobileNetV3 networks carry segbench's
shipped CamVid weights (``ARCH.camvid``, 11 classes, loaded into torchvision's network with
:func:`segbench.models.convert.to_torchvision_state`) and are scored by **mIoU against the ground truth**; those
frames share their drive with the models' training frames and the val split picked their checkpoints, so the figure
tells how much a configuration loses against eager, not how well the model does on new footage. fcn_resnet50 has
no CamVid weights: it has random weights (seed 0, batch-norm statistics randomised so the label maps are not
constant) and is scored by **agreement** (the mIoU of its argmax against torchvision eager's). A quantised
configuration holds when it loses at most 0.5 points against eager.

    python benchmarks/machine_goals.py                 # the full table, on an idle machine (minutes per network)
    python benchmarks/machine_goals.py --smoke --out /tmp/RESULTS.md    # seconds: 64 x 64, one network
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from segbench.bench.latency import measure_latency
from segbench.bench.select import BAND_POINTS, choose_best, native_candidates
from segbench.preprocessing import Preprocessing

MODELS = ("lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", "fcn_resnet50")
CONFIGS = ("eager", "compile", "onnxruntime", "openvino", "nncf")
HOW = {"eager": "torchvision eager fp32", "compile": "torch.compile(model) (default mode)",
       "onnxruntime": "ONNX Runtime InferenceSession, default options",
       "openvino": 'OpenVINO compile_model, {"PERFORMANCE_HINT": "LATENCY"}',
       "nncf": "NNCF quantize (default settings, int8), OpenVINO LATENCY hint"}  # fmt: skip
NEEDS = {"compile": (), "onnxruntime": ("onnxruntime", "onnxscript"), "openvino": ("openvino", "onnxscript"),
         "nncf": ("nncf", "openvino", "onnxscript"), "eager": ()}  # fmt: skip
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # torchvision's ImageNet normalisation
ROOFLINE_GOAL = 0.6
SECTION = "## Speed on the machine at hand (benchmarks/machine_goals.py)"


def _installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


class _Out(torch.nn.Module):
    """torchvision's segmentation models return a dict; this returns its ``out`` logits ``(N, C, H, W)``."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)["out"]


def networks(name: str, seed: int = 0, trained: bool = True) -> tuple[torch.nn.Module, torch.nn.Module, int, bool]:
    """torchvision's network (no aux head, logits out) and segbench's own build of it with the same weights
    (converted, loaded strictly), both in eval mode, their number of classes, and whether the weights are trained:
    segbench's shipped CamVid weights where they exist (and ``trained``), else random (seed ``seed``, 21 classes)."""
    import torchvision.models.segmentation as tvs

    from segbench.models import build_model, convert, load_model
    from segbench.models.weights import zoo_tags

    aux = {} if name.startswith("lraspp") else {"aux_loss": False}
    if trained and "camvid" in zoo_tags().get(name, {}):
        ours = load_model(f"{name}.camvid").model.eval()
        state = {k: v for k, v in ours.state_dict().items() if not k.startswith("aux_head.")}
        num_classes = int(state[next(k for k in state if k.endswith("classifier.weight") or
                                     k == "classifier.high_classifier.weight")].shape[0])  # fmt: skip
        tv = getattr(tvs, name)(weights=None, weights_backbone=None, num_classes=num_classes, **aux).eval()
        tv.load_state_dict(convert.to_torchvision_state(name, state), strict=True)
        return _Out(tv).eval(), ours, num_classes, True
    torch.manual_seed(seed)
    tv = getattr(tvs, name)(weights=None, weights_backbone=None, num_classes=21, **aux).eval()
    with torch.no_grad():
        for m in tv.modules():  # fresh batch norms compute the identity: randomise them so outputs vary
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
    rename = {"lraspp_mobilenet_v3_large": convert.convert_torchvision_lraspp_state,
              "deeplabv3_mobilenet_v3_large": convert.convert_torchvision_mobilenet_v3_state}.get(  # fmt: skip
        name, convert.convert_torchvision_state)
    ours = build_model(name, num_classes=21, **aux).eval()
    ours.load_state_dict(rename(tv.state_dict()), strict=True)
    return _Out(tv).eval(), ours, 21, False


def sample_inputs(size: tuple[int, int], limit: int) -> list[torch.Tensor]:
    """The CamVid sample shipped with segbench, ImageNet-normalised and resized to ``size``: ``(1, 3, H, W)``."""
    from segbench.export import sample_calibration

    return [F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            for x in sample_calibration(Preprocessing(mean=MEAN, std=STD), limit=limit)]  # fmt: skip


def sample_masks(size: tuple[int, int], limit: int) -> list[torch.Tensor]:
    """The ground-truth label maps of :func:`sample_inputs`' images, resized (nearest) to ``size``: ``(1, H, W)``
    int64, void pixels 255."""
    from segbench.data.datasets import open_dataset, sample_dir

    dataset, masks = open_dataset(sample_dir(), "val"), []
    for i in range(len(dataset)):
        item = dataset[i]
        if "error" in item:
            continue
        if len(masks) >= limit:
            break
        m = torch.as_tensor(item["mask"]).clone()
        for void in dataset.void_ids:
            m[m == void] = 255
        masks.append(F.interpolate(m[None, None].float(), size=size, mode="nearest")[0].long())
    return masks


def agreement_miou(run, inputs: list[torch.Tensor], reference: list[torch.Tensor], num_classes: int) -> float:
    """mIoU of ``run``'s argmax on ``inputs`` scored against the ``reference`` label maps (a fraction)."""
    from segbench.metrics import ConfusionMatrix

    cm = ConfusionMatrix(num_classes)
    with torch.inference_mode():
        for x, ref in zip(inputs, reference):
            cm.update(torch.as_tensor(run(x)).argmax(1).long(), ref)
    return cm.compute().miou


def _onnx_callable(fn):
    def run(x):
        return torch.from_numpy(fn(x.detach().numpy()))

    return run


def user_config(kind: str, net, onnx_path, inputs):
    """The callable of one user configuration, configured as its library documents (see the module docstring),
    and the precision it computes in (OpenVINO's default inference precision is the CPU's: bf16 where it is
    native, asked of the compiled model)."""
    if kind == "eager":
        return net, "fp32"
    if kind == "compile":
        compiled = torch.compile(net)
        with torch.inference_mode():
            compiled(inputs[0])  # compiles here, not in the timed calls
        return compiled, "fp32"
    if kind == "onnxruntime":
        import onnxruntime as ort

        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return _onnx_callable(lambda a: session.run(None, {name: a})[0]), "fp32"
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(onnx_path))
    if kind == "nncf":
        import nncf

        model = nncf.quantize(model, nncf.Dataset(inputs, lambda t: t.numpy()))
    compiled = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY"})
    out = compiled.output(0)
    hint = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()  # "f32", "bf16", "f16"
    precision = "int8" if kind == "nncf" else {"f32": "fp32"}.get(hint, hint)
    return _onnx_callable(lambda a: compiled(a)[out]), precision


def _row(kind: str, how: str, lat: dict, accuracy: float | None, precision: str, basis: str,
         extra: dict | None = None) -> dict:
    return {"config": kind, "how": how, "precision": precision, "accuracy_miou": accuracy, "accuracy_basis": basis,
            **lat, **(extra or {})}  # fmt: skip


def _latency(fn, size, timing: dict) -> dict:
    res = measure_latency(fn, (1, 3, *size), **timing)
    return {k: getattr(res, k) for k in ("latency_ms_p50", "latency_ms_ci_low", "latency_ms_ci_high")}


def segbench_best(ours, size, inputs, reference, backends, timing: dict, num_classes: int = 21,
                  key: str = "agreement_miou", profile: dict | None = None) -> tuple[dict, list[dict], dict]:
    """segbench's ``best`` of ``backends`` on segbench's network: the chosen row, every candidate's row (with its
    accuracy under ``key``: ``miou`` against the ground truth or ``agreement_miou`` against torchvision eager, and
    its roofline columns from the machine's ``profile``) and the choice (:func:`choose_best`)."""
    from segbench.bench.backends import get_backend, prepare
    from segbench.bench.roofline import add_roofline
    from segbench.bench.runner import benchmark_model

    rows = []
    for backend in backends:
        calib = inputs if get_backend(backend).needs_calibration else None
        try:
            row = benchmark_model(ours, input_size=size, backend=backend, calibration=calib,
                                  min_time_s=timing["min_time_s"], budget_s=timing["budget_s"],
                                  warmup_s=timing["warmup_s"], warmup=timing["warmup"], min_iters=timing["min_iters"])  # fmt: skip
            if not row.get("error"):
                runner = ours if backend == "eager" else prepare(ours, backend, inputs[0], "cpu", calib)
                row[key] = agreement_miou(runner, inputs, reference, num_classes)
                del runner
        except Exception as exc:  # noqa: BLE001 - one backend failing leaves a row with its error
            row = {"backend": backend, "error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}
        row["backend"] = backend
        add_roofline(row, profile)  # as `segbench benchmark` does: min(peak, intensity x bandwidth)
        rows.append(row)
        gc.collect()
    choice = choose_best(rows) or {}
    best = next((r for r in rows if r["backend"] == choice.get("backend")), None)
    return best, rows, choice


def run_model(name: str, size, timing: dict, configs, backends, images: int, log, profile: dict | None = None) -> dict:
    """Every configuration of one network: ``{"rows", "candidates", "choice", "skipped"}``."""
    tv, ours, num_classes, trained = networks(name)
    inputs = sample_inputs(size, images)
    if trained:
        reference, key, basis = sample_masks(size, images), "miou", "mIoU vs ground truth (CamVid weights)"
    else:
        with torch.inference_mode():
            reference = [tv(x).argmax(1) for x in inputs]
        key, basis = "agreement_miou", "agreement with eager (random weights)"
    out = {"rows": [], "skipped": {}, "candidates": [], "choice": {}, "basis": basis}
    with tempfile.TemporaryDirectory(prefix="machine-goals-") as tmp:
        onnx_path = None
        for kind in configs:
            missing = [m for m in NEEDS[kind] if not _installed(m)]
            if missing:
                out["skipped"][kind] = f"{', '.join(missing)} not installed"
                log(f"{name}: {kind} skipped ({out['skipped'][kind]})")
                continue
            try:
                if NEEDS[kind] and onnx_path is None:
                    from segbench.export import export_onnx

                    onnx_path = export_onnx(tv, Path(tmp) / "model.onnx", inputs[0])
                fn, precision = user_config(kind, tv, onnx_path, inputs)
                acc = agreement_miou(fn, inputs, reference, num_classes)
                out["rows"].append(_row(kind, HOW[kind], _latency(fn, size, timing), acc, precision, basis))
                del fn
            except Exception as exc:  # noqa: BLE001 - a configuration that fails here is reported, not fatal
                out["skipped"][kind] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
            gc.collect()
            log(f"{name}: {kind} done")
        best, rows, choice = segbench_best(ours, size, inputs, reference, backends, timing, num_classes, key, profile)
        out["candidates"], out["choice"] = rows, choice
        if best is not None:
            from segbench.bench.peak import backend_precision

            out["rows"].append(_row("segbench best", f"segbench --backend best: {best['backend']}",
                                    {k: best.get(k) for k in ("latency_ms_p50", "latency_ms_ci_low", "latency_ms_ci_high")},
                                    best.get(key), backend_precision(best["backend"]), basis,
                                    {k: best.get(k) for k in ("roofline_fraction", "roofline_bound_ms")}))  # fmt: skip
        log(f"{name}: segbench best done")
    return out


def _f(v, spec=".2f") -> str:
    return "" if v is None else format(v, spec)


def holds(row: dict, eager: dict | None) -> bool | None:
    """Whether ``row``'s accuracy is within its precision's band of eager's (int8: 0.5 points), None where
    either accuracy is missing."""
    acc, ref = row.get("accuracy_miou"), (eager or {}).get("accuracy_miou")
    if acc is None or ref is None:
        return None
    return 100 * (ref - acc) <= BAND_POINTS.get(row["precision"], 0.05)


def goals(name: str, result: dict) -> list[str]:
    """The goal lines of one network: segbench's best at least as fast as every other configuration whose
    accuracy holds (a faster one that loses more than its band is named, not raced); for fcn_resnet50 also at
    least 60% of its roofline bound."""
    rows = {r["config"]: r for r in result["rows"]}
    best, eager = rows.get("segbench best"), rows.get("eager")
    timed = [r for k, r in rows.items() if k != "segbench best" and r.get("latency_ms_p50")]
    others = [r for r in timed if holds(r, eager) is not False]
    if best is None or not others:
        return [f"- {name}: not decided (segbench best or every other configuration missing)"]
    fastest = min(others, key=lambda r: r["latency_ms_p50"])
    met = best["latency_ms_p50"] <= fastest["latency_ms_p50"]
    lines = [f"- {name}: segbench best {best['latency_ms_p50']:.2f} ms against the fastest other whose accuracy "
             f"holds, {fastest['config']} {fastest['latency_ms_p50']:.2f} ms: **{'met' if met else 'not met'}**"]  # fmt: skip
    faster = [r for r in timed if holds(r, eager) is False and r["latency_ms_p50"] < best["latency_ms_p50"]]
    for r in faster:
        lines.append(f"- {name}: {r['config']} ran faster ({r['latency_ms_p50']:.2f} ms) but its accuracy does not "
                     "hold (see the table)")  # fmt: skip
    if name == "fcn_resnet50":
        frac = best.get("roofline_fraction")
        verdict = "not measured (no roofline_fraction in the row)" if frac is None else (
            f"{100 * frac:.1f}%: **{'met' if frac >= ROOFLINE_GOAL else 'not met'}**")  # fmt: skip
        lines.append(f"- {name}: segbench best at {ROOFLINE_GOAL:.0%} or more of its roofline bound: {verdict}")
    return lines


def cpu_kind(profile: dict) -> tuple[str, str]:
    """A key naming the CPU kind (vendor, micro-architecture, bf16 and int8 units) and a heading for people."""
    units = {p: (profile.get("precisions") or {}).get(p, {}).get("unit", "?") for p in ("bf16", "int8")}
    key = f"{profile.get('vendor')}/{profile.get('microarchitecture')}/bf16 {units['bf16']}/int8 {units['int8']}"
    title = (f"{profile.get('model_name')} ({profile.get('microarchitecture') or 'micro-architecture unknown'}; "
             f"bf16: {units['bf16']}, int8: {units['int8']})")  # fmt: skip
    return re.sub(r"\s+", " ", key), title


def section(results: dict, profile: dict, args, command: str, took_s: float) -> tuple[str, str]:
    """The Markdown section of this CPU kind, and its key."""
    from segbench.bench.hardware import hardware_summary

    key, title = cpu_kind(profile)
    band = BAND_POINTS["int8"]
    lines = [f"<!-- machine_goals: {key} -->", f"### {title}", "",
             f"{time.strftime('%Y-%m-%d %H:%M')} UTC, `{command}` ({took_s:.0f} s): {args.size[0]} x {args.size[1]}, "
             f"batch 1, {args.threads} torch threads (ONNX Runtime and OpenVINO at their defaults: all cores).", "",
             "The machine's profile (`segbench hardware`):", "",
             *[f"- {k}: {v}" for k, v in hardware_summary(profile).items()], "",
             "Accuracy on the CamVid sample shipped with segbench (8 val frames of drive 0016E5): the MobileNetV3 "
             "networks carry segbench's CamVid weights and are scored by mIoU against the ground truth (frames of a "
             "drive they trained on, the split their checkpoints were picked on: the figure measures what a "
             "configuration loses against eager, not accuracy on new footage); fcn_resnet50 has random weights (seed "
             "0; no CamVid weights, and pretrained weights cannot be downloaded here) and is scored by agreement, the "
             f"mIoU of its argmax against torchvision eager's. A quantised result holds within {band:g} points of "
             "eager. Latency: median per image and its 95% interval (segbench.bench.latency).", "",
             "| model | configuration | how | precision | p50 (ms) | 95% interval (ms) | x eager | accuracy (%) "
             "| holds | roofline fraction |", "| --- | --- | --- | --- | ---: | --- | ---: | ---: | --- | ---: |"]  # fmt: skip
    goal_lines = []
    for name, result in results.items():
        eager = next((r for r in result["rows"] if r["config"] == "eager"), None)
        for r in result["rows"]:
            acc, ok = r.get("accuracy_miou"), holds(r, eager)
            verdict = "" if ok is None else ("yes" if ok else "no")
            ratio = eager["latency_ms_p50"] / r["latency_ms_p50"] if eager and r.get("latency_ms_p50") else None
            interval = (f"{_f(r.get('latency_ms_ci_low'))} - {_f(r.get('latency_ms_ci_high'))}"
                        if r.get("latency_ms_ci_low") is not None else "")  # fmt: skip
            frac = r.get("roofline_fraction")
            lines.append(f"| {name} | {r['config']} | {r['how']} | {r['precision']} | {_f(r.get('latency_ms_p50'))} | "
                         f"{interval} | {_f(ratio)} | {_f(None if acc is None else 100 * acc)} | {verdict} | "
                         f"{_f(None if frac is None else 100 * frac, '.1f')} |")  # fmt: skip
        for kind, why in result["skipped"].items():
            lines.append(f"| {name} | {kind} | {HOW[kind]} | | skipped: {why} | | | | | |")
        cands = ", ".join(f"{r['backend']} {_f(r.get('latency_ms_p50'))} ms" if not r.get("error")
                          else f"{r['backend']} (error: {r['error'][:80]})" for r in result["candidates"])  # fmt: skip
        rejected = "; ".join(f"{b}: {why}" for b, why in (result["choice"].get("rejected") or {}).items())
        goal_lines.append(f"- {name}: segbench's candidates: {cands}" + (f"; outside the band: {rejected}" if rejected else ""))
        goal_lines += goals(name, result)
    left_out = native_candidates("cpu")[1]
    lines += ["", "Goals (segbench's best at least as fast as the fastest other configuration; fcn_resnet50's best "
              f"at {ROOFLINE_GOAL:.0%} or more of its roofline bound):", "", *goal_lines]  # fmt: skip
    if left_out:
        lines.append("- left out of segbench's best on this CPU: "
                     + "; ".join(f"{b} ({why})" for b, why in left_out.items()))  # fmt: skip
    lines += [f"<!-- /machine_goals: {key} -->", ""]
    return "\n".join(lines), key


def write_section(path: Path, text: str, key: str) -> None:
    """Put ``text`` into ``path`` (atomically): replacing the section of the same CPU kind, keeping the others;
    a new kind goes at the end of :data:`SECTION` (added at the end of the file if missing)."""
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    pattern = re.compile(rf"<!-- machine_goals: {re.escape(key)} -->.*?<!-- /machine_goals: {re.escape(key)} -->\n?",
                         re.S)  # fmt: skip
    if pattern.search(old):
        new = pattern.sub(lambda _: text, old, count=1)
    else:
        if SECTION not in old:
            old = old.rstrip("\n") + ("\n\n" if old else "") + SECTION + "\n\nOne section per CPU kind; each run "
            old += "replaces the section of its own kind.\n"
        start = old.index(SECTION) + len(SECTION)
        nxt = re.search(r"^## ", old[start:], re.M)
        at = start + nxt.start() if nxt else len(old)
        new = old[:at].rstrip("\n") + "\n\n" + text + ("\n" + old[at:] if nxt else "")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--size", default="520x520", help="HxW (default 520x520)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads (default: all cores)")
    ap.add_argument("--out", default="benchmarks/RESULTS.md", help="Markdown file whose section is written")
    ap.add_argument("--time-per-case", type=float, default=5.0, help="minimum timed seconds per configuration")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS, help="the user configurations")
    ap.add_argument("--backends", nargs="+", help="segbench's candidates (default: what this CPU computes natively)")
    ap.add_argument("--images", type=int, default=8, help="CamVid sample images for the agreement (default 8)")
    ap.add_argument("--smoke", action="store_true", help="64 x 64, one network, short timing, 2 images: seconds")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = ap.parse_args(argv)
    if args.smoke:
        args.models, args.images = args.models[:1] if "--models" in argv else [MODELS[0]], 2
        args.size = args.size if "--size" in argv else "64x64"
        args.time_per_case = min(args.time_per_case, 0.05) if "--time-per-case" not in argv else args.time_per_case
    try:
        args.size = tuple(int(s) for s in args.size.lower().split("x"))
        assert len(args.size) == 2 and min(args.size) >= 32
    except (ValueError, AssertionError):
        ap.error(f"--size {args.size}: expected HxW with both at least 32, e.g. 520x520")
    torch.set_num_threads(args.threads)
    t = args.time_per_case
    timing = ({"min_time_s": t, "budget_s": 2 * t, "warmup_s": 0.0, "warmup": 1, "min_iters": 6} if args.smoke
              else {"min_time_s": t, "budget_s": 6 * t, "warmup_s": 1.0, "warmup": 5, "min_iters": 10})  # fmt: skip
    backends = args.backends or native_candidates("cpu")[0]
    from segbench.bench.hardware import hardware_profile

    t0 = time.perf_counter()
    profile = hardware_profile("cpu", args.threads)

    def log(msg):
        print(f"[{time.perf_counter() - t0:.0f} s] {msg}", file=sys.stderr, flush=True)

    results = {m: run_model(m, args.size, timing, args.configs, backends, args.images, log, profile) for m in args.models}
    command = "python benchmarks/machine_goals.py" + "".join(f" {a}" for a in argv)
    text, key = section(results, profile, args, command, time.perf_counter() - t0)
    write_section(Path(args.out), text, key)
    print(text)
    print(f"wrote the section '{key}' into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
