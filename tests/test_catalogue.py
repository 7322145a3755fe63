"""The catalogue of user mistakes, run as a user runs the tools (subprocesses): every one ends with one line on
stderr, ``error: ...``, that names the file / key / object at fault, with its documented exit code and no
traceback; and nothing written before (a snapshot, detections, the dataset) is touched.

Exit codes (faster_rcnn/errors.py): 2 usage or configuration, 4 dataset, 5 model or weight file,
6 disk, 7 download, 8 distributed.
"""
from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest
import torch

from tool_runs import REPO, SHAPES_CFG, _env
from vg_data import default_objects, write_vg

USAGE, DATA, MODEL = 2, 4, 5


# Tools run as a user runs them (subprocesses): the full tier (run_tests.sh --all).
pytestmark = pytest.mark.slow

def _noisy_jpeg(path: Path, h: int = 48, w: int = 64) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(len(str(path))).integers(0, 255, (h, w, 3), dtype=np.uint8))


def _voc_object(name: str, box, difficult: int = 0) -> str:
    return (f'<object><name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{box[0]}</xmin>'
            f'<ymin>{box[1]}</ymin><xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox></object>')


def make_voc(root: Path, bodies: dict[str, str] | None = None, size: tuple[int, int] = (64, 48)) -> Path:
    """A VOC folder with 64x48 images a, b (dog / cat) and a ``train`` split; ``bodies`` replaces XML bodies,
    ``size`` is the <size> the XML gives."""
    voc = root / 'voc'
    w, h = size
    default = {'a': _voc_object('dog', (5, 5, 30, 30)), 'b': _voc_object('cat', (10, 8, 50, 40))}
    default.update(bodies or {})
    for name, body in default.items():
        _noisy_jpeg(voc / 'JPEGImages' / f'{name}.jpg')
        (voc / 'Annotations').mkdir(parents=True, exist_ok=True)
        (voc / 'Annotations' / f'{name}.xml').write_text(
            f'<annotation><size><width>{w}</width><height>{h}</height><depth>3</depth></size>{body}</annotation>')
    (voc / 'ImageSets' / 'Main').mkdir(parents=True, exist_ok=True)
    (voc / 'ImageSets' / 'Main' / 'train.txt').write_text('a\nb\n')
    (voc / 'classes.txt').write_text('dog\ncat\n')
    return voc


def make_coco(root: Path, edit: Callable[[dict], None] | None = None, raw: str | None = None) -> Path:
    """A COCO-format json of two images (dog / cat); ``edit`` changes it, ``raw`` replaces its text."""
    coco = root / 'coco'
    for i in (1, 2):
        _noisy_jpeg(coco / 'images' / f'{i}.jpg')
    data = {'images': [{'id': 1, 'file_name': '1.jpg', 'width': 64, 'height': 48},
                       {'id': 2, 'file_name': '2.jpg', 'width': 64, 'height': 48}],
            'categories': [{'id': 3, 'name': 'dog'}, {'id': 7, 'name': 'cat'}],
            'annotations': [{'id': 10, 'image_id': 1, 'category_id': 3, 'bbox': [4, 4, 20, 20], 'area': 400,
                             'iscrowd': 0},
                            {'id': 11, 'image_id': 2, 'category_id': 7, 'bbox': [10, 8, 30, 30], 'area': 900,
                             'iscrowd': 0}]}
    if edit:
        edit(data)
    (coco / 'ann.json').write_text(raw if raw is not None else json.dumps(data))
    return coco


def train(imdb: str, *extra: str) -> list[str]:
    return ['tools/trainval_net.py', '--net', 'tiny', '--imdb', imdb, '--imdbval', '', '--iters', '2', '--cfg',
            SHAPES_CFG, '--workers', '0', '--device', 'cpu', *extra, '--set', 'TRAIN.SCALES', '[64]',
            'TRAIN.IMS_PER_BATCH', '1', 'TRAIN.DISPLAY', '1', 'TRAIN.SNAPSHOT_ITERS', '1000',
            'TRAIN.USE_FLIPPED', 'False',
            # the schedule as given (no notice of a scaled --iters or of a run inside its warm-up on stderr)
            'TRAIN.REFERENCE_BATCH', '1', 'TRAIN.WARMUP_ITERS', '0']


