"""Training at scale: the schedule rule, the world-size-independent data stream and sampling, and the
equality of two processes of one image with one process of two images."""
import subprocess
import sys

import pytest
import torch

from faster_rcnn.datasets.shapes import ShapesSpec, ensure_shapes
from faster_rcnn.engine.schedule import given_schedule, run_schedule, scale_schedule
from faster_rcnn.settings import OptimizerSettings, RoidbSettings, TrainSettings

from tool_runs import REPO, _dirs, _env, run_tool

MOBILE_CFG = str(REPO / 'experiments' / 'cfgs' / 'mobile.yml')


def _train(lr=0.001, stepsize=(50000,), ims=1, warmup=0):
    return TrainSettings(optimizer=OptimizerSettings(learning_rate=lr), stepsize=tuple(stepsize), ims_per_batch=ims,
                         warmup_iters=warmup)


def _given(iters=70000, lr=0.001, stepsize=(50000,), world=1, ims=1, b0=1, warmup=0):
    return given_schedule(_train(lr, stepsize, ims, warmup), iters, world, b0)


@pytest.mark.parametrize('world, iters, lr, step, snap, warmup', [
    (1, 70000, 0.001, 50000, 5000, 0),         # the reference itself
    (4, 17500, 0.004, 12500, 1250, 500),       # 4 GPUs: a quarter of the iterations, 4x the LR, 500 warm-up
    (8, 8750, 0.008, 6250, 625, 437),          # 8 GPUs: the warm-up is capped at 5% of the run
])
def test_voc_schedule_at_1_4_8_gpus(world, iters, lr, step, snap, warmup):
    used = scale_schedule(_given(world=world), 500)
    assert (used.iters, used.stepsize, used.snapshot_iters, used.warmup_iters) == (iters, (step,), snap, warmup)
    assert used.learning_rate == pytest.approx(lr)
    assert used.iters * used.global_batch == 70000  # the same number of images
    if world > 1:
        assert used.warmup_factor == pytest.approx(1 / world)  # the warm-up starts at the reference's LR


def test_smaller_batches_and_kept_numbers():
    # shapes.yml's schedule (4 images) on one process of 2: twice the iterations, half the LR, no warm-up added.
    used = scale_schedule(_given(iters=1600, ims=2, b0=4, warmup=100, stepsize=(100000,)), 500)
    assert (used.iters, used.warmup_iters, used.learning_rate) == (3200, 200, pytest.approx(0.0005))
    given, used = run_schedule(_train(), 70000, 8, reference_batch=1, scale=False)
    assert used == given and used.iters == 70000 and used.learning_rate == 0.001


@pytest.mark.slow
def test_two_processes_of_one_image_train_the_weights_of_one_process_of_two(tmp_path):
    """Same-size images (no padding), MobileNet (frozen BatchNorm, no dropout): the global batch, its images,
    scales and sampling seeds are the same, and DDP's mean of two gradients is the gradient of the batch's
    mean loss, so three SGD steps give the same weights. Every anchor is a proposal here (no top-N, no NMS):
    at initialisation all RPN scores are near 0.5, and the summation-order noise between the two runs would
    otherwise reorder them, which changes which boxes top-N and NMS keep, a discrete (not a float) change."""
    data = tmp_path / 'same_size'
    ensure_shapes(str(data), ShapesSpec(num_trainval=12, num_test=2, min_size=160, max_size=160))
    common = ['--net', 'mobile', '--from-scratch', '--imdb', f'voc_dir:{data}:trainval', '--imdbval', '',
              '--iters', '3',
              '--cfg', MOBILE_CFG, '--device', 'cpu', '--workers', '0']
    sets = [*_dirs(tmp_path), 'TRAIN.SCALES', '[160]', 'TRAIN.MAX_SIZE', '160', 'TRAIN.REFERENCE_BATCH', '2',
            'TRAIN.LEARNING_RATE', '0.01', 'TRAIN.SNAPSHOT_ITERS', '1', 'TRAIN.SNAPSHOT_KEPT', '5',
            'TRAIN.DISPLAY', '1', 'TRAIN.RPN_PRE_NMS_TOP_N', '0', 'TRAIN.RPN_POST_NMS_TOP_N', '0',
            'TRAIN.RPN_NMS_THRESH', '1.0',
            'TRAIN.BATCH_SIZE', '32', 'TRAIN.SUMMARY_INTERVAL', '100000']
    run_tool(['tools/trainval_net.py', *common, '--tag', 'one', '--set', *sets, 'TRAIN.IMS_PER_BATCH', '2'])
    two = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                          'tools/trainval_net.py', *common, '--tag', 'two', '--set', *sets, 'TRAIN.IMS_PER_BATCH', '1'],
                         cwd=REPO, env={**_env(), 'OMP_NUM_THREADS': '1'}, capture_output=True, text=True, timeout=900)
    assert two.returncode == 0, two.stdout[-3000:] + two.stderr[-3000:]
    assert 'global batch 2 (2 process(es) x 1 image(s))' in two.stdout

    def weights(tag, it):
        path = next((tmp_path / 'output' / 'mobile').rglob(f'{tag}/mobile_faster_rcnn_iter_{it}.pth'))
        return torch.load(path, map_location='cpu', weights_only=True)['model']

    one3, two3, one1 = weights('one', 3), weights('two', 3), weights('one', 1)
    moved = 0
    for k, v in one3.items():
        if not v.is_floating_point():
            continue
        torch.testing.assert_close(two3[k], v, rtol=1e-4, atol=1e-6, msg=k)
        moved += int(not torch.equal(v, one1[k]))
    assert moved > 10  # the steps did change the trained layers


@pytest.mark.slow
def test_background_only_images_are_kept_on_request_and_train(root):
    """shapes_circle_square leaves triangles unannotated: images holding only triangles have no gt box. The
    reference drops them; TRAIN.KEEP_BACKGROUND_IMAGES keeps them as background-only images."""
    from faster_rcnn.data.roidb import combined_roidb
    data = str(root / 'data')
    _, dropped = combined_roidb('shapes_circle_square_trainval', RoidbSettings(use_flipped=False), data)
    _, kept = combined_roidb('shapes_circle_square_trainval',
                             RoidbSettings(use_flipped=False, keep_background_images=True), data)
    empty = [r for r in kept if len(r['gt_classes']) == 0]
    assert empty and len(kept) == len(dropped) + len(empty) == 400
    assert all(len(r['gt_classes']) > 0 for r in dropped)

    # Training on them: a batch of 8 images of which several have no gt box.
    proc = run_tool(['tools/trainval_net.py', '--net', 'tiny', '--imdb', 'shapes_circle_square_trainval',
                     '--imdbval', '', '--iters', '3', '--tag', 'background', '--cfg', str(REPO / 'experiments' /
                     'cfgs' / 'shapes.yml'), '--device', 'cpu', '--workers', '0', '--keep-schedule', '--set',
                     *_dirs(root), 'TRAIN.KEEP_BACKGROUND_IMAGES', 'True', 'TRAIN.IMS_PER_BATCH', '8',
                     'TRAIN.SCALES', '[160]', 'TRAIN.DISPLAY', '1', 'TRAIN.USE_FLIPPED', 'False'])
    assert f'Keeping {len(empty)} roidb entries without usable boxes' in proc.stdout
    assert proc.stdout.count('total loss: ') == 3
