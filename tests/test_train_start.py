"""What a training run says and refuses at its start: a network other than tiny from random weights (refused
without --from-scratch), --iters changed by the schedule scaling and a run inside its warm-up (one warning line
each), and the output folder named after the network trained."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from faster_rcnn.datasets.shapes import ShapesSpec, ensure_shapes
from faster_rcnn.engine.schedule import Schedule, notices
from faster_rcnn.engine.start import check_scratch_start
from faster_rcnn.errors import UsageError
from faster_rcnn.nets.registry import experiment_name
from tool_runs import REPO, _dirs, _env, run_tool

MOBILE_CFG = str(REPO / 'experiments' / 'cfgs' / 'mobile.yml')


def _schedule(iters: int, warmup: int, global_batch: int, reference_batch: int) -> Schedule:
    return Schedule(iters=iters, learning_rate=0.001, stepsize=(100000,), warmup_iters=warmup, warmup_factor=0.001,
                    global_batch=global_batch, reference_batch=reference_batch,
                    intervals={'SNAPSHOT_ITERS': 500, 'DISPLAY': 50, 'EVAL_INTERVAL': 0})


def test_only_tiny_or_an_explicit_flag_starts_from_random_weights():
    check_scratch_start('tiny', allowed=False)
    check_scratch_start('res50', allowed=True)
    with pytest.raises(UsageError) as err:
        check_scratch_start('res50', allowed=False)
    message = str(err.value)
    assert message.startswith('--net res50: ')
    assert 'python data/scripts/fetch_imagenet_weights.py --net res50' in message
    assert '--weight data/imagenet_weights/res50.pth' in message and '--finetune <detector.pth>' in message
    assert '--from-scratch' in message and '\n' not in message
    # A network torchvision has no ImageNet classifier of is pointed at a detector file only.
    from faster_rcnn.nets import registry
    registry.TABLE['nothing_to_fetch'] = replace(registry.TABLE['res50'], name='nothing_to_fetch', imagenet=None)
    try:
        with pytest.raises(UsageError) as err:
            check_scratch_start('nothing_to_fetch', allowed=False)
    finally:
        del registry.TABLE['nothing_to_fetch']
    assert 'fetch_imagenet_weights' not in str(err.value) and '; start from a detector file' in str(err.value)


def test_notices_name_a_scaled_iteration_count_and_a_run_inside_its_warm_up():
    # --iters 5 of a schedule written for 4 images per iteration, run with 1: 20 iterations of 1 image.
    given, used = _schedule(5, 0, 1, 4), _schedule(20, 0, 1, 4)
    (line,) = notices(given, used)
    assert line.startswith('--iters 5 trains 20 iterations') and '--keep-schedule trains 5' in line
    # 30 iterations with shapes.yml's 100-iteration warm-up: never at the full learning rate.
    short = _schedule(30, 100, 4, 4)
    (line,) = notices(short, short)
    assert 'the run (30 iterations) is not longer than its learning-rate warm-up (100 iterations)' in line
    assert '--set TRAIN.WARMUP_ITERS 3' in line
    # Neither: nothing to say.
    plain = _schedule(1600, 100, 4, 4)
    assert notices(plain, plain) == []


def test_experiment_folder_is_named_after_the_network_trained():
    assert experiment_name('tiny', 'res50') == 'res50'        # shapes.yml with --net res50
    assert experiment_name('default', 'tiny') == 'tiny'       # no --cfg
    assert experiment_name('tiny', 'tiny') == 'tiny'
    assert experiment_name('res101-lg', 'res101') == 'res101-lg'  # a config's own experiment name is kept
    assert experiment_name('myexp', 'vgg16') == 'myexp'


@pytest.fixture(scope='module')
def small_voc(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('start_voc')
    ensure_shapes(str(root / 'voc'), ShapesSpec(num_trainval=4, num_test=2, min_size=160, max_size=160))
    return root


def test_trainval_net_refuses_mobile_from_random_weights_in_one_line(small_voc):
    proc = run_tool(['tools/trainval_net.py', '--net', 'mobile', '--imdb', f'voc_dir:{small_voc / "voc"}:trainval',
                     '--imdbval', '', '--iters', '1', '--cfg', MOBILE_CFG, '--device', 'cpu', '--workers', '0',
                     '--set', *_dirs(small_voc)], check=False)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith('error: --net mobile: ') and '--from-scratch' in lines[0], lines
    assert not list((small_voc / 'output').rglob('*.pth'))


def test_a_short_tiny_run_warns_and_lands_in_the_folder_of_its_network(small_voc):
    """mobile.yml (EXP_DIR mobile) with --net tiny: the snapshots go to output/tiny/, not output/mobile/. --iters 1
    of a 4-image schedule at 2 images per iteration is 2 iterations, and its 100-iteration warm-up 200."""
    proc = run_tool(['tools/trainval_net.py', '--net', 'tiny', '--imdb', f'voc_dir:{small_voc / "voc"}:trainval',
                     '--imdbval', '', '--iters', '1', '--cfg', MOBILE_CFG, '--device', 'cpu', '--workers', '0',
                     '--tag', 'short', '--set', *_dirs(small_voc), 'TRAIN.SCALES', '[160]', 'TRAIN.MAX_SIZE', '160',
                     'TRAIN.IMS_PER_BATCH', '2', 'TRAIN.REFERENCE_BATCH', '4', 'TRAIN.WARMUP_ITERS', '100',
                     'TRAIN.SNAPSHOT_PREFIX', 'tiny_faster_rcnn'])
    warnings = [line for line in proc.stderr.splitlines() if line.startswith('warning: ')]
    assert any(line.startswith('warning: --iters 1 trains 2 iterations') for line in warnings), proc.stderr
    assert any('is not longer than its learning-rate warm-up (200 iterations)' in line for line in warnings), \
        proc.stderr
    imdb_dir = small_voc / 'output' / 'tiny'
    assert [p.name for p in imdb_dir.rglob('*.pth')] == ['tiny_faster_rcnn_iter_2.pth'], list(imdb_dir.rglob('*'))
    assert not list((small_voc / 'output' / 'mobile').rglob('*.pth'))



@pytest.mark.parametrize('args, exp_dir', [(('shapes', 'tiny'), 'tiny'), (('shapes', 'res50'), 'res50'),
                                           (('pascal_voc', 'res101-lg'), 'res101-lg')])
def test_the_experiment_scripts_look_for_the_snapshot_where_trainval_net_writes_it(args, exp_dir):
    """dataset_table.sh names the final snapshot's folder by the same rule (shapes.yml says EXP_DIR tiny)."""
    env = {**_env(), 'PATH': os.path.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', '')}
    script = 'source experiments/scripts/dataset_table.sh cpu "$@" && echo "$EXP_DIR $NET_FINAL"'
    proc = subprocess.run(['bash', '-c', script, 'bash', *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    got, final = proc.stdout.split()
    assert got == exp_dir and f'/output/{exp_dir}/' in final
