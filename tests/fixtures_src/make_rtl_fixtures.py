"""Regenerate the ruotianluo/pytorch-faster-rcnn ("rtl") fixtures in tests/data from rtl's own code.

What it writes (all under --out, default tests/data):
  rtl_<net>_<ds>_keys.txt            rtl's network state_dict, ``name [shape]`` per line, in state_dict order,
                                     for net in vgg16 res50 res101 res152 mobile, ds in voc coco
  rtl_net_<net>_<ds>_<mode>.npz      what rtl's TEST-mode network computes from the seeded weights
                                     ``tests/rtl_seeded.rtl_state_dict(keys, 2024)`` and the image
                                     ``seeded_image(100, 140, 7)``: <net>_voc_align for all five nets,
                                     res101_coco_align, vgg16_voc_pool and res101_voc_pool
  rtl_legacy_state_dict.{pth,npz}    a small rtl-style state_dict in torch's pre-1.6 (non-zip) format
  rtl_legacy03_state_dict.pth        the same tensors hand-written the way PyTorch 0.2/0.3 wrote them

How to run (rtl is not a dependency of the project; its code is only run here):

    mkdir -p /tmp/rtl_src
    git -C <rtl mirror or clone, commit 039fe7d> archive HEAD -- . ':!tools/demo.ipynb' | tar -x -C /tmp/rtl_src
    .venv/bin/python tests/fixtures_src/make_rtl_fixtures.py --rtl /tmp/rtl_src [--stats]

--stats prints activation statistics of every net (what the seeded scales were tuned on); --only NAME
restricts the network fixtures to file stems containing NAME. CPU only, a few minutes (vgg16's 25088x4096
fc6 is most of it).

rtl's code is from the PyTorch 1.0 era; it runs unchanged on current torch/torchvision with these shims,
all made here, none in rtl's files:
  * ``scipy.misc.imresize`` (gone from scipy, and scipy is not in the venv): a stub module; rtl only uses it
    for TensorBoard images of the ground truth, never in TEST mode.
  * ``utils.visualization`` imports ``six`` (not in the venv): replaced by a stub module; only used for the
    same TensorBoard images.
  * rtl's input is ``torch.from_numpy(blob.transpose([0, 3, 1, 2]))``, an NCHW view of NHWC memory, i.e.
    channels_last strides; current torch keeps channels_last through the convolutions and then rtl's
    ``rpn_cls_score.view(1, 2, -1, W)`` raises "view size is not compatible". PyTorch 1.0's convolutions
    returned contiguous NCHW whatever the input strides, so the wrapped ``_image_to_head`` makes
    ``self._image`` contiguous first (same values, 1.0's memory layout).
  * ``Network._device`` defaults to 'cuda': set to 'cpu' on each instance (as rtl's test_net.py does
    without CUDA).
The image is fed as rtl's ``model/test.py:_get_image_blob`` does at scale 1 (no resize): BGR float32 minus
cfg.PIXEL_MEANS, an NHWC batch of one, im_info [100, 140, 1.0].
"""
from __future__ import annotations

import argparse
import io
import pickle
import struct
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

from rtl_seeded import read_key_list, rtl_state_dict, write_key_list  # noqa: E402
from seeded_weights import seeded_image, seeded_rois  # noqa: E402

SEED = 2024
IMAGE = (100, 140, 7)        # seeded_image(height, width, seed)
ROIS = (8, 100, 140, 11)     # seeded_rois(count, height, width, seed)
NETS = ('vgg16', 'res50', 'res101', 'res152', 'mobile')
DATASETS = {'voc': (21, (8, 16, 32)), 'coco': (81, (4, 8, 16, 32))}
RATIOS = (0.5, 1, 2)
NETWORK_FIXTURES = [(n, 'voc', 'align') for n in NETS] + [
    ('res101', 'coco', 'align'), ('vgg16', 'voc', 'pool'), ('res101', 'voc', 'pool')]

LEGACY_KEYS = [
    ('rpn_net.weight', (8, 4, 3, 3)), ('rpn_net.bias', (8,)),
    ('resnet.bn1.weight', (4,)), ('resnet.bn1.bias', (4,)),
    ('resnet.bn1.running_mean', (4,)), ('resnet.bn1.running_var', (4,)),
    ('resnet.bn1.num_batches_tracked', ()),
    ('cls_score_net.weight', (3, 8)), ('cls_score_net.bias', (3,)),
]


