"""The experiment configuration: tf-faster-rcnn's keys and defaults, plus the keys this project adds.

``cfg`` is one process-wide EasyDict, as in tf-faster-rcnn, and it belongs to the edge: the tools and
``faster_rcnn.cli`` merge ``--cfg`` files (``yaml.safe_load``) and ``--set KEY VALUE`` pairs into it, then turn
it into settings objects (``faster_rcnn.settings``) that everything below them receives as arguments. No
library module reads or writes ``cfg`` (docs/design.md §3).

Every function that reads or changes a config takes the config object as an argument, so a library caller
(``Detector.load``, the converters, the benchmarks) works on its own copy: ``new_config()`` is a fresh one with
the defaults. Merging refuses a key that does not exist and a value whose type does not fit the default,
naming the key, so a typo in a yml fails at start-up instead of being silently ignored.
"""
from __future__ import annotations

import ast
import copy
import os
import os.path as osp
from typing import Any

import numpy as np
import yaml
from easydict import EasyDict as edict

from .errors import ConfigError
from .paths import default_data_dir, default_root

__C = edict()
cfg = __C


# ---------------------------------------------------------------------------------------------------------
# Training options
# ---------------------------------------------------------------------------------------------------------
__C.TRAIN = edict()

__C.TRAIN.LEARNING_RATE = 0.001
__C.TRAIN.MOMENTUM = 0.9
__C.TRAIN.WEIGHT_DECAY = 0.0001
# Factor of each LR step
__C.TRAIN.GAMMA = 0.1
# Iterations at which the LR is multiplied by GAMMA
__C.TRAIN.STEPSIZE = [30000]
# Iterations between two log lines
__C.TRAIN.DISPLAY = 10
# Twice the learning rate for biases (Caffe's convention, used by the vgg16 yml)
__C.TRAIN.DOUBLE_BIAS = True
# Initialise new layers from a truncated normal instead of a normal distribution
__C.TRAIN.TRUNCATED = False
# Apply weight decay to biases too
__C.TRAIN.BIAS_DECAY = False
# Append the gt boxes to the proposals used for the R-CNN head
__C.TRAIN.USE_GT = False
# Group images of similar aspect ratio into one batch (only matters when IMS_PER_BATCH > 1)
__C.TRAIN.ASPECT_GROUPING = False
# Snapshots kept on disk (the final one is always kept as well)
__C.TRAIN.SNAPSHOT_KEPT = 3
# Seconds between two validation summaries
__C.TRAIN.SUMMARY_INTERVAL = 180
# Shorter side of the training image, chosen at random among these
__C.TRAIN.SCALES = (600,)
# Longest side of the training image
__C.TRAIN.MAX_SIZE = 1000
# Images per batch (per process in distributed training)
__C.TRAIN.IMS_PER_BATCH = 1

