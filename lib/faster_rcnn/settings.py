"""Settings objects: what the config says, captured once and passed down as arguments.

The edge (the tools, ``faster_rcnn.cli``, ``Detector.load``) turns a config object into these frozen dataclasses;
everything below receives them and never reads a config. A model carries its ``ModelSettings`` (input
normalisation and channel order, test scales, anchors, pooling, box regression, NMS and caps), so two models in
one process never share a setting by accident.

``from_config(c)`` reads a config object (``faster_rcnn.config.cfg`` at the edge, or a private copy from
``new_config()``); values are checked here, and a bad one is a ConfigError naming its key.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .config import Config, new_config
from .errors import ConfigError

CHANNEL_ORDERS = ('BGR', 'RGB')
POOLING_MODES = ('crop', 'align', 'pool')
TEST_MODES = ('nms', 'top')
CHANNELS_LAST_MODES = ('cpu', 'always', 'never')
AMP_MODES = ('', 'bf16', 'fp16')


def _triple(value: Any, key: str) -> tuple[float, float, float]:
    flat = np.asarray(value, dtype=np.float64).ravel()
    if flat.size != 3:
        raise ConfigError(f'config key {key}: expected 3 numbers (B, G, R), got {flat.tolist()}')
    return tuple(float(v) for v in flat)


def _choice(value: str, choices: tuple[str, ...], key: str) -> str:
    if value not in choices:
        raise ConfigError(f'config key {key}: unknown value {value!r}, expected one of {list(choices)}')
    return value


@dataclass(frozen=True)
class InputSettings:
    """How an image becomes the network's input (``faster_rcnn.data.blob``): BGR pixels minus ``pixel_means``,
    divided by ``pixel_stds`` (both BGR, 0-255 scale), reordered to ``channel_order``, resized bilinearly so the
    shorter side is one of ``scales`` and the longer side at most ``max_size``."""

    pixel_means: tuple[float, float, float] = (102.9801, 115.9465, 122.7717)
    pixel_stds: tuple[float, float, float] = (1.0, 1.0, 1.0)
    channel_order: str = 'BGR'
    scales: tuple[int, ...] = (600,)
    max_size: int = 1000

    def __post_init__(self) -> None:
        _choice(self.channel_order, CHANNEL_ORDERS, 'CHANNEL_ORDER')
        if not self.scales or any(int(s) <= 0 for s in self.scales) or int(self.max_size) <= 0:
            raise ConfigError(f'config keys SCALES / MAX_SIZE: expected at least one positive scale and a positive '
                              f'maximum, got {list(self.scales)} / {self.max_size}')

    @classmethod
    def from_config(cls, c: Config, training: bool = False) -> 'InputSettings':
        section = c.TRAIN if training else c.TEST
        return cls(pixel_means=_triple(c.PIXEL_MEANS, 'PIXEL_MEANS'), pixel_stds=_triple(c.PIXEL_STDS, 'PIXEL_STDS'),
                   channel_order=_choice(str(c.CHANNEL_ORDER), CHANNEL_ORDERS, 'CHANNEL_ORDER'),
                   scales=tuple(int(s) for s in section.SCALES), max_size=int(section.MAX_SIZE))

    def single_scale(self) -> int:
        """The test scale: testing uses exactly one, as tf-faster-rcnn."""
        if len(self.scales) != 1:
            raise ConfigError(f'config key TEST.SCALES = {list(self.scales)}: testing uses exactly one scale, as '
                              'tf-faster-rcnn does')
        return int(self.scales[0])


@dataclass(frozen=True)
class DetectionSettings:
    """Test-time post-processing (``faster_rcnn.nets.postprocess``): decode the class-specific deltas when
    ``bbox_reg``, clip, keep scores > ``score_thresh``, per-class NMS at ``nms``, at most ``max_per_image`` per image
    (0: no cap; ties with the last one kept)."""

    bbox_reg: bool = True
    score_thresh: float = 0.0
    nms: float = 0.3
    max_per_image: int = 100

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.nms) <= 1.0:
            raise ConfigError(f'config key TEST.NMS must be in [0, 1], got {self.nms}')
        if int(self.max_per_image) < 0:
            raise ConfigError(f'config key TEST.MAX_PER_IMAGE must be >= 0 (0: no cap), got {self.max_per_image}')

    @classmethod
    def from_config(cls, c: Config) -> 'DetectionSettings':
        t = c.TEST
        return cls(bbox_reg=bool(t.BBOX_REG), score_thresh=float(t.SCORE_THRESH), nms=float(t.NMS),
                   max_per_image=int(t.MAX_PER_IMAGE))


@dataclass(frozen=True)
class BackboneSettings:
    """The layout and width keys of the backbones (VGG16.*, RESNET.*, MOBILENET.*, TINY.*)."""

    vgg16_ceil_mode: bool = True
    resnet_layout: str = 'torchvision'
    resnet_fixed_blocks: int = 1
    resnet_max_pool: bool = False
    mobilenet_version: int = 2
    mobilenet_fixed_layers: int = 5
    mobilenet_depth_multiplier: float = 1.0
    tiny_channels: tuple[int, ...] = (32, 64, 96, 128, 128)
    tiny_fc_dim: int = 256
    pooling_size: int = 7

    @classmethod
    def from_config(cls, c: Config) -> 'BackboneSettings':
        return cls(vgg16_ceil_mode=bool(c.VGG16.CEIL_MODE), resnet_layout=str(c.RESNET.LAYOUT),
                   resnet_fixed_blocks=int(c.RESNET.FIXED_BLOCKS), resnet_max_pool=bool(c.RESNET.MAX_POOL),
                   mobilenet_version=int(c.MOBILENET.VERSION), mobilenet_fixed_layers=int(c.MOBILENET.FIXED_LAYERS),
                   mobilenet_depth_multiplier=float(c.MOBILENET.DEPTH_MULTIPLIER),
                   tiny_channels=tuple(int(v) for v in c.TINY.CHANNELS), tiny_fc_dim=int(c.TINY.FC_DIM),
                   pooling_size=int(c.POOLING_SIZE))


@dataclass(frozen=True)
class NetworkSettings:
    """The RPN, the target layers, proposals and RoI features of ``FasterRCNN`` (keyword arguments of the layer
    functions are named as the lower-cased config keys they come from)."""

    anchor_scales: tuple[float, ...] = (8.0, 16.0, 32.0)
    anchor_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    rpn_channels: int = 512
    pooling_mode: str = 'crop'
    pooling_size: int = 7
    truncated_init: bool = False
    anchor_target_kwargs: dict = field(default_factory=dict)
    proposal_target_kwargs: dict = field(default_factory=dict)
    train_proposal_kwargs: dict = field(default_factory=lambda: dict(pre_nms_top_n=12000, post_nms_top_n=2000,
                                                                     nms_thresh=0.7, min_size=0.0))
    test_proposal_kwargs: dict = field(default_factory=lambda: dict(pre_nms_top_n=6000, post_nms_top_n=300,
                                                                    nms_thresh=0.7, min_size=0.0))
    test_mode: str = 'nms'
    test_rpn_top_n: int = 5000
    bbox_means: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
    bbox_stds: tuple[float, ...] = (0.1, 0.1, 0.2, 0.2)
    denormalize_bbox: bool = True
    channels_last: str = 'cpu'

    def __post_init__(self) -> None:
        _choice(self.pooling_mode, POOLING_MODES, 'POOLING_MODE')
        _choice(self.test_mode, TEST_MODES, 'TEST.MODE')
        _choice(self.channels_last, CHANNELS_LAST_MODES, 'CHANNELS_LAST')
        for key, kwargs in (('TRAIN', self.train_proposal_kwargs), ('TEST', self.test_proposal_kwargs)):
            if float(kwargs.get('min_size', 0.0)) < 0:
                raise ConfigError(f'config key {key}.RPN_MIN_SIZE must be >= 0 (0: no filter), '
                                  f'got {kwargs["min_size"]}')
        if self.test_mode == 'top' and float(self.test_proposal_kwargs.get('min_size', 0.0)) > 0:
            raise ConfigError("config key TEST.RPN_MIN_SIZE: the minimum-size filter needs TEST.MODE 'nms'; set "
                              "TEST.MODE nms or TEST.RPN_MIN_SIZE 0")

    @property
    def num_anchors(self) -> int:
        return len(self.anchor_scales) * len(self.anchor_ratios)

    @classmethod
    def from_config(cls, c: Config) -> 'NetworkSettings':
        tr = c.TRAIN
        return cls(
            anchor_scales=tuple(float(s) for s in c.ANCHOR_SCALES),
            anchor_ratios=tuple(float(r) for r in c.ANCHOR_RATIOS),
            rpn_channels=int(c.RPN_CHANNELS),
            pooling_mode=_choice(str(c.POOLING_MODE), POOLING_MODES, 'POOLING_MODE'),
            pooling_size=int(c.POOLING_SIZE),
            truncated_init=bool(tr.TRUNCATED),
            anchor_target_kwargs=dict(
                rpn_positive_overlap=tr.RPN_POSITIVE_OVERLAP, rpn_negative_overlap=tr.RPN_NEGATIVE_OVERLAP,
                rpn_clobber_positives=tr.RPN_CLOBBER_POSITIVES, rpn_batchsize=tr.RPN_BATCHSIZE,
                rpn_fg_fraction=tr.RPN_FG_FRACTION, rpn_positive_weight=tr.RPN_POSITIVE_WEIGHT,
                rpn_bbox_inside_weights=tuple(tr.RPN_BBOX_INSIDE_WEIGHTS), allowed_border=0),
            proposal_target_kwargs=dict(
                batch_size=tr.BATCH_SIZE, fg_fraction=tr.FG_FRACTION, fg_thresh=tr.FG_THRESH,
                bg_thresh_hi=tr.BG_THRESH_HI, bg_thresh_lo=tr.BG_THRESH_LO,
                bbox_normalize_targets_precomputed=tr.BBOX_NORMALIZE_TARGETS_PRECOMPUTED,
                bbox_normalize_means=tuple(tr.BBOX_NORMALIZE_MEANS),
                bbox_normalize_stds=tuple(tr.BBOX_NORMALIZE_STDS),
                bbox_inside_weights=tuple(tr.BBOX_INSIDE_WEIGHTS), use_gt=bool(tr.USE_GT)),
            train_proposal_kwargs=dict(pre_nms_top_n=tr.RPN_PRE_NMS_TOP_N, post_nms_top_n=tr.RPN_POST_NMS_TOP_N,
                                       nms_thresh=tr.RPN_NMS_THRESH, min_size=float(tr.RPN_MIN_SIZE)),
            test_proposal_kwargs=dict(pre_nms_top_n=c.TEST.RPN_PRE_NMS_TOP_N,
                                      post_nms_top_n=c.TEST.RPN_POST_NMS_TOP_N,
                                      nms_thresh=c.TEST.RPN_NMS_THRESH, min_size=float(c.TEST.RPN_MIN_SIZE)),
            test_mode=_choice(str(c.TEST.MODE), TEST_MODES, 'TEST.MODE'),
            test_rpn_top_n=int(c.TEST.RPN_TOP_N),
            bbox_means=tuple(float(v) for v in tr.BBOX_NORMALIZE_MEANS),
            bbox_stds=tuple(float(v) for v in tr.BBOX_NORMALIZE_STDS),
            denormalize_bbox=bool(tr.BBOX_NORMALIZE_TARGETS_PRECOMPUTED),
            channels_last=_choice(str(c.CHANNELS_LAST), CHANNELS_LAST_MODES, 'CHANNELS_LAST'),
        )


@dataclass(frozen=True)
class ModelSettings:
    """Everything that decides a detector's outputs: its network, backbone layout, input and post-processing."""

    net: str
    backbone: BackboneSettings
    network: NetworkSettings
    input: InputSettings
    detection: DetectionSettings

    @classmethod
    def from_config(cls, c: Config, net: str) -> 'ModelSettings':
        return cls(net=net, backbone=BackboneSettings.from_config(c), network=NetworkSettings.from_config(c),
                   input=InputSettings.from_config(c, training=False), detection=DetectionSettings.from_config(c))

    @classmethod
    def defaults(cls, net: str) -> 'ModelSettings':
        """The settings of the default config (tf-faster-rcnn's defaults) for ``net``."""
        return cls.from_config(new_config(), net)

    def with_test(self, **changes: Any) -> 'ModelSettings':
        """A copy with test-time keys changed: ``score_thresh``, ``nms``, ``max_per_image``, ``bbox_reg`` (detection),
        ``scales``, ``max_size`` (input)."""
        detection = {k: changes.pop(k) for k in ('score_thresh', 'nms', 'max_per_image', 'bbox_reg') if k in changes}
        inputs = {k: changes.pop(k) for k in ('scales', 'max_size') if k in changes}
        if changes:
            raise ConfigError(f'unknown test-time setting(s) {sorted(changes)}: expected score_thresh, nms, '
                              'max_per_image, bbox_reg, scales or max_size')
        if 'scales' in inputs:
            scales = inputs['scales']
            inputs['scales'] = (int(scales),) if isinstance(scales, (int, float)) else tuple(int(s) for s in scales)
        return replace(self, detection=replace(self.detection, **detection), input=replace(self.input, **inputs))


