"""Regenerate the TensorFlow-made fixtures of the tf-faster-rcnn network-equality tests.

What it writes (OUT is the ``--out`` folder, normally ``tests/data``):

- ``OUT/tf_<net>_<ds>_variables.txt`` for net in vgg16, res50, res101, res152, mobile and ds in voc, coco:
  the variables of tf-faster-rcnn's TRAIN graph with its Momentum optimizer (``SolverWrapper.
  construct_graph`` of lib/model/train_val.py), saved by its ``tf.train.Saver``, listed by
  ``tf.train.list_variables`` as ``name [d0, d1, ...]`` sorted by name.
- ``OUT/tf_net_<net>_<ds>.npz``: what tf-faster-rcnn's TEST graph computes from the seeded weights of
  ``tests/tf_seeded.py`` (seed 2024) for ``seeded_image(100, 140, 7)``; see ``job_netout``.
- ``OUT/tf_written/``: small checkpoints written by TensorFlow for the checkpoint reader's tests, their
  values and a README (``job_written``).
- ``--full-ckpts`` (default /tmp/tf_full_ckpts, never inside the repository): full-size checkpoints
  ``vgg16_voc/vgg16_faster_rcnn_iter_70000.ckpt.*`` and ``res101_voc/res101_faster_rcnn_iter_110000.ckpt.*``
  holding exactly the variables of the list with the seed-2024 values (``--skip-full`` leaves them out).

It imports tf-faster-rcnn itself from ``--tf-faster-rcnn`` (an export of endernewton/tf-faster-rcnn, e.g.
``git -C <mirror> archive HEAD | tar -x -C /tmp/tf_src``); none of its code is copied here. That code is
TensorFlow 1 code: it runs under ``tf.compat.v1`` in graph mode through module shims (``_install_shims``):
``tensorflow`` is a wrapper of ``tf.compat.v1`` (plus ``contrib.layers.l2_regularizer``), ``tensorflow.
contrib.slim`` is tf_slim and its ``python.slim.nets.resnet_utils/resnet_v1`` are ``tf_slim.nets.*``; the
compiled modules are replaced: ``model.nms_wrapper.nms`` by tf's own pure-python ``nms/py_cpu_nms.py``,
``utils.cython_bbox`` by a numpy ``bbox_overlaps`` (only referenced by the TRAIN graph's py_funcs, never
run here), ``utils.visualization`` (PIL) and ``roi_data_layer.{roidb,layer}`` (cv2, PIL) by stubs that
are never called. cfg is set as ``experiments/cfgs/<net>.yml`` does (res101.yml for res152, which has no
yml of its own), with ``ANCHOR_SCALES`` as the training script sets them, ``TEST.MODE 'nms'`` and
``USE_E2E_TF False`` (the numpy proposal layer). oneDNN is switched off (``TF_ENABLE_ONEDNN_OPTS=0``) so
that the plain Eigen kernels compute the outputs.

Every net and dataset runs in its own python process (tf-faster-rcnn's cfg is a module global).

Set-up (a throwaway virtual environment outside the repository; TensorFlow is no dependency of the
project)::

    python3 -m venv /tmp/tfvenv
    /tmp/tfvenv/bin/pip install tensorflow-cpu tf-slim tf-keras numpy easydict pyyaml
    git -C <mirror of endernewton/tf-faster-rcnn> archive HEAD | tar -x -C /tmp/tf_src
    /tmp/tfvenv/bin/python tests/fixtures_src/make_tf_fixtures.py --tf-faster-rcnn /tmp/tf_src --out tests/data

(any tensorflow-cpu 2.12 to 2.21 with tf-slim 1.1.0; on TF 2.21 tf_slim needs tf-keras and the alias
``tf_keras.legacy_tf_layers`` -> ``tf_keras.src.legacy_tf_layers``, which ``_install_shims`` makes).
``--stats`` prints activation statistics of each net (used to tune the scales of tests/tf_seeded.py).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
sys.path.insert(0, str(TESTS))

from seeded_weights import seeded_image, seeded_rois  # noqa: E402
from tf_seeded import read_variable_list, tf_variables  # noqa: E402

NETS = ('vgg16', 'res50', 'res101', 'res152', 'mobile')
DATASETS = {'voc': (21, (8, 16, 32)), 'coco': (81, (4, 8, 16, 32))}
RATIOS = (0.5, 1, 2)
NETOUT_JOBS = [(n, 'voc') for n in NETS] + [('res101', 'coco'), ('vgg16', 'coco')]
FULL_CKPTS = [('vgg16', 'voc', 70000), ('res101', 'voc', 110000)]
SEED = 2024
IMAGE_SEED = 7
ROIS_SEED = 11
IMAGE_HW = (100, 140)
NUM_ROIS = 8
POOL5_ROIS = 2
CFG_FILE = {'vgg16': 'vgg16.yml', 'res50': 'res50.yml', 'res101': 'res101.yml', 'res152': 'res101.yml',
            'mobile': 'mobile.yml'}


# ----------------------------------------------------------------------------------------------------
# TensorFlow 1 under tf.compat.v1
# ----------------------------------------------------------------------------------------------------

def _module(name, **attrs):
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    sys.modules[name] = mod
    return mod


def _install_shims(tf_src: Path):
    """Make tf-faster-rcnn's ``lib`` importable under TF 2 (graph mode); returns tf.compat.v1."""
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')
    import tensorflow as real_tf
    tf1 = real_tf.compat.v1
    tf1.disable_v2_behavior()
    tf1.logging.set_verbosity(tf1.logging.ERROR)
    try:
        import tf_keras.legacy_tf_layers  # noqa: F401
    except ImportError:
        import tf_keras.src.legacy_tf_layers as legacy
        sys.modules['tf_keras.legacy_tf_layers'] = legacy
        for sub in ('base', 'convolutional', 'core', 'normalization', 'pooling', 'variable_scope_shim'):
            sys.modules['tf_keras.legacy_tf_layers.' + sub] = importlib.import_module(
                'tf_keras.src.legacy_tf_layers.' + sub)
    import tf_slim
    from tf_slim.nets import resnet_utils, resnet_v1

    class _TF1(types.ModuleType):
        def __getattr__(self, name):
            return getattr(tf1, name)

    shim = _TF1('tensorflow')
    shim.__path__ = list(real_tf.__path__)
    shim.__version__ = real_tf.__version__
    shim.contrib = _module('tensorflow.contrib', slim=tf_slim,
                           layers=types.SimpleNamespace(l2_regularizer=tf_slim.l2_regularizer))
    sys.modules['tensorflow'] = shim
    sys.modules['tensorflow.contrib.slim'] = tf_slim
    nets = _module('tensorflow.contrib.slim.python.slim.nets', resnet_utils=resnet_utils, resnet_v1=resnet_v1)
    _module('tensorflow.contrib.slim.python.slim', nets=nets)
    _module('tensorflow.contrib.slim.python', slim=sys.modules['tensorflow.contrib.slim.python.slim'])
    sys.modules['tensorflow.contrib.slim.python.slim.nets.resnet_utils'] = resnet_utils
    sys.modules['tensorflow.contrib.slim.python.slim.nets.resnet_v1'] = resnet_v1

    lib = str(Path(tf_src).resolve() / 'lib')
    sys.path.insert(0, lib)
    from nms.py_cpu_nms import py_cpu_nms

    def nms(dets, thresh, force_cpu=False):
        if dets.shape[0] == 0:
            return []
        return py_cpu_nms(dets, thresh)

    def bbox_overlaps(boxes, query_boxes):
        boxes = np.asarray(boxes, dtype=np.float64)
        query = np.asarray(query_boxes, dtype=np.float64)
        iw = np.minimum(boxes[:, None, 2], query[None, :, 2]) - np.maximum(boxes[:, None, 0], query[None, :, 0]) + 1
        ih = np.minimum(boxes[:, None, 3], query[None, :, 3]) - np.maximum(boxes[:, None, 1], query[None, :, 1]) + 1
        area_b = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
        area_q = (query[:, 2] - query[:, 0] + 1) * (query[:, 3] - query[:, 1] + 1)
        inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
        return np.where((iw > 0) & (ih > 0), inter / (area_b[:, None] + area_q[None, :] - inter), 0.0)

    def _never(*args, **kwargs):
        raise RuntimeError('stub of a tf-faster-rcnn function that these fixtures never call')

    importlib.import_module('model')
    importlib.import_module('utils')
    importlib.import_module('roi_data_layer')
    _module('model.nms_wrapper', nms=nms)
    _module('utils.cython_bbox', bbox_overlaps=bbox_overlaps)
    _module('utils.visualization', draw_bounding_boxes=_never)
    _module('roi_data_layer.roidb', prepare_roidb=_never)
    _module('roi_data_layer.layer', RoIDataLayer=_never)
    return tf1


