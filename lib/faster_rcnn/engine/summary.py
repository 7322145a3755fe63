"""TensorBoard output of training: scalars every TRAIN.DISPLAY iterations, and every TRAIN.SUMMARY_INTERVAL
seconds the validation losses of one image, that image with its gt boxes and with the predicted boxes, and
histograms of the RPN and R-CNN scores. Training goes to ``<tb_dir>``, validation to ``<tb_dir>_val``.

Validation never disturbs training: it runs without gradients, with BatchNorm in eval mode, and inside
``torch.random.fork_rng`` so the random stream (and so an exact resume) is the same with or without it.
"""
from __future__ import annotations

import numpy as np
import torch
from tensorboardX import SummaryWriter

from faster_rcnn.boxes import bbox_transform_inv, clip_boxes
from faster_rcnn.config import cfg
from faster_rcnn.data.loader import build_train_loader
from faster_rcnn.engine.tester import select_detections
from faster_rcnn.utils.visualization import draw_boxes, unnormalize_blob

# Predicted boxes drawn in the summary image need at least this score.
_SUMMARY_SCORE = 0.5


class SummaryWriters:
    """The train and val writers (only the main process writes)."""

    def __init__(self, tb_dir: str, enabled: bool):
        self.enabled = enabled
        self.train = SummaryWriter(tb_dir) if enabled else None
        self.val = SummaryWriter(tb_dir + '_val') if enabled else None
        self._val_batches = None

    def scalars(self, values: dict[str, float], lr: float, iteration: int) -> None:
        if not self.enabled:
            return
        for name, value in values.items():
            self.train.add_scalar(name if name == 'speed' else f'loss/{name}', value, iteration)
        self.train.add_scalar('lr', lr, iteration)
        self.train.flush()

    def _next_val_batch(self, valroidb: list[dict]) -> dict:
        if self._val_batches is None:
            loader = build_train_loader(valroidb, ims_per_batch=1, seed=cfg.RNG_SEED + 1, num_workers=0,
                                        aspect_grouping=False)
            self._val_batches = iter(loader)
        return next(self._val_batches)

    def summaries(self, model: torch.nn.Module, valroidb: list[dict], classes, iteration: int,
                  device: torch.device) -> None:
        """Validation losses, gt / predicted box images and score histograms at ``iteration``."""
        if not self.enabled:
            return
        self._histograms(self.train, model, iteration)
        devices = [device] if device.type == 'cuda' else []
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            batch = self._next_val_batch(valroidb)
            images = batch['data'].to(device)
            im_info = batch['im_info'].to(device)
            gt_boxes = [g.to(device) for g in batch['gt_boxes']]
            bn_modes = _freeze_batchnorm(model)
            try:
                losses = model(images, im_info, gt_boxes)
                for name, value in losses.items():
                    self.val.add_scalar(f'loss/{name}', float(value), iteration)
                self._histograms(self.val, model, iteration)
                model.eval()
                rois, cls_prob, bbox_pred = model(images[:1], im_info[:1])
            finally:
                model.train()
                _restore_batchnorm(bn_modes)
        image = unnormalize_blob(images[0].float().cpu().numpy(), cfg.PIXEL_MEANS, cfg.PIXEL_STDS,
                                 cfg.CHANNEL_ORDER)
        h, w = int(im_info[0, 0]), int(im_info[0, 1])
        image = image[:h, :w]
        gt = gt_boxes[0].cpu().numpy()
        gt_ids = gt[:, 4].astype(int).tolist()
        gt_im = draw_boxes(image, gt[:, :4], [classes[c] for c in gt_ids], gt_ids)
        boxes = clip_boxes(bbox_transform_inv(rois[:, 1:5].float(), bbox_pred.float()), (h, w))
        dets = select_detections(cls_prob.float(), boxes, score_thresh=_SUMMARY_SCORE, nms_thresh=cfg.TEST.NMS,
                                 max_per_image=cfg.TEST.MAX_PER_IMAGE)
        ids = [j for j in range(1, len(dets)) for _ in range(len(dets[j]))]
        stacked = np.concatenate([dets[j] for j in range(1, len(dets))], axis=0) if ids else np.zeros((0, 5))
        pred_im = draw_boxes(image, stacked[:, :4], [classes[j] for j in ids], ids, stacked[:, 4].tolist())
        # TensorBoard wants RGB, channels first.
        self.val.add_image('image/gt_boxes', gt_im[:, :, ::-1].transpose(2, 0, 1).copy(), iteration)
        self.val.add_image('image/predictions', pred_im[:, :, ::-1].transpose(2, 0, 1).copy(), iteration)
        self.val.flush()
        self.train.flush()

    @staticmethod
    def _histograms(writer: SummaryWriter, model: torch.nn.Module, iteration: int) -> None:
        tensors = dict(getattr(model, 'summary_tensors', None) or {})
        if 'cls_prob' not in tensors and tensors.get('cls_score') is not None:
            tensors['cls_prob'] = torch.softmax(tensors['cls_score'].float(), dim=1)
        for key, tag in (('rpn_cls_prob', 'score/rpn_cls_prob'), ('cls_prob', 'score/cls_prob')):
            if key in tensors and tensors[key] is not None and tensors[key].numel():
                writer.add_histogram(tag, tensors[key].float().cpu().numpy(), iteration)

    def close(self) -> None:
        for w in (self.train, self.val):
            if w is not None:
                w.close()


def _freeze_batchnorm(model: torch.nn.Module) -> list[tuple[torch.nn.Module, bool]]:
    modes = []
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            modes.append((m, m.training))
            m.eval()
    return modes


def _restore_batchnorm(modes: list[tuple[torch.nn.Module, bool]]) -> None:
    for m, was_training in modes:
        m.train(was_training)