# The global batch (processes x IMS_PER_BATCH) this config's schedule was written for: 1 in tf-faster-rcnn's
# ymls. When a run's global batch B differs, the iterations, STEPSIZE, SNAPSHOT_ITERS, DISPLAY, EVAL_INTERVAL
# and WARMUP_ITERS are scaled by REFERENCE_BATCH / B and LEARNING_RATE by B / REFERENCE_BATCH (the linear
# scaling rule, engine/schedule.py), so the run sees the reference's schedule in images.
__C.TRAIN.REFERENCE_BATCH = 1
# False: take the numbers as given whatever the global batch (trainval_net.py --keep-schedule).
__C.TRAIN.SCALE_SCHEDULE = True
# Iterations of the linear warm-up (from the reference LR to the scaled one) that a larger global batch gets,
# at most 5% of the scaled iterations; an existing warm-up, scaled, is kept when longer.
__C.TRAIN.SCALED_WARMUP_ITERS = 500
# Keep training images without any usable gt box (background-only images: every anchor and roi negative).
# Off as in the reference, which drops them.
__C.TRAIN.KEEP_BACKGROUND_IMAGES = False
# RoIs sampled per image for the R-CNN head
__C.TRAIN.BATCH_SIZE = 128
# Fraction of those RoIs that are foreground
__C.TRAIN.FG_FRACTION = 0.25
# IoU with a gt box from which a RoI is foreground
__C.TRAIN.FG_THRESH = 0.5
# RoIs with IoU in [LO, HI) are background
__C.TRAIN.BG_THRESH_HI = 0.5
__C.TRAIN.BG_THRESH_LO = 0.1
# Horizontally flipped copies of the training images
__C.TRAIN.USE_FLIPPED = True
# Train the bounding-box regressors
__C.TRAIN.BBOX_REG = True
# Overlap a RoI needs with a gt box to be used as a regression example
__C.TRAIN.BBOX_THRESH = 0.5
# Iterations between two snapshots
__C.TRAIN.SNAPSHOT_ITERS = 5000
# Snapshot file prefix: <prefix>_iter_<N>.pth
__C.TRAIN.SNAPSHOT_PREFIX = 'res101_faster_rcnn'
# Normalise the R-CNN regression targets by BBOX_NORMALIZE_MEANS / STDS
__C.TRAIN.BBOX_NORMALIZE_TARGETS = True
__C.TRAIN.BBOX_INSIDE_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
__C.TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED = True
__C.TRAIN.BBOX_NORMALIZE_MEANS = (0.0, 0.0, 0.0, 0.0)
__C.TRAIN.BBOX_NORMALIZE_STDS = (0.1, 0.1, 0.2, 0.2)
# Proposal method of the roidb ('gt' only: proposals come from the RPN)
__C.TRAIN.PROPOSAL_METHOD = 'gt'
# The network has an RPN (always, in Faster R-CNN)
__C.TRAIN.HAS_RPN = True
# IoU from which an anchor is positive
__C.TRAIN.RPN_POSITIVE_OVERLAP = 0.7
# IoU below which an anchor is negative
__C.TRAIN.RPN_NEGATIVE_OVERLAP = 0.3
# Let negatives overwrite positives (assign negatives last)
__C.TRAIN.RPN_CLOBBER_POSITIVES = False
# Fraction of foreground anchors in the RPN minibatch
__C.TRAIN.RPN_FG_FRACTION = 0.5
# Anchors sampled per image for the RPN loss
__C.TRAIN.RPN_BATCHSIZE = 256
# NMS threshold of the proposal layer
__C.TRAIN.RPN_NMS_THRESH = 0.7
# Proposals kept before NMS
__C.TRAIN.RPN_PRE_NMS_TOP_N = 12000
# Proposals kept after NMS
__C.TRAIN.RPN_POST_NMS_TOP_N = 2000
# --- added by this project ---
# Proposals narrower or lower than RPN_MIN_SIZE x the image's scale (after clipping, +1 widths) are dropped
# before the pre-NMS top-N: py-faster-rcnn's filter, which BUTD's model ran with (16). 0: no filter, as
# tf-faster-rcnn
__C.TRAIN.RPN_MIN_SIZE = 0
# Deprecated in the reference, kept for the ymls that set it
__C.TRAIN.RPN_BBOX_INSIDE_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
# Weight of positive anchors in the RPN box loss (-1: uniform 1/N_sampled)
__C.TRAIN.RPN_POSITIVE_WEIGHT = -1.0
# Use all gt boxes, including 'difficult' ones (VOC)
__C.TRAIN.USE_ALL_GT = True
# --- added by this project ---
# Optimizer: 'sgd' (the reference) or 'adamw' (for networks trained from scratch, e.g. shapes)
__C.TRAIN.OPTIMIZER = 'sgd'
# LR schedule: 'step' (x GAMMA at each STEPSIZE, the reference) or 'cosine' (to 0 at the last iteration)
__C.TRAIN.LR_POLICY = 'step'
# Linear warm-up from LEARNING_RATE * WARMUP_FACTOR over WARMUP_ITERS iterations (0: none, the reference)
__C.TRAIN.WARMUP_ITERS = 0
__C.TRAIN.WARMUP_FACTOR = 0.001
# Mixed precision: '' (fp32), 'bf16' or 'fp16'; box decoding, IoU and NMS always stay in fp32
__C.TRAIN.AMP = ''
# Gradient clipping by global norm (0: none, the reference)
__C.TRAIN.CLIP_GRAD_NORM = 0.0
# Evaluate on --imdbval every EVAL_INTERVAL iterations (0: never): mean AP printed and written to TensorBoard.
# It changes nothing in the training (the RNG states are put back); under DDP the images are sharded.
__C.TRAIN.EVAL_INTERVAL = 0
# Images of --imdbval that evaluation uses (the first EVAL_IMAGES; 0: all)
__C.TRAIN.EVAL_IMAGES = 0

