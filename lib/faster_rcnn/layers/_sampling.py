"""Helpers shared by the target layers: random subsets of boolean masks without a host round trip,
and small constant tensors made once per device.

Both helpers draw one ``torch.randperm(N)`` and walk it with a running count of mask members
instead of sorting it: the k-th member of the mask met along the permutation is a uniformly
random member, so "the first ``max_count`` members met" is a uniform subset without replacement.
One permutation, one cumulative sum and one scatter or search: no sort, no count on the host.
"""
from collections.abc import Sequence
from functools import lru_cache

import torch
from torch import Tensor


def _members_met(mask: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor, Tensor]:
    """A random permutation ``perm`` (N,) of the indices, whether each visited index is in ``mask``
    (N,) bool, and how many members have been met up to and including each step (N,) int64."""
    perm = torch.randperm(mask.shape[0], generator=generator, device=mask.device)
    member = mask.index_select(0, perm)
    return perm, member, member.cumsum(0)


def keep_random_subset(mask: Tensor, max_count: int | Tensor, generator: torch.Generator | None) -> Tensor:
    """A copy of ``mask`` (N,) bool with at most ``max_count`` (int or 0-d tensor) ``True`` entries kept,
    chosen uniformly at random without replacement."""
    perm, member, met = _members_met(mask, generator)
    kept_in_visit_order = member & (met <= max_count)
    return torch.empty_like(mask).scatter_(0, perm, kept_in_visit_order)


def random_member_order(mask: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """A uniformly random order of the members of ``mask`` (N,) bool, as ``(perm, met)``: a random
    permutation (N,) and the running member count along it (N,) int64. Pass both to
    :func:`member_of_rank`."""
    perm, _, met = _members_met(mask, generator)
    return perm, met


def member_of_rank(perm: Tensor, met: Tensor, ranks: Tensor) -> Tensor:
    """Indices (B,) of the members of rank ``ranks`` (B,) int64 in the order of :func:`random_member_order`:
    distinct ranks give distinct members, so ranks ``0..k-1`` are a uniform sample without replacement.
    A rank at or past the member count gives an arbitrary index in ``[0, N)`` (callers discard it)."""
    # The member of rank r sits where the running count first reaches r + 1.
    step = torch.searchsorted(met, ranks + 1)
    return perm[step.clamp_(max=max(perm.shape[0] - 1, 0))]


@lru_cache(maxsize=32)
def _cached_constant(values: tuple[float, ...], device: torch.device) -> Tensor:
    return torch.tensor(values, dtype=torch.float32, device=device)


def device_constant(values: Sequence[float], device: torch.device) -> Tensor:
    """A small float32 tensor of ``values`` on ``device``, made once per (values, device): building it
    from Python on every call would be a blocking host-to-device copy on CUDA. Shared between calls:
    never modify it in place."""
    return _cached_constant(tuple(float(v) for v in values), torch.device(device))