# ----------------------------------------------------------------------------------------------- rtl import
def import_rtl(rtl_root: Path):
    """Import rtl's lib with the shims above; returns (cfg, constructors by net name)."""
    lib = Path(rtl_root) / 'lib'
    if not (lib / 'nets' / 'network.py').is_file():
        raise SystemExit(f"{lib}/nets/network.py not found: --rtl must be an export of rtl's repository")
    sys.path.insert(0, str(lib))
    scipy = types.ModuleType('scipy')
    misc = types.ModuleType('scipy.misc')

    def imresize(*args, **kwargs):
        raise RuntimeError('scipy.misc.imresize is stubbed (only used for TensorBoard images)')

    misc.imresize = imresize
    scipy.misc = misc
    sys.modules.setdefault('scipy', scipy)
    sys.modules.setdefault('scipy.misc', misc)
    import utils  # rtl's lib/utils package  # noqa: F401
    if Path(utils.__file__).resolve().parent != (lib / 'utils').resolve():
        raise SystemExit(f"'utils' resolves to {utils.__file__}, not rtl's")
    vis = types.ModuleType('utils.visualization')
    vis.draw_bounding_boxes = None
    sys.modules['utils.visualization'] = vis

    from model.config import cfg
    from nets.mobilenet_v1 import mobilenetv1
    from nets.resnet_v1 import resnetv1
    from nets.vgg16 import vgg16
    ctors = {'vgg16': vgg16, 'res50': lambda: resnetv1(num_layers=50), 'res101': lambda: resnetv1(num_layers=101),
             'res152': lambda: resnetv1(num_layers=152), 'mobile': mobilenetv1}
    return cfg, ctors


def build(ctors, net_name: str, ds: str):
    num_classes, scales = DATASETS[ds]
    net = ctors[net_name]()
    net.create_architecture(num_classes, tag='default', anchor_scales=scales, anchor_ratios=RATIOS)
    net._device = 'cpu'
    net.to('cpu')
    net.eval()
    return net


def key_list(net):
    return [(k, tuple(v.shape)) for k, v in net.state_dict().items()]


# ------------------------------------------------------------------------------------------------- running
def image_blob(cfg):
    im = seeded_image(*IMAGE)
    im_orig = im.astype(np.float32, copy=True)
    im_orig -= cfg.PIXEL_MEANS           # as rtl's _get_image_blob (float32 in place)
    blob = im_orig[np.newaxis].copy()    # im_list_to_blob of one image at scale 1
    im_info = np.array([blob.shape[1], blob.shape[2], 1.0], dtype=np.float32)
    return im, blob, im_info


