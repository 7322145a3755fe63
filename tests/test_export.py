"""Export: every network and pooling mode as one ONNX graph that ONNX Runtime runs with the network's raw outputs;
the .pt2 program in a process without this package; the trained quick-start model's mean AP and detections under
ONNX Runtime; settings without an exported form are errors naming the key."""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from faster_rcnn import Detector
from faster_rcnn.data.test_loader import prepare_test_image
from faster_rcnn.errors import ExportError, UsageError
from faster_rcnn.export.onnx_export import export_onnx
from faster_rcnn.export.pt2_export import export_pt2
from faster_rcnn.nets.factory import build_network
from faster_rcnn.nets.postprocess import decode_boxes
from faster_rcnn.utils.detections_file import read_detections

from settings_helpers import settings_for
from tool_runs import _dirs, _env, run_tool

H, W = 100, 140  # test scale 1: the image enters the network as it is


def _model(net: str, **keys):
    settings = settings_for(net, **keys).with_test(scales=min(H, W), max_size=max(H, W))
    torch.manual_seed(0)
    model = build_network(net, 5, settings).eval()
    with torch.no_grad():  # class scores that are not all equal
        model.cls_score.weight.normal_(0, 0.05)
    return model


def _image(h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _eager_raw(model, im: np.ndarray):
    blob, info = prepare_test_image(im, model.settings.input)
    data = torch.from_numpy(blob).permute(2, 0, 1)[None].contiguous()
    with torch.no_grad():
        rois, cls_prob, bbox_pred = model(data, torch.from_numpy(info)[None])[:3]
    boxes = decode_boxes(rois, bbox_pred, float(info[2]), im.shape[:2], model.num_classes,
                         model.settings.detection.bbox_reg)
    return rois[:, 1:].numpy(), cls_prob.numpy(), boxes.numpy()


CASES = [('tiny', {}), ('tiny', {'POOLING_MODE': 'crop'}), ('tiny', {'POOLING_MODE': 'pool'}),
         ('tiny', {'TEST.MODE': 'top', 'TEST.RPN_TOP_N': 50}), ('tiny', {'TEST.RPN_MIN_SIZE': 24}), ('vgg16', {}), ('vgg16', {'POOLING_MODE': 'align'}),
         ('vgg16', {'POOLING_MODE': 'pool'}), ('vgg16', {'VGG16.CEIL_MODE': False}), ('res50', {}),
         ('res50', {'RESNET.MAX_POOL': True}), ('res101', {}), ('res152', {'RESNET.LAYOUT': 'slim'}),
         ('mobile', {}), ('mobile', {'MOBILENET.VERSION': 1})]


@pytest.mark.slow
@pytest.mark.parametrize('net, keys', CASES, ids=[f'{n}-' + '-'.join(f'{v}' for v in k.values()) for n, k in CASES])
def test_every_network_and_pooling_mode_runs_under_onnx_runtime_as_eager(net, keys, tmp_path):
    model = _model(net, **{k.replace('.', '__'): v for k, v in keys.items()})
    path = tmp_path / f'{net}.onnx'
    meta = export_onnx(model, [f'c{i}' for i in range(5)], str(path), net=net, record=None, raw_outputs=True)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert proto.opset_import[0].version >= 17
    if net == 'vgg16':  # the padded ceil-mode pools are folded back into ONNX ceil-mode MaxPools (the image's
        # sizes 100 x 140 are odd at the third pool: the ceil rule is exercised by the comparison below)
        ceil = [n for n in proto.graph.node if n.op_type == 'MaxPool'
                and any(a.name == 'ceil_mode' and a.i == 1 for a in n.attribute)]
        assert len(ceil) == (4 if keys.get('VGG16.CEIL_MODE', True) else 0)
        assert not any(n.op_type == 'Pad' for n in proto.graph.node)
    assert [i.name for i in proto.graph.input] == ['image']
    assert [o.name for o in proto.graph.output][:3] == ['boxes', 'scores', 'labels']
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props['classes']) == meta['classes'] and props['net'] == net
    assert props['channel_order'] == model.settings.input.channel_order
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    im = _image()
    boxes, scores, labels, rois, cls_prob, class_boxes = session.run(None, {'image': im})
    e_rois, e_prob, e_boxes = _eager_raw(model, im)
    assert rois.shape == e_rois.shape and len(rois) > 0
    np.testing.assert_allclose(rois, e_rois, atol=0.02)  # pixels: only the float order of the layers differs
    np.testing.assert_allclose(cls_prob, e_prob, atol=1e-4)
    np.testing.assert_allclose(class_boxes, e_boxes, atol=0.02)
    assert boxes.dtype == np.float32 and scores.dtype == np.float32 and labels.dtype == np.int64
    eager = Detector.from_model(model, meta['classes'])(im)
    assert len(eager) == len(labels)
    np.testing.assert_array_equal(labels, eager.labels)
    np.testing.assert_allclose(scores, eager.scores, atol=1e-4)
    # Another image size through the same file.
    other = session.run(None, {'image': _image(80, 170)})
    assert other[3].shape[0] > 0 and other[0].shape[1] == 4


