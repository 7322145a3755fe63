"""The training loop from Python: ``build_run`` + ``train_net`` with hooks of one's own (the docs/training.md
example), hooks that only read change nothing, a hook can stop the run, and the default hooks' order."""
from __future__ import annotations

import io
from contextlib import redirect_stdout

import pytest
import torch

from faster_rcnn.config import load_config
from faster_rcnn.engine.distributed import init_distributed
from faster_rcnn.engine.hooks import LogLine, NonFiniteCheck, Snapshots, StopSignals, TensorBoard, default_hooks
from faster_rcnn.engine.run import build_run
from faster_rcnn.engine.summary import SummaryWriters
from faster_rcnn.engine.train_loop import HookBase
from faster_rcnn.engine.trainer import train_net
from faster_rcnn.errors import StoppedBySignal

from tool_runs import FAST, SHAPES_CFG, _dirs


class GradNorm(HookBase):
    """The example of docs/training.md."""

    def __init__(self):
        self.lines = []

    def after_step(self):
        t = self.trainer
        if t.state.iteration % t.settings.display == 0:
            norms = [p.grad.norm() for p in t.model.parameters() if p.grad is not None]
            self.lines.append((t.state.iteration, float(torch.stack(norms).norm())))


class Record(HookBase):
    def __init__(self):
        self.calls = []

    def before_train(self):
        self.calls.append('before_train')

    def before_step(self):
        self.calls.append(('before', self.trainer.state.iteration))

    def after_step(self):
        self.calls.append(('after', self.trainer.state.iteration, float(self.trainer.losses['total_loss'].detach())))

    def after_train(self):
        self.calls.append('after_train')


def _run(root, tag, iters=6):
    config = load_config(SHAPES_CFG, [*_dirs(root), *FAST, 'TRAIN.DISPLAY', '2', 'TRAIN.SUMMARY_INTERVAL', '1e9',
                                      'DATA_LOADER.NUM_WORKERS', '0'])
    return build_run(config, net='tiny', imdb='shapes_trainval', iters=iters, tag=tag, fresh=True, verbose=False)


def test_a_hook_of_ones_own_plugs_in_and_reading_hooks_change_nothing(root):
    info = init_distributed('cpu')
    grad, record = GradNorm(), Record()
    with redirect_stdout(io.StringIO()) as out:
        final = train_net(_run(root, 'hooks'), info, extra_hooks=[grad, record])
        plain = train_net(_run(root, 'no_hooks'), info)
    assert [i for i, _ in grad.lines] == [2, 4, 6] and all(n > 0 for _, n in grad.lines)
    assert record.calls[0] == 'before_train' and record.calls[-1] == 'after_train'
    steps = record.calls[1:-1]
    assert [c[:2] for c in steps] == [(k, i) for i in range(6) for k in ('before', 'after')
                                      for i in ([i] if k == 'before' else [i + 1])]
    assert 'iter: 6 / 6' in out.getvalue()
    a = torch.load(final, map_location='cpu', weights_only=True)['model']
    b = torch.load(plain, map_location='cpu', weights_only=True)['model']
    assert all(torch.equal(a[k], b[k]) for k in a)  # the hooks only read


def test_a_hook_can_stop_the_run_after_a_snapshot(root):
    class StopAt3(HookBase):
        def after_step(self):
            if self.trainer.state.iteration == 3:
                self.trainer.stop_signal = 15

    with redirect_stdout(io.StringIO()), pytest.raises(StoppedBySignal, match='iteration 3 / 6') as e:
        train_net(_run(root, 'stopped'), init_distributed('cpu'), extra_hooks=[StopAt3()])
    assert e.value.exit_code == 143
    assert (root / 'output' / 'tiny' / 'shapes_trainval' / 'stopped' / 'tiny_faster_rcnn_iter_3.pth').is_file()


def test_the_default_hooks_come_in_their_documented_order(tmp_path):
    writers = SummaryWriters(str(tmp_path / 'tb'), enabled=False)
    hooks = default_hooks(writers=writers, valroidb=None, classes=['bg', 'a'], output_dir=str(tmp_path), net='tiny',
                          record={}, summary_interval=1.0)
    assert [type(h) for h in hooks] == [NonFiniteCheck, LogLine, TensorBoard, StopSignals, Snapshots]
