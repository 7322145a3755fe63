"""Test images for ``test_net``: decoded (and for a network, resized and normalised) in DataLoader workers,
batched and sharded.

Rank ``r`` of ``world_size`` processes tests images ``r, r + world_size, r + 2 world_size, ...`` of the
dataset (every image exactly once over the ranks), in batches of TEST.IMS_PER_BATCH images zero-padded to
one size, as training batches are. With ``inputs=None`` the items are the decoded BGR images themselves (an
exported graph resizes and normalises them itself).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import ConfigError
from ..settings import InputSettings
from .blob import prep_im_for_blob
from .dataset import pad_images, read_image
from .loader import ignore_interrupts


def prepare_test_image(im: np.ndarray, inputs: InputSettings) -> tuple[np.ndarray, np.ndarray]:
    """A BGR uint8 image (H, W, 3) -> (network input float32 (h, w, 3) in ``inputs``'s channel order,
    im_info float32 (3,) [h, w, scale]) at the one test scale."""
    blob, scale = prep_im_for_blob(im, inputs.single_scale(), inputs.max_size, np.array(inputs.pixel_means),
                                   np.array(inputs.pixel_stds), inputs.channel_order)
    return blob, np.array([blob.shape[0], blob.shape[1], scale], np.float32)


class TestImages(Dataset):
    """Item ``i``: {'image' float32 (h, w, 3) normalised and resized (or the decoded BGR uint8 image when
    ``inputs`` is None), 'im_info' float32 (3,) [h, w, scale], 'size' (H, W) of the original image, 'index' i}."""

    def __init__(self, paths: Sequence[str], inputs: InputSettings | None) -> None:
        self._paths = list(paths)
        self._inputs = inputs
        if inputs is not None:
            inputs.single_scale()  # one test scale, checked before any worker starts

    def __len__(self) -> int:
        return len(self._paths)

    def __getitem__(self, i: int) -> dict:
        im = read_image(self._paths[i], stops='testing stopped')
        if self._inputs is None:
            return {'image': im, 'im_info': np.array([im.shape[0], im.shape[1], 1.0], np.float32),
                    'size': im.shape[:2], 'index': i}
        blob, im_info = prepare_test_image(im, self._inputs)
        return {'image': blob, 'im_info': im_info, 'size': im.shape[:2], 'index': i}


def collate_test(items: list[dict]) -> dict:
    """Items -> {'data' float32 (N, 3, H, W) zero-padded (decoded images: 'images' [(H_i, W_i, 3) uint8]),
    'im_info' (N, 3), 'sizes' [(H_i, W_i)], 'index' [i]}."""
    out = {'im_info': torch.from_numpy(np.stack([it['im_info'] for it in items])),
           'sizes': [tuple(int(v) for v in it['size']) for it in items], 'index': [int(it['index']) for it in items]}
    if items and items[0]['image'].dtype == np.uint8:
        out['images'] = [it['image'] for it in items]
    else:
        out['data'] = pad_images([it['image'] for it in items])
    return out


def shard(num_images: int, rank: int, world_size: int) -> list[int]:
    """The image indices rank ``rank`` tests: every ``world_size``-th one from ``rank``."""
    return list(range(rank, num_images, world_size))


def build_test_loader(paths: Sequence[str], inputs: InputSettings | None, *, ims_per_batch: int = 1, rank: int = 0,
                      world_size: int = 1, num_workers: int = 0) -> DataLoader:
    """Batches of this rank's test images, in index order, loaded ahead by ``num_workers`` workers."""
    if ims_per_batch < 1:
        raise ConfigError(f'config key TEST.IMS_PER_BATCH must be at least 1, got {ims_per_batch}')
    indices = shard(len(paths), rank, world_size)
    batches = [indices[i:i + ims_per_batch] for i in range(0, len(indices), ims_per_batch)]
    kwargs: dict[str, Any] = {'prefetch_factor': 4, 'worker_init_fn': ignore_interrupts} if num_workers > 0 else {}
    return DataLoader(TestImages(paths, inputs), batch_sampler=batches, num_workers=num_workers,
                      collate_fn=collate_test, pin_memory=torch.cuda.is_available(), **kwargs)
