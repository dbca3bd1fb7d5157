"""Every registered network: logits at the input's size for 65 x 97 and 360 x 480 inputs (with the auxiliary
logits where there is an aux head), and ``output_stride`` changing the encoder's strides, measured on the
feature maps the model computes.

Shapes are checked on the meta device (no arithmetic: the large networks cost nothing); the mobile
networks also run for real at 360 x 480. Real-valued outputs at 65 x 97 and gradients for every network:
tests/models/test_models.py (and test_models_classic.py)."""

import inspect
import math

import pytest
import torch

from segbench.models import MODELS, build_model, list_models

NUM_CLASSES = 3
SIZES = [(65, 97), (360, 480)]
# cheap enough to run for real at 360 x 480 on one core (well under a second each)
REAL_AT_FULL_SIZE = [
    "fast_scnn", "lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", "deeplabv3plus_mobilenet_v2",
    "deeplabv3plus_mobilenet_v3_large",
]  # fmt: skip


def _accepts(name: str, keyword: str) -> bool:
    return keyword in inspect.signature(MODELS.get(name)).parameters


def _build_meta(name: str, **kwargs) -> tuple[torch.nn.Module, bool]:
    """The network on the meta device, with its auxiliary head where the builder accepts ``aux_loss=True``
    (the others refuse it with a UserError); returns (model, has_aux_head)."""
    from segbench.errors import UserError

    with torch.device("meta"):
        try:
            return build_model(name, num_classes=NUM_CLASSES, aux_loss=True, **kwargs).eval(), True
        except UserError:
            return build_model(name, num_classes=NUM_CLASSES, **kwargs).eval(), False


OS_MODELS = [n for n in list_models() if _accepts(n, "output_stride")]


@pytest.mark.parametrize("name", list_models())
def test_logits_have_the_input_size(name):
    model, aux = _build_meta(name)
    for size in SIZES:
        with torch.device("meta"):
            logits, aux_logits = model(torch.empty(2, 3, *size), with_aux=True)
            plain = model(torch.empty(2, 3, *size))
        assert isinstance(plain, torch.Tensor) and plain.shape == (2, NUM_CLASSES, *size)
        assert logits.shape == (2, NUM_CLASSES, *size)
        assert (aux_logits is not None) == aux
        if aux:
            assert aux_logits.shape == (2, NUM_CLASSES, *size)


@pytest.mark.parametrize("name", REAL_AT_FULL_SIZE)
def test_mobile_networks_compute_finite_full_size_logits(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=NUM_CLASSES).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 360, 480))
    assert out.shape == (1, NUM_CLASSES, 360, 480) and torch.isfinite(out).all()


def test_networks_with_an_output_stride():
    assert set(OS_MODELS) >= {
        "fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101", "deeplabv3_mobilenet_v3_large",
        "lraspp_mobilenet_v3_large", "deeplabv3plus_resnet50", "deeplabv3plus_resnet101",
        "deeplabv3plus_mobilenet_v2", "deeplabv3plus_mobilenet_v3_large", "deeplabv3plus_xception65",
    }  # fmt: skip


@pytest.mark.parametrize("name", OS_MODELS)
def test_output_stride_changes_the_encoder_strides(name):
    h, w = 64, 96
    last_sizes = {}
    for output_stride in (8, 16):
        features: list[torch.Tensor | None] = []
        model, _ = _build_meta(name, output_stride=output_stride)
        hook = model.encoder.register_forward_hook(lambda mod, args, out, seen=features: seen.extend(out))
        with torch.device("meta"):
            logits = model(torch.empty(1, 3, h, w))
        hook.remove()
        assert logits.shape == (1, NUM_CLASSES, h, w)
        last = tuple(features[-1].shape[-2:])  # the map the decoder reads, as computed in the forward pass
        assert last == (math.ceil(h / output_stride), math.ceil(w / output_stride)), (output_stride, last)
        last_sizes[output_stride] = last
    assert last_sizes[8] == (8, 12) and last_sizes[16] == (4, 6)