# ---------------------------------------------------------------------------------------------------------
# Testing options
# ---------------------------------------------------------------------------------------------------------
__C.TEST = edict()

__C.TEST.SCALES = (600,)
__C.TEST.MAX_SIZE = 1000
# IoU threshold of the per-class NMS
__C.TEST.NMS = 0.3
# Use SVM scores instead of softmax (unsupported; kept so old ymls load)
__C.TEST.SVM = False
# Apply the regressed box deltas
__C.TEST.BBOX_REG = True
__C.TEST.HAS_RPN = False
__C.TEST.PROPOSAL_METHOD = 'gt'
__C.TEST.RPN_NMS_THRESH = 0.7
__C.TEST.RPN_PRE_NMS_TOP_N = 6000
__C.TEST.RPN_POST_NMS_TOP_N = 300
# --- added by this project ---
# TRAIN.RPN_MIN_SIZE at test time (BUTD: 16; 0: no filter). TEST.MODE 'top' has no filter
__C.TEST.RPN_MIN_SIZE = 0
# 'nms' (pre-NMS top-N, NMS, post-NMS top-N) or 'top' (top RPN_TOP_N anchors, no NMS)
__C.TEST.MODE = 'nms'
__C.TEST.RPN_TOP_N = 5000
# --- added by this project ---
# Detections kept per image over all classes (test_net's --num_dets overrides it)
__C.TEST.MAX_PER_IMAGE = 100
# Score threshold below which detections are dropped before NMS
__C.TEST.SCORE_THRESH = 0.0
# Images per forward pass when testing a dataset (padded as in training; each image gets exactly what it
# gets alone)
__C.TEST.IMS_PER_BATCH = 1
# Mixed-precision inference: '' (fp32), 'bf16' or 'fp16'; box decoding, IoU and NMS stay in fp32
__C.TEST.AMP = ''

# ---------------------------------------------------------------------------------------------------------
# Network options
# ---------------------------------------------------------------------------------------------------------
__C.RESNET = edict()
# Max-pool the 14x14 crops to 7x7 (else crop 7x7 directly)
__C.RESNET.MAX_POOL = False
# Blocks frozen besides the root (0 to 3)
__C.RESNET.FIXED_BLOCKS = 1
# --- added by this project ---
# Where the stride-2 convolutions of layer2 and layer3 sit (a layout of the published detectors; the same
# weights compute different features in each): 'torchvision' (3x3 conv of the first unit of layer2 and layer3,
# ResNet v1.5: torchvision's ImageNet weights), 'slim' (3x3 conv of the LAST unit of layer1 and layer2, whose
# shortcut subsamples: tf-faster-rcnn's resnet_v1) or 'caffe' (1x1 conv1 of the first unit of layer2 and
# layer3: pytorch-faster-rcnn)
__C.RESNET.LAYOUT = 'torchvision'

# --- added by this project ---
__C.VGG16 = edict()
# Ceil-mode max-pools (feature map ceil(H/16) x ceil(W/16), as tf-faster-rcnn's 'SAME' pools); False gives
# torchvision's floor mode (floor(H/16) x floor(W/16)), the layout of pytorch-faster-rcnn's VGG16
__C.VGG16.CEIL_MODE = True