def run_net(cfg, net, mode: str, blob, im_info, rois, hooks=None):
    """Two TEST-mode runs of rtl's network: one with the proposal layer replaced by ``rois`` (scores of
    ones), one with rtl's own proposal layer. Returns the arrays for the fixture."""
    import torch

    cfg.POOLING_MODE = mode
    cap = {}
    orig_head, orig_tail = net._image_to_head, net._head_to_tail
    orig_proposal = net._proposal_layer

    def image_to_head():
        # shim: rtl makes its NCHW input by transposing the NHWC numpy blob; current torch then runs the
        # convs channels_last and the RPN's .view() fails. PyTorch 1.0 computed contiguous NCHW: do that.
        net._image = net._image.contiguous()
        cap['head'] = out = orig_head()
        return out

    def head_to_tail(pool5):
        cap['pool5_shape'] = tuple(pool5.shape)
        cap['fc7'] = out = orig_tail(pool5)
        return out

    def fixed_proposals(rpn_cls_prob, rpn_bbox_pred):
        return torch.from_numpy(rois.copy()), torch.ones(rois.shape[0], 1)

    def recorded_proposals(rpn_cls_prob, rpn_bbox_pred):
        out, scores = orig_proposal(rpn_cls_prob, rpn_bbox_pred)
        cap['proposal_scores'] = scores
        return out, scores

    net._image_to_head, net._head_to_tail = image_to_head, head_to_tail
    try:
        net._proposal_layer = fixed_proposals
        cls_score, cls_prob, bbox_pred, out_rois = net.test_image(blob, im_info)
        assert np.array_equal(out_rois, rois)
        p = net._predictions
        res = {
            'out_head': cap['head'].numpy().copy(),
            'out_rpn_cls_prob': p['rpn_cls_prob'].numpy().copy(),
            'out_rpn_bbox_pred': p['rpn_bbox_pred'].numpy().copy(),
            'out_fc7': cap['fc7'].numpy().copy(),
            'out_cls_score': cls_score.copy(),
            'out_cls_prob': cls_prob.copy(),
            'out_bbox_pred': bbox_pred.copy(),
        }
        pool5_shape = cap['pool5_shape']
        snapshot = OrderedDict(hooks) if hooks is not None else None
        net._proposal_layer = recorded_proposals
        _, _, _, proposals = net.test_image(blob, im_info)
        assert np.array_equal(net._predictions['rpn_cls_prob'].numpy(), res['out_rpn_cls_prob'])
        assert np.array_equal(cap['head'].numpy(), res['out_head'])
        # the proposal order must not hang on how torch sorts ties: all foreground scores distinct
        A = res['out_rpn_cls_prob'].shape[-1] // 2
        fg = res['out_rpn_cls_prob'][..., A:].reshape(-1)
        if np.unique(fg).size != fg.size:
            raise SystemExit(f'{fg.size - np.unique(fg).size} tied RPN foreground scores: retune the seeded scales')
        res['out_proposals'] = proposals.copy()
        res['out_proposal_scores'] = cap['proposal_scores'].numpy().copy()
    finally:
        del net._image_to_head, net._head_to_tail, net._proposal_layer
    return res, pool5_shape, snapshot


def stage_hooks(net_name, net):
    """Forward hooks recording the std of each stage's output (for --stats)."""
    rec = OrderedDict()

    def hook(name):
        def f(_m, _i, out):
            rec[name] = (float(out.float().std()), float(out.abs().max()), tuple(out.shape))
        return f

    if net_name == 'vgg16':
        for i, m in enumerate(net.vgg.features):
            if isinstance(m, __import__('torch').nn.MaxPool2d) or i == 29:
                m.register_forward_hook(hook(f'features.{i}'))
        for i in (1, 4):
            net.vgg.classifier[i].register_forward_hook(hook(f'classifier.{i}'))
    elif net_name.startswith('res'):
        for name in ('bn1', 'maxpool', 'layer1', 'layer2', 'layer3', 'layer4'):
            getattr(net.resnet, name).register_forward_hook(hook(name))
    else:
        for name, m in net.mobilenet.named_children():
            m.register_forward_hook(hook(name))
    net.rpn_net.register_forward_hook(hook('rpn_net'))
    return rec


def stats_line(res, rec):
    cp = res['out_cls_prob']
    rp = res['out_rpn_cls_prob']
    A = rp.shape[-1] // 2
    fg = rp[..., A:]
    lines = ['  stages: ' + ', '.join(f"{k} std {v[0]:.3g} max {v[1]:.3g}" for k, v in rec.items())]
    lines.append(
        f"  head {res['out_head'].shape} std {res['out_head'].std():.3g} max {res['out_head'].max():.3g} "
        f"zero {np.mean(res['out_head'] == 0):.2f}; rpn fg prob mean {fg.mean():.3f} std {fg.std():.3f} "
        f"min {fg.min():.3f} max {fg.max():.3f}; rpn bbox std {res['out_rpn_bbox_pred'].std():.3g} "
        f"max|.| {np.abs(res['out_rpn_bbox_pred']).max():.3g}")
    lines.append(
        f"  fc7 std {res['out_fc7'].std():.3g} max {res['out_fc7'].max():.3g}; cls logits std "
        f"{res['out_cls_score'].std():.3g}; cls_prob max per roi {np.round(cp.max(1), 3).tolist()} "
        f"(uniform {1 / cp.shape[1]:.3f}); bbox_pred std {res['out_bbox_pred'].std():.3g}; "
        f"proposals {res['out_proposals'].shape[0]}, score range "
        f"[{res['out_proposal_scores'].min():.3f}, {res['out_proposal_scores'].max():.3f}]")
    return '\n'.join(lines)