def _configure(tf_src: Path, net: str, ds: str):
    import yaml
    from easydict import EasyDict as edict
    from model import config
    cfg = config.cfg
    with open(Path(tf_src) / 'experiments' / 'cfgs' / CFG_FILE[net]) as f:
        config._merge_a_into_b(edict(yaml.safe_load(f)), cfg)
    num_classes, scales = DATASETS[ds]
    config.cfg_from_list(['ANCHOR_SCALES', str(list(scales)), 'ANCHOR_RATIOS', str(list(RATIOS))])
    if net == 'res152':
        cfg.TRAIN.SNAPSHOT_PREFIX = 'res152_faster_rcnn'
    cfg.TEST.MODE = 'nms'
    cfg.USE_E2E_TF = False
    cfg.USE_GPU_NMS = False
    return cfg, num_classes


def _make_net(net: str):
    if net == 'vgg16':
        from nets.vgg16 import vgg16
        return vgg16()
    if net.startswith('res'):
        from nets.resnet_v1 import resnetv1
        return resnetv1(num_layers=int(net[3:]))
    if net == 'mobile':
        from nets.mobilenet_v1 import mobilenetv1
        return mobilenetv1()
    raise ValueError(net)


class _Imdb:
    def __init__(self, num_classes):
        self.num_classes = num_classes


