#!/usr/bin/env python3
"""What a detector costs: parameters per part, FLOPs per part at the test scale, peak activation memory.

    python tools/analyze_model.py --model output/res101/voc_2007_trainval/default/res101_faster_rcnn_iter_70000.pth
    python tools/analyze_model.py --net res101 --imdb voc_2007_test --images 10
    python tools/analyze_model.py --net vgg16 --set TEST.SCALES "[800]" TEST.MAX_SIZE 1333

--model: a snapshot or converted detector file (its recorded config applies, and its test scale is also the
training step's unless --cfg or --set TRAIN.SCALES says otherwise); --net: a network with its
initial weights (no download: the counts do not depend on the values, the proposals a little). With --imdb
the first --images test images of that dataset are used at the test scale (and its first training image for
the training step); without it, noise images of the test scale at 4:3 (a gt box in the middle for the
training step). Parts, the FLOP / multiply-add convention, what is not counted (NMS, roi_align / roi_pool)
and how memory is measured: faster_rcnn/analysis/model_cost.py. For vgg16, res50/101/152 and mobile the
backbone is also counted at 224x224 and compared with torchvision's published ImageNet numbers.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from faster_rcnn.analysis.model_cost import (format_imagenet_check, format_inference_cost, format_parameters,
                                             format_train_cost, fake_test_images, imagenet_check, inference_cost,
                                             parameter_parts, train_step_cost)
from faster_rcnn.cli import (ToolParser, add_config_args, apply_config, apply_detector_config, model_settings,
                             resolve_device, roidb_settings, run_tool, train_settings)
from faster_rcnn.config import cfg
from faster_rcnn.data.test_loader import TestImages, collate_test, prepare_test_image
from faster_rcnn.datasets.factory import get_imdb
from faster_rcnn.errors import ConfigError, UsageError
from faster_rcnn.model_file import open_detector
from faster_rcnn.nets.factory import build_from_file, build_network
from faster_rcnn.nets.registry import describe_networks

# Classes of a --net network without --imdb: PASCAL VOC's 20 and the background.
DEFAULT_CLASSES = 21


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ToolParser(description='Parameters, FLOPs and memory of a Faster R-CNN network')
    parser.add_argument('--model', default=None, help='a snapshot or detector file (.pth)')
    parser.add_argument('--net', default=None,
                        help=f'{describe_networks()}: alone, the network with initial weights; with --model, the '
                             'network of a file that does not record it (a bare state_dict)')
    parser.add_argument('--imdb', dest='imdb_name', default=None,
                        help='dataset whose test images (and first training image) are measured')
    parser.add_argument('--images', type=int, default=3, help='test images to average the FLOPs over (default 3)')
    parser.add_argument('--no-train', action='store_true', help='skip the training step')
    add_config_args(parser)
    return parser.parse_args(argv)


def _batches_from_images(images: list[np.ndarray], inputs) -> list[dict]:
    out = []
    for i, im in enumerate(images):
        blob, im_info = prepare_test_image(im, inputs)
        out.append(collate_test([{'image': blob, 'im_info': im_info, 'size': im.shape[:2], 'index': i}]))
    return out


def inference_batches(imdb_name: str | None, count: int, inputs) -> list[dict]:
    """One-image test batches at the model's test scale: the dataset's first ``count`` images (read by the
    test loader's own dataset), else noise images of the test scale at 4:3."""
    if imdb_name:
        imdb = get_imdb(imdb_name, cfg.DATA_DIR)
        paths = [imdb.image_path_at(i) for i in range(min(count, imdb.num_images))]
        if not paths:
            raise UsageError(f'--imdb {imdb_name}: the dataset has no images')
        images = TestImages(paths, inputs)
        return [collate_test([images[i]]) for i in range(len(images))]
    short = inputs.single_scale()
    long = min(int(round(short * 4 / 3)), inputs.max_size)
    return _batches_from_images(fake_test_images(count, short, long), inputs)


def train_batch(imdb_name: str | None, num_classes: int) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """The first image of the training stream's dataset (the training loader's own item), or a noise image at
    the first training scale with one gt box in the middle."""
    from faster_rcnn.data.dataset import RoidbDataset, collate_batch
    train = train_settings(num_workers=0)
    if imdb_name:
        from faster_rcnn.data.roidb import combined_roidb
        _, roidb = combined_roidb(imdb_name, roidb_settings(), data_dir=cfg.DATA_DIR)
        batch = collate_batch([RoidbDataset(roidb, train.seed, train.input, train.use_all_gt)[(0, 0)]])
        return batch['data'], batch['im_info'], batch['gt_boxes']
    from faster_rcnn.data.blob import prep_im_for_blob
    short = int(train.input.scales[0])
    long = min(int(round(short * 4 / 3)), train.input.max_size)
    im = fake_test_images(1, short, long, seed=1)[0]
    blob, scale = prep_im_for_blob(im, short, train.input.max_size, np.array(train.input.pixel_means),
                                   np.array(train.input.pixel_stds), train.input.channel_order)
    h, w = blob.shape[:2]
    gt = torch.tensor([[w * 0.25, h * 0.25, w * 0.75, h * 0.75, 1.0 if num_classes > 1 else 0.0]])
    images = torch.from_numpy(np.ascontiguousarray(blob.transpose(2, 0, 1)))[None]
    return images, torch.tensor([[h, w, scale]], dtype=torch.float32), [gt]


def train_scale_from_model(args: argparse.Namespace) -> bool:
    """A model file records its test scale, not its training one: without --cfg and without TRAIN.SCALES /
    TRAIN.MAX_SIZE in --set, the training step of a --model is measured at its test scale (the defaults, 600 / 1000,
    are another model's). True when it was set so."""
    keys = set(args.set_cfgs or [])
    if args.cfg_file is not None or keys & {'TRAIN.SCALES', 'TRAIN.MAX_SIZE'}:
        return False
    cfg.TRAIN.SCALES = tuple(cfg.TEST.SCALES[:1])
    cfg.TRAIN.MAX_SIZE = cfg.TEST.MAX_SIZE
    return True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.model and not args.net:
        raise UsageError('analyze_model.py: pass --model FILE (a snapshot or detector file) or --net NET')
    if args.images < 1:
        raise UsageError(f'--images {args.images}: expected at least 1')
    device = torch.device(resolve_device(args.device))
    if args.model:
        detector = open_detector(args.model, args.net)
        apply_detector_config(args, detector, verbose=False)
        train_scale_from_model(args)
        net = detector.net
        model = build_from_file(detector, model_settings(net), device)
        source = f'{args.model} ({net}, {model.num_classes - 1} classes)'
    else:
        apply_config(args, verbose=False)
        net = args.net
        if args.imdb_name:
            from faster_rcnn.datasets.factory import classes_of
            num_classes = len(classes_of(args.imdb_name, cfg.DATA_DIR))
        else:
            num_classes = DEFAULT_CLASSES
        model = build_network(net, num_classes, model_settings(net)).place(device)
        source = f'--net {net} with initial weights, {num_classes - 1} classes'
    settings = model.settings
    print(f'{source}; test scale {settings.input.single_scale()} (max {settings.input.max_size}), '
          f'{settings.network.num_anchors} anchors per cell, pooling {settings.network.pooling_mode}, '
          f'device {device}')
    print()
    print(format_parameters(parameter_parts(model)))
    print()
    print(format_inference_cost(inference_cost(model, inference_batches(args.imdb_name, args.images, settings.input))))
    cap = settings.network.test_proposal_kwargs['post_nms_top_n']
    print(f'  (RoIs: at most TEST.RPN_POST_NMS_TOP_N = {cap} per image'
          + ('; with initial weights the proposals, hence the RoIs and the tail\'s FLOPs, are not a trained '
             'model\'s' if not args.model else '') + ')')
    if not args.no_train:
        print()
        print(format_train_cost(train_step_cost(model, *train_batch(args.imdb_name, model.num_classes))))
    print()
    try:
        print(format_imagenet_check(imagenet_check(net, settings.backbone)))
    except ConfigError as e:
        print(f'backbone at 224x224: no torchvision comparison ({e})')
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