@dataclass(frozen=True)
class OptimizerSettings:
    """``faster_rcnn.engine.optimizer``: tf-faster-rcnn's parameter groups on SGD or AdamW."""

    kind: str = 'sgd'
    learning_rate: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 0.0001
    double_bias: bool = True
    bias_decay: bool = False
    mobilenet_weight_decay: float = 0.00004
    mobilenet_regu_depth: bool = False

    def __post_init__(self) -> None:
        _choice(self.kind, ('sgd', 'adamw'), 'TRAIN.OPTIMIZER')

    @classmethod
    def from_config(cls, c: Config) -> 'OptimizerSettings':
        tr = c.TRAIN
        return cls(kind=str(tr.OPTIMIZER), learning_rate=float(tr.LEARNING_RATE), momentum=float(tr.MOMENTUM),
                   weight_decay=float(tr.WEIGHT_DECAY), double_bias=bool(tr.DOUBLE_BIAS),
                   bias_decay=bool(tr.BIAS_DECAY), mobilenet_weight_decay=float(c.MOBILENET.WEIGHT_DECAY),
                   mobilenet_regu_depth=bool(c.MOBILENET.REGU_DEPTH))


@dataclass(frozen=True)
class RoidbSettings:
    """How a training roidb is prepared (``faster_rcnn.data.roidb``)."""

    use_flipped: bool = True
    use_all_gt: bool = True
    keep_background_images: bool = False
    proposal_method: str = 'gt'

    @classmethod
    def from_config(cls, c: Config) -> 'RoidbSettings':
        tr = c.TRAIN
        return cls(use_flipped=bool(tr.USE_FLIPPED), use_all_gt=bool(tr.USE_ALL_GT),
                   keep_background_images=bool(tr.KEEP_BACKGROUND_IMAGES), proposal_method=str(tr.PROPOSAL_METHOD))


