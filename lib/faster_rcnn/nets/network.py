"""The Faster R-CNN module: backbone head -> RPN -> proposals -> RoI features -> backbone tail -> predictors.

Semantics are tf-faster-rcnn's (docs/design.md §2). A batch holds N images padded to one size; each image
keeps its own extent ``im_info[i] = (h, w, scale)``, so anchor targets only use anchors inside that image
and its proposals are clipped to it. Every per-image loss is the reference's single-image loss, and the
batch loss is their mean.

At test time a padded batch gives each image exactly what it gives alone: the backbone's padded region is
kept at zero layer by layer (``PaddingMask``), the proposals come from the anchors of the image's own feature
map, and its RoI features are pooled from that map alone.

The forward pass never leaves the device: no numpy, no ``.item()``; the only host synchronisation is the
one NMS needs inside the proposal layer.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, cast, overload

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from faster_rcnn.layers.anchor_target import anchor_targets
from faster_rcnn.layers.anchors import anchors_for
from faster_rcnn.layers.gt_batch import pad_gt_boxes
from faster_rcnn.layers.losses import attribute_loss, rcnn_losses, rpn_losses
from faster_rcnn.layers.proposal import Proposals, proposals, top_scoring
from faster_rcnn.layers.proposal_target import proposal_targets
from faster_rcnn.layers.random_keys import seed_terms, seeds_from_generator
from faster_rcnn.layers.roi_pool import roi_features
from faster_rcnn.settings import ModelSettings

from .amp import autocast
from .attribute_head import AttributeHead
from .backbone import Backbone
from .padding_mask import PaddingMask, padded_extent_is_uniform
from .postprocess import Detections, HeadOutputs, postprocess

FEAT_STRIDE = 16
LOSS_NAMES = ('rpn_cross_entropy', 'rpn_loss_box', 'cross_entropy', 'loss_box', 'total_loss')
# With an attribute head the losses are these, in this order (the log line, TensorBoard and the NaN check).
ATTRIBUTE_LOSS_NAMES = ('rpn_cross_entropy', 'rpn_loss_box', 'cross_entropy', 'loss_box', 'loss_attr', 'total_loss')


def _init_new_layer(layer: nn.Conv2d | nn.Linear, std: float, truncated: bool) -> None:
    """tf-faster-rcnn's initialiser of layers that have no ImageNet weights; biases start at 0."""
    if truncated:
        nn.init.trunc_normal_(layer.weight, mean=0.0, std=std, a=-2 * std, b=2 * std)
    else:
        nn.init.normal_(layer.weight, mean=0.0, std=std)
    assert layer.bias is not None  # every new layer is made with a bias
    nn.init.zeros_(layer.bias)


