"""``build_run``: a training run (``engine.trainer.TrainRun``) from a config object, as ``tools/trainval_net.py``
builds it, for Python users too::

    from faster_rcnn.config import load_config
    from faster_rcnn.engine.distributed import init_distributed
    from faster_rcnn.engine.run import build_run
    from faster_rcnn.engine.trainer import train_net

    config = load_config('experiments/cfgs/shapes.yml', ['TRAIN.SNAPSHOT_ITERS', '100'])
    info = init_distributed('cpu')
    train_net(build_run(config, net='tiny', imdb='shapes_trainval', imdbval='shapes_test', iters=200,
                        world_size=info.world_size), info, extra_hooks=[...])

The config object is read here and nowhere below (a private copy, or the tool's global cfg): the schedule scaled
to the global batch (``engine.schedule``), the roidb (flipped, filtered), the validation roidb (never flipped),
the evaluation set, where files go, the model settings and the record every snapshot carries.
"""
from __future__ import annotations

import copy
import logging
from dataclasses import replace

from faster_rcnn.config import Config, config_record, get_output_dir, get_output_tb_dir
from faster_rcnn.data.roidb import combined_roidb
from faster_rcnn.datasets.factory import get_imdb
from faster_rcnn.errors import UsageError
from faster_rcnn.model_file import DetectorFile
from faster_rcnn.nets.registry import experiment_name, model_keys
from faster_rcnn.settings import ModelSettings, RoidbSettings, TrainSettings

from .schedule import apply_schedule, describe, notices, run_schedule
from .trainer import TrainRun

logger = logging.getLogger(__name__)


def build_run(config: Config, *, net: str, imdb: str, iters: int, world_size: int = 1, imdbval: str = '',
              tag: str | None = None, weight: str | None = None, finetune: DetectorFile | None = None,
              fresh: bool = False, workers: int | None = None, verbose: bool = True,
              from_scratch: bool = False) -> TrainRun:
    """The run of ``net`` on the dataset(s) ``imdb`` for ``iters`` iterations at the config's TRAIN.REFERENCE_BATCH
    (scaled to ``world_size`` x TRAIN.IMS_PER_BATCH unless TRAIN.SCALE_SCHEDULE is off)."""
    settings = TrainSettings.from_config(config, workers)
    given, used = run_schedule(settings, iters, world_size, reference_batch=int(config.TRAIN.REFERENCE_BATCH),
                               scale=bool(config.TRAIN.SCALE_SCHEDULE),
                               scaled_warmup_iters=int(config.TRAIN.SCALED_WARMUP_ITERS))
    settings = apply_schedule(settings, used)
    if verbose:
        logger.info(describe(given, used, world_size, settings.ims_per_batch, bool(config.TRAIN.SCALE_SCHEDULE)))
        for line in notices(given, used):
            logger.warning('warning: %s', line)
    exp_dir = experiment_name(str(config.EXP_DIR), net)
    if exp_dir != config.EXP_DIR:
        # Another network's name (a config written for it) or none: the folder is named after this one.
        config = copy.deepcopy(config)
        config.EXP_DIR = exp_dir
    roidb_opts = RoidbSettings.from_config(config)
    db, roidb = combined_roidb(imdb, roidb_opts, data_dir=config.DATA_DIR)
    output_dir = get_output_dir(db.name, tag=tag, config=config)
    tb_dir = get_output_tb_dir(db.name, tag=tag, config=config)
    if verbose:
        logger.info(f'{len(roidb)} roidb entries')
        logger.info(f'Output will be saved to `{output_dir}`')
        logger.info(f'TensorFlow summaries will be saved to `{tb_dir}`')
    eval_imdb = None
    if config.TRAIN.EVAL_INTERVAL > 0:
        if not imdbval or '+' in imdbval:
            raise UsageError(f'TRAIN.EVAL_INTERVAL {config.TRAIN.EVAL_INTERVAL} evaluates on --imdbval, which must '
                             f'name one dataset (got {imdbval!r})')
        eval_imdb = get_imdb(imdbval, config.DATA_DIR)
        eval_imdb.limit(int(config.TRAIN.EVAL_IMAGES))
        if verbose:
            logger.info(f'Evaluating on {eval_imdb.name} ({eval_imdb.num_images} images) every '
                  f'{config.TRAIN.EVAL_INTERVAL} iterations')
    valroidb = None
    if imdbval:
        # The validation images are never flipped.
        _, valroidb = combined_roidb(imdbval, replace(roidb_opts, use_flipped=False), data_dir=config.DATA_DIR)
        if verbose:
            logger.info(f'{len(valroidb)} validation roidb entries')
    return TrainRun(net=net, model=ModelSettings.from_config(config, net), train=settings, classes=list(db.classes),
                    roidb=roidb, output_dir=output_dir, tb_dir=tb_dir, max_iters=used.iters,
                    record=config_record(config, model_keys(net)), imdb_name=db.name, valroidb=valroidb,
                    imagenet_weights=weight, finetune=finetune, fresh=fresh, eval_imdb=eval_imdb,
                    attributes=getattr(db, 'attributes', None), category_ids=list(db.category_ids),
                    from_scratch=from_scratch)