def _train_graph(tf, cfg, net_name, num_classes, tmp):
    """tf-faster-rcnn's TRAIN graph and Momentum optimizer, built by its own SolverWrapper."""
    from model.train_val import SolverWrapper
    graph = tf.Graph()
    sess = tf.Session(graph=graph, config=tf.ConfigProto(device_count={'GPU': 0}))
    net = _make_net(net_name)
    sw = SolverWrapper(sess, net, _Imdb(num_classes), None, None, str(Path(tmp) / 'output'),
                       str(Path(tmp) / 'tb'))
    sw.construct_graph(sess)
    return sess, graph, net, sw


def _variable_list(tf, prefix):
    return sorted((name, tuple(int(d) for d in shape)) for name, shape in tf.train.list_variables(prefix))


def _format_list(items):
    return ''.join(f'{name} [{", ".join(str(d) for d in shape)}]\n' for name, shape in items)


def _assign(tf, sess, variables, values):
    for v in variables:
        name = v.op.name
        value = values[name]
        if tuple(v.shape.as_list()) != value.shape:
            raise ValueError(f'{name}: graph shape {v.shape} vs list shape {value.shape}')
        v.load(value, sess)


# ----------------------------------------------------------------------------------------------------
# Jobs (each in its own process)
# ----------------------------------------------------------------------------------------------------

def _quiet():
    import warnings
    warnings.filterwarnings("ignore")


def job_varlist(tf_src, net, ds, out):
    _quiet()
    tf = _install_shims(tf_src)
    cfg, num_classes = _configure(tf_src, net, ds)
    with tempfile.TemporaryDirectory() as tmp:
        sess, graph, _, sw = _train_graph(tf, cfg, net, num_classes, tmp)
        with graph.as_default():
            sess.run(tf.global_variables_initializer())
            prefix = str(Path(tmp) / 'ckpt' / f'{cfg.TRAIN.SNAPSHOT_PREFIX}_iter_1.ckpt')
            sw.saver.save(sess, prefix)
            items = _variable_list(tf, prefix)
        sess.close()
    path = Path(out) / f'tf_{net}_{ds}_variables.txt'
    path.write_text(_format_list(items))
    print(f'{path}: {len(items)} variables, {sum(1 for n, _ in items if n.endswith("/Momentum"))} Momentum slots')


def job_fullckpt(tf_src, net, ds, iters, out, var_list):
    _quiet()
    tf = _install_shims(tf_src)
    cfg, num_classes = _configure(tf_src, net, ds)
    items = read_variable_list(var_list)
    values = tf_variables(items, SEED)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        sess, graph, _, sw = _train_graph(tf, cfg, net, num_classes, tmp)
        with graph.as_default():
            variables = tf.global_variables()
            names = sorted(v.op.name for v in variables)
            if names != sorted(values):
                raise RuntimeError(f'graph variables differ from {var_list}: '
                                   f'{sorted(set(names) ^ set(values))[:10]}')
            _assign(tf, sess, variables, values)
            prefix = str(out / (cfg.TRAIN.SNAPSHOT_PREFIX + '_iter_{:d}'.format(iters) + '.ckpt'))
            sw.saver.save(sess, prefix)
            back = tf.train.load_checkpoint(prefix)
            if _variable_list(tf, prefix) != sorted(items):
                raise RuntimeError('saved list differs')
            for name in values:
                if not np.array_equal(back.get_tensor(name), values[name]):
                    raise RuntimeError(f'{name} read back differs')
        sess.close()
    print(f'{prefix}: {len(items)} variables, read back bit for bit')


def _stats(a):
    a = np.asarray(a, dtype=np.float64)
    return f'std {a.std():.4g} mean {a.mean():.4g} absmax {np.abs(a).max():.4g} zero {np.mean(a == 0):.3f}'


