"""segbench's counts against torchvision's published figures (weights metadata, available offline).

torchvision's ``num_params`` and ``_ops`` ("GFLOPS", in fact multiply-adds at 520 x 520) describe its
COCO-with-VOC-labels models, which carry the auxiliary head (except LR-ASPP) and compute it in forward.
Counted on the meta device: no arithmetic, so the large networks cost nothing.
"""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from segbench.bench import count_params
from segbench.models import build_model
from segbench.models.weights import TORCHVISION_WEIGHTS


@pytest.mark.parametrize("name", sorted(TORCHVISION_WEIGHTS))
def test_params_and_multiply_adds_match_torchvision(name):
    meta = TORCHVISION_WEIGHTS[name].meta
    aux = name != "lraspp_mobilenet_v3_large"
    with torch.device("meta"):
        model = build_model(name, num_classes=21, aux_loss=aux).eval()
    assert count_params(model) == meta["num_params"]
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.empty(1, 3, 520, 520, device="meta"), with_aux=True)
    gmacs = counter.get_total_flops() / 2 / 1e9
    assert gmacs == pytest.approx(meta["_ops"], rel=0.02)
