"""Several test runs side by side (``tools/compare_runs.py``): mean AP, per-class AP and COCO's 12 numbers of each
result folder of tools/test_net.py, the difference to the first run, and the config keys in which the runs'
detector files differ.

Where the APs come from, per folder (no pickle of a result folder is ever loaded):

1. ``eval.json`` next to detections.pkl, written by test_net (utils/eval_summary.py), when it was written for the
   detections.pkl now in the folder (its recorded sha256): the evaluation's own numbers and the TEST keys the run
   was tested with.
2. Otherwise the dataset's evaluation run again on detections.pkl (read without running code) in a temporary
   folder: the numbers test_net printed (VOC: mean and per-class AP; COCO: AP@[.5:.95] per category and the 12
   summary numbers). This needs the dataset (``--imdb``, or the name test_net put in the path).

The model file of a folder ``output/<EXP_DIR>/<imdb>/<tag>/<model stem>/`` is found as the only
``output/<EXP_DIR>/*/*/<model stem>.pth`` (where training writes its snapshots); otherwise it is given.
"""
from __future__ import annotations

import contextlib
import glob
import io
import json
import math
import os.path as osp
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..datasets.imdb import imdb as Imdb
from ..model_file import open_detector
from ..utils.eval_summary import read_eval_summary
from .results import read_all_boxes

__all__ = ['COCO_STAT_NAMES', 'RunResults', 'find_model_file', 'flatten_record', 'differing_keys',
           'evaluate_folder', 'load_run', 'attach_model', 'comparison_tables', 'format_table']

COCO_STAT_NAMES = ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'AR1', 'AR10', 'AR100', 'ARs', 'ARm', 'ARl')
EVAL_JSON_FORMAT = 1


@dataclass
class RunResults:
    """One result folder: its headline number (``metric``: 'VOC07 mAP', 'COCO AP', ...), each class's AP,
    COCO's 12 numbers (None for VOC), where the numbers came from, and its model file with the flattened config
    it records (None when no model file was found or it records none: ``model_note`` says why)."""
    folder: str
    metric: str
    mean_ap: float
    per_class: dict[str, float]
    coco_stats: list[float] | None = None
    source: str = ''
    model: str | None = None
    model_note: str = ''
    config: dict[str, Any] | None = None
    net: str | None = None
    iteration: int | None = None
    test_config: dict[str, Any] | None = None  # the TEST keys the run was tested with (eval.json only)


# -- the model file and its config ------------------------------------------------------------------------
def find_model_file(folder: str) -> tuple[str | None, str]:
    """(path, '') of the only ``output/<EXP_DIR>/*/*/<stem>.pth`` of a result folder
    ``output/<EXP_DIR>/<imdb>/<tag>/<stem>/`` (test_net names the folder after the model file's stem), or
    (None, why not)."""
    folder = osp.abspath(folder)
    stem = osp.basename(folder)
    exp_dir = osp.dirname(osp.dirname(osp.dirname(folder)))
    if osp.basename(osp.dirname(exp_dir)) != 'output':
        return None, f'{folder} is not in test_net\'s layout output/<EXP_DIR>/<imdb>/<tag>/<model>/; pass --models'
    found = sorted(glob.glob(osp.join(glob.escape(exp_dir), '*', '*', glob.escape(stem) + '.pth')))
    if len(found) == 1:
        return found[0], ''
    if not found:
        return None, f'no model file {stem}.pth under {exp_dir}/*/*/; pass --models'
    return None, f'{len(found)} model files named {stem}.pth under {exp_dir} ({", ".join(found[:3])}); pass --models'


def flatten_record(record: dict | None) -> dict[str, Any] | None:
    """A detector file's recorded config as ``{'KEY': value, 'TEST.KEY': value, 'EXP_DIR': value}`` (the model
    keys already carry their section, e.g. 'RESNET.LAYOUT'); None for a file without a record."""
    if not record:
        return None
    out: dict[str, Any] = {str(k): v for k, v in record.get('model', {}).items()}
    out.update({f'TEST.{k}': v for k, v in record.get('test', {}).items()})
    if 'exp_dir' in record:
        out['EXP_DIR'] = record['exp_dir']
    return out


