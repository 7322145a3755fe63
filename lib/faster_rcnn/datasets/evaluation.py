"""What an evaluation returns, and the per-class precision / recall curves it leaves next to the results.

VOC-format evaluations write, as tf-faster-rcnn did, ``<output_dir>/<class>_pr.pkl`` ({'rec', 'prec', 'ap'},
numpy arrays and a float: written for the user's own tools, never read by this project) and draw every
class's curve in ``<output_dir>/pr_curves.png``; training's evaluation also puts that picture in TensorBoard.
"""
from __future__ import annotations

import os.path as osp
import pickle
from dataclasses import dataclass, field

import numpy as np


@dataclass
class EvalResult:
    """mean_ap: the headline number (VOC mAP, or COCO AP@[.5:.95]); per_class: class -> AP;
    curves: class -> (recall (D,), precision (D,)) where the evaluation has them (VOC)."""

    mean_ap: float
    per_class: dict[str, float] = field(default_factory=dict)
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    metric: str = 'mAP'
    stats: list[float] | None = None  # COCO's 12 summary numbers (COCOeval.stats), None for VOC


def render_pr_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], aps: dict[str, float],
                     title: str = '') -> np.ndarray:
    """RGB uint8 image (H, W, 3) of every class's precision-recall curve."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 5), dpi=100)
    for name, (rec, prec) in curves.items():
        if len(rec):
            ax.plot(rec, prec, label=f'{name} ({aps.get(name, float("nan")):.3f})', linewidth=1.2)
    ax.set_xlabel('recall')
    ax.set_ylabel('precision')
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title or 'precision / recall per class (AP)')
    if curves:
        ax.legend(fontsize=7, loc='lower left', ncol=2 if len(curves) > 10 else 1)
    fig.tight_layout()
    fig.canvas.draw()
    # The Agg canvas (selected above) has buffer_rgba; the stubs type the base canvas, which does not.
    image = np.asarray(fig.canvas.buffer_rgba())[:, :, :3].copy()  # type: ignore[attr-defined]
    plt.close(fig)
    return image


def save_pr_curves(output_dir: str, result: EvalResult) -> str:
    """Write ``<class>_pr.pkl`` for each class and ``pr_curves.png``; returns the PNG's path."""
    for name, (rec, prec) in result.curves.items():
        with open(osp.join(output_dir, f'{name}_pr.pkl'), 'wb') as f:
            pickle.dump({'rec': np.asarray(rec), 'prec': np.asarray(prec), 'ap': float(result.per_class[name])}, f)
    import cv2
    path = osp.join(output_dir, 'pr_curves.png')
    cv2.imwrite(path, render_pr_curves(result.curves, result.per_class)[:, :, ::-1])
    return path
