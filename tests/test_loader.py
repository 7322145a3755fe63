"""Image blobs, the training Dataset, the seeded batch sampler (resume, sharding, grouping) and the loader."""
import itertools

import cv2
import numpy as np
import pytest
import torch

from faster_rcnn.data.blob import get_test_blob, im_list_to_blob, image_scale, prep_im_for_blob
from faster_rcnn.data.dataset import RoidbDataset
from faster_rcnn.data.loader import build_train_loader
from faster_rcnn.data.sampler import InfiniteBatchSampler
from faster_rcnn.datasets.imdb import make_roidb_entry
from faster_rcnn.settings import InputSettings

ZERO = np.zeros(3)
ONE = np.ones(3)


def test_scale_rules():
    # Shorter side to the target ...
    im, s = prep_im_for_blob(np.zeros((375, 500, 3), np.uint8), 600, 1000, ZERO)
    assert s == pytest.approx(1.6) and im.shape == (600, 800, 3) and im.dtype == np.float32
    # ... unless the longer side would pass max_size (rounded, as the reference compares np.round).
    assert image_scale(100, 1000, 600, 1000) == pytest.approx(1.0)
    assert image_scale(300, 500, 600, 1000) == pytest.approx(2.0)
    assert image_scale(300, 501, 600, 1000) == pytest.approx(1000 / 501)
    im, s = prep_im_for_blob(np.zeros((50, 400, 3), np.uint8), 600, 1000, ZERO)
    assert s == pytest.approx(2.5) and im.shape == (125, 1000, 3)


def test_normalisation_and_channel_order():
    im = np.empty((4, 4, 3), np.uint8)
    im[:] = (10, 20, 30)  # BGR
    bgr, _ = prep_im_for_blob(im, 4, 100, np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]), 'BGR')
    np.testing.assert_allclose(bgr[0, 0], [9, 9, 9])
    rgb, _ = prep_im_for_blob(im, 4, 100, np.array([10.0, 0.0, 0.0]), ONE, 'RGB')
    np.testing.assert_allclose(rgb[0, 0], [30, 20, 0])
    with pytest.raises(ValueError, match='CHANNEL_ORDER'):
        prep_im_for_blob(im, 4, 100, ZERO, ONE, 'GBR')


def test_blob_padding_and_test_blob():
    blob = im_list_to_blob([np.ones((2, 3, 3), np.float32), 2 * np.ones((4, 1, 3), np.float32)])
    assert blob.shape == (2, 3, 4, 3)
    assert blob[0, :, :2, :].min() == 1 and blob[0, :, 2:, :].max() == 0 and blob[0].sum() == 18
    assert blob[1, :, :, 0].min() == 2 and blob[1, :, :, 1:].max() == 0
    blob, scales = get_test_blob(np.zeros((100, 200, 3), np.uint8), (300, 150), 1000, ZERO)
    assert blob.shape == (2, 3, 300, 600) and blob.dtype == np.float32
    np.testing.assert_allclose(scales, [3.0, 1.5])


def write_images(tmp_path, sizes, hard_last=False):
    """A roidb over plain images; image i has a bright pixel column at x = 2 and one box."""
    roidb = []
    for i, (h, w) in enumerate(sizes):
        im = np.zeros((h, w, 3), np.uint8)
        im[:, 2] = 255
        path = str(tmp_path / f'{i}.png')
        cv2.imwrite(path, im)
        boxes = np.array([[1, 2, 5, 6], [0, 0, w - 1, h - 1]], np.float32)
        roidb.append(make_roidb_entry(path, w, h, boxes, np.array([1, 2]), 3, np.array([False, hard_last])))
    return roidb


def flipped(entry):
    e = dict(entry)
    b = e['boxes'].copy()
    b[:, 0], b[:, 2] = e['width'] - entry['boxes'][:, 2] - 1, e['width'] - entry['boxes'][:, 0] - 1
    e['boxes'], e['flipped'] = b, True
    return e


