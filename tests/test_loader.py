"""The seeded training stream (segbench.data.loader) and the joint transforms' photometric step."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from segbench.data.loader import RankSampler, SeededSamples, collate_pairs
from segbench.data.transforms import to_tensor_pair, train_transform


def _pairs(n=5, size=16):
    rng = np.random.default_rng(0)
    pairs = [
        to_tensor_pair(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), np.full((size, size), i, np.uint8))
        for i in range(n)
    ]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _samples(seed=0):
    images, masks = _pairs()
    return SeededSamples(images, masks, train_transform((12, 12), (0.5, 2.0), True, 16), seed)


def _batches(loader):
    return [(x.clone(), y.clone()) for x, y in loader]


def test_each_epoch_shows_every_image_once_and_epochs_differ():
    ds = _samples()
    epochs = [tuple(ds.index(k) for k in range(5 * e, 5 * e + 5)) for e in range(4)]
    assert all(sorted(e) == list(range(5)) for e in epochs)
    assert len(set(epochs)) > 1  # a fresh permutation per epoch


def test_samples_are_a_function_of_seed_and_number_only():
    ds = _samples()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = ds[7]
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left alone
    for k in (3, 9, 7):  # any order, any repeat
        b = ds[k]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[1].unique().tolist() == [ds.index(7)]  # the mask follows its image
    other = _samples(seed=1)
    assert any(not torch.equal(ds[k][0], other[k][0]) for k in range(10))  # another seed, another stream


def test_batches_do_not_depend_on_workers_or_processes():
    ds = _samples()
    kwargs = {"collate_fn": collate_pairs, "generator": torch.Generator()}
    one = _batches(DataLoader(ds, batch_size=4, sampler=RankSampler(0, 3, 4), num_workers=0, **kwargs))
    two_workers = _batches(DataLoader(ds, batch_size=4, sampler=RankSampler(0, 3, 4), num_workers=2, **kwargs))
    assert len(one) == 3 and one[0][0].shape == (4, 3, 12, 12) and one[0][1].shape == (4, 12, 12)
    for (x1, y1), (x2, y2) in zip(one, two_workers):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    # two processes of batch 2: rank 0 holds the first half of every global batch, rank 1 the second
    halves = [
        _batches(DataLoader(ds, batch_size=2, sampler=RankSampler(0, 3, 4, rank=r, world_size=2), **kwargs))
        for r in (0, 1)
    ]
    for it, (x, y) in enumerate(one):
        assert torch.equal(torch.cat([halves[0][it][0], halves[1][it][0]]), x)
        assert torch.equal(torch.cat([halves[0][it][1], halves[1][it][1]]), y)
    # resuming at iteration 2 gives iteration 2's batch
    resumed = _batches(DataLoader(ds, batch_size=4, sampler=RankSampler(2, 3, 4), **kwargs))
    assert torch.equal(resumed[0][0], one[2][0])


def test_rank_sampler_rejects_an_uneven_split():
    with pytest.raises(ValueError, match="not divisible"):
        RankSampler(0, 1, 5, rank=0, world_size=2)


def test_photometric_distortion_changes_the_image_never_the_mask():
    rng = np.random.default_rng(1)
    image = rng.integers(30, 220, (20, 24, 3), dtype=np.uint8)
    mask = rng.integers(0, 3, (20, 24)).astype(np.uint8)
    mask[:2] = 255
    img_t, mask_t = to_tensor_pair(image, mask)
    plain = train_transform((20, 24), (1.0, 1.0), False, 20)
    photometric = train_transform((20, 24), (1.0, 1.0), False, 20, photometric=True)
    changed = 0
    for seed in range(8):
        torch.manual_seed(seed)
        x, y = photometric(img_t, mask_t)
        assert torch.equal(y, mask_t)  # labels untouched, void pixels included
        changed += not torch.equal(x, img_t)
    assert changed >= 6  # each of 4 jitters is applied with probability 0.5: none at all has p = 1/16
    x, y = plain(img_t, mask_t)
    assert torch.equal(x, img_t) and torch.equal(y, mask_t)


def test_gamma_blur_and_noise_change_the_image_never_the_mask():
    rng = np.random.default_rng(2)
    image = rng.integers(30, 220, (20, 24, 3), dtype=np.uint8)
    mask = rng.integers(0, 3, (20, 24)).astype(np.uint8)
    img_t, mask_t = to_tensor_pair(image, mask)
    for kwargs in ({"gamma_range": (1.5, 2.0)}, {"blur_prob": 1.0}, {"noise_std": 20.0}):
        augment = train_transform((20, 24), (1.0, 1.0), False, 20, **kwargs)
        changed = 0
        for seed in range(6):
            torch.manual_seed(seed)
            x, y = augment(img_t, mask_t)
            assert torch.equal(y, mask_t) and x.dtype == torch.uint8 and x.shape == img_t.shape
            changed += not torch.equal(x, img_t)
        assert changed >= 2, kwargs  # probability 0.5 (gamma, noise) or 1 (blur) per draw
    torch.manual_seed(0)
    darker = [train_transform((20, 24), (1.0, 1.0), False, 20, gamma_range=(1.5, 2.0))(img_t, mask_t)[0]
              for _ in range(6)]  # fmt: skip
    assert any(d.float().mean() < img_t.float().mean() - 5 for d in darker)  # gamma > 1 darkens
