"""Trimap bands: a hand-made case, a brute-force reference, and the widest band against the full matrix."""

import numpy as np
import pytest
import torch

from segbench.errors import UserError
from segbench.metrics.trimap import Trimap, band_confusions, distance_to_other_class


def _reference_distance(lab, ignore, max_width):
    h, w = lab.shape
    out = np.full((h, w), max_width + 1)
    for y in range(h):
        for x in range(w):
            if lab[y, x] == ignore:
                continue
            for r in range(1, max_width + 1):
                win = lab[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1]
                if ((win != ignore) & (win != lab[y, x])).any():
                    out[y, x] = r
                    break
    return out


def test_hand_made_bands():
    # columns: class 0 | 0 | void | 1 | 1 ; the void column separates the classes
    target = torch.tensor([[0, 0, 9, 1, 1]] * 3)
    dist = distance_to_other_class(target.unsqueeze(0), ignore_index=9, max_width=4)[0]
    assert dist.tolist() == [[3, 2, 5, 2, 3]] * 3
    pred = torch.tensor([[0, 1, 0, 1, 0]] * 3)
    bands = band_confusions(pred, target, 2, ignore_index=9, max_width=3)[0]
    assert bands[0].sum() == 0  # width 1: the void column keeps the classes 2 px apart
    assert bands[1].tolist() == [[0, 3], [0, 3]]  # width 2: columns 1 and 3 (pred 1, 1)
    assert bands[2].tolist() == [[3, 3], [3, 3]]  # width 3: every labelled pixel


def test_image_border_is_not_a_boundary_and_void_makes_none():
    target = torch.tensor([[[0, 0, 0], [0, 7, 0]]])
    assert (distance_to_other_class(target, 7, 5) == 6).all()
    assert (distance_to_other_class(torch.full((1, 3, 3), 7), 7, 5) == 6).all()


def test_matches_brute_force_on_random_maps():
    rng = np.random.default_rng(0)
    target = np.kron(rng.integers(0, 4, size=(3, 5, 6)), np.ones((1, 3, 3), dtype=np.int64))  # 3 = void
    dist = distance_to_other_class(torch.from_numpy(target), 3, 7).numpy()
    for i in range(3):
        assert (dist[i] == _reference_distance(target[i], 3, 7)).all()


def test_widest_band_holds_every_pixel_near_another_class_and_scores():
    rng = np.random.default_rng(1)
    target = torch.from_numpy(np.kron(rng.integers(0, 3, size=(2, 3, 3)), np.ones((1, 4, 4), dtype=np.int64)))
    pred = torch.from_numpy(rng.integers(0, 3, size=target.shape))
    trimap = Trimap(num_classes=3, max_width=12)
    per_image = trimap.update(pred, target)
    assert per_image.shape == (2, 12, 3, 3)
    for i in range(2):
        if len(torch.unique(target[i])) > 1:  # 12 px reach every pixel of a 12 x 12 image
            full = np.zeros((3, 3), dtype=np.int64)
            np.add.at(full, (target[i].numpy().ravel(), pred[i].numpy().ravel()), 1)
            assert (per_image[i, -1] == full).all()
    scores = trimap.compute()
    assert scores.widths == list(range(1, 13)) and scores.num_pixels == sorted(scores.num_pixels)
    assert 0 <= scores.pixel_accuracy[-1] <= 1 and set(scores.to_dict()) == {"width_px", "miou", "pixel_accuracy",
                                                                          "num_pixels"}  # fmt: skip


def test_bad_arguments():
    with pytest.raises(UserError):
        Trimap(num_classes=2, max_width=0)
    with pytest.raises(UserError):
        band_confusions(torch.zeros(2, 2, dtype=torch.int64), torch.full((2, 2), 4), 2, ignore_index=255)
