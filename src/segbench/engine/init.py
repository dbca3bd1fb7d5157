"""A network's starting weights for training: ``model.init`` (a whole network, classifier rebuilt when the
class count differs) or ``model.encoder_init`` (the encoder of another network with the same encoder class).

Building the source network runs under ``torch.random.fork_rng`` so it does not shift the training RNG.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from segbench.config import TrainConfig
from segbench.errors import UserError
from segbench.models import MODELS, build_model, load_model


def load_matching(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, list]:
    """Load the tensors of ``state`` whose name and shape match ``model``; leave the rest as built.

    Used for fine-tuning with another number of classes: the classifier (and auxiliary head) keep their
    fresh initialisation, everything else loads.

    Returns:
        ``{"loaded": [names], "shape_mismatch": [(name, source shape, model shape)],
        "missing": [model names absent from state], "unexpected": [state names absent from the model]}``.
    """
    own = model.state_dict()
    loaded = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    mismatch = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state.items() if k in own and k not in loaded]
    model.load_state_dict(loaded, strict=False)
    return {
        "loaded": list(loaded),
        "shape_mismatch": mismatch,
        "missing": [k for k in own if k not in state],
        "unexpected": [k for k in state if k not in own],
    }


def _init_report(source: str, result: dict, num_classes: int) -> str:
    def names(keys):
        return ", ".join(keys[:6]) + (f" (+{len(keys) - 6} more)" if len(keys) > 6 else "")

    total = len(result["loaded"]) + len(result["shape_mismatch"]) + len(result["missing"])
    parts = [f"model.init: loaded {len(result['loaded'])} of {total} tensors from {source}"]
    if result["shape_mismatch"]:
        shapes = [f"{k} {list(a)} -> {list(b)}" for k, a, b in result["shape_mismatch"]]
        parts.append(f"rebuilt for {num_classes} classes (shape differs): {names(shapes)}")
    if result["missing"]:
        parts.append(f"not in the source, freshly initialised: {names(result['missing'])}")
    if result["unexpected"]:
        parts.append(f"in the source but not in the model, unused: {names(result['unexpected'])}")
    return "; ".join(parts)


def _load_encoder(model: nn.Module, source: str) -> str:
    """Load the encoder of the network in ``source`` (weights tag or checkpoint) into ``model.encoder``.

    Raises:
        UserError: the source cannot be read, its encoder is of another class, or none of its tensors fit.
    """
    with torch.random.fork_rng(devices=[]):  # building the source must not shift the training RNG
        loaded = load_model(source)
    theirs, ours = getattr(loaded.model, "encoder", None), getattr(model, "encoder", None)
    if theirs is None or ours is None or type(theirs) is not type(ours):
        raise UserError(
            f"model.encoder_init: {source} ({loaded.info.arch}) has a {type(theirs).__name__} encoder, "
            f"the model needs a {type(ours).__name__}"
        )
    result = load_matching(ours, theirs.state_dict())
    if not result["loaded"]:
        raise UserError(f"model.encoder_init: no encoder tensor of {source} fits")
    report = _init_report(loaded.info.name, result, 0).replace("model.init:", "model.encoder_init:", 1)
    return report.replace(" tensors from", " encoder tensors from", 1)


def initial_model(cfg: TrainConfig, num_classes: int) -> tuple[nn.Module, str | None]:
    """The network to train and, with ``model.init``, a one-line report of what was loaded."""
    name, init = cfg.model.name, cfg.model.init
    model = build_model(name, num_classes=num_classes, aux_loss=cfg.model.aux_loss)
    if cfg.model.encoder_init != "none":
        if init != "none":
            raise UserError("model.init and model.encoder_init: set one of them, not both")
        return model, _load_encoder(model, cfg.model.encoder_init)
    if init == "none":
        return model, None
    is_file = Path(init).is_file() or init.endswith((".pt", ".pth", ".safetensors"))
    arch_of_tag = init.partition(".")[0]
    if not is_file and "." in init and arch_of_tag in MODELS.names() and arch_of_tag != name:
        raise UserError(f"model.init: {init} holds {arch_of_tag} weights but model.name is {name}")
    with torch.random.fork_rng(devices=[]):  # building the source must not shift the training RNG
        loaded = load_model(init) if (not is_file and init.startswith(name + ".")) else load_model(name, weights=init)
    if loaded.info.arch != name:
        raise UserError(f"model.init: {init} holds {loaded.info.arch} weights but model.name is {name}")
    result = load_matching(model, loaded.model.state_dict())
    if not result["loaded"]:
        raise UserError(f"model.init: no tensor of {init} fits {name}")
    return model, _init_report(loaded.info.name, result, num_classes)
