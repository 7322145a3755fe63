"""Random keys that are a pure function of (seed, position): the target layers' sampling, batched.

The target layers sample anchors and rois at random. Drawing from a generator ties the result to how many
images share a call and in which order: image 2 of a batch of 4 would not get what it gets alone, nor what
it gets on another process of a distributed run. Instead each image carries a seed (from the training
step and its place in the global batch) and every candidate a position; its key is a hash of the two. An
image then samples the same whether alone, in a batch, or on another rank, with no Python loop over images
and no generator state to save for an exact resume.

The hash is a 32-bit integer mixer (two xor-shift-multiply rounds) in int64 arithmetic: every product
stays below 2**63, so it is exact and identical on CPU and CUDA. Keys are 32-bit; the rare equal keys are
ordered by position (stable sorts), which keeps the result deterministic.
"""
from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

__all__ = ["KEY_LIMIT", "seed_terms", "random_keys", "uniform_from_keys", "seeds_from_generator", "image_seeds"]

_MASK = 0xFFFFFFFF
_MIX = 0x45D9F3B  # an odd multiplier < 2**27: x * _MIX < 2**60 for x < 2**33
_SEED_MULT = 0x2545F491  # < 2**30; seeds are reduced to 31 bits first
_POSITION_MULT = 0x1E3779B1  # < 2**29, odd
KEY_LIMIT = 1 << 32  # every key is below this


@lru_cache(maxsize=64)
def _position_terms(count: int, salt: int, device: torch.device) -> Tensor:
    """(count,) int64 ``(position * _POSITION_MULT + salt) mod 2**32``, made once per (count, salt, device)."""
    return (torch.arange(count, dtype=torch.int64, device=device) * _POSITION_MULT + salt).bitwise_and_(_MASK)


def _mix(x: Tensor) -> Tensor:
    """Two xor-shift-multiply rounds over values below 2**33 (in place on ``x``); 32-bit results."""
    x = x.bitwise_xor_(x >> 16).mul_(_MIX).bitwise_and_(_MASK)
    return x.bitwise_xor_(x >> 16).mul_(_MIX).bitwise_and_(_MASK)


def seed_terms(seeds: Tensor) -> Tensor:
    """(N,) int64 image seeds -> (N, 1) int64 terms below 2**32, computed once per batch for every layer."""
    return (seeds.to(torch.int64).bitwise_and(0x7FFFFFFF) * _SEED_MULT).bitwise_and_(_MASK).unsqueeze(1)


def random_keys(terms: Tensor, count: int, salt: int, positions: Tensor | None = None) -> Tensor:
    """(N, count) int64 keys in ``[0, KEY_LIMIT)`` for the N images of ``terms`` (N, 1) (``seed_terms``).

    ``positions`` (N, count) int64 in ``[0, 2**31)``, when given, replaces the column index as each
    candidate's position (for candidates whose place in the padded row differs from their place in the
    image's own list). ``salt`` separates the streams of different uses of one seed.
    """
    if positions is None:
        return _mix(terms + _position_terms(int(count), int(salt), terms.device))
    return _mix((positions * _POSITION_MULT).add_(int(salt)).bitwise_and_(_MASK).add_(terms))


def uniform_from_keys(keys: Tensor) -> Tensor:
    """float32 values in ``[0, 1)`` from keys (the top 24 bits: float32's exact range)."""
    return (keys >> 8).to(torch.float32).mul_(1.0 / (1 << 24))


def seeds_from_generator(count: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """(count,) int64 seeds drawn from ``generator`` (or the global RNG): the way to a seed when the caller
    has none. Drawn on the generator's device, so no host round trip on CUDA."""
    gen_device = generator.device if generator is not None else torch.device(device)
    seeds = torch.randint(0, 1 << 31, (count,), generator=generator, device=gen_device, dtype=torch.int64)
    return seeds.to(device)


def image_seeds(base_seed: int, positions: Tensor) -> Tensor:
    """(N,) int64 seeds of the images at global stream ``positions`` (N,) int64 of a run seeded with
    ``base_seed``: the same image position gets the same seed on any rank and batch split."""
    mixed = _mix(positions.to(torch.int64).bitwise_and(_MASK).add_(int(base_seed) & _MASK))
    return _mix(mixed.add_((int(base_seed) >> 32) & _MASK)).bitwise_and_(0x7FFFFFFF)
