"""Testing at scale, as a user runs it: test_net sharded over two gloo processes, batched and mixed-precision
inference, the per-image cap, mAP during training (also under DDP), the demo on a video and the test script
on a GPU list (two processes on CPU here)."""
from __future__ import annotations

import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tool_runs import REPO, _dirs, _env, run_tool, snapshot, train_args


# Tools run as a user runs them (subprocesses): the full tier (run_tests.sh --all).
pytestmark = pytest.mark.slow

def _test(root: Path, model: Path, tag: str, *extra: str, env: dict | None = None, launcher: list[str] | None = None):
    args = ['tools/test_net.py', '--imdb', 'shapes_test', '--model', str(model), '--tag', tag, '--device', 'cpu',
            '--set', *_dirs(root), 'TEST.SCALES', '[160]', *extra]
    proc = subprocess.run([*(launcher or [sys.executable]), *args], cwd=REPO, env={**_env(), **(env or {})},
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _all_boxes(root: Path, tag: str, model: Path):
    with open(root / 'output' / 'tiny' / 'shapes_test' / tag / model.stem / 'detections.pkl', 'rb') as f:
        return pickle.load(f)  # this test's own output


def _mean_ap(text: str) -> float:
    return float(re.search(r'Mean AP = (\d+\.\d+)', text).group(1))


def test_two_processes_give_exactly_the_single_process_result(root, trained):
    one = _test(root, trained, 'one_proc', env={'OMP_NUM_THREADS': '1'})
    two = _test(root, trained, 'two_procs', env={'OMP_NUM_THREADS': '1'},
                launcher=[sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2'])
    assert 'on 2 process(es)' in two.stdout and two.stdout.count('Mean AP = ') == 1  # rank 0 evaluates once
    tb = root / 'tensorboard' / 'tiny' / 'shapes_test' / 'two_procs' / trained.stem
    assert {'test/mean_ap', 'test/ap/circle', 'test/pr_curves'} <= _event_tags(tb)
    a, b = _all_boxes(root, 'one_proc', trained), _all_boxes(root, 'two_procs', trained)
    assert len(a) == len(b) == 4 and all(len(x) == len(y) == 100 for x, y in zip(a, b))
    for ca, cb in zip(a, b):
        for x, y in zip(ca, cb):
            assert x.shape == y.shape and np.array_equal(x, y)
    assert _mean_ap(one.stdout) == _mean_ap(two.stdout)


def test_batched_inference_equals_one_image_at_a_time(root, trained):
    """shapes_test's images have many sizes: a batch of 4 is padded, and each image still gets its own
    detections (the padding is masked layer by layer, anchors and RoI maps are each image's own)."""
    single = _test(root, trained, 'b1', 'TEST.IMS_PER_BATCH', '1')
    batched = _test(root, trained, 'b4', 'TEST.IMS_PER_BATCH', '4')
    assert '4 per batch' in batched.stdout
    a, b = _all_boxes(root, 'b1', trained), _all_boxes(root, 'b4', trained)
    compared = 0
    for ca, cb in zip(a, b):
        for x, y in zip(ca, cb):
            assert x.shape == y.shape
            if len(x):
                np.testing.assert_allclose(y[:, :4], x[:, :4], atol=2e-3)
                np.testing.assert_allclose(y[:, 4], x[:, 4], atol=1e-5)
                compared += len(x)
    assert compared > 1000
    assert abs(_mean_ap(single.stdout) - _mean_ap(batched.stdout)) <= 1e-4


def _check_cap(boxes, cap: int) -> None:
    """At most ``cap`` detections per image, but for ties with the last one kept (the reference keeps them)."""
    full = 0
    for i in range(100):
        scores = np.sort(np.concatenate([boxes[c][i][:, 4] for c in range(1, 4)]))[::-1]
        assert len(scores) <= cap or scores[cap - 1] == scores[cap], (i, scores[:cap + 1])
        full += len(scores) >= cap
    assert full > 50


def test_max_per_image_is_honoured_and_num_dets_overrides_it(root, trained):
    _test(root, trained, 'cap3', 'TEST.MAX_PER_IMAGE', '3')
    _check_cap(_all_boxes(root, 'cap3', trained), 3)
    args = ['tools/test_net.py', '--imdb', 'shapes_test', '--model', str(trained), '--tag', 'cap5', '--num_dets', '5',
            '--device', 'cpu', '--set', *_dirs(root), 'TEST.SCALES', '[160]', 'TEST.MAX_PER_IMAGE', '3']
    run_tool(args)
    boxes = _all_boxes(root, 'cap5', trained)
    _check_cap(boxes, 5)
    assert max(sum(len(boxes[c][i]) for c in range(1, 4)) for i in range(100)) >= 5


def test_test_script_on_a_gpu_list_shards_over_processes(root, trained):
    """train_faster_rcnn.sh's GPU_ID list for testing: two processes (on CPU here, gloo)."""
    final = root / 'output' / 'tiny' / 'shapes_trainval' / 'default' / 'tiny_faster_rcnn_iter_40.pth'
    final.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(trained, final)
    env = {**_env(), 'ITERS': '40', 'FRCNN_ROOT_DIR': str(root), 'FRCNN_DATA_DIR': str(root / 'data'),
           'OMP_NUM_THREADS': '1'}
    proc = subprocess.run(['bash', 'experiments/scripts/test_faster_rcnn.sh', '0,1', 'shapes', 'tiny'], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'on 2 process(es)' in proc.stdout and proc.stdout.count('Mean AP = ') == 1


def _event_tags(folder: Path) -> set[str]:
    from tensorboardX.proto import event_pb2
    import struct
    tags = set()
    for f in folder.glob('events.out.tfevents.*'):
        data, pos = f.read_bytes(), 0
        while pos + 12 <= len(data):
            (length,) = struct.unpack('<Q', data[pos:pos + 8])
            ev = event_pb2.Event()
            ev.ParseFromString(data[pos + 12:pos + 12 + length])
            pos += 12 + length + 4
            tags.update(v.tag for v in ev.summary.value)
    return tags


def test_map_during_training_changes_nothing(root):
    evaluated = run_tool(train_args(root, 'with_eval', 20, ['TRAIN.EVAL_INTERVAL', '10', 'TRAIN.EVAL_IMAGES', '12']))
    plain = run_tool(train_args(root, 'without_eval', 20))
    assert evaluated.stdout.count('Evaluation on shapes_test (12 images) at iteration') == 2
    assert 'Evaluation on' not in plain.stdout
    a = torch.load(snapshot(root, 'with_eval', 20), map_location='cpu', weights_only=True)
    b = torch.load(snapshot(root, 'without_eval', 20), map_location='cpu', weights_only=True)
    for k, v in a['model'].items():
        assert torch.equal(v, b['model'][k]), f'{k} differs: evaluation changed the training'
    tags = _event_tags(root / 'tensorboard' / 'tiny' / 'shapes_trainval' / 'with_eval_val')
    assert {'eval/mean_ap', 'eval/ap/circle', 'eval/ap/square', 'eval/ap/triangle', 'eval/pr_curves'} <= tags
    folder = root / 'output' / 'tiny' / 'shapes_trainval' / 'with_eval' / 'eval' / 'iter_20'
    assert (folder / 'pr_curves.png').is_file() and (folder / 'circle_pr.pkl').is_file()


def test_map_during_distributed_training_is_sharded(root):
    args = train_args(root, 'ddp_eval', 6, ['TRAIN.EVAL_INTERVAL', '6', 'TRAIN.EVAL_IMAGES', '10'],
                      flags=['--keep-schedule'])
    proc = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                           *args], cwd=REPO, env={**_env(), 'OMP_NUM_THREADS': '1'}, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count('Evaluation on shapes_test (10 images) at iteration 6') == 1
    with open(root / 'output' / 'tiny' / 'shapes_trainval' / 'ddp_eval' / 'eval' / 'iter_6' / 'detections.pkl',
              'rb') as f:
        boxes = pickle.load(f)
    assert all(len(per_class) == 10 for per_class in boxes)


@pytest.mark.slow
def test_mixed_precision_inference_keeps_the_mean_ap(root, working):
    """A detector that works (300 iterations of the quick-start recipe): bf16 autocast within 0.005 mean AP."""
    model = working
    fp32 = _mean_ap(run_tool(['tools/test_net.py', '--imdb', 'shapes_test', '--model', str(model), '--tag', 'fp32',
                              '--device', 'cpu', '--set', *_dirs(root)]).stdout)
    bf16 = run_tool(['tools/test_net.py', '--imdb', 'shapes_test', '--model', str(model), '--tag', 'bf16',
                     '--device', 'cpu', '--set', *_dirs(root), 'TEST.AMP', 'bf16', 'TEST.IMS_PER_BATCH', '4'])
    assert 'bf16 autocast' in bf16.stdout
    assert fp32 >= 0.5 and abs(_mean_ap(bf16.stdout) - fp32) <= 0.005


def test_demo_on_a_video_writes_an_annotated_video_and_json(root, trained, tmp_path):
    frames = sorted((root / 'data' / 'shapes' / 'JPEGImages').glob('test_*.jpg'))[:6]
    video = tmp_path / 'clip.mp4'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'mp4v'), 5, (200, 200))
    for p in frames:
        writer.write(cv2.resize(cv2.imread(str(p)), (200, 200)))
    writer.release()
    out = tmp_path / 'out'
    proc = run_tool(['tools/demo.py', '--model', str(trained), '--video', str(video), '--output', str(out),
                     '--json', str(tmp_path / 'dets.json'), '--thresh', '0.05', '--device', 'cpu'])
    assert re.search(r'6 frames: [\d.]+ per second', proc.stdout)
    cap = cv2.VideoCapture(str(out / 'clip_detections.mp4'))
    count = 0
    while cap.read()[0]:
        count += 1
    assert count == 6
    import json
    dets = json.loads((tmp_path / 'dets.json').read_text())
    assert dets and {d['frame'] for d in dets} <= set(range(6))
    d = dets[0]
    assert d['category_name'] in ('circle', 'square', 'triangle') and len(d['bbox']) == 4 and d['score'] >= 0.05
    assert d['category_id'] == ['__background__', 'circle', 'square', 'triangle'].index(d['category_name'])
    cam = run_tool(['tools/demo.py', '--model', str(trained), '--webcam', '7', '--device', 'cpu'], check=False)
    assert cam.returncode == 2 and cam.stderr.strip() == 'error: --webcam 7: the camera does not exist or OpenCV ' \
                                                        'cannot open it'
