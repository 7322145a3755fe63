"""The tools as a user runs them (subprocesses): training on `shapes`, exact resume after a kill, test_net,
reval, demo, TensorBoard event files, the NaN guard and two-process (gloo) distributed training.

Everything is written under a temporary ROOT_DIR / DATA_DIR, never into the checkout.
"""
from __future__ import annotations

import re
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
import torch

from tool_runs import FAST, REPO, SHAPES_CFG, _dirs, _env, run_tool, snapshot, train_args  # noqa: F401


# Tools run as a user runs them (subprocesses): the full tier (run_tests.sh --all).
pytestmark = pytest.mark.slow

def _read_events(folder: Path) -> set[str]:
    """Tags in the TensorBoard event files of ``folder`` (TFRecord framing, parsed by hand)."""
    from tensorboardX.proto import event_pb2
    tags = set()
    files = list(folder.glob('events.out.tfevents.*'))
    assert files, f'no event file in {folder}'
    for f in files:
        data = f.read_bytes()
        pos = 0
        while pos + 12 <= len(data):
            (length,) = struct.unpack('<Q', data[pos:pos + 8])
            payload = data[pos + 12:pos + 12 + length]
            pos += 12 + length + 4
            ev = event_pb2.Event()
            ev.ParseFromString(payload)
            for v in ev.summary.value:
                tags.add(v.tag)
    return tags


def test_training_writes_snapshots_and_tensorboard(root, trained):
    assert trained.is_file()
    snap = torch.load(trained, map_location='cpu', weights_only=True)
    assert snap['iter'] == 40 and snap['net'] == 'tiny'
    assert snap['classes'][0] == '__background__' and len(snap['classes']) == 4
    assert {'model', 'optimizer', 'rng', 'data'} <= set(snap)
    tb = root / 'tensorboard' / 'tiny' / 'shapes_trainval' / 'full'
    train_tags = _read_events(tb)
    assert {'loss/total_loss', 'loss/rpn_cross_entropy', 'loss/rpn_loss_box', 'loss/cross_entropy',
            'loss/loss_box', 'lr', 'speed', 'score/rpn_cls_prob', 'score/cls_prob'} <= train_tags
    val_tags = _read_events(Path(str(tb) + '_val'))
    assert {'loss/total_loss', 'image/gt_boxes', 'image/predictions', 'score/cls_prob'} <= val_tags