_PT2 = '''
import sys
import numpy as np, torch, torchvision
program = torch.export.load(sys.argv[1]).module()
out = {}
for i, (h, w) in enumerate(((100, 140), (90, 120))):
    im = np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8)
    boxes, scores, labels = program(torch.from_numpy(im))
    out[f'boxes{i}'], out[f'scores{i}'], out[f'labels{i}'] = boxes.numpy(), scores.numpy(), labels.numpy()
assert not any(m.startswith('faster_rcnn') for m in sys.modules), 'faster_rcnn was imported'
np.savez(sys.argv[2], **out)
'''


@pytest.mark.slow
@pytest.mark.parametrize('net', ['tiny', 'vgg16'])
def test_pt2_program_runs_without_this_package_and_matches_eager(net, tmp_path):
    model = _model(net)
    path = tmp_path / f'{net}.pt2'
    export_pt2(model, [f'c{i}' for i in range(5)], str(path), net=net, record=None)
    env = {k: v for k, v in _env().items() if k != 'PYTHONPATH'}  # no lib/ on the path
    proc = subprocess.run([sys.executable, '-c', _PT2, str(path), str(tmp_path / 'out.npz')], env=env,
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = np.load(tmp_path / 'out.npz')
    detector = Detector.from_model(model, [f'c{i}' for i in range(5)])
    for i, (h, w) in enumerate(((100, 140), (90, 120))):
        eager = detector(np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8))
        assert len(eager) > 0 and len(got[f'labels{i}']) == len(eager)
        np.testing.assert_array_equal(got[f'labels{i}'], eager.labels)
        np.testing.assert_allclose(got[f'scores{i}'], eager.scores, atol=1e-4)
        np.testing.assert_allclose(got[f'boxes{i}'], eager.boxes, atol=0.05)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) inclusive boxes -> (N, M) IoU with +1 widths."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt + 1, 0, None).prod(2)
    area = lambda x: (x[:, 2] - x[:, 0] + 1) * (x[:, 3] - x[:, 1] + 1)
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def _mean_ap(stdout: str) -> float:
    return float([line for line in stdout.splitlines() if line.startswith('Mean AP = ')][-1].split('=')[1])


@pytest.mark.slow
def test_the_quick_start_model_under_onnx_runtime_keeps_its_mean_ap_and_detections(root, working, tmp_path):
    trained = working
    onnx_path = tmp_path / 'tiny.onnx'
    proc = run_tool(['tools/export.py', '--model', str(trained), '--format', 'onnx', '--out', str(onnx_path)])
    assert 'tiny.onnx' in proc.stdout and onnx_path.is_file()
    eager = run_tool(['tools/test_net.py', '--imdb', 'shapes_test', '--model', str(trained), '--device', 'cpu',
                      '--workers', '0', '--tag', 'onnx_eager', '--set', *_dirs(root)]).stdout
    graph = run_tool(['tools/test_net.py', '--imdb', 'shapes_test', '--model', str(onnx_path), '--device', 'cpu',
                      '--workers', '0', '--tag', 'onnx_graph', '--set', *_dirs(root)]).stdout
    assert abs(_mean_ap(eager) - _mean_ap(graph)) <= 0.002
    a = read_detections(str(root / 'output' / 'tiny' / 'shapes_test' / 'onnx_eager' / trained.stem / 'detections.pkl'))
    b = read_detections(str(root / 'output' / 'tiny' / 'shapes_test' / 'onnx_graph' / 'tiny' / 'detections.pkl'))
    matched = total = 0
    for j in range(1, len(a)):
        for i in range(len(a[j])):
            ea, eb = a[j][i][a[j][i][:, 4] >= 0.05], b[j][i]
            total += len(ea)
            if len(ea) and len(eb):
                iou = _iou(ea[:, :4], eb[:, :4])
                best = iou.argmax(1)
                ok = (iou.max(1) >= 0.98) & (np.abs(ea[:, 4] - eb[best, 4]) <= 0.01)
                # one to one: no graph detection used twice
                matched += len(set(best[ok].tolist()))
    assert total > 50 and matched / total >= 0.99, (matched, total)
    # The same file on two image sizes, through the Python API.
    det = Detector.load(str(onnx_path))
    im = cv2.imread(str(sorted((root / 'data' / 'shapes' / 'JPEGImages').glob('test_*.jpg'))[0]))
    big = cv2.resize(im, None, fx=1.7, fy=1.3)
    d_small, d_big = det(im), det(big)
    assert d_small.classes == det.classes and len(d_big) > 0
    assert d_big.boxes[:, 2].max() > im.shape[1]  # in the big image's pixels
    with pytest.raises(ExportError, match='nms=0.1: .*tiny.onnx was exported with nms = 0.3'):
        Detector.load(str(onnx_path), nms=0.1)
    # OpenVINO on the same file: fp32 keeps the eager mean AP, bf16 (its CPU plugin's reduced precision) too.
    for tag, extra in (('ov_fp32', []), ('ov_bf16', ['TEST.AMP', 'bf16'])):
        out = run_tool(['tools/test_net.py', '--imdb', 'shapes_test', '--model', str(onnx_path), '--runtime',
                        'openvino', '--device', 'cpu', '--workers', '0', '--tag', tag, '--set', *_dirs(root),
                        *extra]).stdout
        assert abs(_mean_ap(eager) - _mean_ap(out)) <= (0.002 if tag == 'ov_fp32' else 0.01), (tag, out[-500:])


