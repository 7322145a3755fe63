"""mAP during training: every TRAIN.EVAL_INTERVAL iterations, the full test of ``--imdbval`` (or of its first
TRAIN.EVAL_IMAGES images), its mean AP printed and written to TensorBoard with each class's AP and, for VOC-format
sets, the precision / recall curves.

It does not change the training: the network is put in eval mode and back, nothing is learnt, and every random
generator (python, numpy, torch on every device) is put back as it was, so the weights after N iterations are
the same with or without it. Under DDP every process tests its share of the images (``test_net``'s sharding)
and rank 0 evaluates. The images go through a ``Detector`` over the model being trained, with its settings.
"""
from __future__ import annotations

import logging
import os.path as osp

import torch

from faster_rcnn.datasets.evaluation import EvalResult, render_pr_curves
from faster_rcnn.engine.distributed import DistInfo, barrier
from faster_rcnn.engine.rng import get_rng_states, set_rng_states
from faster_rcnn.engine.tester import test_net
from faster_rcnn.inference import Detector
from faster_rcnn.settings import TestSettings

logger = logging.getLogger(__name__)


def evaluation_due(iteration: int, max_iters: int, interval: int) -> bool:
    """Every ``interval`` (TRAIN.EVAL_INTERVAL) iterations, and at the end of training; never for 0."""
    return interval > 0 and (iteration % interval == 0 or iteration == max_iters)


def evaluate_during_training(model: torch.nn.Module, imdb, iteration: int, output_dir: str, info: DistInfo,
                             test: TestSettings, writer=None) -> EvalResult | None:
    """Test ``model`` on ``imdb`` now; rank 0 returns the evaluation (and writes it to ``writer``)."""
    states = get_rng_states()
    was_training = model.training
    model.eval()
    try:
        folder = osp.join(output_dir, 'eval', f'iter_{iteration}')
        detector = Detector.from_model(model, imdb.classes, device=info.device, amp=test.amp,
                                       batch_size=test.ims_per_batch)
        _, result = test_net(detector, imdb, folder, rank=info.rank, world_size=info.world_size,
                             num_workers=test.num_workers, progress=False)
    finally:
        model.train(was_training)
        set_rng_states(states)
    barrier(info)
    if not info.is_main or result is None:
        return None
    logger.info(f'Evaluation on {imdb.name} ({imdb.num_images} images) at iteration {iteration}: '
          f'{result.metric} = {result.mean_ap:.4f}')
    if writer is not None:
        writer.add_scalar('eval/mean_ap', result.mean_ap, iteration)
        for name, ap in result.per_class.items():
            writer.add_scalar(f'eval/ap/{name}', ap, iteration)
        if result.curves:
            image = render_pr_curves(result.curves, result.per_class, f'iteration {iteration}')
            writer.add_image('eval/pr_curves', image.transpose(2, 0, 1).copy(), iteration)
        writer.flush()
    return result
