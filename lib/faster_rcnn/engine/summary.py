"""TensorBoard output of training: scalars every TRAIN.DISPLAY iterations, and every TRAIN.SUMMARY_INTERVAL
seconds the validation losses of one image, that image with its gt boxes and with the predicted boxes, and
histograms of the RPN and R-CNN scores. Training goes to ``<tb_dir>``, validation to ``<tb_dir>_val``.

Validation never disturbs training: it runs without gradients, with BatchNorm in eval mode, and inside
``torch.random.fork_rng`` so the random stream (and so an exact resume) is the same with or without it. The
predicted boxes come from ``nets.postprocess`` with the model's own settings (score threshold 0.5 for the
picture), on the network-input image.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import cast

import numpy as np
import torch
from tensorboardX import SummaryWriter

from faster_rcnn.data.loader import build_train_loader
from faster_rcnn.nets.network import FasterRCNN
from faster_rcnn.nets.postprocess import postprocess
from faster_rcnn.settings import InputSettings
from faster_rcnn.utils.visualization import draw_boxes, unnormalize_blob

# Predicted boxes drawn in the summary image need at least this score.
_SUMMARY_SCORE = 0.5


class SummaryWriters:
    """The train and val writers (only the main process writes).

    ``inputs`` / ``use_all_gt`` / ``seed``: how the validation images are loaded (as training images, unflipped;
    their order depends on the seed only).
    """

    def __init__(self, tb_dir: str, enabled: bool, inputs: InputSettings | None = None, use_all_gt: bool = True,
                 seed: int = 3):
        self.enabled = enabled
        self.train = SummaryWriter(tb_dir) if enabled else None
        self.val = SummaryWriter(tb_dir + '_val') if enabled else None
        self._inputs, self._use_all_gt, self._seed = inputs or InputSettings(), use_all_gt, seed
        self._val_batches: Iterator[dict] | None = None

    def scalars(self, values: dict[str, float], lr: float, iteration: int) -> None:
        if not self.enabled:
            return
        assert self.train is not None  # enabled: both writers exist
        for name, value in values.items():
            self.train.add_scalar(name if name == 'speed' else f'loss/{name}', value, iteration)
        self.train.add_scalar('lr', lr, iteration)
        self.train.flush()

    def _next_val_batch(self, valroidb: list[dict]) -> dict:
        if self._val_batches is None:
            loader = build_train_loader(valroidb, self._inputs, ims_per_batch=1, seed=self._seed + 1,
                                        use_all_gt=self._use_all_gt, num_workers=0)
            self._val_batches = iter(loader)
        return next(self._val_batches)

    def summaries(self, model: torch.nn.Module, valroidb: list[dict], classes, iteration: int,
                  device: torch.device) -> None:
        """Validation losses, gt / predicted box images and score histograms at ``iteration``."""
        if not self.enabled:
            return
        assert self.train is not None and self.val is not None  # enabled: both writers exist
        self._histograms(self.train, model, iteration)
        devices = [device] if device.type == 'cuda' else []
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            batch = self._next_val_batch(valroidb)
            images = batch['data'].to(device)
            im_info = batch['im_info'].to(device)
            gt_boxes = [g.to(device) for g in batch['gt_boxes']]
            gt_attributes = batch.get('gt_attributes')
            bn_modes = _freeze_batchnorm(model)
            try:
                if gt_attributes is None:
                    losses = model(images, im_info, gt_boxes)
                else:
                    losses = model(images, im_info, batch['gt_padded'].to(device), batch['gt_valid'].to(device),
                                   gt_attributes=gt_attributes.to(device))
                for name, value in losses.items():
                    self.val.add_scalar(f'loss/{name}', float(value), iteration)
                self._histograms(self.val, model, iteration)
                model.eval()
                outputs = model(images[:1], im_info[:1])
            finally:
                model.train()
                _restore_batchnorm(bn_modes)
        settings = cast(FasterRCNN, model).settings  # a FasterRCNN, held by the callers as a plain module
        inputs = settings.input
        image = unnormalize_blob(images[0].float().cpu().numpy(), np.asarray(inputs.pixel_means),
                                 np.asarray(inputs.pixel_stds), inputs.channel_order)
        h, w = int(im_info[0, 0]), int(im_info[0, 1])
        image = image[:h, :w]
        gt = gt_boxes[0].cpu().numpy()
        gt_ids = gt[:, 4].astype(int).tolist()
        gt_im = draw_boxes(image, gt[:, :4], [classes[c] for c in gt_ids], gt_ids)
        # Boxes on the network-input image: scale 1, clipped to its extent.
        on_input = torch.tensor([[h, w, 1.0]], dtype=torch.float32, device=im_info.device)
        dets = postprocess(outputs, on_input, [(h, w)],
                           replace(settings.detection, score_thresh=_SUMMARY_SCORE))[0]
        ids = dets.labels.cpu().tolist()
        pred_im = draw_boxes(image, dets.boxes.cpu().numpy(), [classes[j] for j in ids], ids,
                             dets.scores.cpu().tolist())
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
    modes: list[tuple[torch.nn.Module, bool]] = []
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            modes.append((m, m.training))
            m.eval()
    return modes


def _restore_batchnorm(modes: list[tuple[torch.nn.Module, bool]]) -> None:
    for m, was_training in modes:
        m.train(was_training)