class FasterRCNN(nn.Module):
    """Faster R-CNN on a ``Backbone``; it holds every setting that decides its outputs (``settings``).

    Args:
        backbone: the head/tail pair (see ``faster_rcnn.nets.backbone``).
        num_classes: K, background included.
        settings: ``ModelSettings``: the network's (anchors, RPN, targets, proposals, pooling), its input's
            (normalisation, channel order, test scale) and its post-processing (box regression, NMS, caps).
        num_attributes: A + 1 ("no attribute" in slot 0) for an attribute head (``attr_head``, BUTD's), 0 for
            none: then the module, its weights and its outputs are those of a network without one.

    ``forward`` returns the training losses or the raw test outputs (``HeadOutputs``); ``detect`` the detections
    of each image (``nets.postprocess``).
    """

    _bbox_stds: Tensor  # (4K,) buffers, see __init__
    _bbox_means: Tensor

    def __init__(self, backbone: Backbone, num_classes: int, settings: ModelSettings, num_attributes: int = 0) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f'num_classes must count the background and at least one class, got {num_classes}')
        self.backbone = backbone
        self.num_classes = num_classes
        self.settings = settings
        self.net_name = settings.net
        net = settings.network
        self.num_anchors = net.num_anchors
        a = self.num_anchors
        self.rpn_conv = nn.Conv2d(backbone.head_channels, net.rpn_channels, 3, padding=1)
        # rpn_cls_score channels are (2, A): the A background scores, then the A foreground scores.
        self.rpn_cls_score = nn.Conv2d(net.rpn_channels, 2 * a, 1)
        # rpn_bbox_pred channels are (A, 4).
        self.rpn_bbox_pred = nn.Conv2d(net.rpn_channels, 4 * a, 1)
        self.cls_score = nn.Linear(backbone.tail_channels, num_classes)
        self.bbox_pred = nn.Linear(backbone.tail_channels, 4 * num_classes)
        for layer, std in ((self.rpn_conv, 0.01), (self.rpn_cls_score, 0.01), (self.rpn_bbox_pred, 0.01),
                           (self.cls_score, 0.01), (self.bbox_pred, 0.001)):
            _init_new_layer(layer, std, net.truncated_init)
        self.register_buffer('_bbox_stds', torch.tensor(net.bbox_stds, dtype=torch.float32).repeat(num_classes),
                             persistent=False)
        self.register_buffer('_bbox_means', torch.tensor(net.bbox_means, dtype=torch.float32).repeat(num_classes),
                             persistent=False)
        # Made after every other layer, so a network without it draws the same initial weights as before.
        self.attr_head = (AttributeHead(num_classes, backbone.tail_channels, num_attributes)
                          if num_attributes > 0 else None)
        self.summary_tensors: dict[str, Tensor] = {}
        self.input_memory_format = torch.contiguous_format
        self._padding_mask: PaddingMask | None = None  # made on the first padded test batch

    def place(self, device: torch.device | str) -> FasterRCNN:
        """Move to ``device`` in the memory layout CHANNELS_LAST asks for there; returns ``self``.

        Channels-last converts the convolution weights once here; ``forward`` converts the images.
        """
        device = torch.device(device)
        mode = self.settings.network.channels_last
        channels_last = mode == 'always' or (mode == 'cpu' and device.type == 'cpu')
        self.input_memory_format = torch.channels_last if channels_last else torch.contiguous_format
        # Module.to takes a memory format with a device; the stubs only know them apart.
        return self.to(device=device, memory_format=self.input_memory_format)  # type: ignore[call-overload]

    @property
    def num_attributes(self) -> int:
        """A + 1 of the attribute head, 0 without one."""
        return 0 if self.attr_head is None else self.attr_head.num_attributes

    @property
    def loss_names(self) -> tuple[str, ...]:
        """The names of the training losses, in the order the logs show them (``total_loss`` last)."""
        return LOSS_NAMES if self.attr_head is None else ATTRIBUTE_LOSS_NAMES

    # -- pieces ------------------------------------------------------------------------------------------
    def _rpn(self, features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(N, C, H, W) -> scores (N, H*W*A, 2) fp32, fg probabilities (N, H*W*A) fp32, deltas (N, H*W*A, 4).

        Rows follow the anchor order of docs/design.md §2.2: (y, x, a), anchor fastest.
        """
        n, _, h, w = features.shape
        a = self.num_anchors
        x = F.relu(self.rpn_conv(features), inplace=True)
        scores = self.rpn_cls_score(x).float().view(n, 2, a, h, w).permute(0, 3, 4, 2, 1).reshape(n, h * w * a, 2)
        deltas = self.rpn_bbox_pred(x).float().view(n, a, 4, h, w).permute(0, 3, 4, 1, 2).reshape(n, h * w * a, 4)
        fg_prob = F.softmax(scores, dim=2)[:, :, 1]
        return scores, fg_prob, deltas

    def _proposals(self, fg_prob: Tensor, deltas: Tensor, anchors: Tensor, im_info: Tensor, training: bool,
                   map_size: tuple[int, int], extents: list[tuple[int, int]] | None = None) -> Proposals:
        """The proposals of the N images in one call (``layers.proposal``), padded with a validity mask.

        ``map_size``: the batch's feature map (H, W); ``extents``: each image's own map size in a padded test
        batch. Its anchors there are the batch map's anchors at rows y < h_i, x < w_i, in the same relative
        order, so masking the others gives exactly the proposals of the image alone.
        """
        s = self.settings.network
        valid, counts = None, None
        if extents is not None and any(e != map_size for e in extents):
            valid, counts = self._anchor_mask(map_size, extents, fg_prob.device)
        with torch.no_grad():
            if training or s.test_mode == 'nms':
                kw = s.train_proposal_kwargs if training else s.test_proposal_kwargs
                return proposals(fg_prob, deltas, anchors, im_info, anchor_valid=valid, anchor_counts=counts, **kw)
            boxes, scores, order = top_scoring(fg_prob, deltas, anchors, im_info, max(s.test_rpn_top_n, 0), valid)
            k = boxes.shape[1] if s.test_rpn_top_n > 0 else 0
            per_image = [k] * boxes.shape[0] if counts is None else [min(k, c) for c in counts]
            keep = torch.arange(boxes.shape[1], device=boxes.device)[None, :] < torch.tensor(
                per_image, device=boxes.device)[:, None]
            return Proposals(boxes * keep[..., None], scores * keep, keep, per_image, order * keep)

    def _anchor_mask(self, map_size: tuple[int, int], extents: list[tuple[int, int]], device: torch.device
                     ) -> tuple[Tensor, list[int]]:
        """(N, H*W*A) bool: the anchors of each image's own map (rows y < h_i, x < w_i), and their counts."""
        h, w = map_size
        a = self.num_anchors
        ys = torch.arange(h, device=device).repeat_interleave(w * a)
        xs = torch.arange(w, device=device).repeat_interleave(a).repeat(h)
        limits = torch.tensor(extents, device=device)  # (N, 2), one small copy per padded test batch
        valid = (ys[None, :] < limits[:, :1]) & (xs[None, :] < limits[:, 1:])
        return valid, [hi * wi * a for hi, wi in extents]

    @overload
    def _box_head(self, features: Tensor, rois: Tensor, extents: list[tuple[int, int]] | None = None,
                  counts: list[int] | None = None, with_features: Literal[False] = False) -> tuple[Tensor, Tensor]:
        ...

    @overload
    def _box_head(self, features: Tensor, rois: Tensor, extents: list[tuple[int, int]] | None = None,
                  counts: list[int] | None = None, *, with_features: Literal[True]) -> tuple[Tensor, Tensor, Tensor]:
        ...

    def _box_head(self, features: Tensor, rois: Tensor, extents: list[tuple[int, int]] | None = None,
                  counts: list[int] | None = None, with_features: bool = False
                  ) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, Tensor]:
        """RoI features -> tail -> (cls_score (R, K) fp32, bbox_pred (R, 4K) fp32[, tail output (R, D)]).

        With ``extents`` (a padded test batch; ``counts`` rois per image, in image order) each image's rois
        are pooled from its own feature map, whose edges are where the map of the image alone ends.
        ``with_features`` also returns the tail's output (the region feature, in the tail's dtype).
        """
        s = self.settings.network

        def pool(f: Tensor, r: Tensor) -> Tensor:
            return roi_features(f, r, mode=s.pooling_mode, pooling_size=s.pooling_size,
                                max_pool=self.backbone.crop_max_pool, spatial_scale=1.0 / FEAT_STRIDE)

        if extents is None:
            pooled = pool(features, rois)
        else:
            parts = []
            for i, (r, (hi, wi)) in enumerate(zip(rois.split(counts), extents)):
                r = r.clone()
                r[:, 0] = 0
                parts.append(pool(features[i:i + 1, :, :hi, :wi], r))
            pooled = torch.cat(parts, 0)
        fc7 = self.backbone.tail(pooled)
        if with_features:
            return self.cls_score(fc7).float(), self.bbox_pred(fc7).float(), fc7
        return self.cls_score(fc7).float(), self.bbox_pred(fc7).float()

    # -- forward -----------------------------------------------------------------------------------------
    def forward(self, images: Tensor, im_info: Tensor, gt_boxes: Sequence[Tensor] | Tensor | None = None,
                gt_valid: Tensor | None = None, seeds: Tensor | None = None,
                gt_attributes: Tensor | None = None) -> dict[str, Tensor] | HeadOutputs:
        """Args:
            images: (N, 3, H, W) normalised, padded batch.
            im_info: (N, 3) rows (h, w, scale): each image's extent inside the padding and its scale.
            gt_boxes: to train: per image (G_i, 5) [x1, y1, x2, y2, cls] in scaled-image pixels, or one padded
                (N, G, 5) tensor with ``gt_valid`` (N, G) bool marking its real rows.
            seeds: (N,) int64 sampling seeds of the target layers (the trainer derives them from the image's
                place in the run); by default drawn from the global RNG.
            gt_attributes: (N, G, 16) int64 the attributes of the padded gt boxes (1..A, 0-padded), needed to
                train a network with an attribute head.

        Returns:
            training (``self.training`` and ``gt_boxes`` given): a dict of the scalar losses named ``LOSS_NAMES``
            (``rpn_cross_entropy``, ``rpn_loss_box``, ``cross_entropy``, ``loss_box``, [``loss_attr``,]
            ``total_loss``); otherwise ``HeadOutputs`` (rois, class probabilities, de-normalised deltas, [attribute
            probabilities]), which
            ``nets.postprocess.postprocess`` turns into detections (``detect`` does both).
        """
        if images.dim() != 4 or im_info.shape != (images.shape[0], 3):
            raise ValueError(f'expected images (N, 3, H, W) and im_info (N, 3), got {tuple(images.shape)} '
                             f'and {tuple(im_info.shape)}')
        if im_info.dtype != torch.float32:
            im_info = im_info.float()
        if self.training and gt_boxes is not None:
            return self._losses(images, im_info, gt_boxes, gt_valid, seeds, gt_attributes)
        return self._test_outputs(images, im_info)

    @torch.no_grad()
    def detect(self, images: Tensor, im_info: Tensor, sizes: Sequence[tuple[int, int]],
               amp: str = '') -> list[Detections]:
        """The detections of each image of a padded batch (see ``forward`` for ``images`` / ``im_info``); ``sizes``
        are the original (H_i, W_i). ``amp`` ('', 'bf16', 'fp16') runs the network under autocast; decoding and
        NMS stay in fp32."""
        with autocast(images.device, amp, 'TEST.AMP'):
            outputs = cast(HeadOutputs, self.forward(images, im_info))  # no gt boxes: the test outputs
        return postprocess(outputs, im_info, sizes, self.settings.detection)

    def _test_outputs(self, images: Tensor, im_info: Tensor) -> HeadOutputs:
        n = images.shape[0]
        features, extents = self._head(images, im_info, False)
        _, _, h, w = features.shape
        net = self.settings.network
        anchors = anchors_for(h, w, features.device, net.anchor_scales, net.anchor_ratios, stride=FEAT_STRIDE)
        _, fg_prob, rpn_deltas = self._rpn(features)
        props = self._proposals(fg_prob.detach(), rpn_deltas.detach(), anchors, im_info, False, (h, w), extents)
        image_index = torch.arange(n, dtype=torch.float32, device=features.device)[:, None, None]
        rois = torch.cat((image_index.expand(n, props.boxes.shape[1], 1), props.boxes), 2)[props.valid]
        outputs = self._roi_outputs(features, rois, extents, props.counts)
        self._store_summaries(fg_prob, rois, cls_prob=outputs.cls_prob)
        return outputs

    def _roi_outputs(self, features: Tensor, rois: Tensor, extents: list[tuple[int, int]] | None,
                     counts: list[int]) -> HeadOutputs:
        """The test outputs of ``rois`` (R, 5) pooled from the head's ``features`` (see ``_box_head``)."""
        cls_score, bbox_pred, fc7 = self._box_head(features, rois, extents, counts, with_features=True)
        cls_prob = F.softmax(cls_score, dim=1)
        if self.settings.network.denormalize_bbox:
            bbox_pred = bbox_pred * self._bbox_stds + self._bbox_means
        attr_prob = None
        if self.attr_head is not None:
            # BUTD's predicted_cls: the argmax over all K classes, background included.
            attr_prob = F.softmax(self.attr_head(fc7, cls_score.argmax(dim=1)), dim=1)
        return HeadOutputs(rois, cls_prob, bbox_pred, fc7.float(), attr_prob)

    @torch.no_grad()
    def attributes_at(self, images: Tensor, boxes: Tensor) -> Tensor:
        """The attribute probabilities (R, A + 1) of given boxes (R, 4) of one image (1, 3, H, W), in network-input
        pixels, used as the rois (BUTD's test on the gt boxes); the class embedded is the argmax of each roi's
        class scores, as at test time."""
        if self.attr_head is None:
            raise ValueError('this network has no attribute head')
        features = self.backbone.head(images.contiguous(memory_format=self.input_memory_format))
        rois = torch.cat((boxes.new_zeros((boxes.shape[0], 1)), boxes.float()), 1)
        cls_score, _, fc7 = self._box_head(features, rois, with_features=True)
        return F.softmax(self.attr_head(fc7, cls_score.argmax(dim=1)), dim=1)

    @torch.no_grad()
    def box_features(self, images: Tensor, im_info: Tensor, rois: Tensor, amp: str = '') -> HeadOutputs:
        """The test outputs (class probabilities, deltas, region features) of given boxes instead of proposals.

        Args:
            images, im_info: a padded test batch, as ``forward``.
            rois: (R, 5) [image index, x1, y1, x2, y2] in network-input pixels, grouped by image in image order
                (an image may have none).
        Returns ``HeadOutputs`` whose rows follow ``rois``; each image's boxes are pooled from its own feature
        map, exactly as its proposals are in ``forward``, so a batch gives what each image gives alone.
        """
        n = images.shape[0]
        if im_info.dtype != torch.float32:
            im_info = im_info.float()
        with autocast(images.device, amp, 'TEST.AMP'):
            features, extents = self._head(images, im_info, False)
            counts = [rois.shape[0]] if n == 1 else torch.bincount(rois[:, 0].long(), minlength=n).tolist()
            return self._roi_outputs(features, rois.to(features.device, torch.float32), extents, counts)

    def _losses(self, images: Tensor, im_info: Tensor, gt_boxes: Sequence[Tensor] | Tensor, gt_valid: Tensor | None,
                seeds: Tensor | None, gt_attributes: Tensor | None = None) -> dict[str, Tensor]:
        n = images.shape[0]
        if isinstance(gt_boxes, Tensor):
            if gt_valid is None or gt_boxes.dim() != 3 or gt_valid.shape != gt_boxes.shape[:2]:
                raise ValueError('a padded gt_boxes tensor (N, G, 5) needs gt_valid (N, G)')
        else:
            gt_boxes, gt_valid = pad_gt_boxes(gt_boxes, images.device)
        if gt_boxes.shape[0] != n:
            raise ValueError(f'gt_boxes has {gt_boxes.shape[0]} entries for {n} images')
        if seeds is None:
            seeds = seeds_from_generator(n, None, images.device)
        features, _ = self._head(images, im_info, True)
        _, _, h, w = features.shape
        net = self.settings.network
        anchors = anchors_for(h, w, features.device, net.anchor_scales, net.anchor_ratios, stride=FEAT_STRIDE)
        rpn_scores, fg_prob, rpn_deltas = self._rpn(features)
        props = self._proposals(fg_prob.detach(), rpn_deltas.detach(), anchors, im_info, True, (h, w))
        if gt_boxes.dtype != torch.float32 or gt_boxes.device != features.device:
            gt_boxes = gt_boxes.to(features.device, torch.float32)
        terms = seed_terms(seeds)  # once for both layers
        # Every image lies inside the padded blob: anchors beyond it are never inside an image.
        rpn = anchor_targets(anchors, gt_boxes, gt_valid, im_info, seeds, terms=terms,
                             extent=(images.shape[2], images.shape[3]), **net.anchor_target_kwargs)
        # Rois are keyed by their anchor, not their rank: a sample then does not hang on the order of near-equal
        # scores (which float noise, e.g. another world size's gradient sums, can swap).
        if self.attr_head is not None:
            if gt_attributes is None or gt_attributes.shape[:2] != gt_boxes.shape[:2]:
                raise ValueError('training a network with an attribute head needs gt_attributes (N, G, 16) for the '
                                 'padded gt boxes (a dataset with attributes)')
            gt_attributes = gt_attributes.to(features.device, torch.int64)
        else:
            gt_attributes = None
        sampled = proposal_targets(props.boxes, props.scores, props.valid, gt_boxes, gt_valid, seeds,
                                   self.num_classes, terms=terms, positions=props.anchors,
                                   gt_attributes=gt_attributes, **net.proposal_target_kwargs)
        cls_score, bbox_pred, fc7 = self._box_head(features, sampled.rois, with_features=True)
        self._store_summaries(fg_prob, sampled.rois, cls_score=cls_score)
        rpn_cross_entropy, rpn_loss_box = rpn_losses(rpn_scores, rpn_deltas, rpn.labels, rpn.targets,
                                                     rpn.inside_weights, rpn.outside_weights)
        cross_entropy, loss_box = rcnn_losses(cls_score, bbox_pred, sampled.labels, sampled.bbox_targets,
                                              sampled.bbox_inside_weights, sampled.bbox_outside_weights)
        total = rpn_cross_entropy + rpn_loss_box + cross_entropy + loss_box
        losses = {'rpn_cross_entropy': rpn_cross_entropy, 'rpn_loss_box': rpn_loss_box,
                  'cross_entropy': cross_entropy, 'loss_box': loss_box}
        if self.attr_head is not None and sampled.attributes is not None:
            # The embedding takes each roi's gt class (BUTD's train net); background rois carry no label.
            attr_logits = self.attr_head(fc7, sampled.labels)
            loss_attr = attribute_loss(attr_logits, sampled.attributes)
            losses['loss_attr'] = loss_attr
            total = total + net.attribute_loss_weight * loss_attr
        losses['total_loss'] = total
        return losses

    def _head(self, images: Tensor, im_info: Tensor, training: bool) -> tuple[Tensor, list[tuple[int, int]] | None]:
        """The backbone head; in a test batch of padded images also each image's own feature-map size."""
        x = images.contiguous(memory_format=self.input_memory_format)
        if training or images.shape[0] == 1:
            return self.backbone.head(x), None
        sizes = [(int(round(h)), int(round(w))) for h, w in im_info[:, :2].tolist()]  # one host read per test batch
        padded = (images.shape[2], images.shape[3])
        if padded_extent_is_uniform(sizes, padded):
            return self.backbone.head(x), None
        if self._padding_mask is None:
            self._padding_mask = PaddingMask(self.backbone)
        with self._padding_mask.active(sizes, padded):
            features = self.backbone.head(x)
        return features, self._padding_mask.extent(features.shape[-2:])

    def _store_summaries(self, fg_prob: Tensor, rois: Tensor, *, cls_prob: Tensor | None = None,
                         cls_score: Tensor | None = None) -> None:
        """What the TensorBoard summaries read. Training keeps the class logits ('cls_score'): their softmax
        is taken only when a summary is written, not on every step."""
        tensors = {'rpn_cls_prob': fg_prob.detach(), 'rois': rois.detach()}
        if cls_prob is not None:
            tensors['cls_prob'] = cls_prob.detach()
        if cls_score is not None:
            tensors['cls_score'] = cls_score.detach()
        self.summary_tensors = tensors
