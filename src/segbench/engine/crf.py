"""Dense CRF post-processing of softmax probabilities (boundary refinement).

Reference: Krähenbühl and Koltun, "Efficient Inference in Fully Connected CRFs with Gaussian Edge
Potentials", NIPS 2011, arXiv 1210.5644. As used after a CNN by DeepLab: Chen et al., "Semantic Image
Segmentation with Deep Convolutional Nets and Fully Connected CRFs", arXiv 1412.7062, and "DeepLab: Semantic
Image Segmentation with Deep Convolutional Nets, Atrous Convolution, and Fully Connected CRFs",
arXiv 1606.00915.

The energy of a labelling ``x`` of an image ``I`` is ``sum_i -log P(x_i) + sum_{i<j} mu(x_i, x_j) k(f_i, f_j)``:
the unary is the negative log of the network's probability, ``mu`` is the Potts model, and ``k`` is the
sum of two Gaussian kernels over pixel positions ``p`` and colours ``I``:

- appearance (bilateral): ``w1 * exp(-|p_i - p_j|^2 / (2 sigma_alpha^2) - |I_i - I_j|^2 / (2 sigma_beta^2))``:
  nearby pixels of similar colour take the same label;
- smoothness: ``w2 * exp(-|p_i - p_j|^2 / (2 sigma_gamma^2))``: removes small isolated regions.

Mean-field inference runs ``iterations`` steps. Inference itself is done by the reference C++
implementation through ``pydensecrf2`` (a maintained PyPI build of ``pydensecrf``, the Cython binding of
Krähenbühl's code): install the optional extra ``pip install 'segbench[crf]'``.

Defaults (:class:`CRFConfig`) are DeepLab's: 10 mean-field iterations, ``w2 = 3``, ``sigma_gamma = 1``,
``w1 = 4``, ``sigma_alpha = 67``, ``sigma_beta = 3``, the values DeepLab v2 (arXiv 1606.00915, ResNet-101 on
PASCAL VOC 2012, where ``w1``, ``sigma_alpha`` and ``sigma_beta`` were picked by cross-validation on val
images) released with its models, as reproduced in kazuto1011/deeplab-pytorch ``configs/voc12.yaml`` (CRF:
ITER_MAX 10, POS_W 3, POS_XY_STD 1, BI_W 4, BI_XY_STD 67, BI_RGB_STD 3). They were tuned on VOC images of
about 500 x 500 pixels; other data may want others.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
import torch

from segbench.errors import UserError

__all__ = ["INSTALL_HINT", "CRFConfig", "crf_available", "dense_crf"]

INSTALL_HINT = (
    "--crf needs pydensecrf2 (the Python binding of Krähenbühl's dense CRF), which is not installed; "
    "install it with: pip install 'segbench[crf]'  (or: pip install pydensecrf2)"
)


@dataclass(frozen=True)
class CRFConfig:
    """Parameters of the fully connected CRF (names of arXiv 1210.5644 / 1606.00915 in brackets).

    Attributes:
        iterations: mean-field iterations.
        smooth_weight: weight of the smoothness kernel [w2].
        smooth_sxy: its spatial standard deviation in pixels [sigma_gamma].
        appearance_weight: weight of the appearance (bilateral) kernel [w1].
        appearance_sxy: its spatial standard deviation in pixels [sigma_alpha].
        appearance_srgb: its colour standard deviation in 0..255 intensity levels [sigma_beta].
        min_prob: probabilities are clipped to at least this before ``-log`` (a zero would be an
            infinite unary).

    Raises:
        UserError: a value out of range (the message names the parameter).
    """

    iterations: int = 10
    smooth_weight: float = 3.0
    smooth_sxy: float = 1.0
    appearance_weight: float = 4.0
    appearance_sxy: float = 67.0
    appearance_srgb: float = 3.0
    min_prob: float = 1e-8

    def __post_init__(self) -> None:
        if int(self.iterations) != self.iterations or self.iterations < 1:
            raise UserError(f"CRF iterations {self.iterations}: expected an integer >= 1")
        for name in ("smooth_sxy", "appearance_sxy", "appearance_srgb", "min_prob"):
            if not (getattr(self, name) > 0):
                raise UserError(f"CRF {name} {getattr(self, name)}: expected a positive number")
        for name in ("smooth_weight", "appearance_weight"):
            if not (getattr(self, name) >= 0):
                raise UserError(f"CRF {name} {getattr(self, name)}: expected a number >= 0")

    @classmethod
    def from_overrides(cls, items: list[str] | None, iterations: int | None = None) -> CRFConfig:
        """Build from ``NAME=VALUE`` strings (``--crf-param appearance_sxy=50``).

        Raises:
            UserError: unknown name (the valid ones are listed) or a value that is not a number.
        """
        names = {f.name: f.type for f in fields(cls)}
        values: dict = {}
        for item in items or []:
            key, sep, raw = item.partition("=")
            key = key.strip()
            if not sep or key not in names:
                raise UserError(f"--crf-param {item!r}: expected NAME=VALUE with NAME one of {', '.join(names)}")
            try:
                values[key] = int(raw) if key == "iterations" else float(raw)
            except ValueError:
                raise UserError(f"--crf-param {item!r}: {raw!r} is not a number") from None
        if iterations is not None:
            values["iterations"] = iterations
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return (
            f"dense CRF, {self.iterations} iterations, smoothness w2={self.smooth_weight:g} sigma={self.smooth_sxy:g} px, "
            f"appearance w1={self.appearance_weight:g} sigma={self.appearance_sxy:g} px / {self.appearance_srgb:g} levels"
        )


def _module():
    try:
        import pydensecrf.densecrf as dcrf
    except ImportError:
        return None
    return dcrf


def crf_available() -> bool:
    """True when the ``pydensecrf2`` binding can be imported."""
    return _module() is not None


def require_crf() -> None:
    """Raises:
    UserError: pydensecrf2 is not installed (the message says how to install it)."""
    if _module() is None:
        raise UserError(INSTALL_HINT)


def dense_crf(image: np.ndarray, probs, cfg: CRFConfig | None = None) -> np.ndarray:
    """Refine softmax probabilities with a fully connected CRF (mean-field inference).

    Args:
        image: ``(H, W, 3)`` uint8 RGB, the image the probabilities belong to.
        probs: ``(C, H, W)`` or ``(1, C, H, W)`` probabilities (numpy array or tensor, any device); each
            pixel's values should sum to 1.
        cfg: CRF parameters (default :class:`CRFConfig`, DeepLab's).

    Returns:
        ``(C, H, W)`` float32 approximate marginals after ``cfg.iterations`` mean-field steps; the label
        map is its argmax over C.

    Raises:
        UserError: pydensecrf2 is not installed.
        ValueError: shapes of ``image`` and ``probs`` do not match.
    """
    dcrf = _module()
    if dcrf is None:
        raise UserError(INSTALL_HINT)
    cfg = cfg or CRFConfig()
    if isinstance(probs, torch.Tensor):
        probs = probs.detach().float().cpu().numpy()
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim == 4 and probs.shape[0] == 1:
        probs = probs[0]
    if probs.ndim != 3 or image.ndim != 3 or image.shape[2] != 3 or probs.shape[1:] != image.shape[:2]:
        raise ValueError(f"probs (C, H, W) {probs.shape} and image (H, W, 3) {image.shape} do not match")
    c, h, w = probs.shape
    unary = -np.log(np.clip(probs, cfg.min_prob, 1.0)).reshape(c, h * w)
    crf = dcrf.DenseCRF2D(w, h, c)
    crf.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
    crf.addPairwiseGaussian(sxy=cfg.smooth_sxy, compat=cfg.smooth_weight)
    crf.addPairwiseBilateral(
        sxy=cfg.appearance_sxy,
        srgb=cfg.appearance_srgb,
        rgbim=np.ascontiguousarray(image, dtype=np.uint8),
        compat=cfg.appearance_weight,
    )
    q = crf.inference(int(cfg.iterations))
    return np.asarray(q, dtype=np.float32).reshape(c, h, w)