def _canonical(value: Any) -> str:
    """One text per value, so that 0.3 and 0.3, [600] and (600,) compare equal (records hold plain values)."""
    return json.dumps(value, sort_keys=True, default=str)


def differing_keys(configs: Sequence[dict[str, Any] | None]) -> list[str]:
    """The keys, sorted, whose value differs between the runs that have a config (a key one of them lacks
    counts as differing)."""
    known = [c for c in configs if c is not None]
    keys = sorted({k for c in known for k in c})
    return [k for k in keys if len({_canonical(c.get(k, '<absent>')) for c in known}) > 1]


def attach_model(run: RunResults, model: str | None) -> None:
    """Read ``model`` (or the one :func:`find_model_file` finds) and keep its network, iteration and config."""
    note = ''
    if model is None:
        model, note = find_model_file(run.folder)
    if model is None:
        run.model_note = note
        return
    detector = open_detector(model)  # a CheckpointError names a given file that cannot be read
    run.model, run.net, run.iteration = model, detector.net, detector.iteration
    run.config = flatten_record(detector.record)
    if run.config is None:
        run.model_note = f'{model} records no config'


# -- the numbers ------------------------------------------------------------------------------------------
def evaluate_folder(folder: str, db: Imdb) -> tuple[str, float, dict[str, float], list[float] | None]:
    """(metric, mean AP, per-class AP, COCO's 12 numbers or None) of the dataset's evaluation of
    ``folder/detections.pkl``, run in a temporary folder (the result folder is left as it is); the evaluation's
    printout is swallowed."""
    all_boxes, _ = read_all_boxes(folder, db)
    with tempfile.TemporaryDirectory(prefix='compare_runs_') as tmp, contextlib.redirect_stdout(io.StringIO()):
        result = db.evaluate_detections(all_boxes, tmp)
    return result.metric, float(result.mean_ap), {k: float(v) for k, v in result.per_class.items()}, result.stats


def load_run(folder: str, dataset: Callable[[], Imdb], imdb_name: str | None = None) -> RunResults:
    """A folder's numbers from its eval.json, else from evaluating it on ``dataset()`` (called only then; module
    docstring). imdb_name: the dataset the user named; an eval.json of another dataset is not used."""
    summary = read_eval_summary(folder)
    if summary is not None and (imdb_name is None or summary.get('imdb') == imdb_name):
        return RunResults(folder=folder, metric=summary['metric'], mean_ap=float(summary['mean_ap']),
                          per_class={k: float('nan') if v is None else float(v)
                                     for k, v in summary['per_class'].items()},
                          coco_stats=summary.get('coco_stats'), source='eval.json',
                          test_config={f'TEST.{k}': v for k, v in (summary.get('test_config') or {}).items()})
    db = dataset()
    metric, mean_ap, per_class, stats = evaluate_folder(folder, db)
    return RunResults(folder=folder, metric=metric, mean_ap=mean_ap, per_class=per_class, coco_stats=stats,
                      source=f'detections.pkl evaluated on {db.name}')


# -- tables -----------------------------------------------------------------------------------------------
def _num(v: float | None, digits: int = 4) -> str:
    return '-' if v is None or (isinstance(v, float) and math.isnan(v)) else f'{v:.{digits}f}'


def _with_diff(v: float | None, ref: float | None) -> str:
    if v is None or ref is None or math.isnan(v) or math.isnan(ref):
        return _num(v)
    return f'{v:.4f} ({v - ref:+.4f})'


def _short(value: Any, width: int = 48) -> str:
    text = _canonical(value)
    return text if len(text) <= width else text[:width - 3] + '...'


