"""`tools/benchmark.py layers|nets` as a user runs them: they finish and write the numbers the README quotes."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tool_runs import REPO, _env


# Tools run as a user runs them (subprocesses): the full tier (run_tests.sh --all).
pytestmark = pytest.mark.slow

def _benchmark(args: list[str], out: Path) -> dict:
    proc = subprocess.run([sys.executable, 'tools/benchmark.py', *args, '--json', str(out)], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


def _positive(x: object) -> bool:
    return isinstance(x, float) and math.isfinite(x) and x > 0


def test_nets_benchmark_compares_with_torchvision(tmp_path):
    r = _benchmark(['nets', '--nets', 'tiny', '--repeat', '1', '--warmup', '0'], tmp_path / 'nets.json')
    entry = r['nets']['tiny']
    for who in ('ours', 'torchvision'):
        e = entry[who]
        assert _positive(e['test_ms']) and _positive(e['train_ms'])
        # Both detectors' tails process the 256 sampled RoIs of a training step.
        assert e['train_rois'] == 256
        # The detection code alone (on the stub backbone) costs less than the whole detector.
        assert 0 < e['test_outside_backbone_ms'] < e['test_ms'] and 0 < e['train_outside_backbone_ms'] < e['train_ms']
        # CPU peaks: a fresh process's resident high-water mark, at least torch's own footprint.
        assert e['test_peak_mb'] > 100 and e['train_peak_mb'] >= e['test_peak_mb']
    assert math.isclose(entry['test_vs_torchvision'], entry['ours']['test_ms'] / entry['torchvision']['test_ms'])
    for key in ('train_step_vs_torchvision', 'test_outside_backbone_vs_torchvision',
                'train_outside_backbone_vs_torchvision'):
        assert _positive(entry[key])


def test_layers_benchmark_reports_the_ratio_to_torchvision_nms(tmp_path):
    r = _benchmark(['layers', '--repeat', '1', '--warmup', '0'], tmp_path / 'layers.json')
    assert _positive(r['proposal_train_vs_torchvision_nms'])
    batched = r['batched']
    for n in ('1', '2', '4'):
        for layer in ('anchor_target', 'proposal', 'proposal_target', 'train_step_outside_backbone'):
            entry = batched[n][layer]
            assert _positive(entry['ms']) and 0 < entry['kernels'] <= entry['operators']
    # One call for all images: the target layers dispatch the same operators whatever the batch.
    for layer in ('anchor_target', 'proposal_target'):
        assert batched['4'][layer]['operators'] == batched['1'][layer]['operators']
    assert batched['step_operator_ratio'] <= 1.1


def test_test_benchmark_reports_images_per_second_by_batch_precision_and_processes(tmp_path):
    r = _benchmark(['test', '--nets', 'tiny', '--batches', '1,2', '--amp', 'fp32,bf16', '--procs', '1,2',
                    '--images', '8', '--workers', '0'], tmp_path / 'test.json')
    entry = r['nets']['tiny']
    assert entry['images'] == 8
    assert set(entry['images_per_s']) == {f'{p}proc_{a}_b{b}' for p in (1, 2) for a in ('fp32', 'bf16') for b in (1, 2)}
    assert all(_positive(v) for v in entry['images_per_s'].values())
    assert all(_positive(v) for v in entry['wall_s'].values())
    assert _positive(entry['two_processes_time_ratio'])


def test_features_benchmark_reports_images_per_second_and_share_of_the_rate(tmp_path):
    r = _benchmark(['features', '--net', 'tiny', '--num-classes', '4', '--batches', '1,2', '--repeat', '1',
                    '--warmup', '0'], tmp_path / 'features.json')
    assert all(_positive(r['machine'][f'{k}_{p}_gflops']) for k in ('gemm', 'conv') for p in ('fp32', 'bf16'))
    one, two = r['batches']
    assert (one['batch'], two['batch']) == (1, 2)
    for e in (one, two):
        assert set(e['ms']) == {'eager_fp32', 'eager_bf16_autocast', 'eager_bf16'}
        for key, ms in e['ms'].items():
            assert _positive(ms) and len(e['runs_ms'][key]) == 1
            assert math.isclose(e['images_per_s'][key], e['batch'] * 1000.0 / ms)
            assert math.isclose(e['gflops'][key], e['flops'] / ms / 1e6)
    # The batch of two is the same picture twice: twice the rois, and the FLOPs (convolutions and linear layers on
    # the padded batch and on every roi) exactly twice those of one.
    assert one['rois'] > 0 and two['rois'] == 2 * one['rois']
    assert one['flops'] > 0 and two['flops'] == 2 * one['flops']