# -------------------------------------------------------------------------------------------------- legacy
class _Storage03:
    """A storage as PyTorch 0.2/0.3 pickled it: by persistent id only."""

    def __init__(self, key: str, storage_class, array: np.ndarray):
        self.key, self.storage_class, self.array = key, storage_class, np.ascontiguousarray(array).reshape(-1)


class _Tensor03:
    """Reduces as 0.3's ``Tensor.__reduce__``: ``torch._utils._rebuild_tensor(storage, offset, size, stride)``."""

    def __init__(self, storage: _Storage03, shape):
        self.storage, self.shape = storage, tuple(int(s) for s in shape)

    def __reduce__(self):
        import torch
        stride, acc = [], 1
        for s in reversed(self.shape):
            stride.insert(0, acc)
            acc *= s
        return torch._utils._rebuild_tensor, (self.storage, 0, self.shape, tuple(stride))


class _Pickler03(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage03):
            return ('storage', obj.storage_class, obj.key, 'cpu', int(obj.array.size), None)
        return None


def write_legacy03(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as torch.save of PyTorch 0.2/0.3 (Python 3) did: pickle protocol 2; magic number,
    protocol version, sys_info; the OrderedDict whose tensors are ``_rebuild_tensor`` (v1) of storages
    saved by persistent id ('storage', torch.<T>Storage, key, 'cpu', numel, None); the sorted storage keys;
    then each storage's raw little-endian bytes preceded by its int64 element count."""
    import torch
    from torch.serialization import MAGIC_NUMBER, PROTOCOL_VERSION
    classes = {np.dtype(np.float32): torch.FloatStorage, np.dtype(np.int64): torch.LongStorage}
    storages, sd = {}, OrderedDict()
    for i, (name, a) in enumerate(arrays.items()):
        key = str(94000000000000 + 64 * i)   # 0.3 used str(storage._cdata), a pointer
        storages[key] = _Storage03(key, classes[a.dtype], a)
        sd[name] = _Tensor03(storages[key], a.shape)
    buf = io.BytesIO()
    for obj in (MAGIC_NUMBER, PROTOCOL_VERSION,
                dict(protocol_version=PROTOCOL_VERSION, little_endian=True,
                     type_sizes=dict(short=2, int=4, long=8))):
        pickle.dump(obj, buf, protocol=2)
    _Pickler03(buf, protocol=2).dump(sd)
    keys = sorted(storages)
    pickle.dump(keys, buf, protocol=2)
    for k in keys:
        a = storages[k].array
        buf.write(struct.pack('<q', a.size))
        buf.write(a.astype(a.dtype.newbyteorder('<'), copy=False).tobytes())
    path.write_bytes(buf.getvalue())


def legacy_fixtures(out: Path) -> list[str]:
    import torch
    report = []
    arrays = rtl_state_dict(LEGACY_KEYS, SEED)
    # a real state_dict() of rtl-named modules, so that it carries ``_metadata`` (module versions; BatchNorm
    # is version 2) as every file torch.save(net.state_dict()) wrote since state_dict versioning
    root = torch.nn.Module()
    root.rpn_net = torch.nn.Conv2d(4, 8, 3)
    root.resnet = torch.nn.Module()
    root.resnet.bn1 = torch.nn.BatchNorm2d(4)
    root.cls_score_net = torch.nn.Linear(8, 3)
    root.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in arrays.items()})
    sd = root.state_dict()
    assert list(sd) == list(arrays) and hasattr(sd, '_metadata')
    pth = out / 'rtl_legacy_state_dict.pth'
    with open(pth, 'wb') as f:
        torch.save(sd, f, _use_new_zipfile_serialization=False)
    np.savez_compressed(out / 'rtl_legacy_state_dict.npz', **arrays)
    pth03 = out / 'rtl_legacy03_state_dict.pth'
    write_legacy03(pth03, arrays)
    for p in (pth, pth03):
        for wo in (True, False):
            try:
                got = torch.load(p, weights_only=wo, map_location='cpu')
                same = list(got) == list(arrays) and all(
                    got[k].dtype == torch.from_numpy(arrays[k]).dtype and tuple(got[k].shape) == arrays[k].shape
                    and np.array_equal(got[k].numpy(), arrays[k]) for k in arrays)
                report.append(f"{p.name}: torch.load(weights_only={wo}) -> {type(got).__name__} of {len(got)}, "
                              f"equal to the arrays: {same}")
            except Exception as e:  # report, do not hide
                report.append(f"{p.name}: torch.load(weights_only={wo}) -> {type(e).__name__}: {e}")
    return report