def test_resume_after_kill_is_exact(root, trained):
    """Kill a run after its first snapshot, run the same command again: it continues from the newest
    snapshot and ends with exactly the weights and optimizer state of the uninterrupted run (which also
    wrote validation summaries at every step: they must not change training either)."""
    args = train_args(root, 'killed', 40)
    proc = subprocess.Popen([sys.executable, *args], cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 600
    try:
        while not snapshot(root, 'killed', 10).exists():
            assert proc.poll() is None, f'training ended early:\n{proc.stdout.read()[-3000:]}'
            assert time.time() < deadline, 'no snapshot after 10 minutes'
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    kept = sorted(int(re.search(r'_iter_(\d+)', p.name).group(1))
                  for p in snapshot(root, 'killed', 10).parent.glob('*_iter_*.pth'))
    assert kept and kept[-1] < 40, f'the run was not interrupted in time: {kept}'

    out = run_tool(args).stdout
    assert 'Resuming from' in out and f'at iteration {kept[-1]}' in out
    a = torch.load(trained, map_location='cpu', weights_only=True)
    b = torch.load(snapshot(root, 'killed', 40), map_location='cpu', weights_only=True)
    for k, v in a['model'].items():
        assert torch.equal(v, b['model'][k]), f'weight {k} differs after resume'
    for pid, st in a['optimizer']['state'].items():
        for name, t in st.items():
            if torch.is_tensor(t):
                assert torch.equal(t, b['optimizer']['state'][pid][name]), f'optimizer state {pid}.{name} differs'


def test_starting_afresh_ignores_snapshots(root, trained):
    out = run_tool(train_args(root, 'full', 40)).stdout
    assert 'Nothing to do' in out
    run_tool(train_args(root, 'fresh', 5))
    again = run_tool(train_args(root, 'fresh', 5, flags=['--fresh'])).stdout
    assert 'Resuming' not in again and 'Nothing to do' not in again
    assert 'iter: 5 / 5' in again


def _mean_ap(text: str) -> float:
    m = re.search(r'Mean AP = (\d+\.\d+)', text)
    assert m, f'no "Mean AP = " in the output:\n{text[-3000:]}'
    return float(m.group(1))


def test_test_net_reval_and_demo(root, trained, tmp_path):
    out = run_tool(['tools/test_net.py', '--net', 'tiny', '--imdb', 'shapes_test', '--model', str(trained),
                    '--cfg', SHAPES_CFG, '--device', 'cpu', '--set', *_dirs(root), 'TEST.SCALES', '[160]']).stdout
    ap = _mean_ap(out)
    assert 0.0 <= ap <= 1.0
    det_dir = root / 'output' / 'tiny' / 'shapes_test' / 'default' / trained.stem
    assert (det_dir / 'detections.pkl').is_file()

    again = run_tool(['tools/reval.py', str(det_dir), '--imdb', 'shapes_test', '--set', *_dirs(root)]).stdout
    assert _mean_ap(again) == pytest.approx(ap, abs=1e-4)

    images = root / 'data' / 'shapes' / 'VOCdevkit' / 'JPEGImages'
    sample = sorted(p for p in (root / 'data').rglob('*.jpg'))[:2]
    assert sample, f'no images generated under {images}'
    src = tmp_path / 'in'
    src.mkdir()
    for p in sample:
        (src / p.name).write_bytes(p.read_bytes())
    demo_out = tmp_path / 'out'
    run_tool(['tools/demo.py', '--net', 'tiny', '--model', str(trained), '--cfg', SHAPES_CFG, '--images',
              str(src), '--output', str(demo_out), '--thresh', '0.3', '--device', 'cpu'])
    pictures = sorted(demo_out.glob('*_detections.jpg'))
    assert len(pictures) == 2
    assert cv2.imread(str(pictures[0])) is not None


def test_nan_guard_stops_with_iteration_and_keeps_last_good_snapshot(root):
    proc = run_tool(train_args(root, 'nan', 40, ['TRAIN.OPTIMIZER', 'sgd', 'TRAIN.LEARNING_RATE', '1e30',
                                                'TRAIN.WARMUP_ITERS', '0', 'TRAIN.SNAPSHOT_ITERS', '1',
                                                'TRAIN.DISPLAY', '1000']), check=False)
    assert proc.returncode == 3, proc.stdout[-3000:] + proc.stderr[-3000:]
    m = re.search(r'became NaN or infinite (?:at|before) iteration (\d+)', proc.stderr)
    assert m, proc.stderr[-3000:]
    bad = int(m.group(1))
    snaps = sorted(snapshot(root, 'nan', 1).parent.glob('*_iter_*.pth'))
    iters = sorted(int(re.search(r'_iter_(\d+)', p.name).group(1)) for p in snaps)
    assert all(i < bad for i in iters), f'a snapshot was written at or after the bad iteration {bad}: {iters}'
    for p in snaps:
        state = torch.load(p, map_location='cpu', weights_only=True)['model']
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_distributed_two_processes_gloo_scale_the_schedule_and_resume_at_another_world_size(root):
    """Two processes of shapes.yml's 4 images are a global batch of 8 for a schedule written for 4: half the
    iterations, intervals and warm-up, twice the LR, printed at start. One process then resumes the run at the
    same image of the stream: 24 images in, iteration 6 of a batch of 4."""
    args = train_args(root, 'ddp', 6)
    proc = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                           *args], cwd=REPO, env={**_env(), 'OMP_NUM_THREADS': '1'}, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'world size 2' in proc.stdout
    assert 'global batch 8 (2 process(es) x 4 image(s)); the config was written for 4' in proc.stdout
    for line in ('iterations 6 -> 3 (24 images)', 'LEARNING_RATE 0.001 -> 0.002', 'SNAPSHOT_ITERS 10 -> 5, DISPLAY 5 -> 3',
                 'linear from 2e-06 (factor 0.001) to 0.002 over 3 iterations'):
        assert line in proc.stdout, (line, proc.stdout[:3000])
    assert re.search(r'lr: 0\.00\d+', proc.stdout)
    snap = torch.load(snapshot(root, 'ddp', 3), map_location='cpu', weights_only=True)
    assert snap['iter'] == 3 and snap['data']['images_consumed'] == 24 and snap['data']['global_batch'] == 8

    one = run_tool(train_args(root, 'ddp', 12))
    assert 'global batch 4 (1 process(es) x 4 image(s)); the config was written for 4; the same batch' in one.stdout
    assert 'written at iteration 3 of a global batch of 8 (24 images); with a global batch of 4 that is iteration 6' \
        in one.stdout
    assert 'iter: 10 / 12' in one.stdout and 'iter: 5 / 12' not in one.stdout
    snap = torch.load(snapshot(root, 'ddp', 12), map_location='cpu', weights_only=True)
    assert snap['data']['images_consumed'] == 48