__C.MOBILENET = edict()
# Regularise the depthwise convolutions as well
__C.MOBILENET.REGU_DEPTH = False
# Leading layers of the backbone's features frozen (0..14 for MobileNetV2, 0..12 for MobileNetV1)
__C.MOBILENET.FIXED_LAYERS = 5
__C.MOBILENET.WEIGHT_DECAY = 0.00004
# Width multiplier (only 1.0 has published weights)
__C.MOBILENET.DEPTH_MULTIPLIER = 1.0
# --- added by this project ---
# 2: torchvision's MobileNetV2 (ImageNet weights available); 1: MobileNetV1 as tf-faster-rcnn and
# pytorch-faster-rcnn built it (their published mobile detectors; no maintained ImageNet weights)
__C.MOBILENET.VERSION = 2

# --- added by this project: the small network trained from scratch (shapes quick start) ---
__C.TINY = edict()
# Output channels of the five 3x3 conv stages; stages 1 to 4 halve the resolution (stride 16)
__C.TINY.CHANNELS = [32, 64, 96, 128, 128]
# Width of the fully connected R-CNN tail
__C.TINY.FC_DIM = 256

# ---------------------------------------------------------------------------------------------------------
# MISC
# ---------------------------------------------------------------------------------------------------------
# Pixel means and standard deviations in BGR order on the 0-255 scale. The reference subtracts Caffe's
# BGR means only; torchvision's ImageNet weights expect RGB, /255, minus (0.485, 0.456, 0.406),
# divided by (0.229, 0.224, 0.225): the ymls of those networks set the equivalent values here.
__C.PIXEL_MEANS = np.array([[[102.9801, 115.9465, 122.7717]]])
__C.PIXEL_STDS = np.array([[[1.0, 1.0, 1.0]]])
# Channel order of the network input after normalisation: 'BGR' (Caffe) or 'RGB' (torchvision)
__C.CHANNEL_ORDER = 'BGR'

# Seed of every random generator (python, numpy, torch, data order)
__C.RNG_SEED = 3

# Root of the project: where output/, tensorboard/ and (by default) data/ live. The environment variable
# FRCNN_ROOT_DIR sets it; otherwise it is the source checkout when the package runs from one (pip install -e),
# else the current directory (pip install ., where the package sits in site-packages).
__C.ROOT_DIR = default_root()
# Where datasets live (the environment variable FRCNN_DATA_DIR sets it; default ROOT_DIR/data)
__C.DATA_DIR = default_data_dir(__C.ROOT_DIR)
# MATLAB binary (official VOC evaluation; unsupported, kept so old ymls load)
__C.MATLAB = 'matlab'
# Experiment name: output/<EXP_DIR>/<imdb>/<tag>
__C.EXP_DIR = 'default'
# Kept for compatibility: NMS always runs on the tensors' device
__C.USE_GPU_NMS = True
# 'crop' (TensorFlow crop_and_resize, the reference), 'align' (RoIAlign) or 'pool' (RoIPool)
__C.POOLING_MODE = 'crop'
__C.POOLING_SIZE = 7
# Anchor scales (multiples of the 16-pixel base box) and ratios (h / w)
__C.ANCHOR_SCALES = [8.0, 16.0, 32.0]
__C.ANCHOR_RATIOS = [0.5, 1.0, 2.0]
# Channels of the RPN's 3x3 conv
__C.RPN_CHANNELS = 512
# Small number for numerical stability
__C.EPS = 1e-14

# --- added by this project ---
__C.DATA_LOADER = edict()
# DataLoader worker processes (0: load in the main process)
__C.DATA_LOADER.NUM_WORKERS = 2
# Memory layout of the images and convolution weights: 'cpu' (channels-last on CPU, where oneDNN's
# convolutions and pools run 10-45% faster in it; NCHW on CUDA), 'always' or 'never'
__C.CHANNELS_LAST = 'cpu'


# The pristine defaults: new_config() copies them, reset_cfg() puts them back into the global cfg.
_DEFAULTS = copy.deepcopy(__C)

Config = edict  # a config object: the global ``cfg`` or a copy from ``new_config()``


def new_config() -> Config:
    """A fresh config object holding every default (not the global ``cfg``)."""
    return copy.deepcopy(_DEFAULTS)


