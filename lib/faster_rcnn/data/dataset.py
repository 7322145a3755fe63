"""A torch Dataset over a roidb: decode, flip, resize and normalise one training image.

Its settings are given at construction (plain values), so worker processes (forked or spawned) see the
experiment's values.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError
from ..layers.gt_batch import pad_gt_boxes
from ..settings import InputSettings
from .blob import prep_im_for_blob


def _truncated(data: np.ndarray, path: str) -> str | None:
    """Why a JPEG or PNG file is cut short, or None. OpenCV decodes such a file with only a warning and
    grey rows where the data is missing: it counts as corrupt."""
    head, tail = data[:8].tobytes(), data[-1024:].tobytes()
    if head[:3] == b'\xff\xd8\xff' and b'\xff\xd9' not in tail:
        return 'its JPEG data ends before the end-of-image marker (a download or copy cut short)'
    if head == b'\x89PNG\r\n\x1a\n' and b'IEND' not in tail:
        return 'its PNG data ends before the IEND chunk (a download or copy cut short)'
    return None


def read_image(path: str, stops: str = 'the run stopped') -> np.ndarray:
    """BGR uint8 (H, W, 3). A missing, empty, truncated or undecodable file is a DataError naming it.

    ``stops`` says in the message what the bad file did to the run.
    """
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f'image {path} does not exist (the dataset lists it); {stops}: restore the file or remove '
                        'it from the image set') from None
    except OSError as e:
        raise DataError(f'image {path} cannot be read ({e.strerror}); {stops}') from None
    if data.size == 0:
        raise DataError(f'image {path} is empty (0 bytes); {stops}: replace the file or remove it from the image set')
    why = _truncated(data, path)
    if why is not None:
        raise DataError(f'image {path} is corrupt: {why}; {stops}: replace the file or remove it from the image set')
    im = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if im is None:
        raise DataError(f'image {path} cannot be decoded (corrupt or not an image); {stops}: replace the file or '
                        'remove it from the image set')
    return im


def scale_index(seed: int, batch_position: int, num_scales: int) -> int:
    """The TRAIN.SCALES entry of a batch: a function of (seed, batch position) only, so loading is
    deterministic whatever the number of workers, and every image of a batch shares one scale."""
    if num_scales == 1:
        return 0
    return int(np.random.default_rng([seed, batch_position]).integers(num_scales))


class RoidbDataset(Dataset):
    """Items are indexed by ``(batch_position, roidb_index)`` pairs, which the batch sampler yields.

    An item is a dict: 'image' float32 (H, W, 3) normalised in the network's channel order, 'im_info'
    float32 (3,) [h, w, scale], 'gt_boxes' float32 (G, 5) [x1, y1, x2, y2, cls] in scaled-image
    coordinates, 'index' the roidb index; with a roidb that has them, 'gt_attributes' int32 (G, L) (the boxes'
    attributes, 0-padded; a flip does not change them).
    """

    def __init__(self, roidb: list[dict], seed: int, inputs: InputSettings, use_all_gt: bool = True):
        self._entries = [self._slim(r) for r in roidb]
        self._seed = int(seed)
        self._inputs = inputs
        self._use_all_gt = bool(use_all_gt)

    @staticmethod
    def _slim(r: dict) -> dict:
        # Only what loading needs: smaller to send to workers than the whole roidb entry.
        slim = {'image': r['image'], 'width': r['width'], 'height': r['height'], 'flipped': r['flipped'],
                'boxes': np.asarray(r['boxes'], np.float32), 'gt_classes': np.asarray(r['gt_classes'], np.int32),
                'gt_ishard': np.asarray(r.get('gt_ishard', np.zeros(len(r['gt_classes']), bool)), bool)}
        if r.get('gt_attributes') is not None:
            slim['gt_attributes'] = np.asarray(r['gt_attributes'], np.int32).reshape(len(slim['gt_classes']), -1)
        return slim

    def __len__(self) -> int:
        return len(self._entries)

    def aspect_ratios(self) -> np.ndarray:
        return np.array([e['width'] / e['height'] for e in self._entries], dtype=np.float64)

    def __getitem__(self, item: tuple[int, ...]) -> dict:
        batch_position, index, *rest = item
        c = self._inputs
        r = self._entries[index]
        im = read_image(r['image'], stops='training stopped')
        if im.shape[0] != r['height'] or im.shape[1] != r['width']:
            raise DataError(f'image {r["image"]} is {im.shape[1]}x{im.shape[0]} but its annotation says '
                            f'{r["width"]}x{r["height"]}; training stopped: fix the annotation (or the EXIF '
                            'orientation)')
        if r['flipped']:
            im = im[:, ::-1, :]
        target = c.scales[scale_index(self._seed, batch_position, len(c.scales))]
        blob, scale = prep_im_for_blob(im, target, c.max_size, np.array(c.pixel_means), np.array(c.pixel_stds),
                                       c.channel_order)
        keep = np.ones(len(r['gt_classes']), bool) if self._use_all_gt else ~r['gt_ishard']
        gt = np.empty((int(keep.sum()), 5), dtype=np.float32)
        gt[:, :4] = r['boxes'][keep] * scale
        gt[:, 4] = r['gt_classes'][keep]
        sample = {'image': blob, 'im_info': np.array([blob.shape[0], blob.shape[1], scale], np.float32),
                  'gt_boxes': gt, 'index': index, 'position': int(rest[0]) if rest else -1}
        if 'gt_attributes' in r:
            sample['gt_attributes'] = r['gt_attributes'][keep]
        return sample


def pad_images(images: list[np.ndarray]) -> torch.Tensor:
    """HWC float32 images -> (N, 3, H, W) float32, each at the top left of a zero canvas of the largest size."""
    data = torch.zeros((len(images), 3, max(im.shape[0] for im in images), max(im.shape[1] for im in images)),
                       dtype=torch.float32)
    for i, im in enumerate(images):
        data[i, :, :im.shape[0], :im.shape[1]] = torch.from_numpy(im).permute(2, 0, 1)
    return data


def collate_batch(items: list[dict]) -> dict:
    """Items -> {'data' float32 (N, 3, H, W) zero-padded, 'im_info' (N, 3), 'gt_boxes' [N x (G_i, 5)],
    'gt_padded' (N, G, 5) with 'gt_valid' (N, G) bool (the same boxes, padded for the batched layers),
    'index' LongTensor (N,), 'positions' LongTensor (N,) (each image's place in the training stream)}, and
    'gt_attributes' int64 (N, G, L) zero-padded when the items have attributes."""
    data = pad_images([it['image'] for it in items])
    gt_boxes = [torch.from_numpy(it['gt_boxes']) for it in items]
    gt_padded, gt_valid = pad_gt_boxes(gt_boxes)
    batch = {'data': data,
             'im_info': torch.from_numpy(np.stack([it['im_info'] for it in items])),
             'gt_boxes': gt_boxes, 'gt_padded': gt_padded, 'gt_valid': gt_valid,
             'index': torch.tensor([it['index'] for it in items], dtype=torch.long),
             'positions': torch.tensor([it.get('position', -1) for it in items], dtype=torch.long)}
    if items and all('gt_attributes' in it for it in items):
        batch['gt_attributes'] = pad_gt_attributes([it['gt_attributes'] for it in items], gt_padded.shape[1])
    return batch


def pad_gt_attributes(attributes: list[np.ndarray], width: int) -> torch.Tensor:
    """Per-image gt attributes [(G_i, L)] -> (N, G, L) int64 zero-padded, G = ``width`` (the padded boxes')."""
    labels = max((a.shape[1] for a in attributes if a.ndim == 2), default=0)
    out = torch.zeros((len(attributes), width, labels), dtype=torch.int64)
    for i, a in enumerate(attributes):
        if a.shape[0]:
            out[i, :a.shape[0], :a.shape[1]] = torch.from_numpy(a.astype(np.int64))
    return out