@dataclass
class Table:
    """A titled table; ``note`` is shown instead of the table when it has no rows."""
    title: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    note: str = ''


def comparison_tables(runs: Sequence[RunResults]) -> list[Table]:
    """The runs' legend, the AP table (mean, per class; runs after the first with their difference to it), COCO's
    12 numbers when any run has them, and the differing config keys."""
    labels = [f'#{i + 1}' for i in range(len(runs))]
    legend = Table('Runs', ['run', 'results', 'numbers from', 'model', 'iteration'])
    for label, r in zip(labels, runs):
        legend.rows.append([label, r.folder, r.source, r.model or f'? ({r.model_note})',
                            '-' if r.iteration is None else str(r.iteration)])
    metrics = sorted({r.metric for r in runs})
    aps = Table(f'AP ({" / ".join(metrics)}; difference to #1 in brackets)', ['class', *labels])
    first = runs[0]
    aps.rows.append(['mean', _num(first.mean_ap), *(_with_diff(r.mean_ap, first.mean_ap) for r in runs[1:])])
    names = list(first.per_class) + [c for r in runs[1:] for c in r.per_class if c not in first.per_class]
    names = list(dict.fromkeys(names))
    for c in names:
        ref = first.per_class.get(c)
        aps.rows.append([c, _num(ref), *(_with_diff(r.per_class.get(c), ref) for r in runs[1:])])
    tables = [legend, aps]
    if any(r.coco_stats for r in runs):
        coco = Table("COCO's 12 numbers (difference to #1 in brackets)", ['', *labels])
        for i, name in enumerate(COCO_STAT_NAMES):
            ref = first.coco_stats[i] if first.coco_stats else None
            coco.rows.append([name, _num(ref), *(_with_diff(r.coco_stats[i] if r.coco_stats else None, ref)
                                                 for r in runs[1:])])
        tables.append(coco)
    keys = differing_keys([r.config for r in runs])
    cfg_table = Table('Config keys that differ between the detector files', ['key', *labels])
    for k in keys:
        cfg_table.rows.append([k, *('?' if r.config is None else _short(r.config.get(k, '<absent>')) for r in runs)])
    if not keys:
        known = sum(r.config is not None for r in runs)
        cfg_table.note = (f'none: the {known} detector files with a recorded config agree' if known > 1 else
                          'fewer than two detector files with a recorded config: nothing to compare')
    tables.append(cfg_table)
    if sum(r.test_config is not None for r in runs) > 1:
        tested = differing_keys([r.test_config for r in runs])
        test_table = Table('TEST keys the runs were tested with that differ (eval.json)', ['key', *labels],
                           note='none' if not tested else '')
        for k in tested:
            test_table.rows.append([k, *('?' if r.test_config is None else _short(r.test_config.get(k, '<absent>'))
                                        for r in runs)])
        tables.append(test_table)
    return tables


def format_table(table: Table, style: str = 'markdown') -> str:
    """A table as markdown (``| a | b |`` with a header rule) or as plain aligned text."""
    if not table.rows:
        return f'### {table.title}\n\n{table.note}' if style == 'markdown' else f'{table.title}\n{table.note}'
    if style == 'markdown':
        esc = (lambda s: s.replace('|', '\\|'))
        lines = [f'### {table.title}', '', '| ' + ' | '.join(esc(h) for h in table.header) + ' |',
                 '|' + '|'.join('---' for _ in table.header) + '|']
        lines += ['| ' + ' | '.join(esc(c) for c in row) + ' |' for row in table.rows]
        return '\n'.join(lines)
    widths = [max(len(str(r[i])) for r in [table.header, *table.rows]) for i in range(len(table.header))]
    lines = [table.title, '  '.join(h.ljust(w) for h, w in zip(table.header, widths)).rstrip()]
    lines += ['  '.join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in table.rows]
    return '\n'.join(lines)