# ---------------------------------------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--rtl', required=True, type=Path, help="an export of rtl's repository (commit 039fe7d)")
    ap.add_argument('--rtl-commit', default='039fe7d', help='recorded as cfg_rtl_commit (an export has no git)')
    ap.add_argument('--out', type=Path, default=TESTS / 'data')
    ap.add_argument('--stats', action='store_true', help='print activation statistics')
    ap.add_argument('--only', default=None, help='only network fixtures whose stem contains this')
    ap.add_argument('--skip-keys', action='store_true')
    ap.add_argument('--skip-legacy', action='store_true')
    args = ap.parse_args(argv)

    import torch
    import torchvision
    torch.manual_seed(0)
    cfg, ctors = import_rtl(args.rtl)
    args.out.mkdir(parents=True, exist_ok=True)
    commit = args.rtl_commit

    if not args.skip_keys:
        for net_name in NETS:
            for ds in DATASETS:
                net = build(ctors, net_name, ds)
                path = args.out / f'rtl_{net_name}_{ds}_keys.txt'
                write_key_list(path, key_list(net))
                print(f'{path.name}: {len(net.state_dict())} entries')
                del net

    im, blob, im_info = image_blob(cfg)
    rois = seeded_rois(*ROIS)
    built = {}
    for net_name, ds, mode in NETWORK_FIXTURES:
        stem = f'rtl_net_{net_name}_{ds}_{mode}'
        if args.only and args.only not in stem:
            continue
        if (net_name, ds) not in built:
            built.clear()
            net = build(ctors, net_name, ds)
            keys = read_key_list(args.out / f'rtl_{net_name}_{ds}_keys.txt')
            if keys != key_list(net):
                raise SystemExit(f'rtl_{net_name}_{ds}_keys.txt differs from the network built now')
            weights = rtl_state_dict(keys, SEED)
            net.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
            for k, v in net.state_dict().items():
                assert np.array_equal(v.numpy(), weights[k]), k
            built[(net_name, ds)] = (net, stage_hooks(net_name, net) if args.stats else None)
        net, rec = built[(net_name, ds)]
        res, pool5_shape, snapshot = run_net(cfg, net, mode, blob, im_info, rois, rec)
        num_classes, scales = DATASETS[ds]
        data = {
            'cfg_seed': np.int64(SEED), 'cfg_num_classes': np.int64(num_classes),
            'cfg_anchor_scales': np.array(scales, dtype=np.int64),
            'cfg_anchor_ratios': np.array(RATIOS, dtype=np.float64),
            'cfg_pooling_mode': np.str_(mode), 'cfg_torch_version': np.str_(torch.__version__),
            'cfg_torchvision_version': np.str_(torchvision.__version__), 'cfg_rtl_commit': np.str_(commit),
            'cfg_net': np.str_(net_name), 'cfg_dataset': np.str_(ds),
            'in_image': im, 'in_im_info': im_info, 'in_rois': rois,
            **res,
        }
        for k, v in data.items():
            assert np.asarray(v).dtype != object, k
        path = args.out / f'{stem}.npz'
        np.savez_compressed(path, **data)
        print(f'{path.name}: {path.stat().st_size / 1024:.0f} KiB; head {res["out_head"].shape}, '
              f'pool5 {pool5_shape}, fc7 {res["out_fc7"].shape}, proposals {res["out_proposals"].shape}')
        if args.stats:
            print(stats_line(res, snapshot))

    if not args.skip_legacy:
        for line in legacy_fixtures(args.out):
            print(line)


if __name__ == '__main__':
    main()