def test_unknown_config_key_is_named(root):
    proc = run_tool(['tools/trainval_net.py', '--net', 'tiny', '--imdb', 'shapes_trainval', '--cfg', SHAPES_CFG,
                     '--set', 'TRAIN.LERNING_RATE', '0.1'], check=False)
    assert proc.returncode != 0
    assert 'TRAIN.LERNING_RATE' in proc.stderr


def test_end_to_end_shapes_reaches_a_real_map(root, working):
    """The quick-start recipe on a short schedule: 300 iterations of experiments/cfgs/shapes.yml (about a
    minute on 2 CPU cores, the session's ``working`` model) already detect the shapes; chance level is about 0.01."""
    model = working
    out = run_tool(['tools/test_net.py', '--net', 'tiny', '--imdb', 'shapes_test', '--model', str(model),
                    '--cfg', SHAPES_CFG, '--device', 'cpu', '--tag', 'e2e', '--set', *_dirs(root)]).stdout
    assert _mean_ap(out) >= 0.5


def test_mixed_precision_training_runs(root):
    """TRAIN.AMP bf16 (autocast on the CPU here): the step runs and the losses stay finite."""
    proc = run_tool(train_args(root, 'amp', 6, ['TRAIN.AMP', 'bf16', 'TRAIN.DISPLAY', '3']))
    losses = [float(v) for v in re.findall(r'total loss: ([-\d.eE+naif]+)', proc.stdout)]
    assert len(losses) == 2 and all(0 < v < 100 for v in losses), proc.stdout[-2000:]
    assert snapshot(root, 'amp', 6).is_file()


def _detections(root: Path, tag: str, stem: str):
    import pickle
    path = root / 'output' / 'tiny' / 'shapes_test' / tag / stem / 'detections.pkl'
    with open(path, 'rb') as f:  # our own output of this test
        return pickle.load(f)