def job_netout(tf_src, net, ds, out, var_list, stats=False):
    """tf_net_<net>_<ds>.npz from the TEST graph (create_architecture('TEST', ...)), seed-2024 weights.

    Inputs: ``in_image`` (100, 140, 3) uint8 BGR = seeded_image(100, 140, 7); the graph is fed
    ``(in_image.astype(float32) -= cfg.PIXEL_MEANS)[None]`` (the subtraction in float64, rounded once to
    float32, as lib/model/test.py does) and ``in_im_info`` [100, 140, 1]. ``in_rois`` (8, 5) float32
    [0, x1, y1, x2, y2] in image pixels = seeded_rois(8, 100, 140, 11).
    Run 1 (the graph's own proposals): ``out_head`` (1, 7, 9, C) NHWC (C 512 vgg16/mobile, 1024 resnets);
    ``out_rpn_cls_prob`` (1, 7, 9, 2A): channel a (< A) = background and channel A + a = foreground
    probability of anchor a (the softmax pairs channel a with A + a); ``out_rpn_bbox_pred`` (1, 7, 9, 4A):
    channel 4a + j = (dx, dy, dw, dh)[j] of anchor a; anchor a = ratio_index * len(scales) + scale_index
    (generate_anchors' order), cells in (h, w) order. ``out_proposals`` (N, 5) [0, x1, y1, x2, y2] and
    ``out_proposal_scores`` (N, 1), N <= 300, in NMS-kept order (descending score).
    Run 2 (``in_rois`` fed in place of the rois tensor): ``out_pool5`` (2, 7, 7, C) NHWC for the first 2
    rois; ``out_fc7`` (8, D) (D 4096 vgg16, 2048 resnets, 1024 mobile); ``out_cls_prob`` (8, K);
    ``out_bbox_pred`` (8, 4K), column 4k + j, multiplied by BBOX_NORMALIZE_STDS (0.1, 0.1, 0.2, 0.2) plus
    the means (0) as the TEST graph returns it.
    """
    _quiet()
    tf = _install_shims(tf_src)
    cfg, num_classes = _configure(tf_src, net, ds)
    _, scales = DATASETS[ds]
    items = read_variable_list(var_list)
    values = tf_variables(items, SEED)
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(cfg.RNG_SEED)
        sess = tf.Session(graph=graph, config=tf.ConfigProto(device_count={'GPU': 0}))
        model = _make_net(net)
        captured = {}
        head_to_tail = model._head_to_tail

        def _capture(pool5, is_training, reuse=None):
            captured['pool5'] = pool5
            captured['fc7'] = head_to_tail(pool5, is_training, reuse)
            return captured['fc7']

        model._head_to_tail = _capture
        model.create_architecture('TEST', num_classes, tag='default', anchor_scales=cfg.ANCHOR_SCALES,
                                  anchor_ratios=cfg.ANCHOR_RATIOS)
        variables = tf.global_variables()
        graph_names = {v.op.name for v in variables}
        model_names = {n for n in values if n != 'Variable' and not n.endswith('/Momentum')}
        if graph_names != model_names:
            raise RuntimeError(f'TEST graph variables differ from the list: {sorted(graph_names ^ model_names)[:10]}')
        _assign(tf, sess, variables, values)

        image = seeded_image(*IMAGE_HW, IMAGE_SEED)
        # as lib/model/test.py's _get_image_blob does (im_scale 1): float32 minus the float64 means
        blob = image.astype(np.float32, copy=True)
        blob -= cfg.PIXEL_MEANS
        blob = blob[None]
        im_info = np.array([IMAGE_HW[0], IMAGE_HW[1], 1.0], dtype=np.float32)
        rois = seeded_rois(NUM_ROIS, *IMAGE_HW, ROIS_SEED)
        pred = model._predictions
        feed = {model._image: blob, model._im_info: im_info}
        proposal_scores = pred['rois'].op.outputs[1]
        head, rpn_cls_prob, rpn_bbox_pred, proposals, pscores = sess.run(
            [model._layers['head'], pred['rpn_cls_prob'], pred['rpn_bbox_pred'], pred['rois'], proposal_scores],
            feed_dict=feed)
        feed_rois = dict(feed)
        feed_rois[pred['rois']] = rois
        pool5, fc7, cls_prob, bbox_pred, cls_score = sess.run(
            [captured['pool5'], captured['fc7'], pred['cls_prob'], pred['bbox_pred'], pred['cls_score']],
            feed_dict=feed_rois)
        if stats:
            relus = [op.outputs[0] for op in graph.get_operations() if op.type in ('Relu', 'Relu6')]
            acts = sess.run(relus, feed_dict=feed_rois)
            for t, a in zip(relus, acts):
                print(f'  {t.op.name:70s} {tuple(a.shape)} {_stats(a)}')
        sess.close()

    num_anchors = len(scales) * len(RATIOS)
    assert rpn_cls_prob.shape[-1] == 2 * num_anchors
    assert np.allclose(rpn_cls_prob[..., :num_anchors] + rpn_cls_prob[..., num_anchors:], 1, atol=1e-5)
    result = {
        'cfg_seed': np.int64(SEED), 'cfg_num_classes': np.int64(num_classes),
        'cfg_anchor_scales': np.array(scales, dtype=np.int64), 'cfg_anchor_ratios': np.array(RATIOS, dtype=np.float64),
        'cfg_image_seed': np.int64(IMAGE_SEED), 'cfg_rois_seed': np.int64(ROIS_SEED),
        'cfg_tf_version': np.array(sys.modules['tensorflow'].__version__),
        'cfg_net': np.array(net), 'cfg_dataset': np.array(ds),
        'cfg_pixel_means': np.asarray(cfg.PIXEL_MEANS, dtype=np.float64).reshape(3),
        'in_image': image, 'in_im_info': im_info, 'in_rois': rois,
        'out_head': head.astype(np.float32), 'out_rpn_cls_prob': rpn_cls_prob.astype(np.float32),
        'out_rpn_bbox_pred': rpn_bbox_pred.astype(np.float32),
        'out_pool5': pool5[:POOL5_ROIS].astype(np.float32), 'out_fc7': fc7.astype(np.float32),
        'out_cls_prob': cls_prob.astype(np.float32), 'out_bbox_pred': bbox_pred.astype(np.float32),
        'out_proposals': proposals.astype(np.float32), 'out_proposal_scores': pscores.astype(np.float32),
    }
    path = Path(out) / f'tf_net_{net}_{ds}.npz'
    np.savez_compressed(path, **result)
    top = np.sort(cls_prob, axis=1)[:, ::-1]
    print(f'{path}: {path.stat().st_size} bytes')
    print(f'  head {head.shape} {_stats(head)}')
    print(f'  rpn_cls_prob {rpn_cls_prob.shape} fg {_stats(rpn_cls_prob[..., num_anchors:])}')
    print(f'  rpn_bbox_pred {rpn_bbox_pred.shape} {_stats(rpn_bbox_pred)}')
    print(f'  proposals {proposals.shape} scores max {pscores.max():.4g} min {pscores.min():.4g}; '
          f'widths {np.percentile(proposals[:, 3] - proposals[:, 1], [10, 50, 90]).round(1)}')
    print(f'  pool5 {pool5.shape} {_stats(pool5)}')
    print(f'  fc7 {fc7.shape} {_stats(fc7)}')
    print(f'  cls_score {_stats(cls_score)}')
    print(f'  cls_prob max per roi {np.round(top[:, 0], 3)} 2nd {np.round(top[:, 1], 3)} (uniform {1 / num_classes:.3f})')
    print(f'  bbox_pred {bbox_pred.shape} {_stats(bbox_pred)}')


