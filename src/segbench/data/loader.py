"""The seeded training stream: every training sample is a pure function of (seed, its number).

Sample number ``k = iteration * global_batch + slot`` is image ``perm_e[k mod n]`` of epoch
``e = k // n`` (a fresh permutation of the n images per epoch, so each epoch sees every image once),
augmented with torch's RNG seeded from ``(seed, k)``. Batches therefore do not depend on how many
DataLoader workers produce them or how many processes share a global batch, and a resumed run picks up
at its iteration without replaying anything.

:class:`RankSampler` hands process ``rank`` its slots of each global batch; a ``DataLoader`` over
:class:`SeededSamples` with that sampler and ``batch_size = global_batch / world_size`` yields the
process's share of each iteration's batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


def _seed(*words: int) -> int:
    return int(np.random.SeedSequence([int(w) for w in words]).generate_state(1)[0])


class SeededSamples(Dataset):
    """Augmented training samples addressed by their global number.

    Args:
        images: ``Image (3, H, W)`` uint8 tensors, one per training image.
        masks: matching ``Mask (H, W)`` uint8 tensors.
        augment: the joint transform (draws from torch's global RNG; see
            :func:`segbench.data.transforms.train_transform`).
        seed: the run's seed.

    ``dataset[k]`` returns ``(image (3, h, w) uint8, mask (h, w) uint8)``; torch's global RNG is left as
    it was (the sample's seed is applied inside ``torch.random.fork_rng``).
    """

    def __init__(self, images: list[torch.Tensor], masks: list[torch.Tensor], augment: Callable, seed: int) -> None:
        if not images or len(images) != len(masks):
            raise ValueError(f"need one mask per image and at least one image, got {len(images)} and {len(masks)}")
        self.images, self.masks, self.augment, self.seed = images, masks, augment, int(seed)
        self._epoch, self._perm = -1, None

    def __len__(self) -> int:  # addressable, not iterated: the sampler says which numbers to draw
        return 2**62

    def index(self, k: int) -> int:
        """Which image sample number ``k`` shows."""
        epoch, pos = divmod(int(k), len(self.images))
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(_seed(self.seed, 0, epoch))
            self._epoch, self._perm = epoch, torch.randperm(len(self.images), generator=g).tolist()
        return self._perm[pos]

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = self.index(k)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_seed(self.seed, 1, k))
            image, mask = self.augment(self.images[i], self.masks[i])
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor)


class RankSampler(Sampler[int]):
    """Sample numbers of process ``rank`` for iterations ``start`` to ``stop - 1``.

    Iteration ``it`` uses numbers ``it * global_batch + s`` for slots ``s`` in
    ``[rank * b, (rank + 1) * b)``, ``b = global_batch // world_size``.

    Raises:
        ValueError: ``global_batch`` not divisible by ``world_size``.
    """

    def __init__(self, start: int, stop: int, global_batch: int, rank: int = 0, world_size: int = 1) -> None:
        if global_batch % world_size:
            raise ValueError(f"global batch {global_batch} is not divisible by {world_size} processes")
        self.start, self.stop, self.global_batch = start, stop, global_batch
        self.local = global_batch // world_size
        self.offset = rank * self.local

    def __iter__(self) -> Iterator[int]:
        for it in range(self.start, self.stop):
            base = it * self.global_batch + self.offset
            yield from range(base, base + self.local)

    def __len__(self) -> int:
        return max(0, self.stop - self.start) * self.local


def collate_pairs(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``[(image, mask), ...]`` -> ``(images (N, 3, h, w) uint8, masks (N, h, w) uint8)``."""
    return torch.stack([b[0] for b in batch]), torch.stack([b[1] for b in batch])