def test_settings_without_an_exported_form_are_errors_naming_the_key(root, trained, tmp_path):
    contents = torch.load(trained, map_location='cpu', weights_only=True)
    contents['config']['test']['SCALES'] = [160, 200]
    two_scales = tmp_path / 'two_scales.pth'
    torch.save(contents, two_scales)
    proc = run_tool(['tools/export.py', '--model', str(two_scales), '--format', 'onnx', '--out',
                     str(tmp_path / 'x.onnx')], check=False)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith('error: TEST.SCALES = [160, 200]') and 'Traceback' not in proc.stderr
    assert not (tmp_path / 'x.onnx').exists()
    proc = run_tool(['tools/export.py', '--model', str(trained), '--format', 'onnx', '--out', str(tmp_path / 'y.onnx'),
                     '--scales', '0'], check=False)
    assert proc.returncode == 2 and 'SCALES' in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def _graph(tmp_path, net: str = 'tiny', **keys):
    model = _model(net, **keys)
    path = tmp_path / f'{net}.onnx'
    export_onnx(model, ['__background__', 'a', 'b', 'c', 'd'], str(path), net=net, record=None)
    return path


def test_openvino_runs_the_graph_as_onnx_runtime_does(tmp_path):
    """The same .onnx under OpenVINO (fp32) gives ONNX Runtime's detections; bf16 runs; its wrong uses are errors."""
    path = _graph(tmp_path, TEST__MAX_PER_IMAGE=0)  # no cap: near-equal scores of seeded weights cannot swap at it
    im = _image()
    ort_det = Detector.load(str(path))(im)
    ov_det = Detector.load(str(path), runtime='openvino')(im)
    # Seeded weights give many low-score boxes of near-equal overlap, where a few NMS decisions differ at float
    # rounding: the confident ones must match one to one (the trained model's test asks for 99% of all).
    assert len(ort_det) > 10 and abs(len(ov_det) - len(ort_det)) <= len(ort_det) // 10
    confident = ort_det.scores >= 0.3
    matched = 0
    for c in np.unique(ort_det.labels[confident]):
        a, b = confident & (ort_det.labels == c), ov_det.labels == c
        assert b.any(), c
        iou = _iou(ort_det.boxes[a], ov_det.boxes[b])
        best = iou.argmax(1)
        ok = (iou.max(1) >= 0.99) & (np.abs(ort_det.scores[a] - ov_det.scores[b][best]) <= 1e-4)
        matched += len(set(best[ok].tolist()))
    assert confident.sum() >= 5 and matched == confident.sum(), (matched, confident.sum())
    bf16 = Detector.load(str(path), runtime='openvino', amp='bf16')(im)
    assert bf16.boxes.dtype == np.float32 and bf16.labels.dtype == np.int64 and len(bf16) > 0
    with pytest.raises(ExportError, match="amp='fp16': runtime openvino runs fp32"):
        Detector.load(str(path), runtime='openvino', amp='fp16')
    if torch.cuda.is_available():
        with pytest.raises(ExportError, match='device cuda: runtime openvino runs on the CPU'):
            Detector.load(str(path), runtime='openvino', device='cuda')
    else:  # the device is checked first: this machine has none
        with pytest.raises(UsageError, match="device='cuda'"):
            Detector.load(str(path), runtime='openvino', device='cuda')
    with pytest.raises(ExportError, match="runtime 'tensorrt': not one of onnxruntime, openvino"):
        Detector.load(str(path), runtime='tensorrt')
    with pytest.raises(ExportError, match='nms=0.1: .* was exported with nms'):
        Detector.load(str(path), runtime='openvino', nms=0.1)


@pytest.mark.parametrize('runtime, name', [('onnxruntime', 'ONNX Runtime'), ('openvino', 'OpenVINO')])
def test_a_damaged_onnx_file_is_one_error_naming_it(tmp_path, runtime, name):
    from faster_rcnn.errors import ModelFileError
    bad = tmp_path / 'damaged.onnx'
    bad.write_bytes(b'not a protobuf \x00\x01\x02' * 10)
    with pytest.raises(ModelFileError, match=f'damaged.onnx cannot be loaded by {name} .*is it an exported detector'):
        Detector.load(str(bad), runtime=runtime)
