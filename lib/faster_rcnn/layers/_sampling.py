"""Random subsets of boolean masks without a host round trip (shared by the target layers)."""
from typing import Optional

import torch
from torch import Tensor


def random_order(mask: Tensor, generator: Optional[torch.Generator]) -> Tensor:
    """Indices (N,) of all elements, the ``True`` ones of ``mask`` first in uniformly random order.

    A random permutation followed by a stable sort on "not in mask": no count ever leaves the device.
    """
    n = mask.shape[0]
    perm = torch.randperm(n, generator=generator, device=mask.device)
    outside = (~mask[perm]).to(torch.int32)
    return perm[torch.sort(outside, stable=True)[1]]


def keep_random_subset(mask: Tensor, max_count, generator: Optional[torch.Generator]) -> Tensor:
    """A copy of ``mask`` (N,) bool with at most ``max_count`` (int or 0-d tensor) ``True`` entries kept,
    chosen uniformly at random without replacement."""
    order = random_order(mask, generator)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.shape[0], device=mask.device)
    return mask & (rank < max_count)