def reset_cfg() -> None:
    """Restore every key of the global ``cfg`` to its default and forget recorded keys (tests, long processes)."""
    __C.clear()
    __C.update(copy.deepcopy(_DEFAULTS))
    clear_recorded_keys()


def path_safe(name: str) -> str:
    """A dataset name as one folder name: ``voc_dir:/data/mine:train`` -> ``voc_dir_data_mine_train`` (the
    built-in names are unchanged)."""
    out = ''.join(ch if ch.isalnum() or ch in '_.+-' else '_' for ch in name)
    while '__' in out:
        out = out.replace('__', '_')
    return out.strip('_') or 'dataset'


def _run_dir(kind: str, config: Config, imdb_name: str, weights_filename: str | None, tag: str | None) -> str:
    outdir = osp.abspath(osp.join(config.ROOT_DIR, kind, config.EXP_DIR, path_safe(imdb_name), tag or 'default'))
    if weights_filename is not None:
        outdir = osp.join(outdir, weights_filename)
    os.makedirs(outdir, exist_ok=True)
    return outdir


def get_output_dir(imdb_name: str, weights_filename: str | None = None, tag: str | None = None,
                   config: Config | None = None) -> str:
    """``output/<EXP_DIR>/<imdb_name>/<tag or 'default'>[/<weights_filename>]``, created if missing."""
    return _run_dir('output', __C if config is None else config, imdb_name, weights_filename, tag)


def get_output_tb_dir(imdb_name: str, weights_filename: str | None = None, tag: str | None = None,
                      config: Config | None = None) -> str:
    """``tensorboard/<EXP_DIR>/<imdb_name>/<tag or 'default'>[/<weights_filename>]``, created if missing."""
    return _run_dir('tensorboard', __C if config is None else config, imdb_name, weights_filename, tag)