# ----------------------------------------------------------------------------------------------------
# Small checkpoints for the reader
# ----------------------------------------------------------------------------------------------------

def _varint(buf, pos):
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def index_blocks(path):
    """The data-block handles of a TensorBundle .index file (LevelDB table), read from its footer."""
    data = Path(path).read_bytes()
    footer = data[-48:]
    magic = struct.unpack('<Q', footer[40:48])[0]
    assert magic == 0xdb4775248b80fb57, hex(magic)
    _, p = _varint(footer, 0)
    _, p = _varint(footer, p)
    index_off, p = _varint(footer, p)
    index_size, p = _varint(footer, p)
    block = data[index_off:index_off + index_size]
    num_restarts = struct.unpack('<I', block[-4:])[0]
    end = len(block) - 4 * (num_restarts + 1)
    pos, handles, last_key = 0, [], b''
    while pos < end:
        shared, pos = _varint(block, pos)
        non_shared, pos = _varint(block, pos)
        vlen, pos = _varint(block, pos)
        key = last_key[:shared] + block[pos:pos + non_shared]
        pos += non_shared
        value = block[pos:pos + vlen]
        pos += vlen
        off, q = _varint(value, 0)
        size, q = _varint(value, q)
        handles.append((key, off, size))
        last_key = key
    return handles