def voc_name(root: Path) -> str:
    return f'voc_dir:{root / "voc"}:train'


def coco_name(root: Path) -> str:
    return f'coco_json:{root / "coco" / "ann.json"}:{root / "coco" / "images"}'


@dataclass
class Case:
    """One mistake: how to set it up, what to run, the exit code and what the one line must name."""

    name: str
    setup: Callable[[Path, Path], list[str]]   # (root, trained snapshot) -> the tool's argv
    code: int
    names: Callable[[Path], list[str]] = field(default=lambda root: [])  # strings the message must contain


def _voc_case(name: str, body: str, code: int, *must: str, size=(64, 48)) -> Case:
    def setup(root, _):
        make_voc(root, {'b': body}, size)
        return train(voc_name(root))
    culprit = 'a.xml' if size != (64, 48) else 'b.xml'  # a <size> of the folder's: the first file read has it
    return Case(name, setup, code, lambda root: [str(root / 'voc' / 'Annotations' / culprit), *must])


def _coco_case(name: str, edit, *must: str, raw: str | None = None) -> Case:
    def setup(root, _):
        make_coco(root, edit, raw)
        return train(coco_name(root))
    return Case(name, setup, DATA, lambda root: [str(root / 'coco' / 'ann.json'), *must])


def _vg_case(name: str, edit: Callable[[dict], None], *must: str) -> Case:
    """The generated Visual Genome set (tests/vg_data.py) with ``edit`` applied to its objects."""
    def setup(root, _):
        objects = default_objects()
        edit(objects)
        write_vg(root / 'data', objects=objects)
        return train('vg_1600-400-20_minitrain')
    return Case(name, setup, DATA, lambda root: [str(root / 'data' / 'vg'), *must])


def _image_case(name: str, spoil: Callable[[Path], None], *must: str) -> Case:
    def setup(root, _):
        make_voc(root)
        spoil(root / 'voc' / 'JPEGImages' / 'b.jpg')
        return train(voc_name(root))
    return Case(name, setup, DATA, lambda root: [str(root / 'voc' / 'JPEGImages' / 'b.jpg'), 'training stopped', *must])


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-300])


def _model_case(name: str, setup, code: int, names) -> Case:
    return Case(name, setup, code, names)


def _test_args(model: Path, root: Path, *extra: str) -> list[str]:
    return ['tools/test_net.py', '--imdb', 'shapes_test', '--model', str(model), '--device', 'cpu', *extra]


def _old_snapshot(root: Path, trained: Path) -> Path:
    snap = torch.load(trained, map_location='cpu', weights_only=True)
    del snap['config'], snap['kind']
    path = root / 'old.pth'
    torch.save(snap, path)
    return path