@dataclass(frozen=True)
class TestSettings:
    """How a dataset is tested (``faster_rcnn.engine.tester``): images per forward, precision, loader workers."""

    ims_per_batch: int = 1
    amp: str = ''
    num_workers: int = 2

    def __post_init__(self) -> None:
        if int(self.ims_per_batch) < 1:
            raise ConfigError(f'config key TEST.IMS_PER_BATCH must be at least 1, got {self.ims_per_batch}')
        _choice(self.amp, AMP_MODES, 'TEST.AMP')

    @classmethod
    def from_config(cls, c: Config, num_workers: int | None = None) -> 'TestSettings':
        return cls(ims_per_batch=int(c.TEST.IMS_PER_BATCH), amp=str(c.TEST.AMP),
                   num_workers=int(c.DATA_LOADER.NUM_WORKERS if num_workers is None else num_workers))


@dataclass(frozen=True)
class TrainSettings:
    """What a training run reads besides its model (``faster_rcnn.engine``). The schedule numbers are the ones
    the run uses, after the linear scaling rule (``engine.schedule``)."""

    seed: int = 3
    ims_per_batch: int = 1
    input: InputSettings = InputSettings()
    use_all_gt: bool = True
    aspect_grouping: bool = False
    num_workers: int = 2
    optimizer: OptimizerSettings = OptimizerSettings()
    lr_policy: str = 'step'
    stepsize: tuple[int, ...] = (30000,)
    gamma: float = 0.1
    warmup_iters: int = 0
    warmup_factor: float = 0.001
    amp: str = ''
    clip_grad_norm: float = 0.0
    display: int = 10
    summary_interval: float = 180.0
    snapshot_iters: int = 5000
    snapshot_prefix: str = 'res101_faster_rcnn'
    snapshot_kept: int = 3
    eval_interval: int = 0
    test: TestSettings = TestSettings()

    def __post_init__(self) -> None:
        _choice(self.lr_policy, ('step', 'cosine'), 'TRAIN.LR_POLICY')
        _choice(self.amp, AMP_MODES, 'TRAIN.AMP')
        if int(self.ims_per_batch) < 1:
            raise ConfigError(f'config key TRAIN.IMS_PER_BATCH must be at least 1, got {self.ims_per_batch}')
        if int(self.display) < 1 or int(self.snapshot_iters) < 1:
            raise ConfigError(f'config keys TRAIN.DISPLAY and TRAIN.SNAPSHOT_ITERS must be at least 1, got '
                              f'{self.display} and {self.snapshot_iters}')

    @classmethod
    def from_config(cls, c: Config, num_workers: int | None = None) -> 'TrainSettings':
        tr = c.TRAIN
        workers = int(c.DATA_LOADER.NUM_WORKERS if num_workers is None else num_workers)
        return cls(seed=int(c.RNG_SEED), ims_per_batch=int(tr.IMS_PER_BATCH),
                   input=InputSettings.from_config(c, training=True), use_all_gt=bool(tr.USE_ALL_GT),
                   aspect_grouping=bool(tr.ASPECT_GROUPING), num_workers=workers,
                   optimizer=OptimizerSettings.from_config(c), lr_policy=str(tr.LR_POLICY),
                   stepsize=tuple(int(s) for s in tr.STEPSIZE), gamma=float(tr.GAMMA),
                   warmup_iters=int(tr.WARMUP_ITERS), warmup_factor=float(tr.WARMUP_FACTOR), amp=str(tr.AMP),
                   clip_grad_norm=float(tr.CLIP_GRAD_NORM), display=int(tr.DISPLAY),
                   summary_interval=float(tr.SUMMARY_INTERVAL), snapshot_iters=int(tr.SNAPSHOT_ITERS),
                   snapshot_prefix=str(tr.SNAPSHOT_PREFIX), snapshot_kept=int(tr.SNAPSHOT_KEPT),
                   eval_interval=int(tr.EVAL_INTERVAL), test=TestSettings.from_config(c, num_workers=workers))