def _mixed_tensors():
    import ml_dtypes
    rng = np.random.Generator(np.random.PCG64(20240607))
    t = {}
    t['float32/scalar'] = np.float32(3.25)
    t['float32/vector'] = rng.standard_normal(7).astype(np.float32)
    t['float32/conv/weights'] = rng.standard_normal((3, 3, 4, 5)).astype(np.float32)
    t['float32/empty'] = np.zeros((0, 3), dtype=np.float32)
    t['float64/vector'] = rng.standard_normal(5)
    t['float64/scalar'] = np.float64(-1.0 / 3.0)
    t['float16/vector'] = rng.standard_normal(9).astype(np.float16)
    t['float16/4d'] = rng.standard_normal((2, 1, 3, 2)).astype(np.float16)
    t['bfloat16/vector'] = rng.standard_normal(6).astype(ml_dtypes.bfloat16)
    t['bfloat16/2d'] = rng.standard_normal((3, 4)).astype(ml_dtypes.bfloat16)
    t['int8/vector'] = np.array([-128, -1, 0, 1, 127], dtype=np.int8)
    t['int16/vector'] = np.array([-32768, -2, 0, 3, 32767], dtype=np.int16)
    t['int32/scalar'] = np.int32(-123456789)
    t['int32/4d'] = rng.integers(-1000, 1000, (2, 2, 2, 3)).astype(np.int32)
    t['int64/vector'] = np.array([-2 ** 63, -1, 0, 2 ** 40 + 7, 2 ** 63 - 1], dtype=np.int64)
    t['uint8/vector'] = np.array([0, 1, 127, 128, 255], dtype=np.uint8)
    t['bool/vector'] = np.array([True, False, False, True, True], dtype=np.bool_)
    t['bool/scalar'] = np.bool_(True)
    # names that sort tricky: one a prefix of another, common prefixes, '/' (0x2f) next to '.', '-', '_',
    # digits and capitals, so that the keys share prefixes of different lengths
    t['a'] = np.float32(1.0)
    t['a/b'] = np.arange(3, dtype=np.float32)
    t['a/b/c'] = np.arange(4, dtype=np.int32)
    t['a/b/c/d'] = np.arange(2, dtype=np.float64)
    t['a/bc'] = np.float32(2.0)
    t['a/b_c'] = np.float32(3.0)
    t['a/b-c'] = np.float32(4.0)
    t['a/b.c'] = np.float32(5.0)
    t['a.b'] = np.float32(6.0)
    t['ab'] = np.float32(7.0)
    t['A'] = np.float32(8.0)
    t['Variable'] = np.float32(0.001)
    t['with space/x'] = np.int32(5)
    t['\u00fcn\u00efc\u00f8de/w'] = np.array([1.5, -2.5], dtype=np.float32)  # UTF-8 bytes above 0x7f sort last
    t['net/layer1/weights'] = rng.standard_normal((2, 3)).astype(np.float32)
    t['net/layer1/weights/Momentum'] = rng.standard_normal((2, 3)).astype(np.float32)
    t['net/layer10/weights'] = rng.standard_normal((3, 2)).astype(np.float32)
    t['net/layer1/biases'] = rng.standard_normal(3).astype(np.float32)
    t['net/layer2/weights'] = rng.standard_normal((1, 1, 2, 2)).astype(np.float32)
    t['net/layer1/BatchNorm/moving_variance'] = rng.random(3).astype(np.float32)
    t['net/layer1/BatchNorm/moving_mean'] = rng.standard_normal(3).astype(np.float32)
    return t


def _many_tensors():
    """Enough entries that the .index has more than one 256 KiB data block: names with a common prefix
    and a long tail (prefix compression keeps only the differing part, so the tail is what fills the
    blocks), tiny tensors of a few dtypes."""
    t = {}
    dtypes = (np.float32, np.int32, np.uint8, np.float16)
    for i in range(3800):
        name = f'many/group_{i // 100:02d}/item_{i:04d}/with_a_long_tail_that_fills_the_index_block_{i % 7}'
        dt = dtypes[i % len(dtypes)]
        shape = () if i % 3 == 0 else (1,) * (1 + i % 3)
        t[name] = np.full(shape, i % 251, dtype=dt) if dt != np.float32 else np.full(shape, i * 0.5, dtype=dt)
    return t


def _save_raw(tf, prefix, tensors):
    """One SaveV2 op (TensorFlow's own bundle writer) over the given name -> array."""
    names = sorted(tensors)
    graph = tf.Graph()
    with graph.as_default():
        consts = [tf.constant(np.asarray(tensors[n])) for n in names]
        op = tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[''] * len(names),
                               tensors=consts)
        with tf.Session(graph=graph) as sess:
            sess.run(op)


def _save_sharded(tf, prefix):
    """tf.train.Saver(sharded=True) over variables on two CPU devices: two data shards."""
    rng = np.random.Generator(np.random.PCG64(777))
    placement = {
        '/cpu:0': {'shard0/weights': rng.standard_normal((3, 3, 2, 4)).astype(np.float32),
                   'shard0/biases': rng.standard_normal(4).astype(np.float32),
                   'shard0/step': np.int64(12345),
                   'common/x': np.arange(5, dtype=np.float64)},
        '/cpu:1': {'shard1/weights': rng.standard_normal((4, 2)).astype(np.float32),
                   'shard1/biases/Momentum': rng.standard_normal(2).astype(np.float32),
                   'shard1/flags': np.array([True, False, True]),
                   'common/y': np.arange(6, dtype=np.int32).reshape(2, 3)},
    }
    graph = tf.Graph()
    with graph.as_default():
        variables = []
        for dev, tensors in placement.items():
            with tf.device(dev):
                for name, value in tensors.items():
                    variables.append(tf.Variable(value, name=name))
        saver = tf.train.Saver(variables, sharded=True)
        with tf.Session(graph=graph, config=tf.ConfigProto(device_count={'CPU': 2})) as sess:
            sess.run(tf.global_variables_initializer())
            saver.save(sess, prefix, write_meta_graph=False, write_state=False)


