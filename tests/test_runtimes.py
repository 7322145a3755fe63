"""Exported graphs wherever a model is taken: a .onnx / .pt2 given where a .pth is needed is one line naming it;
describe_model reads a graph's metadata without torch.load; Detector.load runs a .pt2 (when trusted) and an .onnx
under ONNX Runtime or OpenCV 5 with the same detections; a higher score threshold or a smaller cap filters a graph's
output exactly as the eager network applies them, a looser one is an error naming the baked value."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from faster_rcnn import Detector
from faster_rcnn.errors import CheckpointError, ExportError, ModelFileError
from faster_rcnn.export.metadata import read_graph_metadata
from faster_rcnn.export.onnx_export import export_onnx
from faster_rcnn.export.pt2_export import export_pt2
from faster_rcnn.export.runtime import OutputFilter
from faster_rcnn.model_file import exported_kind, open_detector
from faster_rcnn.nets.factory import build_network

from settings_helpers import settings_for
from tool_runs import REPO, _dirs, _env, run_tool

H, W = 100, 140
CLASSES = ['__background__', 'circle', 'square', 'triangle', 'star']
RECORD = {'model': {'POOLING_MODE': 'align'}, 'test': {'NMS': 0.3, 'MAX_PER_IMAGE': 40}, 'exp_dir': 'tiny_exp'}


def _model() -> torch.nn.Module:
    settings = settings_for('tiny', TEST__MAX_PER_IMAGE=40).with_test(scales=min(H, W), max_size=max(H, W))
    torch.manual_seed(0)
    model = build_network('tiny', len(CLASSES), settings).eval()
    with torch.no_grad():  # class scores that are not all equal
        model.cls_score.weight.normal_(0, 0.05)
    return model


@pytest.fixture(scope='module')
def exported(tmp_path_factory) -> dict:
    """The same seeded tiny network as eager model, .onnx and .pt2 (both export in seconds)."""
    folder = tmp_path_factory.mktemp('graphs')
    model = _model()
    onnx_path, pt2_path = folder / 'tiny.onnx', folder / 'tiny.pt2'
    export_onnx(model, CLASSES, str(onnx_path), net='tiny', record=RECORD)
    export_pt2(model, CLASSES, str(pt2_path), net='tiny', record=RECORD)
    return {'model': model, 'onnx': onnx_path, 'pt2': pt2_path, 'folder': folder}


def _image(seed: int = 0, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)


# -- recognised where a .pth is needed ------------------------------------------------------------------------
def test_the_output_filter_keeps_scores_above_the_threshold_and_ties_at_the_cap():
    boxes = np.arange(24, dtype=np.float32).reshape(6, 4)
    scores = np.array([0.9, 0.5, 0.1, 0.5, 0.3, 0.2], np.float32)
    labels = np.array([1, 1, 1, 2, 2, 3])
    b, s, lab = OutputFilter(score_thresh=0.2, max_per_image=2)(boxes, scores, labels)
    # Above 0.2: 0.9, 0.5, 0.5, 0.3 (0.2 itself is not above); the cap of 2 keeps 0.9 and both tied 0.5s.
    np.testing.assert_array_equal(s, np.float32([0.9, 0.5, 0.5]))
    np.testing.assert_array_equal(lab, [1, 1, 2])
    np.testing.assert_array_equal(b, boxes[[0, 1, 3]])
    assert len(OutputFilter()(boxes, scores, labels)[0]) == 6


@pytest.mark.slow
def test_a_graph_where_a_detector_file_is_needed_is_one_error_saying_what_to_pass(exported, tmp_path):
    for kind in ('onnx', 'pt2'):
        with pytest.raises(CheckpointError, match=f'tiny.{kind} is an exported .*not a detector file: pass the .pth'):
            open_detector(str(exported[kind]))
        renamed = shutil.copyfile(exported[kind], tmp_path / f'renamed_{kind}.pth')
        assert exported_kind(str(renamed)) is None and exported_kind(str(renamed), by_contents=True) == kind
        with pytest.raises(CheckpointError, match='renamed_.*is an exported .*not a detector file'):
            open_detector(str(renamed))
    # A real .pth is none of them, a damaged one keeps its own message.
    torch.save({'model': {}}, tmp_path / 'plain.pth')
    assert exported_kind(str(tmp_path / 'plain.pth'), by_contents=True) is None
    (tmp_path / 'cut.pth').write_bytes(b'\x08\x07garbage')
    with pytest.raises(CheckpointError, match='cannot be read safely'):
        open_detector(str(tmp_path / 'cut.pth'))


@pytest.mark.slow
def test_tools_that_need_the_network_name_the_graph_in_one_line(exported):
    for args in (['tools/analyze_model.py', '--model', str(exported['pt2']), '--no-train'],
                 ['tools/export.py', '--model', str(exported['onnx']), '--format', 'pt2', '--out', 'x.pt2']):
        proc = _tool(*args)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith('error: '), proc.stderr[-2000:]
        assert proc.returncode in (2, 5) and str(exported['pt2' if 'analyze' in args[0] else 'onnx']) in lines[0]
        assert 'corrupted' not in proc.stderr and 'weights_only' not in proc.stderr


# -- describe_model ---------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize('kind', ['onnx', 'pt2'])
def test_describe_model_reads_a_graphs_metadata_without_torch_load(exported, kind):
    proc = _tool('tools/describe_model.py', str(exported[kind]))
    assert proc.returncode == 0 and proc.stderr == '', proc.stderr[-2000:]
    out = proc.stdout
    assert 'network: tiny' in out and 'classes (4): circle, square, triangle, star' in out
    assert 'max_per_image = 40' in out and 'in BGR order' in out and 'TEST.MAX_PER_IMAGE = 40' in out
    assert ('ONNX graph' if kind == 'onnx' else 'torch.export program') in out
    assert _tool('tools/describe_model.py', str(exported[kind]), '--has-config').returncode == 0
    meta = read_graph_metadata(str(exported[kind]))
    assert meta['classes'] == CLASSES and meta['config'] == RECORD and meta['settings']['max_per_image'] == 40


@pytest.mark.slow
def test_describe_model_names_a_damaged_graph(tmp_path):
    bad = tmp_path / 'damaged.onnx'
    bad.write_bytes(b'\x08\x09 not a protobuf' * 10)
    proc = _tool('tools/describe_model.py', str(bad))
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 5 and len(lines) == 1 and f'error: {bad} cannot be read' in lines[0], proc.stderr


# -- Detector.load: filtering, .pt2, OpenCV -------------------------------------------------------------------------
@pytest.mark.slow
def test_a_higher_threshold_and_a_smaller_cap_filter_the_graph_as_the_network_applies_them(exported):
    im = _image()
    for thresh, cap in ((0.25, 40), (0.0, 7), (0.22, 12)):
        graph = Detector.load(str(exported['onnx']), score_thresh=thresh, max_per_image=cap)(im)
        model = _model()
        model.settings = model.settings.with_test(score_thresh=thresh, max_per_image=cap)
        eager = Detector.from_model(model, CLASSES)(im)
        assert 0 < len(graph) <= cap and len(graph) == len(eager), (thresh, cap, len(graph), len(eager))
        assert (graph.scores > thresh).all()
        np.testing.assert_array_equal(graph.labels, eager.labels)
        np.testing.assert_allclose(graph.scores, eager.scores, atol=1e-4)
        np.testing.assert_allclose(graph.boxes, eager.boxes, atol=0.02)
    full = Detector.load(str(exported['onnx']))(im)
    assert len(full) >= 40 and (full.scores <= 0.25).any()  # the baked cap (ties kept): the filters had more to cut


@pytest.mark.slow
def test_a_looser_setting_than_the_baked_one_is_an_error_naming_it(exported):
    path = str(exported['onnx'])
    baked = read_graph_metadata(path)['settings']
    with pytest.raises(ExportError, match=f"max_per_image=100: .*tiny.onnx was exported with max_per_image = 40.*only "
                                          'a smaller cap'):
        Detector.load(path, max_per_image=100)
    with pytest.raises(ExportError, match='max_per_image=0: .*only a smaller cap'):
        Detector.load(path, max_per_image=0)
    with pytest.raises(ExportError, match=f'score_thresh=-0.1: .*score_thresh = {baked["score_thresh"]}.*only a higher '
                                          'threshold'):
        Detector.load(path, score_thresh=-0.1)
    with pytest.raises(ExportError, match='nms=0.5: .*exported with nms = 0.3, which is part of the graph; export '
                                          'again'):
        Detector.load(path, nms=0.5)
    with pytest.raises(ExportError, match='scales=200: .*exported with scales'):
        Detector.load(path, scales=200)


@pytest.mark.slow
def test_a_pt2_program_runs_behind_detector_load_when_trusted(exported):
    with pytest.raises(ModelFileError, match='tiny.pt2: a .pt2 program runs code stored in it.*--trust-code'):
        Detector.load(str(exported['pt2']))
    with pytest.raises(ExportError, match="runtime 'openvino': .*tiny.pt2 is a torch.export program"):
        Detector.load(str(exported['pt2']), runtime='openvino', trust_code=True)
    program = Detector.load(str(exported['pt2']), trust_code=True, max_per_image=10)
    assert program.classes == tuple(CLASSES) and program.metadata['net'] == 'tiny'
    ort = Detector.load(str(exported['onnx']), max_per_image=10)
    for seed, (h, w) in enumerate(((H, W), (90, 120))):
        im = _image(seed, h, w)
        a, b = program(im), ort(im)
        assert len(a) == len(b) == 10
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)
        np.testing.assert_allclose(a.boxes, b.boxes, atol=0.02)


def _opencv_major() -> int:
    return int(cv2.__version__.split('.')[0])


@pytest.mark.slow
@pytest.mark.skipif(_opencv_major() < 5, reason=f'OpenCV {cv2.__version__}: its DNN module runs the graph from 5.x on')
def test_opencv5_dnn_runs_the_graph_as_onnx_runtime_does(exported):
    ort, ocv = Detector.load(str(exported['onnx'])), Detector.load(str(exported['onnx']), runtime='opencv')
    for seed, (h, w) in enumerate(((H, W), (80, 170))):
        a, b = ort(_image(seed, h, w)), ocv(_image(seed, h, w))
        assert len(a) == len(b) > 0
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_allclose(b.scores, a.scores, atol=1e-4)
        np.testing.assert_allclose(b.boxes, a.boxes, atol=1e-3)


_OPENCV4 = '''
import sys
import cv2
from faster_rcnn import Detector
from faster_rcnn.errors import ExportError
assert cv2.__version__.startswith('4.'), cv2.__version__
try:
    Detector.load(sys.argv[1], runtime='opencv')
except ExportError as e:
    print(e)
'''


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get('FRCNN_OPENCV4_DIR'),
                    reason='FRCNN_OPENCV4_DIR unset: a folder with OpenCV 4.x (pip install --target DIR '
                           '"opencv-python-headless<5") to check that it refuses the graph in one line')
def test_opencv4_cannot_import_the_graph_and_says_so(exported):
    env = _env()
    env['PYTHONPATH'] = os.environ['FRCNN_OPENCV4_DIR'] + os.pathsep + env['PYTHONPATH']
    proc = subprocess.run([sys.executable, '-c', _OPENCV4, str(exported['onnx'])], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == '', proc.stderr[-2000:]
    assert f'{exported["onnx"]}: OpenCV 4.' in proc.stdout and 'from version 5 on' in proc.stdout


@pytest.mark.slow
def test_a_renamed_graph_is_still_run_by_detector_load(exported, tmp_path):
    """A renamed graph is still recognised by Detector.load (by its contents)."""
    renamed = Path(shutil.copyfile(exported['onnx'], tmp_path / 'graph.bin'))
    detector = Detector.load(str(renamed))
    a, b = detector(_image()), Detector.load(str(exported['onnx']))(_image())
    assert len(a) == len(b) > 0 and detector.source.endswith('graph.bin')
    np.testing.assert_array_equal(a.scores, b.scores)


def _mean_ap(stdout: str) -> float:
    return float([line for line in stdout.splitlines() if line.startswith('Mean AP = ')][-1].split('=')[1])


@pytest.mark.slow
def test_test_net_runs_a_trusted_pt2_and_a_filtered_onnx_as_the_pth(root, trained, tmp_path):
    """The trained snapshot, its .pt2 (--trust-code) and its .onnx with a smaller cap (--num_dets): test_net's mean
    AP of the .pt2 is the .pth's; the capped .onnx is the capped .pth's."""
    common = ['--imdb', 'shapes_test', '--device', 'cpu', '--workers', '0', '--set', *_dirs(root)]
    pt2, onnx_path = tmp_path / 'full.pt2', tmp_path / 'full.onnx'
    for kind, out in (('pt2', pt2), ('onnx', onnx_path)):
        run_tool(['tools/export.py', '--model', str(trained), '--format', kind, '--out', str(out)])
    eager = _mean_ap(run_tool(['tools/test_net.py', '--model', str(trained), '--tag', 'eager', *common]).stdout)
    program = _mean_ap(run_tool(['tools/test_net.py', '--model', str(pt2), '--trust-code', '--tag', 'pt2',
                                 *common]).stdout)
    assert abs(eager - program) <= 0.002, (eager, program)
    capped = ['--num_dets', '3']
    eager3 = _mean_ap(run_tool(['tools/test_net.py', '--model', str(trained), '--tag', 'eager3', *capped,
                                *common]).stdout)
    graph3 = _mean_ap(run_tool(['tools/test_net.py', '--model', str(onnx_path), '--tag', 'onnx3', *capped,
                                *common]).stdout)
    assert abs(eager3 - graph3) <= 0.002 and eager3 != eager, (eager3, graph3, eager)
