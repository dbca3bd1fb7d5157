"""What several subcommands share: option groups, the configs they build, output checks and printing."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from segbench.cli.args import add_option
from segbench.errors import UserError
from segbench.files import WriteError, prepare_output_dir, skipped_by_reason, write_skipped


def fmt(v, spec=".2f") -> str:
    """``v`` formatted with ``spec``, or ``-`` for None."""
    return "-" if v is None else format(v, spec)


def pct(v) -> str:
    """A fraction as a percentage with two decimals, or ``-`` for None."""
    return "-" if v is None else f"{v * 100:.2f}"


def check_new_dir(path: Path, overwrite: bool) -> None:
    """Create the output folder ``path`` before any work, or raise a :class:`UserError` naming --output
    (:func:`segbench.files.prepare_output_dir`)."""
    prepare_output_dir(path, overwrite)


def inference_config(args, info=None):
    """InferenceConfig from --mode/--window/--stride/--gaussian/--tta-scales/--tta-flip/--memory-budget, with
    the window resolved for the model (its training crop size when known)."""
    from segbench.engine.inference import InferenceConfig

    cfg = InferenceConfig(
        mode=args.mode, window=tuple(args.window) if args.window else None,
        stride=tuple(args.stride) if args.stride else None, gaussian=args.gaussian,
        scales=tuple(args.tta_scales) if args.tta_scales else (1.0,), flip=args.tta_flip,
        memory_budget_mib=args.memory_budget,
    )
    return cfg.for_model(info) if info is not None else cfg


def crf_config(args):
    """CRFConfig from --crf/--crf-iterations/--crf-param, or None without --crf.

    Raises:
        UserError: --crf-* options without --crf, bad values, or pydensecrf2 missing.
    """
    from segbench.engine.crf import CRFConfig, require_crf

    if not args.crf:
        if args.crf_param or args.crf_iterations is not None:
            raise UserError("--crf-param/--crf-iterations: given without --crf")
        return None
    cfg = CRFConfig.from_overrides(args.crf_param, args.crf_iterations)
    require_crf()
    return cfg


def backend_runner(args, loaded, device: str, image=None):
    """The model itself for ``--backend eager``, else a :class:`segbench.bench.backends.Predictor` running it
    with ``--backend`` (prepared on ``image``, an ``(H, W, 3)`` uint8 array, or a 360 x 480 random input;
    the backends that need calibration calibrated on ``--calibration`` images, default the shipped sample).

    Raises:
        UserError: unknown backend; BackendUnavailable (missing package, device); ExportError.
    """
    if args.backend == "eager":
        return loaded.model
    import torch

    from segbench.bench.backends import calibration_for, prepare
    from segbench.data.transforms import preprocess

    info = loaded.info
    example = preprocess(image, info.preprocessing) if image is not None else torch.randn(1, 3, 360, 480)
    calibration = calibration_for(args.backend, info.preprocessing, args.calibration)
    runner = prepare(loaded.model, args.backend, example, device, calibration)
    print(f"backend {args.backend}: {runner.notes}", file=sys.stderr)
    return runner


def check_backend_args(args) -> None:
    """--backend names registered backends (or ``best`` where several are taken); --calibration comes with a
    backend that needs calibration.

    Raises:
        UserError: an unknown backend, or --calibration without a calibrated backend.
    """
    from segbench.bench.backends import backend_names, get_backend
    from segbench.bench.select import BEST

    several = isinstance(args.backend, list)
    backends = args.backend if several else [args.backend]
    chosen = [get_backend(b) for b in backends if b != BEST or not several]
    if args.calibration and not (BEST in backends and several) and not any(b.needs_calibration for b in chosen):
        calibrated = ", ".join(backend_names(needs_calibration=True))
        raise UserError(f"--calibration: only with an int8 --backend ({calibrated})")


def skipped_summary(skipped: list[dict], shown: int = 5) -> list[str]:
    """Lines summarising ``skipped`` (``{"file", "reason"}``) by reason, most frequent first: ``skipped N
    inputs``, then per reason its count and the first ``shown`` file names; as many lines as reasons, not files."""
    if not skipped:
        return []
    lines = [f"skipped {len(skipped)} input{'s' if len(skipped) != 1 else ''}:"]
    for reason, files in skipped_by_reason(skipped):
        more = f" and {len(files) - shown} more" if len(files) > shown else ""
        lines.append(f"  {len(files)} x {reason}: {', '.join(files[:shown])}{more}")
    return lines


def print_skipped(skipped: list[dict], folder: Path | None = None, listed: Path | None = None) -> None:
    """The skipped inputs summarised by reason on stderr (:func:`skipped_summary`) and the line saying where the
    full list is: ``listed`` when it is written already (a report folder holds it), else ``folder/skipped.txt``,
    written here when there is a folder (:func:`~segbench.files.write_skipped`). A list that cannot be written
    is said in one line; the summary still stands."""
    for line in skipped_summary(skipped):
        print(line, file=sys.stderr)
    if listed is None:
        try:
            listed = write_skipped(folder, skipped)
        except WriteError as exc:
            print(f"  the full list was not written: {exc}", file=sys.stderr)
    if listed is not None and skipped:
        print(f"  the full list: {listed}", file=sys.stderr)


def print_row_warnings(rows: list[dict]) -> None:
    """The warnings of benchmark rows on stderr: a CPU busy with other work, rows from different machines."""
    from segbench.bench.env import busy_warning
    from segbench.bench.machines import machines_differ

    for line in (busy_warning(rows), machines_differ(rows)):
        if line:
            print(line, file=sys.stderr)


def json_safe(value):
    """NaN and infinities -> None, recursively, so the file is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def scales(text: str) -> list[float]:
    """argparse type of --tta-scales: ``0.5,1.0,1.5`` -> ``[0.5, 1.0, 1.5]``."""
    try:
        values = [float(v) for v in text.replace(" ", ",").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers like 0.5,1.0,1.5, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one scale")
    return values


def add_model_args(sp, weights_help="a tag, a weights file, or 'none' (random initialisation)") -> None:
    """--weights and --device, and --classes/--mean/--std for models segbench did not build."""
    sp.add_argument("--weights", help=weights_help)
    sp.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    add_model_input_args(sp)


def add_model_input_args(sp) -> None:
    """--classes, --mean, --std: what a model segbench did not build needs where its file does not say it; and
    --trust-remote-code, the one place every command that loads models gets it."""
    g = sp.add_argument_group("models segbench did not build (.onnx, .pt TorchScript, .pt2, py:, smp:, hf:), "
                              "where their files do not say it")  # fmt: skip
    g.add_argument("--classes", metavar="FILE", help="class names: YAML with names (and palette), or one name per line")
    add_option(g, "--mean", metavar=("R", "G", "B"),
                  help="input normalisation mean for RGB scaled to 0..1 (default: the file's, else ImageNet's)")
    add_option(g, "--std", metavar=("R", "G", "B"),
                  help="input normalisation std (default: the file's, else ImageNet's)")
    g.add_argument("--trust-remote-code", action="store_true",
                   help="let a model file someone else made run code of its own (an hf: folder's modeling code "
                        "named by auto_map, a .pt2 whose parts need full unpickling); without it such files are "
                        "refused (README: Trust rule)")


def add_class_map_arg(sp) -> None:
    """--class-map (evaluate, compare)."""
    sp.add_argument("--class-map", metavar="FILE",
                    help="YAML 'model class: dataset class' lines, to score a model trained on other classes (model "
                         "classes not listed are ignored); default: classes matched by name")


def model_inputs(args):
    """The :class:`segbench.external.ModelInputs` of --classes/--mean/--std/--trust-remote-code (None when none
    is given)."""
    from segbench.external import ModelInputs, read_class_file

    classes, mean, std = getattr(args, "classes", None), getattr(args, "mean", None), getattr(args, "std", None)
    trust = bool(getattr(args, "trust_remote_code", False))
    if classes is None and mean is None and std is None and not trust:
        return None
    if classes is not None:
        read_class_file(classes)  # a bad or repeating class list stops before any model loads
    return ModelInputs(classes, tuple(mean) if mean else None, tuple(std) if std else None, trust)


def load_cli_model(args, device: str = "cpu"):
    """The model of ``args.model`` (any spec, :func:`segbench.external.load_any`), saying on stderr in one line
    what its file did not tell (class names, normalisation) and which defaults were used."""
    from segbench.external import load_any

    loaded = load_any(args.model, weights=args.weights, inputs=model_inputs(args), device=device)
    missing = getattr(loaded.info, "missing", "")
    if missing:
        print(f"warning: {missing}", file=sys.stderr)
    return loaded

def backend_choices() -> tuple[str, ...]:
    """What ``--backend`` takes: the registered backends (:func:`segbench.bench.backends.backend_names`)."""
    from segbench.bench.backends import backend_names

    return backend_names()


def add_backend_args(sp, several: bool = False) -> None:
    """--backend (one, or several with ``several``) and --calibration."""
    names = ", ".join(backend_choices())
    g = sp.add_argument_group("backend (how the network runs; see segbench.bench.backends)")
    if several:
        g.add_argument("--backend", nargs="+", default=["eager"], metavar="B",
                       help=f"one row per (model, backend), each with its accuracy beside its speed, and the "
                            f"agreement with the first backend's predictions; from: {names} "
                            "(default eager); 'best': every backend available here, and per model the fastest "
                            "within 0.5 mIoU points (int8) or 0.05 (bf16, fp32) of eager, reported as what to deploy")
    else:
        g.add_argument("--backend", default="eager", metavar="B", help=f"one of {names} (default eager)")
    g.add_argument("--calibration", metavar="DIR",
                   help="images calibrating the int8 backends (default: the CamVid val sample shipped with segbench)")

def add_inference_args(sp) -> None:
    """--mode, --window, --stride, --gaussian, --memory-budget, --tta-*, --crf*."""
    g = sp.add_argument_group("inference (sliding window, test-time augmentation, dense CRF)")
    add_option(g, "--mode", default="whole",
                  help="whole image (default; slides instead when that would need more than --memory-budget), "
                       "sliding window, or auto: also slide when the image exceeds 2x the window per side")
    add_option(g, "--window", metavar=("H", "W"),
                  help="sliding-window size in pixels (default: the model's training crop size, else 512 512)")
    add_option(g, "--stride", metavar=("H", "W"),
                  help="step between windows in pixels, at most the window (default: 2/3 of the window)")
    g.add_argument("--gaussian", action="store_true", help="Gaussian-weighted averaging of overlapping windows")
    add_option(g, "--memory-budget", default=2048.0, metavar="MiB",
                  help="whole and auto: slide when whole-image inference is predicted to need more than this "
                       "(default 2048; 0: whole images at any size)")
    g.add_argument("--tta-scales", type=scales, metavar="S[,S...]",
                   help="test-time augmentation scales, e.g. 0.5,0.75,1.0,1.25,1.5,1.75 (probabilities averaged)")
    g.add_argument("--tta-flip", action="store_true", help="test-time augmentation with left-right flips")
    g.add_argument("--crf", action="store_true",
                   help="dense CRF post-processing (arXiv 1210.5644; needs: pip install 'segbench[crf]')")
    add_option(g, "--crf-iterations", metavar="N", help="mean-field iterations (default 10)")
    g.add_argument("--crf-param", action="append", metavar="NAME=VALUE",
                   help="CRF parameter: smooth_weight, smooth_sxy, appearance_weight, appearance_sxy, "
                        "appearance_srgb (defaults: DeepLab's 3, 1, 4, 67, 3)")


def add_score_args(sp, scores_on: bool = False) -> None:
    """--bootstrap, --seed, --boundary/--no-boundary, --trimap, --ece/--no-ece (:class:`segbench.metrics.per_image.ScoreOptions`).

    ``scores_on`` turns Boundary IoU and ECE on by default (``compare``: on a few images they cost seconds).
    """
    import argparse

    on = "on by default; --no-{} turns it off" if scores_on else "off by default"
    g = sp.add_argument_group("scores beyond mIoU (intervals on by default; the others cost seconds per image)")
    add_option(g, "--bootstrap", default=1000, metavar="B",
                  help="resamples of the images for the 95%% intervals (default 1000; 0 = no intervals)")
    add_option(g, "--seed", default=0, help="seed of the bootstrap resampling (default 0)")
    g.add_argument("--boundary", action=argparse.BooleanOptionalAction, default=scores_on,
                   help="Boundary IoU per class and mean (arXiv 2103.16562; about 0.3 s per 720x960 image; "
                        f"{on.format('boundary')})")
    add_option(g, "--boundary-ratio", default=0.02, metavar="R",
                  help="Boundary IoU's distance as a fraction of the image diagonal (default 0.02)")
    g.add_argument("--trimap", action="store_true",
                   help="mIoU and pixel accuracy in bands of 1..40 px around label boundaries (arXiv 1412.7062; "
                        "about 1.4 s per 720x960 image, shared by all models)")
    add_option(g, "--trimap-width", default=40, metavar="PX", help="widest trimap band (default 40)")
    g.add_argument("--ece", action=argparse.BooleanOptionalAction, default=scores_on,
                   help="expected calibration error (15 bins of max-softmax) and reliability diagram (arXiv 1706.04599; "
                        f"{on.format('ece')})")
    add_option(g, "--ece-bins", default=15, metavar="M", help="ECE bins (default 15)")


def score_options(args):
    """ScoreOptions from the options of :func:`add_score_args`.

    Raises:
        UserError: a value out of range.
    """
    from segbench.metrics.per_image import ScoreOptions

    return ScoreOptions(boundary=args.boundary, dilation_ratio=args.boundary_ratio, trimap=args.trimap,
                        max_width=args.trimap_width, ece=args.ece, num_bins=args.ece_bins,
                        bootstrap=args.bootstrap, seed=args.seed)  # fmt: skip


def add_corruption_args(sp) -> None:
    """--corruptions, --severities, --corruption-images and --resume (the ImageNet-C sweep)."""
    r = sp.add_argument_group("robustness (ImageNet-C corruptions, arXiv 1903.12261; needs segbench[robustness])")
    r.add_argument("--corruptions", nargs="+", metavar="C",
                   help="all, noise, blur, weather, digital or corruption names: mIoU per corruption and severity")
    r.add_argument("--severities", default="1-5", help="severities 1..5, e.g. 1-5 or 1,3,5 (default 1-5)")
    add_option(r, "--corruption-images", default=0, metavar="N",
                  help="corrupt N of the evaluated images, evenly spaced over them (default 0 = all)")
    r.add_argument("--resume", action="store_true",
                   help="continue a stopped run from what it saved in --output: compare measures only the models "
                        "it did not finish (compare.partial.npz), evaluate only the images it did not "
                        "(evaluate.partial.npz), and a corruption sweep continues from its finished cells "
                        "(corruptions.partial.npz)")  # fmt: skip


def corruption_plan(args, resume_alone: bool = False):
    """CorruptionPlan from --corruptions/--severities/--corruption-images (None without --corruptions);
    ``resume_alone``: --resume means something without a sweep too (compare: the models a stopped run left).

    Raises:
        UserError: bad names or severities, options without --corruptions, or imagecorruptions missing.
    """
    from segbench.engine.robustness import CorruptionPlan, require_corruptions

    if not args.corruptions:
        if args.severities != "1-5" or args.corruption_images or (args.resume and not resume_alone):
            raise UserError("--severities/--corruption-images/--resume: given without --corruptions")
        return None
    plan = CorruptionPlan.parse(args.corruptions, args.severities, args.corruption_images, args.seed)
    require_corruptions()  # a missing package fails before any work
    return plan