def job_written(tf_src, out):
    _quiet()
    tf = _install_shims(tf_src)
    real_tf = importlib.import_module('tensorflow.python.training.py_checkpoint_reader')
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    _save_raw(tf, str(out / 'mixed.ckpt'), _mixed_tensors())
    many = _many_tensors()
    _save_raw(tf, str(out / 'many.ckpt'), many)
    _save_sharded(tf, str(out / 'sharded.ckpt'))
    blocks = index_blocks(out / 'many.ckpt.index')
    assert len(blocks) > 1, blocks
    print(f'many.ckpt.index: {len(blocks)} data blocks: {[(k[-20:], o, s) for k, o, s in blocks]}')
    print('files:', sorted((p.name, p.stat().st_size) for p in out.iterdir()))

    values = {}
    many_names, many_values, many_dtypes, many_shapes = [], [], [], []
    for ckpt in ('mixed', 'many', 'sharded'):
        reader = real_tf.NewCheckpointReader(str(out / f'{ckpt}.ckpt'))
        dtype_map = reader.get_variable_to_dtype_map()
        for name in sorted(reader.get_variable_to_shape_map()):
            value = np.asarray(reader.get_tensor(name))
            if ckpt == 'many':
                if not np.array_equal(value, many[name]) or value.dtype != many[name].dtype:
                    raise RuntimeError(name)
                many_names.append(name)
                many_values.append(float(value.reshape(-1)[0]))
                many_dtypes.append(dtype_map[name].name)
                many_shapes.append(value.ndim)
                continue
            if value.dtype.name == 'bfloat16':
                values[f'{ckpt}::{name}::bits'] = value.view(np.uint16)
            else:
                values[f'{ckpt}::{name}'] = value
    np.savez_compressed(out / 'values.npz', **values)
    np.savez_compressed(out / 'many_values.npz', names=np.array(many_names), values=np.array(many_values),
                        dtypes=np.array(many_dtypes), ranks=np.array(many_shapes, dtype=np.int64),
                        index_block_keys=np.array([k.decode() for k, _, _ in blocks]))
    # check the values against tf.train.load_checkpoint as the brief words it
    for key, value in values.items():
        ckpt, name = key.split('::')[:2]
        got = np.asarray(tf.train.load_checkpoint(str(out / f'{ckpt}.ckpt')).get_tensor(name))
        if key.endswith('::bits'):
            got = got.view(np.uint16)
        assert got.dtype == value.dtype and got.shape == value.shape and np.array_equal(got, value), key
    version = sys.modules['tensorflow'].__version__
    (out / 'README.md').write_text(_written_readme(version, len(blocks), len(many_names), values, out))
    print('files:', sorted((p.name, p.stat().st_size) for p in out.iterdir()))