def _type_name(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f'array of shape {value.shape}'
    return type(value).__name__


def _coerce(key: str, new: Any, old: Any) -> Any:
    """Return ``new`` converted to the type of the default ``old``, or raise ConfigError naming ``key``."""
    if isinstance(old, np.ndarray):
        arr = np.asarray(new, dtype=old.dtype)
        if arr.size != old.size:
            raise ConfigError(f'config key {key}: expected {old.size} numbers (like {old.ravel().tolist()}), '
                              f'got {new!r}')
        return arr.reshape(old.shape)
    if isinstance(old, bool) or isinstance(new, bool):
        if isinstance(old, bool) and isinstance(new, bool):
            return new
        raise ConfigError(f'config key {key}: expected {_type_name(old)}, got {_type_name(new)} {new!r}')
    if isinstance(old, float) and isinstance(new, int):
        return float(new)
    if isinstance(old, int) and isinstance(new, float) and new.is_integer():
        return int(new)  # 600.0 for an integer key: what YAML or a float computation may give
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
        # A list where the default is a tuple (YAML has no tuples) is fine; element types must still fit.
        if old:
            proto = old[0]
            out = [_coerce(f'{key}[{i}]', v, proto) for i, v in enumerate(new)]
        else:
            out = list(new)
        return type(old)(out)
    if old is None or new is None:
        return new
    if type(new) is not type(old):
        raise ConfigError(f'config key {key}: expected {_type_name(old)}, got {_type_name(new)} {new!r}')
    return new


def to_plain(value: Any) -> Any:
    """``value`` as plain Python (lists, floats, ints, str, bool, dicts): what a detector file stores."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def same_value(a: Any, b: Any) -> bool:
    """Whether two config values are equal (numbers within 1e-9 relative: they went through a file)."""
    a, b = to_plain(a), to_plain(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= 1e-9 * max(abs(a), abs(b)) + 1e-12
    return a == b


def format_value(value: Any) -> str:
    return repr(to_plain(value))


def get_key(key: str, node: Config | None = None) -> Any:
    """The value of the dotted config key ``key`` in ``node`` (default the global cfg); KeyError naming it."""
    node = __C if node is None else node
    for part in key.split('.'):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f'unknown config key {key}')
        node = node[part]
    return node


def is_key(key: str) -> bool:
    """Whether ``key`` is a dotted config key of this version (a leaf, not a section)."""
    try:
        return not isinstance(get_key(key, _DEFAULTS), edict)
    except KeyError:
        return False


def set_key(key: str, value: Any, config: Config | None = None) -> None:
    """Set the dotted key ``key`` of ``config`` (default the global cfg) to ``value`` converted to its default's
    type (ConfigError if unfit)."""
    *parents, last = key.split('.')
    node = __C if config is None else config
    for part in parents:
        if part not in node or not isinstance(node[part], edict):
            raise ConfigError(f'unknown config key {key}')
        node = node[part]
    if last not in node or isinstance(node[last], edict):
        raise ConfigError(f'unknown config key {key}')
    node[last] = _coerce(key, value, node[last])


# ---------------------------------------------------------------------------------------------------------
# Keys recorded in a detector file (the edge: tools apply a file's record to the global cfg)
# ---------------------------------------------------------------------------------------------------------
# A model file records the values that define its network and input (see faster_rcnn.model_file). Once a tool
# has applied them to the global cfg, a config file or --set pair that gives one of them another value is an
# error, so that a model never runs with another normalisation, anchor set or layout by accident;
# ``allow_override`` (the tools' --override flag) turns the error into a warning.
_RECORDED: dict[str, tuple[Any, str]] = {}
_OVERRIDE = {'allowed': False}


def record_keys(values: dict[str, Any], source: str, *, allow_override: bool = False) -> None:
    """Set each dotted key of ``values`` in the global cfg and remember it as recorded in ``source`` (a file)."""
    for key, value in values.items():
        set_key(key, value)
        _RECORDED[key] = (get_key(key), source)
    _OVERRIDE['allowed'] = bool(allow_override)


def clear_recorded_keys() -> None:
    _RECORDED.clear()
    _OVERRIDE['allowed'] = False


def recorded_keys() -> dict[str, tuple[Any, str]]:
    """``{key: (value, file)}`` of the keys a loaded detector file fixed in the global cfg."""
    return dict(_RECORDED)


def _check_recorded(key: str, value: Any) -> None:
    if key not in _RECORDED:
        return
    recorded, source = _RECORDED[key]
    if same_value(recorded, value):
        return
    if _OVERRIDE['allowed']:
        import sys
        print(f'warning: {key} = {format_value(value)} overrides {format_value(recorded)} recorded in {source} '
              '(--override)', file=sys.stderr)
        return
    raise ConfigError(f'{key} = {format_value(value)} contradicts {source}, which was made with {key} = '
                      f'{format_value(recorded)}; leave the key out (the file sets it), or pass --override to run '
                      'the model with the new value')


def _merge_a_into_b(a: dict, b: edict, prefix: str = '', check: bool = False) -> None:
    for k, v in a.items():
        full = f'{prefix}{k}'
        if k not in b:
            raise ConfigError(f'unknown config key {full}: check its spelling against faster_rcnn/config.py')
        if isinstance(b[k], edict):
            if not isinstance(v, dict):
                raise ConfigError(f'config key {full}: expected a section (mapping), got {_type_name(v)}')
            _merge_a_into_b(v, b[k], prefix=f'{full}.', check=check)
        else:
            value = _coerce(full, v, b[k])
            if check:
                _check_recorded(full, value)
            b[k] = value


def merge_file(config: Config, filename: str) -> None:
    """Merge the YAML file ``filename`` into ``config``.

    Raises ConfigError for an unknown key or a wrong type (naming the file and the key). Into the global cfg,
    a value that contradicts a recorded key is an error too (see ``record_keys``).
    """
    try:
        with open(filename, encoding='utf-8') as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError(f'cannot read config file {filename}: {e.strerror}') from e
    except yaml.YAMLError as e:
        raise ConfigError(f'config file {filename} is not valid YAML: {e}') from e
    if data is None:
        return
    if not isinstance(data, dict):
        raise ConfigError(f'config file {filename}: expected a mapping of keys at the top level')
    try:
        _merge_a_into_b(data, config, check=config is __C)
    except ConfigError as e:
        raise ConfigError(f'{filename}: {e}') from None


def _parse_literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        # A bare word such as `crop` or `res101_faster_rcnn` is a string.
        return text


def merge_list(config: Config, cfg_list: list[str]) -> None:
    """Merge ``['KEY.SUB', 'value', ...]`` pairs (the ``--set`` arguments) into ``config``.

    Values are parsed as Python literals (``[600]``, ``0.01``, ``True``); anything else is a string.
    """
    if len(cfg_list) % 2 != 0:
        raise ConfigError(f'--set expects KEY VALUE pairs, got an odd number of items: {cfg_list}')
    for key, text in zip(cfg_list[0::2], cfg_list[1::2]):
        parts = key.split('.')
        node = config
        for i, sub in enumerate(parts[:-1]):
            if sub not in node or not isinstance(node[sub], edict):
                raise ConfigError(f'unknown config key {".".join(parts[:i + 1])} (in --set {key})')
            node = node[sub]
        last = parts[-1]
        if last not in node:
            raise ConfigError(f'unknown config key {key}: check its spelling against faster_rcnn/config.py')
        if isinstance(node[last], edict):
            raise ConfigError(f'config key {key} is a section; set one of its keys instead')
        value = _coerce(key, _parse_literal(text), node[last])
        if config is __C:
            try:
                _check_recorded(key, value)
            except ConfigError as e:
                raise ConfigError(f'--set {e}') from None
        node[last] = value


def cfg_from_file(filename: str) -> None:
    """Merge the YAML file ``filename`` into the global ``cfg`` (the tools' --cfg)."""
    merge_file(__C, filename)


def cfg_from_list(cfg_list: list[str]) -> None:
    """Merge ``--set`` pairs into the global ``cfg``."""
    merge_list(__C, cfg_list)


def check_record_keys(record: dict, source: str) -> None:
    """A CheckpointError when ``record`` (of the file ``source``) names keys this version does not know."""
    unknown = [k for k in record.get('model', {}) if not is_key(k)]
    if unknown:
        from .errors import CheckpointError
        raise CheckpointError(f'{source} records config keys this version does not know ({unknown}): it was '
                              'written by a newer version; update faster-rcnn to use it')


def apply_record(config: Config, record: dict | None, *, test_keys: bool = True, source: str = 'the file') -> bool:
    """Put a detector file's recorded config into ``config`` (a private copy): its model keys, and unless
    ``test_keys`` is off its TEST keys and EXP_DIR. Returns False when there is no record.

    A recorded key this version does not know is a CheckpointError naming ``source``: a newer version wrote it.
    """
    if not record:
        return False
    check_record_keys(record, source)
    model = record.get('model', {})
    for key, value in model.items():
        set_key(key, value, config)
    if test_keys:
        for key, value in record.get('test', {}).items():
            if key in config.TEST:  # a key a later version added cannot change the model
                set_key(f'TEST.{key}', value, config)
        if 'exp_dir' in record:
            config.EXP_DIR = str(record['exp_dir'])
    return True


def config_record(config: Config, model_keys: tuple[str, ...]) -> dict[str, Any]:
    """What a detector file records of ``config``: the ``model_keys`` (those that define the network and its
    input), every TEST key and EXP_DIR, as plain values."""
    return {'model': {k: to_plain(get_key(k, config)) for k in model_keys},
            'test': {k: to_plain(v) for k, v in config.TEST.items()},
            'exp_dir': str(config.EXP_DIR)}


def load_config(cfg_file: str | None = None, set_list: list[str] | None = None) -> Config:
    """A private config: the defaults, then the YAML file ``cfg_file``, then ``--set`` pairs (the benchmarks and
    library callers that take --cfg / --set without touching the global cfg)."""
    config = new_config()
    if cfg_file:
        merge_file(config, cfg_file)
    if set_list:
        merge_list(config, [a for a in set_list if a != '--debug'])
    return config
