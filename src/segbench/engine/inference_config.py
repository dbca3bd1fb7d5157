"""How inference runs over one image: :class:`InferenceConfig` (whole image, sliding window, TTA, memory
budget) and the training size a model's weights record (:func:`training_size`), the default window.

The inference itself is in :mod:`segbench.engine.inference`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from segbench.errors import UserError

__all__ = ["DEFAULT_WINDOW", "MODES", "InferenceConfig", "training_size"]

MODES = ("whole", "slide", "auto")
DEFAULT_WINDOW = (512, 512)
"""Window ``(H, W)`` in pixels when neither the config nor the model's recipe gives one."""


@dataclass(frozen=True)
class InferenceConfig:
    """How :func:`predict_probs` runs a model over one image.

    Attributes:
        mode: ``"whole"``, ``"slide"`` or ``"auto"`` (see the module docstring and :func:`choose_mode`).
        window: sliding-window size ``(H, W)`` in pixels; None: the model's training crop size when
            known (:meth:`for_model`), else :data:`DEFAULT_WINDOW`.
        stride: step between windows ``(H, W)`` in pixels, at most the window (no gaps); None: 2/3 of the
            window (rounded up), i.e. about 1/3 overlap.
        gaussian: weight each window's logits by a Gaussian centred on it before averaging.
        scales: TTA resize factors; ``(1.0,)`` is no multi-scale TTA.
        flip: TTA with the left-right mirrored image as well.
        memory_budget_mib: ``whole`` and ``auto`` slide when whole-image inference is predicted to need more
            than this many MiB (2**20 bytes); 0 disables the memory rule (whole images at any size).
        auto_size_ratio: ``auto`` slides when the image height or width exceeds this multiple of the
            window's.

    Raises:
        UserError: an option out of range (the message names the option).
    """

    mode: str = "whole"
    window: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None
    gaussian: bool = False
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    memory_budget_mib: float = 2048.0
    auto_size_ratio: float = 2.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UserError(f"--mode {self.mode!r}: expected one of {', '.join(MODES)}")
        for name in ("window", "stride"):
            v = getattr(self, name)
            if v is None:
                continue
            v = tuple(int(x) for x in v)
            if len(v) != 2 or min(v) < 1:
                raise UserError(f"--{name} {' '.join(map(str, v))}: expected two positive sizes H W in pixels")
            object.__setattr__(self, name, v)
        if (
            self.window is not None
            and self.stride is not None
            and (self.stride[0] > self.window[0] or self.stride[1] > self.window[1])
        ):
            raise UserError(
                f"--stride {self.stride[0]} {self.stride[1]}: must not exceed the window "
                f"{self.window[0]} {self.window[1]} (windows would leave gaps)"
            )
        scales = tuple(float(s) for s in self.scales)
        if not scales or any(not math.isfinite(s) or s <= 0 or s > 8 for s in scales):
            raise UserError(f"--tta-scales {' '.join(map(str, scales))}: expected factors in (0, 8]")
        object.__setattr__(self, "scales", scales)
        if not (self.memory_budget_mib >= 0):
            raise UserError(f"--memory-budget {self.memory_budget_mib}: expected MiB >= 0 (0 = no memory rule)")
        if not (self.auto_size_ratio >= 1):
            raise UserError(f"auto_size_ratio {self.auto_size_ratio}: expected >= 1")

    @property
    def tta(self) -> bool:
        """True when test-time augmentation is asked for (more than scale 1.0, or flip)."""
        return self.flip or self.scales != (1.0,)

    @property
    def plain(self) -> InferenceConfig:
        """The same config without TTA (the baseline that TTA is compared with)."""
        return replace(self, scales=(1.0,), flip=False)

    def resolved_window(self) -> tuple[int, int]:
        return self.window or DEFAULT_WINDOW

    def resolved_stride(self) -> tuple[int, int]:
        if self.stride is not None:
            return self.stride
        wh, ww = self.resolved_window()
        return (max(1, math.ceil(wh * 2 / 3)), max(1, math.ceil(ww * 2 / 3)))

    def for_model(self, info_or_meta) -> InferenceConfig:
        """This config with ``window`` resolved: as given, else the model's training crop size when its
        weights record one (:func:`training_size`), else :data:`DEFAULT_WINDOW`.

        Args:
            info_or_meta: a :class:`segbench.models.weights.ModelInfo` or its ``meta`` dict.

        Raises:
            UserError: ``stride`` exceeds the resolved window.
        """
        window = self.window or training_size(info_or_meta) or DEFAULT_WINDOW
        if self.stride is not None and (self.stride[0] > window[0] or self.stride[1] > window[1]):
            raise UserError(
                f"--stride {self.stride[0]} {self.stride[1]}: must not exceed the window {window[0]} {window[1]}"
            )
        return replace(self, window=window)

    def describe(self) -> str:
        """One line for reports, e.g. ``slide 360x480 stride 240x320 gaussian; TTA scales 0.5,1 + flip``."""
        if self.mode == "whole":
            text = "whole image"
        else:
            (wh, ww), (sh, sw) = self.resolved_window(), self.resolved_stride()
            text = f"{self.mode} (window {wh}x{ww}, stride {sh}x{sw}{', gaussian' if self.gaussian else ''})"
            if self.mode == "auto":
                text += f"; auto slides above {self.auto_size_ratio:g}x the window or {self.memory_budget_mib:g} MiB"
        if self.tta:
            text += "; TTA scales " + ",".join(f"{s:g}" for s in self.scales) + (" + flip" if self.flip else "")
        return text

    def to_dict(self) -> dict:
        return {
            "mode": self.mode,
            "window": list(self.resolved_window()),
            "stride": list(self.resolved_stride()),
            "gaussian": self.gaussian,
            "scales": list(self.scales),
            "flip": self.flip,
            "memory_budget_mib": self.memory_budget_mib,
            "auto_size_ratio": self.auto_size_ratio,
        }


def training_size(info_or_meta) -> tuple[int, int] | None:
    """The training crop size ``(H, W)`` recorded with a model's weights (``meta["config"]["data"]["crop_size"]``,
    written by ``segbench train``), or None when the weights do not say (e.g. torchvision's checkpoints)."""
    meta = getattr(info_or_meta, "meta", info_or_meta)
    try:
        size = meta["config"]["data"]["crop_size"]
        h, w = (int(v) for v in size)
    except (KeyError, TypeError, ValueError):
        return None
    return (h, w) if h > 0 and w > 0 else None