def _copy(trained: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(trained, dst)
    return dst


class _Payload:
    def __reduce__(self):
        import os
        return (os.system, ('touch PWNED',))


def _reval_payload(root, trained):
    folder = root / 'detections'
    folder.mkdir()
    with open(folder / 'detections.pkl', 'wb') as f:
        pickle.dump([[_Payload()]], f)
    return ['tools/reval.py', str(folder), '--imdb', 'shapes_test']


def _tf_truncated(root, trained):
    from tensorbundle_writer import write_bundle
    prefix = root / 'm.ckpt'
    write_bundle(str(prefix), {'vgg_16/conv1/conv1_1/weights': np.zeros((3, 3, 3, 64), np.float32)})
    index = root / 'm.ckpt.index'
    index.write_bytes(index.read_bytes()[:-7])
    return ['tools/convert_from_tensorflow.py', '--net', 'vgg16', '--ckpt', str(prefix), '--imdb', 'voc_2007_test',
            '--out', str(root / 'out.pth')]


def _rtl_wrong_net(root, trained):
    state = {'vgg.features.0.weight': torch.zeros(64, 3, 3, 3), 'rpn_net.weight': torch.zeros(512, 512, 3, 3)}
    torch.save(state, root / 'vgg.pth')
    return ['tools/convert_from_pytorch_faster_rcnn.py', '--net', 'res101', '--pth', str(root / 'vgg.pth'), '--imdb',
            'voc_2007_test', '--out', str(root / 'out.pth')]


def _caffe_args(root: Path, object_lines: int) -> list[str]:
    """A caffemodel holding only a 1600-class cls_score (weights of one input), and a vocabulary."""
    from caffemodel_writer import write_caffemodel
    with open(root / 'butd.caffemodel', 'wb') as f:
        write_caffemodel(f, [('cls_score', 'InnerProduct', [np.zeros((1601, 1), np.float32), np.zeros(1601, np.float32)])])
    (root / 'objects_vocab.txt').write_text('\n'.join(f'o{i}' for i in range(object_lines)))
    return ['tools/convert_from_caffe.py', '--caffemodel', str(root / 'butd.caffemodel'), '--objects-vocab',
            str(root / 'objects_vocab.txt'), '--out', str(root / 'out.pth')]


def _detector_resume(root, trained):
    snap = torch.load(trained, map_location='cpu', weights_only=True)
    for k in ('optimizer', 'rng', 'data', 'iter'):
        snap.pop(k, None)
    snap['kind'] = 'detector'
    out = root / 'output' / 'tiny' / 'shapes_trainval' / 'default' / 'tiny_faster_rcnn_iter_5.pth'
    out.parent.mkdir(parents=True)
    torch.save(snap, out)
    return ['tools/trainval_net.py', '--net', 'tiny', '--imdb', 'shapes_trainval', '--imdbval', '', '--iters', '10',
            '--cfg', SHAPES_CFG, '--workers', '0', '--device', 'cpu', '--set', 'TRAIN.WARMUP_ITERS', '0']


def _truncated_test_image(root: Path, trained: Path) -> list[str]:
    """A VOC test set of the shapes classes, one of whose images is cut short; earlier detections in place."""
    voc = make_voc(root, {'a': _voc_object('circle', (5, 5, 30, 30)), 'b': _voc_object('square', (10, 8, 50, 40))})
    (voc / 'classes.txt').write_text('circle\nsquare\ntriangle\n')
    _truncate(voc / 'JPEGImages' / 'a.jpg')
    return ['tools/test_net.py', '--imdb', f'voc_dir:{voc}:train', '--model', str(trained), '--device', 'cpu',
            '--workers', '1']


def _with_cfg(path: Path) -> list[str]:
    """The training command with another config file instead of the --set pairs."""
    args = train('shapes_trainval')
    return args[:args.index('--set')] + ['--cfg', str(path)]


def _truncated_copy(trained: Path, root: Path) -> Path:
    data = trained.read_bytes()
    (root / 'cut.pth').write_bytes(data[:len(data) // 3])
    return root / 'cut.pth'


# The Python API through run_tool, as a tool would end (CUDA hidden, as on a machine without a GPU).
_API_LOAD = '''
import os, sys
os.environ['CUDA_VISIBLE_DEVICES'] = ''
from faster_rcnn import Detector
from faster_rcnn.cli import run_tool
sys.exit(run_tool(lambda: Detector.load(sys.argv[1], device=sys.argv[2])))
'''


def _api_load(device: str):
    def setup(root: Path, trained: Path) -> list[str]:
        script = root / 'load.py'
        script.write_text(_API_LOAD)
        return [str(script), str(trained), device]
    return setup


def _api_to_coco(root: Path, trained: Path) -> list[str]:
    script = root / 'to_coco.py'
    script.write_text('''
import sys
from faster_rcnn import Detector
from faster_rcnn.cli import run_tool
det = Detector.load(sys.argv[1])
sys.exit(run_tool(lambda: det(sys.argv[2]).to_coco(1, category_ids=[11, 22])))
''')
    image = sorted((trained.parents[4] / 'data' / 'shapes' / 'JPEGImages').glob('test_*.jpg'))[0]
    return [str(script), str(trained), str(image)]


def _exported(trained: Path, kind: str) -> Path:
    """The trained snapshot exported by tools/export.py (once per session: the graph cases only read it)."""
    out = trained.parent / f'exported.{kind}'
    if not out.exists():
        proc = subprocess.run([sys.executable, str(REPO / 'tools' / 'export.py'), '--model', str(trained), '--format',
                               kind, '--out', str(out)], cwd=REPO, env=_env(), capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def _damaged_graph(root: Path) -> Path:
    (root / 'damaged.onnx').write_bytes(b'\x08\x09 not a protobuf' * 10)
    return root / 'damaged.onnx'


CASES = [
    # -- VOC XML: every field missing, empty, of the wrong type or out of range ---------------------------
    _voc_case('voc-no-bndbox', '<object><name>cat</name></object>', DATA, 'object 0 (cat) has no <bndbox>'),
    _voc_case('voc-xmin-not-a-number', _voc_object('cat', ('ten', 8, 50, 40)), DATA, '<xmin> is not a number'),
    _voc_case('voc-empty-name', _voc_object('', (10, 8, 50, 40)), DATA, 'object 0 has no <name>'),
    _voc_case('voc-difficult-not-0-1', _voc_object('cat', (10, 8, 50, 40), 'maybe'), DATA, '<difficult> must be 0 or 1'),
    _voc_case('voc-box-outside', _voc_object('cat', (10, 8, 70, 40)), DATA, 'lies outside the 64x48 image'),
    _voc_case('voc-zero-based', _voc_object('cat', (0, 8, 50, 40)), DATA, 'VOC files are 1-based'),
    _voc_case('voc-malformed-xml', '<object><name>cat</name>', DATA, 'malformed XML'),
    _voc_case('voc-size-zero', _voc_object('cat', (10, 8, 50, 40)), DATA, '<size> gives 0x48', size=(0, 48)),
    _voc_case('voc-unknown-class', _voc_object('horse', (10, 8, 50, 40)), DATA, "unknown class 'horse'"),
    _voc_case('voc-inverted-box', _voc_object('cat', (50, 8, 10, 40)), DATA, 'inverted box'),
    _voc_case('voc-infinite', _voc_object('cat', ('inf', 8, 50, 40)), DATA, 'is not finite'),
    # -- COCO json -----------------------------------------------------------------------------------------
    _coco_case('coco-image-without-width', lambda d: d['images'][1].pop('width'), 'image id 2, file_name "2.jpg" (images[1]) has no "width"'),
    _coco_case('coco-image-id-string', lambda d: d['images'][0].update(id='one'), '"id" must be an integer'),
    _coco_case('coco-empty-file-name', lambda d: d['images'][0].update(file_name=''), '"file_name" must be a non-empty'),
    _coco_case('coco-height-negative', lambda d: d['images'][0].update(height=-3), '"height" must be a positive integer'),
    _coco_case('coco-bbox-string', lambda d: d['annotations'][0].update(bbox='4,4,20,20'), 'annotation 10', '"bbox" must be'),
    _coco_case('coco-bbox-negative', lambda d: d['annotations'][1].update(bbox=[10, 8, -3, 30]), 'annotation 11',
               'negative width'),
    _coco_case('coco-bbox-outside', lambda d: d['annotations'][1].update(bbox=[50, 8, 40, 30]), 'annotation 11',
               'outside the 64x48 image'),
    _coco_case('coco-unknown-category', lambda d: d['annotations'][0].update(category_id=99), 'unknown category_id 99'),
    _coco_case('coco-unknown-image', lambda d: d['annotations'][0].update(image_id=42), 'image_id 42'),
    _coco_case('coco-category-without-name', lambda d: d['categories'][0].pop('name'), 'categories[0] needs'),
    _coco_case('coco-malformed-json', None, 'malformed JSON', raw='{"images": [}'),
    _coco_case('coco-not-coco', None, 'not a COCO-format file', raw='[1, 2, 3]'),
    # -- Visual Genome json ----------------------------------------------------------------------------------
    _vg_case('vg-object-without-x', lambda objs: objs[3][0].pop('x'), 'objects.json: image 3, object 31',
             '"x" must be a finite number'),
    _vg_case('vg-object-without-name', lambda objs: objs[3][0].update(names=[]), 'objects.json: image 3, object 31',
             'no name'),
    Case('vg-no-annotations', lambda root, t: (write_vg(root / 'data'), (root / 'data/vg/objects.json').unlink(),
                                               train('vg_1600-400-20_minitrain'))[-1], DATA,
         lambda root: [str(root / 'data' / 'vg' / 'objects.json'), 'does not exist', 'fetch_vg.py']),
    # -- image files ---------------------------------------------------------------------------------------
    Case('image-missing', lambda root, t: (make_voc(root), (root / 'voc/JPEGImages/b.jpg').unlink(),
                                           train(voc_name(root)))[-1], DATA,
         lambda root: [str(root / 'voc' / 'JPEGImages' / 'b.jpg'), 'does not exist, so the run stops']),
    _image_case('image-empty', lambda p: p.write_bytes(b''), 'is empty'),
    _image_case('image-truncated', _truncate, 'is corrupt', 'end-of-image marker'),
    _image_case('image-not-an-image', lambda p: p.write_text('hello'), 'cannot be decoded'),
    _image_case('image-other-size', lambda p: _noisy_jpeg(p, 40, 64), 'is 64x40 but its annotation says 64x48'),
    Case('image-truncated-while-testing', _truncated_test_image, DATA,
         lambda root: [str(root / 'voc' / 'JPEGImages' / 'a.jpg'), 'is corrupt', 'testing stopped']),
    # -- datasets and splits -----------------------------------------------------------------------------------
    Case('dataset-unknown-name', lambda root, t: train('voc_2007_trianval'), USAGE,
         lambda root: ["unknown dataset 'voc_2007_trianval'"]),
    Case('dataset-empty-split', lambda root, t: (make_voc(root), (root / 'voc/ImageSets/Main/train.txt').write_text(''),
                                                 train(voc_name(root)))[-1], DATA,
         lambda root: [str(root / 'voc' / 'ImageSets' / 'Main' / 'train.txt'), 'lists no images']),
    Case('dataset-all-difficult', lambda root, t: (make_voc(root, {'a': _voc_object('dog', (5, 5, 30, 30), 1),
                                                                   'b': _voc_object('cat', (9, 8, 50, 40), 1)}),
                                                   train(voc_name(root)) + ['TRAIN.USE_ALL_GT', 'False'])[-1],
         DATA, lambda root: ['no image left to train on', 'TRAIN.USE_ALL_GT']),
    Case('dataset-fewer-than-a-batch', lambda root, t: (make_voc(root), train(voc_name(root)) + ['TRAIN.IMS_PER_BATCH', '9',
                                                                                             'TRAIN.USE_FLIPPED', 'False',
                                                                                             'TRAIN.REFERENCE_BATCH', '9'])[-1],
         DATA, lambda root: ['fewer than one batch of 9', 'TRAIN.IMS_PER_BATCH']),
    Case('dataset-folder-missing', lambda root, t: train(f'voc_dir:{root / "nowhere"}:train'), DATA,
         lambda root: [str(root / 'nowhere'), 'does not exist']),
    Case('dataset-bad-custom-name', lambda root, t: train('voc_dir:onlyroot'), USAGE,
         lambda root: ['voc_dir:onlyroot', 'expected voc_dir:<root>:<split>']),
    Case('dataset-annotation-missing', lambda root, t: (make_voc(root), (root / 'voc/Annotations/b.xml').unlink(),
                                                        train(voc_name(root)))[-1], DATA,
         lambda root: [str(root / 'voc' / 'Annotations' / 'b.xml'), 'does not exist']),
    # -- model, weight and detector files ------------------------------------------------------------------
    _model_case('model-missing', lambda root, t: _test_args(root / 'nope.pth', root), MODEL,
                lambda root: [str(root / 'nope.pth'), 'does not exist']),
    _model_case('model-truncated', lambda root, t: _test_args(_truncated_copy(t, root), root), MODEL,
                lambda root: [str(root / 'cut.pth'), 'cannot be read', 'truncated']),
    _model_case('model-foreign', lambda root, t: ((root / 'notes.pth').write_text('hello'),
                                                  _test_args(root / 'notes.pth', root))[-1], MODEL,
                lambda root: [str(root / 'notes.pth'), 'cannot be read']),
    _model_case('model-other-net', lambda root, t: _test_args(_copy(t, root / 'm.pth'), root, '--net', 'vgg16'), MODEL,
                lambda root: [str(root / 'm.pth'), 'holds a tiny network, not vgg16']),
    _model_case('model-other-width', lambda root, t: _test_args(_old_snapshot(root, t), root, '--net', 'tiny',
                                                                  '--cfg', SHAPES_CFG, '--set', 'TINY.FC_DIM', '128'),
                MODEL, lambda root: [str(root / 'old.pth'), 'backbone.fc.0.weight', 'TINY']),
    _model_case('model-other-anchors', lambda root, t: _test_args(_old_snapshot(root, t), root, '--net', 'tiny',
                                                                    '--cfg', SHAPES_CFG, '--set', 'ANCHOR_SCALES',
                                                                    '[1,2,4]'),
                MODEL, lambda root: [str(root / 'old.pth'), 'rpn_cls_score', 'ANCHOR_SCALES']),
    _model_case('weight-missing', lambda root, t: train('shapes_trainval', '--net', 'mobile', '--weight',
                                                        str(root / 'imagenet.pth')), MODEL,
                lambda root: [str(root / 'imagenet.pth'), 'fetch_imagenet_weights.py']),
    _model_case('weight-for-tiny', lambda root, t: train('shapes_trainval', '--weight', str(t)), USAGE,
                lambda root: ['--weight', 'trained from scratch']),
    _model_case('weight-is-a-detector', lambda root, t: train('shapes_trainval', '--net', 'mobile', '--weight', str(t)),
                MODEL, lambda root: ['not a torchvision state_dict', '--finetune']),
    _model_case('weight-none-for-mobile', lambda root, t: train('shapes_trainval', '--net', 'mobile'), USAGE,
                lambda root: ['--net mobile', 'fetch_imagenet_weights.py --net mobile', '--finetune', '--from-scratch']),
    _model_case('resume-from-a-detector-file', _detector_resume, MODEL,
                lambda root: ['tiny_faster_rcnn_iter_5.pth', 'without training state', '--finetune']),
    _model_case('tf-checkpoint-truncated', _tf_truncated, MODEL,
                lambda root: [str(root / 'm.ckpt.index'), 'not a TensorFlow checkpoint index']),
    _model_case('rtl-file-of-another-net', _rtl_wrong_net, MODEL,
                lambda root: [str(root / 'vgg.pth'), 'holds a vgg16 network, not res101']),
    _model_case('caffe-model-missing-layers', lambda root, t: _caffe_args(root, 1600), MODEL,
                lambda root: [str(root / 'butd.caffemodel'), 'does not fit the BUTD network', 'layer conv1 is missing']),
    Case('caffe-vocabulary-of-another-model', lambda root, t: _caffe_args(root, 3), USAGE,
         lambda root: ['--objects-vocab', 'the vocabulary has 3 names', 'cls_score has 1600 classes']),
    # -- exported graphs (.onnx, .pt2) where a model is taken --------------------------------------------------------
    _model_case('model-pt2-untrusted', lambda root, t: _test_args(_exported(t, 'pt2'), root), MODEL,
                lambda root: ['exported.pt2: a .pt2 program runs code stored in it', '--trust-code']),
    _model_case('model-pt2-with-a-runtime', lambda root, t: _test_args(_exported(t, 'pt2'), root, '--runtime',
                                                                        'openvino', '--trust-code'), USAGE,
                lambda root: ["runtime 'openvino'", 'exported.pt2 is a torch.export program']),
    _model_case('model-onnx-to-analyze', lambda root, t: ['tools/analyze_model.py', '--model',
                                                          str(_exported(t, 'onnx')), '--no-train'], MODEL,
                lambda root: ['exported.onnx is an exported ONNX graph', 'not a detector file', 'pass the .pth']),
    _model_case('model-pt2-to-finetune',
                lambda root, t: train('shapes_trainval', '--finetune', str(_exported(t, 'pt2'))), MODEL, lambda root: ['exported.pt2 is an exported torch.export program', 'pass the .pth']),
    _model_case('model-onnx-looser-cap', lambda root, t: _test_args(_exported(t, 'onnx'), root, '--num_dets', '500'),
                USAGE, lambda root: ['max_per_image=500', 'exported with max_per_image = 100', 'smaller cap']),
    _model_case('model-onnx-damaged-describe', lambda root, t: ['tools/describe_model.py', str(_damaged_graph(root))],
                MODEL, lambda root: [str(root / 'damaged.onnx'), 'cannot be read']),
    # -- config files and --set ------------------------------------------------------------------------------
    Case('config-unknown-key', lambda root, t: ((root / 'x.yml').write_text('TRAIN:\n  LERNING_RATE: 0.1\n'),
                                                _with_cfg(root / 'x.yml'))[-1],
         USAGE, lambda root: [str(root / 'x.yml'), 'TRAIN.LERNING_RATE']),
    Case('config-wrong-type', lambda root, t: train('shapes_trainval') + ['TRAIN.BATCH_SIZE', 'many'], USAGE,
         lambda root: ['TRAIN.BATCH_SIZE', 'expected int']),
    Case('config-invalid-yaml', lambda root, t: ((root / 'x.yml').write_text('TRAIN: [1,\n'),
                                                 _with_cfg(root / 'x.yml'))[-1],
         USAGE, lambda root: [str(root / 'x.yml'), 'not valid YAML']),
    Case('config-missing-file', lambda root, t: _with_cfg(root / 'none.yml'),
         USAGE, lambda root: [str(root / 'none.yml'), 'cannot read config file']),
    Case('config-odd-set', lambda root, t: train('shapes_trainval') + ['TRAIN.DISPLAY'], USAGE,
         lambda root: ['--set expects KEY VALUE pairs']),
    Case('config-unknown-pooling', lambda root, t: train('shapes_trainval') + ['POOLING_MODE', 'magic'], USAGE,
         lambda root: ['POOLING_MODE', "'magic'"]),
    Case('config-layer-value-out-of-range', lambda root, t: train('shapes_trainval') + ['TRAIN.FG_FRACTION', '1.5'],
         USAGE, lambda root: ['config key TRAIN.FG_FRACTION', 'expected a number in [0, 1]']),
    Case('config-contradicts-model', lambda root, t: _test_args(_copy(t, root / 'm.pth'), root, '--set', 'ANCHOR_SCALES',
                                                                  '[2,4]'),
         USAGE, lambda root: ['ANCHOR_SCALES = [2.0, 4.0] contradicts', str(root / 'm.pth'), '--override']),
    # -- flags ---------------------------------------------------------------------------------------------------
    Case('flags-finetune-and-weight', lambda root, t: train('shapes_trainval', '--finetune', str(t), '--weight', 'w.pth'),
         USAGE, lambda root: ['--finetune and --weight']),
    Case('flags-video-and-images', lambda root, t: ['tools/demo.py', '--model', str(t), '--video', 'a.mp4', '--images',
                                                    'x'], USAGE, lambda root: ['--images', 'not allowed with']),
    Case('flags-unknown', lambda root, t: ['tools/test_net.py', '--model', str(t), '--batch', '4'], USAGE,
         lambda root: ['unrecognized arguments: --batch 4']),
    Case('flags-demo-missing-images', lambda root, t: ['tools/demo.py', '--model', str(t), '--images',
                                                       str(root / 'pics'), '--device', 'cpu'], USAGE,
         lambda root: [str(root / 'pics'), 'no such file or folder']),
    Case('flags-features-h5-range', lambda root, t: ['tools/extract_features.py', '--model', str(t), '--imdb',
                                                     'shapes_test', '--format', 'h5', '--out', str(root / 'f.h5'),
                                                     '--device', 'cpu'], USAGE,
         lambda root: ['--boxes 10-100', 'fixed number of boxes', '--boxes 36']),
    Case('flags-features-boxes', lambda root, t: ['tools/extract_features.py', '--model', str(t), '--imdb',
                                                  'shapes_test', '--format', 'npz', '--out', str(root / 'f'),
                                                  '--boxes', 'many', '--device', 'cpu'], USAGE,
         lambda root: ['--boxes many', 'expected MIN-MAX']),
    Case('flags-cuda-without-gpu', lambda root, t: _test_args(t, root)[:-2] + ['--device', 'cuda'], USAGE,
         lambda root: ['--device cuda', 'CUDA is not available']),
    Case('flags-unknown-device', lambda root, t: ['tools/demo.py', '--model', str(t), '--device', 'tpu'], USAGE,
         lambda root: ['--device tpu', 'not a device name', 'available on this machine: cpu']),
    Case('api-load-unknown-device', _api_load('tpu'), USAGE,
         lambda root: ["device='tpu'", 'not a device name', 'available on this machine: cpu']),
    Case('api-load-cuda-without-gpu', _api_load('cuda'), USAGE,
         lambda root: ["device='cuda'", 'CUDA is not available', 'available on this machine: cpu']),
    Case('api-to-coco-wrong-category-ids', _api_to_coco, USAGE,
         lambda root: ['category_ids: 2 category ids for a detector of 3 classes', 'give 3']),
    Case('reval-no-detections', lambda root, t: ['tools/reval.py', str(root / 'empty'), '--imdb', 'shapes_test'], USAGE,
         lambda root: [str(root / 'empty' / 'detections.pkl'), 'does not exist']),
    Case('reval-pickle-payload', _reval_payload, DATA,
         lambda root: [str(root / 'detections' / 'detections.pkl'), 'refusing to load it', 'posix.system']),
    Case('fetch-unknown-net', lambda root, t: ['data/scripts/fetch_faster_rcnn_models.py', '--net', 'alexnet'], USAGE,
         lambda root: ["invalid choice: 'alexnet'"]),
    Case('benchmark-cuda-without-gpu', lambda root, t: ['tools/benchmark.py', 'layers', '--device', 'cuda'], USAGE,
         lambda root: ['--device cuda', 'no CUDA device']),
    # -- the experiment scripts ------------------------------------------------------------------------------
    Case('script-unknown-dataset', lambda root, t: ['experiments/scripts/train_faster_rcnn.sh', '0', 'pascal', 'vgg16'],
         USAGE, lambda root: ['DATASET pascal: unknown']),
    Case('script-unknown-net', lambda root, t: ['experiments/scripts/test_faster_rcnn.sh', '0', 'shapes', 'alexnet'],
         USAGE, lambda root: ['NET alexnet', 'alexnet.yml']),
    Case('script-missing-arguments', lambda root, t: ['experiments/scripts/train_faster_rcnn.sh', 'cpu'], USAGE,
         lambda root: ['expected GPU_ID DATASET NET']),
    Case('script-no-final-model', lambda root, t: ['experiments/scripts/test_faster_rcnn.sh', 'cpu', 'shapes', 'tiny'],
         MODEL, lambda root: [str(root / 'output' / 'tiny' / 'shapes_trainval' / 'default' / 'tiny_faster_rcnn_iter_1600.pth'),
                              'does not exist']),
]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize('case', CASES, ids=[c.name for c in CASES])
def test_each_mistake_ends_in_one_line_naming_its_culprit(case: Case, tmp_path, trained):
    root = tmp_path / 'root'
    (root / 'data').mkdir(parents=True)
    # Something written before: a snapshot of an earlier run, which no failing run may touch.
    earlier = _copy(trained, root / 'output' / 'earlier' / 'shapes_trainval' / 'default' / 'tiny_faster_rcnn_iter_40.pth')
    before = _digest(earlier)
    shapes = trained.parents[4] / 'data' / 'shapes'  # the shapes set the session generated: link it, not regenerate
    (root / 'data' / 'shapes').symlink_to(shapes)
    argv = case.setup(root, trained)
    env = {**_env(), 'FRCNN_ROOT_DIR': str(root), 'FRCNN_DATA_DIR': str(root / 'data')}
    script = argv[0] if Path(argv[0]).is_absolute() else str(REPO / argv[0])
    launcher = ['bash'] if script.endswith('.sh') else [sys.executable]
    proc = subprocess.run([*launcher, script, *argv[1:]], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith('error: '), proc.stderr[-3000:]
    assert proc.returncode == case.code, (proc.returncode, lines[0])
    for culprit in case.names(root):
        assert culprit in lines[0], (culprit, lines[0])
    assert _digest(earlier) == before
    assert not (tmp_path / 'PWNED').exists()


def test_the_catalogue_covers_every_class_of_mistake():
    prefixes = {c.name.split('-')[0] for c in CASES}
    assert {'voc', 'coco', 'image', 'dataset', 'model', 'weight', 'config', 'flags'} <= prefixes
    assert len(CASES) >= 40
