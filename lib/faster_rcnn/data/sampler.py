"""An infinite, seeded batch sampler over the roidb, with aspect grouping, sharding and exact resume.

The stream is one of global batches of B = world_size x ims_per_batch images, the same for any split of B
into processes: epoch ``e`` is a function of (seed, e) only, a permutation of every index cut into global
batches (the few indices past a multiple of B wait for a later epoch, as the permutation changes). With
aspect grouping, landscape (w >= h) and portrait images are batched apart and the batches shuffled together;
an incomplete batch at the end of a group is left out of that epoch. Process ``rank`` takes images
``rank * ims_per_batch ..`` of each global batch. Batch k of the whole stream is known without loading
anything, so ``start_batch=k`` resumes exactly where an uninterrupted run would be; two processes of one
image see exactly the images, scales and positions of one process of two.

Each yielded batch is a list of ``(batch_position, roidb_index, image_position)``: the dataset picks the scale
of the batch from (seed, batch_position); ``image_position`` (batch_position x B + place in the global batch)
seeds the image's sampling in the target layers.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler


class InfiniteBatchSampler(Sampler):
    def __init__(self, aspect_ratios: Sequence[float], ims_per_batch: int, seed: int, start_batch: int = 0,
                 rank: int = 0, world_size: int = 1, aspect_grouping: bool = False):
        n = len(aspect_ratios)
        if not 0 <= rank < world_size:
            raise ValueError(f'rank {rank} outside [0, world_size={world_size})')
        if n < ims_per_batch * world_size:
            raise ValueError(f'{n} images cannot give each of {world_size} processes a batch of {ims_per_batch}')
        self._landscape = np.asarray(aspect_ratios, dtype=np.float64) >= 1.0
        self._n = n
        self._ims = int(ims_per_batch)
        self._seed = int(seed)
        self._rank = int(rank)
        self._world = int(world_size)
        self._global = self._ims * self._world
        self._grouping = bool(aspect_grouping)
        self.start_batch = int(start_batch)

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        """The global batches of ``epoch``."""
        g = torch.Generator()
        g.manual_seed(self._seed * 1_000_003 + epoch)
        perm = torch.randperm(self._n, generator=g).numpy()
        b = self._global

        def cut(indices: np.ndarray) -> list[list[int]]:
            usable = len(indices) - len(indices) % b
            return [indices[i:i + b].tolist() for i in range(0, usable, b)]

        if not self._grouping:
            return cut(perm)
        batches = cut(perm[self._landscape[perm]]) + cut(perm[~self._landscape[perm]])
        if not batches:  # each group smaller than a batch: mix them rather than stall
            batches = cut(perm)
        order = torch.randperm(len(batches), generator=g).tolist()
        return [batches[i] for i in order]

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        position = 0
        epoch = 0
        first = self._rank * self._ims
        while True:
            batches = self._epoch_batches(epoch)
            if position + len(batches) <= self.start_batch:
                position += len(batches)  # skipped without building anything else
            else:
                for b in batches:
                    if position >= self.start_batch:
                        yield [(position, i, position * self._global + first + j)
                               for j, i in enumerate(b[first:first + self._ims])]
                    position += 1
            epoch += 1

    def __len__(self) -> int:
        # Infinite; DataLoader only needs this for len(loader), which the training loop does not use.
        raise TypeError('InfiniteBatchSampler has no length: it cycles over epochs forever')

    def state_dict(self) -> dict:
        return {'seed': self._seed, 'start_batch': self.start_batch, 'rank': self._rank,
                'world_size': self._world, 'ims_per_batch': self._ims, 'aspect_grouping': self._grouping,
                'num_images': self._n}

    def load_state_dict(self, state: dict, consumed_batches: int | None = None) -> None:
        """Restore a sampler; ``consumed_batches`` (batches the training loop used) overrides the saved
        start. The data order must be the same, so seed, sharding, batch size and dataset size must match."""
        for key, mine in (('seed', self._seed), ('world_size', self._world), ('rank', self._rank),
                          ('ims_per_batch', self._ims), ('aspect_grouping', self._grouping), ('num_images', self._n)):
            if key in state and state[key] != mine:
                raise ValueError(f'sampler state has {key}={state[key]!r} but this sampler has {mine!r}: '
                                 'the data order cannot be resumed exactly')
        self.start_batch = int(consumed_batches if consumed_batches is not None else state['start_batch'])
