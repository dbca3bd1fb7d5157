"""The registry of network builders (``list_models()``, ``build_model(name, **kw)``) and of their trained
weights (:data:`WEIGHTS`)."""

from __future__ import annotations

import inspect

from torch import nn

from segbench.errors import UserError
from segbench.models import deeplabv3 as _deeplabv3
from segbench.models import deeplabv3plus as _deeplabv3plus
from segbench.models import fast_scnn as _fast_scnn
from segbench.models import fcn as _fcn
from segbench.models import lraspp as _lraspp
from segbench.models import unet as _unet
from segbench.models.pretrained import Weights
from segbench.registry import Registry

MODELS: Registry = Registry("model")
for _fn in (  # registration is explicit: this list is every network segbench has
    _fcn.fcn_resnet50,
    _fcn.fcn_resnet101,
    _deeplabv3.deeplabv3_resnet50,
    _deeplabv3.deeplabv3_resnet101,
    _deeplabv3.deeplabv3_mobilenet_v3_large,
    _deeplabv3plus.deeplabv3plus_resnet50,
    _deeplabv3plus.deeplabv3plus_resnet101,
    _deeplabv3plus.deeplabv3plus_mobilenet_v2,
    _deeplabv3plus.deeplabv3plus_mobilenet_v3_large,
    _deeplabv3plus.deeplabv3plus_xception65,
    _lraspp.lraspp_mobilenet_v3_large,
    _fast_scnn.fast_scnn,
    _unet.unet,
    _unet.unet_resnet18,
    _unet.unet_resnet34,
    _fcn.fcn32s_vgg16,
    _fcn.fcn16s_vgg16,
    _fcn.fcn8s_vgg16,
):
    MODELS.register()(_fn)

#: Every network's trained weights, by architecture and tag, as the architecture modules declare them.
WEIGHTS: dict[str, dict[str, Weights]] = {}
for _spec in (*_fcn.WEIGHTS, *_deeplabv3.WEIGHTS, *_deeplabv3plus.WEIGHTS, *_lraspp.WEIGHTS, *_fast_scnn.WEIGHTS,
              *_unet.WEIGHTS):  # fmt: skip
    WEIGHTS.setdefault(_spec.arch, {})[_spec.tag] = _spec


def list_models() -> list[str]:
    """Names of all registered networks, sorted."""
    return MODELS.names()


def build_model(name: str, **kwargs) -> nn.Module:
    """Build network ``name`` with random weights.

    Args:
        name: a registered name (see :func:`list_models`).
        **kwargs: the builder's keyword arguments (``num_classes``, ``aux_loss``, ...).

    Raises:
        UserError: unknown name (close names suggested) or a keyword the builder does not accept
            (the accepted ones listed).
    """
    fn = MODELS.get(name)
    accepted = inspect.signature(fn).parameters
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise UserError(f"model {name!r} does not accept {', '.join(unknown)}; accepted: {', '.join(accepted)}")
    return fn(**kwargs)