def test_snapshots_are_self_describing_no_cfg_needed(root, trained):
    """test_net and demo without --cfg give exactly what they give with the training --cfg: the snapshot records
    the normalisation, anchors, pooling, network widths and the test settings (TEST.SCALES 160 here)."""
    with_cfg = run_tool(['tools/test_net.py', '--net', 'tiny', '--imdb', 'shapes_test', '--model', str(trained),
                         '--cfg', SHAPES_CFG, '--tag', 'with_cfg', '--device', 'cpu', '--set', *_dirs(root),
                         'TEST.SCALES', '[160]']).stdout
    without = run_tool(['tools/test_net.py', '--imdb', 'shapes_test', '--model', str(trained), '--tag', 'no_cfg',
                        '--device', 'cpu', '--set', *_dirs(root)])
    assert 'records no config' not in without.stderr and 'Model config recorded in' in without.stdout
    assert _mean_ap(without.stdout) == _mean_ap(with_cfg)
    a, b = _detections(root, 'with_cfg', trained.stem), _detections(root, 'no_cfg', trained.stem)
    assert all(x.shape == y.shape and (x == y).all() for ca, cb in zip(a, b) for x, y in zip(ca, cb))

    images = sorted((root / 'data').rglob('test_00000*.jpg'))[:1]
    outs = []
    for extra in ([], ['--cfg', SHAPES_CFG, '--set', 'TEST.SCALES', '[160]']):
        proc = run_tool(['tools/demo.py', '--model', str(trained), '--images', str(images[0]), '--output',
                         str(root / f'demo{len(outs)}'), '--thresh', '0.01', '--device', 'cpu', *extra])
        line = next(x for x in proc.stdout.splitlines() if ' -> ' in x)
        outs.append(re.sub(r' in [\d.]+s -> .*', '', line))
    assert outs[0] == outs[1] and 'x' in outs[0], outs


def test_contradicting_a_recorded_key_is_an_error_unless_overridden(root, trained):
    base = ['tools/test_net.py', '--imdb', 'shapes_test', '--model', str(trained), '--device', 'cpu', '--tag', 'x']
    proc = run_tool([*base, '--set', *_dirs(root), 'PIXEL_STDS', '[[[1.0, 1.0, 1.0]]]'], check=False)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    line = proc.stderr.strip()
    assert line.count('\n') == 0 and line.startswith('error: --set PIXEL_STDS = [[[1.0, 1.0, 1.0]]] contradicts')
    assert str(trained) in line and '[[[64.0, 64.0, 64.0]]]' in line and '--override' in line
    yml = run_tool([*base, '--cfg', str(REPO / 'experiments' / 'cfgs' / 'res101.yml'), '--set', *_dirs(root)],
                   check=False)
    assert yml.returncode == 2 and 'res101.yml: POOLING_MODE = ' in yml.stderr and "'align'" in yml.stderr
    over = run_tool([*base, '--override', '--set', *_dirs(root), 'TEST.SCALES', '[160]', 'POOLING_MODE', 'crop'])
    assert "warning: POOLING_MODE = 'crop' overrides 'align'" in over.stderr
    assert 0.0 <= _mean_ap(over.stdout) <= 1.0
    # Test-time keys that do not change the network are free.
    free = run_tool([*base, '--set', *_dirs(root), 'TEST.NMS', '0.5', 'TEST.RPN_POST_NMS_TOP_N', '50'])
    assert 0.0 <= _mean_ap(free.stdout) <= 1.0
    wrong_net = run_tool([*base[:-2], '--net', 'vgg16', '--set', *_dirs(root)], check=False)
    assert wrong_net.returncode == 5 and 'holds a tiny network, not vgg16' in wrong_net.stderr


def test_older_snapshots_without_a_record_still_run_with_cfg(root, trained, tmp_path):
    snap = torch.load(trained, map_location='cpu', weights_only=True)
    del snap['config'], snap['kind']
    snap['format'] = 1
    old = tmp_path / 'tiny_faster_rcnn_iter_40.pth'
    torch.save(snap, old)
    base = ['tools/test_net.py', '--imdb', 'shapes_test', '--model', str(old), '--device', 'cpu']
    with_cfg = run_tool([*base, '--net', 'tiny', '--cfg', SHAPES_CFG, '--tag', 'old', '--set', *_dirs(root),
                         'TEST.SCALES', '[160]'])
    assert 'records no config' not in with_cfg.stderr
    assert _mean_ap(with_cfg.stdout) == _mean_ap(run_tool(
        ['tools/test_net.py', '--imdb', 'shapes_test', '--model', str(trained), '--device', 'cpu', '--tag', 'new',
         '--set', *_dirs(root)]).stdout)
    bare = run_tool([*base, '--tag', 'bare', '--set', *_dirs(root), *FAST], check=False)
    assert 'records no config' in bare.stderr and 'pass the --cfg it was trained with' in bare.stderr