def inputs(**kw):
    base = dict(scales=(20,), max_size=1000, pixel_means=(0.0, 0.0, 0.0), pixel_stds=(1.0, 1.0, 1.0),
                channel_order='BGR')
    base.update(kw)
    return InputSettings(**base)


def test_item_scales_boxes_and_flips(tmp_path):
    roidb = write_images(tmp_path, [(10, 16)])
    roidb.append(flipped(roidb[0]))
    ds = RoidbDataset(roidb, 0, inputs())
    plain, flip = ds[(0, 0)], ds[(0, 1)]
    assert plain['image'].shape == (20, 32, 3)
    np.testing.assert_allclose(plain['im_info'], [20, 32, 2.0])
    np.testing.assert_allclose(plain['gt_boxes'], [[2, 4, 10, 12, 1], [0, 0, 30, 18, 2]])
    # Flipped: the bright column moves from x = 2 to x = 13 (of 16), boxes follow the flip rule.
    np.testing.assert_allclose(flip['gt_boxes'][0], [2 * 10, 4, 2 * 14, 12, 1])
    np.testing.assert_allclose(flip['image'], plain['image'][:, ::-1])


def test_difficult_boxes_follow_use_all_gt(tmp_path):
    roidb = write_images(tmp_path, [(10, 16)], hard_last=True)
    assert len(RoidbDataset(roidb, 0, inputs(), use_all_gt=True)[(0, 0)]['gt_boxes']) == 2
    assert RoidbDataset(roidb, 0, inputs(), use_all_gt=False)[(0, 0)]['gt_boxes'][:, 4].tolist() == [1]


def test_dataset_uses_its_input_settings(tmp_path):
    roidb = write_images(tmp_path, [(10, 16)])
    ds = RoidbDataset(roidb, 0, InputSettings(scales=(30,), channel_order='RGB'))
    item = ds[(0, 0)]
    assert item['image'].shape[0] == 30
    assert item['image'][0, 0].tolist() == pytest.approx((-122.7717, -115.9465, -102.9801), abs=1e-3)


def take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def test_sampler_is_seeded_and_resumes_exactly():
    ratios = np.linspace(0.5, 2.0, 23)
    for grouping in (False, True):
        full = take(InfiniteBatchSampler(ratios, 2, seed=7, aspect_grouping=grouping), 60)
        assert full == take(InfiniteBatchSampler(ratios, 2, seed=7, aspect_grouping=grouping), 60)
        assert full != take(InfiniteBatchSampler(ratios, 2, seed=8, aspect_grouping=grouping), 60)
        assert [b[0][0] for b in full] == list(range(60))  # batch positions
        for k in (1, 11, 12, 37):
            resumed = take(InfiniteBatchSampler(ratios, 2, seed=7, start_batch=k, aspect_grouping=grouping), 60 - k)
            assert resumed == full[k:]


def test_sampler_epochs_cover_images_without_repeats():
    s = InfiniteBatchSampler(np.ones(10), 3, seed=1)
    batches = take(s, 6)  # 3 batches per epoch (the tenth image waits for a later epoch)
    for epoch in (batches[:3], batches[3:]):
        idx = [i for b in epoch for _, i, _ in b]
        assert len(idx) == 9 and len(set(idx)) == 9


def test_aspect_grouping_keeps_orientation():
    ratios = np.array([1.5, 0.7] * 10 + [1.2])
    for batch in take(InfiniteBatchSampler(ratios, 4, seed=3, aspect_grouping=True), 40):
        assert len({ratios[i] >= 1 for _, i, _ in batch}) == 1


def test_sharding_is_disjoint():
    ratios = np.ones(21)
    per_rank = [take(InfiniteBatchSampler(ratios, 2, seed=4, rank=r, world_size=3), 15) for r in range(3)]
    for epoch in range(5):  # 21 images -> 3 global batches of 6 per epoch
        seen = [{i for b in batches[3 * epoch:3 * epoch + 3] for _, i, _ in b} for batches in per_rank]
        assert all(len(s) == 6 for s in seen)
        assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])


