"""Test images for ``test_net``: decoded, resized and normalised in DataLoader workers, batched and sharded.

Rank ``r`` of ``world_size`` processes tests images ``r, r + world_size, r + 2 world_size, ...`` of the
dataset (every image exactly once over the ranks), in batches of TEST.IMS_PER_BATCH images zero-padded to
one size, as training batches are.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..config import cfg
from .blob import prep_im_for_blob
from .dataset import BlobConfig, pad_images, read_image
from .loader import ignore_interrupts


class TestImages(Dataset):
    """Item ``i``: {'image' float32 (h, w, 3) normalised and resized, 'im_info' float32 (3,) [h, w, scale],
    'size' (H, W) of the original image, 'index' i}."""

    def __init__(self, paths: Sequence[str], blob_cfg: BlobConfig | None = None) -> None:
        self._paths = list(paths)
        self._cfg = blob_cfg or BlobConfig.from_cfg(training=False)
        if len(self._cfg.scales) != 1:
            from ..config import ConfigError
            raise ConfigError(f'config key TEST.SCALES = {list(self._cfg.scales)}: testing uses exactly one scale, as '
                              'tf-faster-rcnn does')

    def __len__(self) -> int:
        return len(self._paths)

    def __getitem__(self, i: int) -> dict:
        c = self._cfg
        im = read_image(self._paths[i], stops='testing stopped')
        blob, scale = prep_im_for_blob(im, c.scales[0], c.max_size, np.array(c.pixel_means), np.array(c.pixel_stds),
                                       c.channel_order)
        return {'image': blob, 'im_info': np.array([blob.shape[0], blob.shape[1], scale], np.float32),
                'size': im.shape[:2], 'index': i}


def collate_test(items: list[dict]) -> dict:
    """Items -> {'data' float32 (N, 3, H, W) zero-padded, 'im_info' (N, 3), 'sizes' [(H_i, W_i)], 'index' [i]}."""
    data = pad_images([it['image'] for it in items])
    return {'data': data, 'im_info': torch.from_numpy(np.stack([it['im_info'] for it in items])),
            'sizes': [tuple(int(v) for v in it['size']) for it in items], 'index': [int(it['index']) for it in items]}


def shard(num_images: int, rank: int, world_size: int) -> list[int]:
    """The image indices rank ``rank`` tests: every ``world_size``-th one from ``rank``."""
    return list(range(rank, num_images, world_size))


def build_test_loader(paths: Sequence[str], *, ims_per_batch: int | None = None, rank: int = 0, world_size: int = 1,
                      num_workers: int | None = None) -> DataLoader:
    """Batches of this rank's test images, in index order, loaded ahead by ``num_workers`` workers."""
    ims_per_batch = int(cfg.TEST.IMS_PER_BATCH if ims_per_batch is None else ims_per_batch)
    if ims_per_batch < 1:
        from ..config import ConfigError
        raise ConfigError(f'config key TEST.IMS_PER_BATCH must be at least 1, got {ims_per_batch}')
    num_workers = int(cfg.DATA_LOADER.NUM_WORKERS if num_workers is None else num_workers)
    indices = shard(len(paths), rank, world_size)
    batches = [indices[i:i + ims_per_batch] for i in range(0, len(indices), ims_per_batch)]
    kwargs = {'prefetch_factor': 4, 'worker_init_fn': ignore_interrupts} if num_workers > 0 else {}
    return DataLoader(TestImages(paths), batch_sampler=batches, num_workers=num_workers, collate_fn=collate_test,
                      pin_memory=torch.cuda.is_available(), **kwargs)
