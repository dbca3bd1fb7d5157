"""Every numeric and enumerated setting of segbench in one table: its type, its range or choices, and why.

The command line (argparse types and choices, :mod:`segbench.cli.args`), the training recipes and their
``--set`` overrides (:func:`segbench.config.check_ranges`) and the Python API (``ScoreOptions``,
``CompareOptions``, :func:`segbench.metrics.intervals.check_confidence`) all check a value with
:func:`check`, so a value is refused the same way, with the same one line, wherever it comes from, and before
any model loads. A row is named by its flag (``--bootstrap``) or, for recipe keys, by its dotted key
(``optim.lr``); ``confidence`` is a Python-API setting with no flag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from segbench.errors import UserError


@dataclass(frozen=True)
class Option:
    """One setting's rule.

    Attributes:
        name: the flag (``--bootstrap``), the recipe key (``optim.lr``) or the API name (``confidence``).
        type: ``int``, ``float`` or ``str``.
        low, high: the bounds (None: unbounded on that side).
        low_open, high_open: the bound itself is excluded.
        choices: the allowed values of an enumerated setting (None: any in range).
        length: a list of exactly this many values, each checked (``--window H W``); None: one value.
        why: the reason for the range, said when a value is refused.
    """

    name: str
    type: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple | None = None
    length: int | None = None
    why: str = ""

    def bounds(self) -> str:
        """The range in words: ``within 0..100000``, ``at least 1``, ``0 or more``, ``above 0``,
        ``within 0..1 (0 excluded)``; ``one of a, b`` for choices; empty when any value of the type is fine."""
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        lo, hi = self.low, self.high
        if lo is not None and hi is not None:
            excluded = [f"{v:g}" for v, is_open in ((lo, self.low_open), (hi, self.high_open)) if is_open]
            return f"within {lo:g}..{hi:g}" + (f" ({' and '.join(excluded)} excluded)" if excluded else "")
        if lo is not None:
            return f"above {lo:g}" if self.low_open else ("0 or more" if lo == 0 else f"at least {lo:g}")
        if hi is not None:
            return f"below {hi:g}" if self.high_open else f"at most {hi:g}"
        return ""

    def expected(self) -> str:
        """What one value must be, in words: ``an integer``, ``a finite number``, or :meth:`bounds`."""
        return self.bounds() or {int: "an integer", float: "a finite number", str: "a string"}[self.type]

    def problem(self, value) -> str | None:
        """Why one ``value`` breaks the rule (``must be at least 1, got 0 (why)``), or None when it is fine."""
        kind = {int: "an integer", float: "a finite number", str: "a string"}[self.type]
        if self.type is int and (isinstance(value, bool) or not isinstance(value, int)):
            return self._refusal(value, kind)
        if self.type is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                return self._refusal(value, kind)
        if self.choices is not None:
            return None if value in self.choices else self._refusal(value)
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return self._refusal(value)
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            return self._refusal(value)
        return None

    def _refusal(self, value, what: str | None = None) -> str:
        rule = f"expected {self.bounds()}" if self.choices is not None else f"must be {what or self.expected()}"
        return f"{rule}, got {value!r}" + (f" ({self.why})" if self.why else "")

    def parse(self, text: str):
        """``text`` converted to :attr:`type` and checked; raises ValueError with the one-line reason."""
        try:
            value = self.type(text)
        except (TypeError, ValueError):
            raise ValueError(self._refusal(text)) from None
        if self.type is float and not math.isfinite(value):
            raise ValueError(self._refusal(text))
        reason = self.problem(value)
        if reason:
            raise ValueError(reason)
        return value

    def outside(self) -> list:
        """Values just outside the rule (for the generated test): below ``low``, above ``high``, or a choice
        that is not one."""
        if self.choices is not None:
            return ["no-such-choice"]
        step = 1 if self.type is int else None
        out = []
        if self.low is not None:
            out.append(self.low if self.low_open else (self.low - step if step else _below(self.low)))
        if self.high is not None:
            out.append(self.high if self.high_open else (self.high + step if step else _above(self.high)))
        if self.type is float:
            out.append(math.nan)
        return [int(v) if self.type is int else v for v in out]


def _below(x: float) -> float:
    return math.nextafter(x, -math.inf) if x else -1e-9


def _above(x: float) -> float:
    return x * (1 + 1e-9) if x else 1e-9


def _rows(*rows: Option) -> dict[str, Option]:
    return {r.name: r for r in rows}


_POS = {"low": 1}  # counts and sizes: 1 or more
_NONNEG = {"low": 0}
_POS_F = {"low": 0.0, "low_open": True}  # seconds, sizes: above 0
_NONNEG_F = {"low": 0.0}

OPTIONS: dict[str, Option] = _rows(
    # scores (segbench.metrics.per_image.ScoreOptions)
    Option("--bootstrap", int, 0, 100_000,
           why="0 = no intervals; the resampled matrices take at least B x C x C x 8 bytes per model: 289 MB "
               "for 100000 resamples of 19 classes, 18 GB for 100000 of ADE20K's 150"),
    Option("--seed", int, 0, 2**63 - 1, why="a seed of numpy's default_rng"),
    Option("--boundary-ratio", float, 0.0, 0.5, low_open=True,
           why="Boundary IoU's d as a fraction of the image diagonal, 0.02 in arXiv 2103.16562; at 0.5 every "
               "pixel is within d of the image border, so boundary IoU is mask IoU and larger values add nothing"),
    Option("--trimap-width", int, 1, 254, why="band widths in pixels, stored as uint8 distances with 255 as void"),
    Option("--ece-bins", int, 1, 1000, why="equal-width bins of max-softmax confidence (15 in arXiv 1706.04599)"),
    Option("confidence", float, 0.0, 1.0, low_open=True, high_open=True, why="the coverage of an interval"),
    # inference (segbench.engine.inference.InferenceConfig, segbench.engine.crf.CRFConfig)
    Option("--window", int, length=2, **_POS),
    Option("--stride", int, length=2, **_POS),
    Option("--memory-budget", float, why="MiB; 0 = whole images at any size", **_NONNEG_F),
    Option("--crf-iterations", int, 1, 1000, why="mean-field iterations (DeepLab: 10)"),
    Option("--mode", str, choices=("whole", "slide", "auto")),
    # data, timing and output sizes of compare, evaluate, benchmark, predict, export, models, hardware
    Option("--batch", int, **_POS),
    Option("--threads", int, **_POS),
    Option("--max-images", int, why="0 = all", **_NONNEG),
    Option("--grid", int, **_NONNEG),
    Option("--size", int, length=2, **_POS),
    Option("--min-time", float, **_POS_F),
    Option("--warmup-time", float, **_NONNEG_F),
    Option("--budget", float, **_POS_F),
    Option("--rel-ci", float, 0.0, 1.0, low_open=True, high_open=True,
           why="the half-width of the median's interval as a fraction of it"),
    Option("--timeout", float, **_POS_F),
    Option("--time-budget", float, why="seconds", **_POS_F),
    Option("--corruption-images", int, why="0 = all", **_NONNEG),
    Option("--alpha", float, 0.0, 1.0, why="mask opacity"),
    Option("--atol", float, **_POS_F),
    Option("--max-miou-drop", float, why="mIoU points", **_NONNEG_F),
    Option("--opset", int, 17, why="the ONNX opsets segbench's exporters are checked with start at 17"),
    Option("--num-classes", int, **_POS),
    Option("--std", float, length=3, why="input normalisation divides by it", **_POS_F),
    Option("--mean", float, length=3),
    Option("--format", str, choices=("safetensors", "onnx")),
    Option("--dtype", str, choices=("fp16", "fp32")),
    Option("--exporter", str, choices=("dynamo", "torchscript")),
    # training recipes (segbench.config.TrainConfig); keys as in the YAML and --set
    Option("data.val_max_images", int, why="0 = all", **_NONNEG),
    Option("data.num_workers", int, **_NONNEG),
    Option("data.blur_prob", float, 0.0, 1.0),
    Option("data.noise_std", float, why="on the 0..255 scale", **_NONNEG_F),
    Option("data.crop_size", int, 0, length=2, low_open=True, why="training crop H, W in pixels"),
    Option("optim.name", str, choices=("sgd", "adamw")),
    Option("optim.lr", float, **_NONNEG_F),
    Option("optim.momentum", float, 0.0, 1.0),
    Option("optim.weight_decay", float, **_NONNEG_F),
    Option("optim.poly_power", float, **_NONNEG_F),
    Option("optim.warmup_iters", int, **_NONNEG),
    Option("optim.backbone_lr_mult", float, **_NONNEG_F),
    Option("optim.grad_clip_norm", float, why="0 = off", **_NONNEG_F),
    Option("loss.ce", float, **_NONNEG_F),
    Option("loss.ohem", float, **_NONNEG_F),
    Option("loss.dice", float, **_NONNEG_F),
    Option("loss.ohem_thresh", float, 0.0, 1.0, low_open=True, why="a probability"),
    Option("loss.ohem_min_kept", int, **_NONNEG),
    Option("loss.dice_smooth", float, **_NONNEG_F),
    Option("loss.label_smoothing", float, 0.0, 0.999, why="1 would make every target uniform"),
    Option("ema_decay", float, 0.0, 0.99999, why="0 = off; 1 would never update the average"),
    Option("iters", int, **_POS),
    Option("batch_size", int, **_POS),
    Option("aux_weight", float, **_NONNEG_F),
    Option("class_weighting", str, choices=("none", "median_frequency", "inverse_log")),
    Option("amp", str, choices=("none", "bf16", "fp16")),
    Option("val_every", int, **_POS),
    Option("ckpt_every", int, why="0 = only when validating", **_NONNEG),
    Option("log_every", int, **_POS),
    Option("seed", int, 0, 2**63 - 1),
    Option("threads", int, why="0 = torch's default", **_NONNEG),
)  # fmt: skip


def option(name: str) -> Option:
    """The row of ``name`` (a flag, a recipe key or an API name).

    Raises:
        KeyError: no such row (a programming error, not a user's).
    """
    return OPTIONS[name]


API_NAMES = frozenset({"confidence"})
"""Rows of Python-API settings that have neither a flag nor a recipe key."""


def recipe_keys() -> list[str]:
    """The rows of training-recipe keys (``optim.lr``, ``iters``, ...): every row that is not a flag or an
    API-only setting."""
    return [n for n in OPTIONS if not n.startswith("-") and n not in API_NAMES]


def check(name: str, value, label: str | None = None):
    """``value`` when it passes the rule of ``name``, else :class:`UserError`; lists are checked element by
    element (and their length, for rows with a :attr:`Option.length`).

    Args:
        name: the row (:data:`OPTIONS`).
        value: the value (None passes: "not given").
        label: how the message names the setting (default ``name``; the API passes its field's name).

    Raises:
        UserError: ``"LABEL: must be ..., got ... (why)"``; for a list ``"LABEL: expected 2 whole numbers
            above 0, got [...]"``.
    """
    rule, label = OPTIONS[name], label or name
    if value is None:
        return value
    values = value if isinstance(value, (list, tuple)) else [value]
    if rule.length is not None and (not isinstance(value, (list, tuple)) or len(values) != rule.length):
        raise _list_error(rule, label, value)
    for v in values:
        reason = rule.problem(float(v) if rule.type is float and isinstance(v, int) and not isinstance(v, bool) else v)
        if reason:
            raise _list_error(rule, label, value) if rule.length is not None else UserError(f"{label}: {reason}")
    return value


def _list_error(rule: Option, label: str, value) -> UserError:
    kind = {int: "whole numbers", float: "finite numbers", str: "strings"}[rule.type]
    return UserError(f"{label}: expected {rule.length} {kind} {rule.bounds()}, got {value!r}".replace("  ", " "))


def check_fields(obj, fields: dict[str, str]) -> None:
    """:func:`check` every attribute of ``obj`` named in ``fields`` (attribute -> row), naming the attribute
    and the row (``max_images (--max-images)``).

    Raises:
        UserError: the first attribute out of its range.
    """
    for attr, name in fields.items():
        check(name, getattr(obj, attr), attr if attr == name else f"{attr} ({name})")


COMPARE_FIELDS = {"batch": "--batch", "threads": "--threads", "max_images": "--max-images", "grid_images": "--grid",
                  "min_time_s": "--min-time", "input_size": "--size"}  # fmt: skip
"""The rows of :class:`segbench.compare.CompareOptions`' fields."""

SCORE_FIELDS = {"dilation_ratio": "--boundary-ratio", "max_width": "--trimap-width", "num_bins": "--ece-bins",
                "bootstrap": "--bootstrap", "seed": "--seed"}  # fmt: skip
"""The rows of :class:`segbench.metrics.per_image.ScoreOptions`' fields."""