def _written_readme(version, num_blocks, num_many, values, out):
    sizes = '\n'.join(f'| `{p.name}` | {p.stat().st_size} |' for p in sorted(out.iterdir()) if p.name != 'README.md')
    dtypes = sorted({str(v.dtype) for v in values.values()})
    return f"""# Checkpoints written by TensorFlow, for the checkpoint reader's tests

Made by `tests/fixtures_src/make_tf_fixtures.py` (`job_written`) with TensorFlow {version} (tensorflow-cpu,
graph mode through `tf.compat.v1`). Do not edit: regenerate.

- `mixed.ckpt.{{index,data-00000-of-00001}}`: one `SaveV2` op (TensorFlow's own BundleWriter) over constants
  of dtypes float32, float64, float16, bfloat16, int8, int16, int32, int64, uint8 and bool; shapes scalar,
  1-D, 2-D, 4-D and a zero-size [0, 3]; names with '/', and names that sort tricky (`a`, `a/b`, `a/b/c`,
  `a/b-c`, `a/b.c`, `a/b_c`, `a/bc`, `a.b`, `ab`, `A`, `net/layer1/...` next to `net/layer10/...`, a name with
  a space and one with non-ASCII UTF-8 bytes, which sort by bytes after all ASCII names), so that the index
  keys share prefixes of many lengths.
- `many.ckpt.*`: {num_many} tiny tensors (float32, int32, uint8, float16; rank 0 to 3, one element each) with
  long names under a common prefix; the `.index` has {num_blocks} data blocks (TensorFlow's table block
  size is 256 KiB; the footer's index block lists one handle per data block).
- `sharded.ckpt.{{index,data-00000-of-00002,data-00001-of-00002}}`: `tf.compat.v1.train.Saver(sharded=True)`
  over variables placed on `/cpu:0` and `/cpu:1` (a session with `device_count={{'CPU': 2}}`): one shard
  per device; the index's header says num_shards 2 and each entry names its shard_id.
- `values.npz`: for `mixed` and `sharded`, every tensor as `tf.train.load_checkpoint(prefix).get_tensor(name)`
  returns it, keyed `<ckpt>::<name>` (`<ckpt>` is `mixed` or `sharded`). bfloat16 tensors (numpy has no
  such dtype) are stored as their uint16 bit patterns under `<ckpt>::<name>::bits`. dtypes stored:
  {', '.join(dtypes)}.
- `many_values.npz`: the `many` checkpoint in a compact form (one npz member per tensor would cost about
  200 bytes each): `names` (sorted, as the checkpoint lists them), `values` (float64: each tensor's single
  element), `dtypes` (TensorFlow dtype names), `ranks` (every dimension is 1), and
  `index_block_keys` (the key of each data block's entry in the index block: a separator that is >= the
  block's last key and < the next block's first key, which LevelDB may shorten, e.g. to `n`).

| file | bytes |
| --- | --- |
{sizes}
"""


# ----------------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------------

def _run_job(args, *job):
    cmd = [sys.executable, str(Path(__file__).resolve()), '--tf-faster-rcnn', str(args.tf_faster_rcnn),
           '--out', str(args.out), '--full-ckpts', str(args.full_ckpts), '--job', json.dumps(job)]
    if args.stats:
        cmd.append('--stats')
    print('>>', ' '.join(map(str, job)), flush=True)
    subprocess.run(cmd, check=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--tf-faster-rcnn', required=True, type=Path, help='an export of tf-faster-rcnn')
    parser.add_argument('--out', type=Path, default=TESTS / 'data', help='the tests/data folder')
    parser.add_argument('--full-ckpts', type=Path, default=Path('/tmp/tf_full_ckpts'))
    parser.add_argument('--only', choices=('varlists', 'netout', 'written', 'full'), action='append',
                        help='run only these parts (default all)')
    parser.add_argument('--nets', nargs='*', default=None, help='restrict varlists/netout to these nets')
    parser.add_argument('--skip-full', action='store_true', help='do not write the full-size checkpoints')
    parser.add_argument('--compare', type=Path, default=None,
                        help='a folder of tf_<net>_<ds>_variables.txt to compare the lists with')
    parser.add_argument('--stats', action='store_true', help='print activation statistics per layer')
    parser.add_argument('--job', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.job is not None:
        job = json.loads(args.job)
        kind, rest = job[0], job[1:]
        if kind == 'varlist':
            job_varlist(args.tf_faster_rcnn, rest[0], rest[1], args.out)
        elif kind == 'netout':
            job_netout(args.tf_faster_rcnn, rest[0], rest[1], args.out,
                       args.out / f'tf_{rest[0]}_{rest[1]}_variables.txt', stats=args.stats)
        elif kind == 'full':
            net, ds, iters = rest
            job_fullckpt(args.tf_faster_rcnn, net, ds, iters, args.full_ckpts / f'{net}_{ds}',
                         args.out / f'tf_{net}_{ds}_variables.txt')
        elif kind == 'written':
            job_written(args.tf_faster_rcnn, args.out / 'tf_written')
        else:
            raise ValueError(kind)
        return

    parts = set(args.only or ('varlists', 'netout', 'written', 'full'))
    if args.skip_full:
        parts.discard('full')
    nets = args.nets or NETS
    args.out.mkdir(parents=True, exist_ok=True)
    if 'varlists' in parts:
        for net in nets:
            for ds in DATASETS:
                _run_job(args, 'varlist', net, ds)
    if args.compare is not None:
        for net in nets:
            for ds in DATASETS:
                other = args.compare / f'tf_{net}_{ds}_variables.txt'
                if other.exists():
                    mine = (args.out / f'tf_{net}_{ds}_variables.txt').read_text()
                    print(f'{other}: {"identical" if mine == other.read_text() else "DIFFERENT"}')
    if 'netout' in parts:
        for net, ds in NETOUT_JOBS:
            if net in nets:
                _run_job(args, 'netout', net, ds)
    if 'written' in parts:
        _run_job(args, 'written')
    if 'full' in parts:
        for net, ds, iters in FULL_CKPTS:
            _run_job(args, 'full', net, ds, iters)


if __name__ == '__main__':
    main()