@pytest.mark.parametrize('grouping', [False, True])
def test_processes_slice_the_global_batch_of_one_process(grouping):
    """Two processes of two images see exactly the images, batch positions and stream positions of one
    process of four: rank r takes images 2r, 2r + 1 of each global batch."""
    ratios = np.linspace(0.5, 2.0, 23)
    whole = take(InfiniteBatchSampler(ratios, 4, seed=9, aspect_grouping=grouping), 20)
    ranks = [take(InfiniteBatchSampler(ratios, 2, seed=9, rank=r, world_size=2, aspect_grouping=grouping), 20)
             for r in range(2)]
    for k, batch in enumerate(whole):
        assert ranks[0][k] + ranks[1][k] == batch
        assert [p for _, _, p in batch] == list(range(4 * k, 4 * k + 4))


def test_sampler_state_dict():
    s = InfiniteBatchSampler(np.ones(8), 2, seed=4)
    state = s.state_dict()
    t = InfiniteBatchSampler(np.ones(8), 2, seed=4)
    t.load_state_dict(state, consumed_batches=5)
    assert take(t, 3) == take(InfiniteBatchSampler(np.ones(8), 2, seed=4), 8)[5:]
    with pytest.raises(ValueError, match='seed=4'):
        InfiniteBatchSampler(np.ones(8), 2, seed=5).load_state_dict(state)


def batches_equal(a, b):
    return (torch.equal(a['data'], b['data']) and torch.equal(a['im_info'], b['im_info'])
            and torch.equal(a['index'], b['index'])
            and all(torch.equal(x, y) for x, y in zip(a['gt_boxes'], b['gt_boxes'])))


def test_loader_format_determinism_and_resume(tmp_path):
    roidb = write_images(tmp_path, [(10, 16), (16, 10), (12, 12), (10, 20), (9, 14), (14, 9)])
    settings = inputs(scales=(20, 30, 40))

    def run(workers, start=0, n=8):
        loader = build_train_loader(roidb, settings, ims_per_batch=2, seed=11, start_batch=start, num_workers=workers,
                                    aspect_grouping=False)
        return list(itertools.islice(iter(loader), n))

    base = run(0)
    b = base[0]
    assert b['data'].dtype == torch.float32 and b['data'].shape[:2] == (2, 3)
    assert b['index'].dtype == torch.long and len(b['gt_boxes']) == 2
    for n in range(2):
        h, w, scale = b['im_info'][n].tolist()
        r = roidb[int(b['index'][n])]
        assert (h, w) == (round(r['height'] * scale), round(r['width'] * scale))
        # Padding beyond the image's own extent is zero.
        assert b['data'][n, :, int(h):, :].abs().sum() == 0 and b['data'][n, :, :, int(w):].abs().sum() == 0
        torch.testing.assert_close(b['gt_boxes'][n][:, :4], torch.from_numpy(r['boxes']) * scale)
    # Every image of a batch shares one scale; several scales occur.
    scales = {round(float(x['im_info'][0, 2] * min(roidb[int(x['index'][0])]['height'],
                                                   roidb[int(x['index'][0])]['width']))) for x in base}
    assert scales <= {20, 30, 40} and len(scales) > 1
    assert all(batches_equal(x, y) for x, y in zip(base, run(0)))
    assert all(batches_equal(x, y) for x, y in zip(base, run(2)))
    assert all(batches_equal(x, y) for x, y in zip(base[5:], run(0, start=5, n=3)))


def test_val_loader(tmp_path):
    roidb = write_images(tmp_path, [(10, 16), (16, 10)])
    loader = build_train_loader(roidb, inputs(), ims_per_batch=1, seed=0, num_workers=0)
    batch = next(iter(loader))
    assert batch['data'].shape[0] == 1 and batch['im_info'].shape == (1, 3)
