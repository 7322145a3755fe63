#!/usr/bin/env python3
"""Test a trained Faster R-CNN network on a dataset and print its mAP (tf-faster-rcnn's test_net.py).

    python tools/test_net.py --imdb voc_2007_test --model output/.../vgg16_faster_rcnn_iter_70000.pth
    torchrun --nproc_per_node=8 tools/test_net.py --imdb coco_2014_minival --model ...   # images sharded over GPUs

A model file of this project (a snapshot or a converted model) records its normalisation, anchors, layout
and test settings, so ``--cfg`` and ``--net`` are only needed for older snapshots and bare state_dicts. An
exported ``--model X.onnx`` runs under ONNX Runtime (or ``--runtime openvino / opencv``), a ``.pt2`` program in
torch with ``--trust-code``, with the settings in the graph.
Under torchrun each process tests every N-th image; rank 0 gathers the detections in image order, writes one
detections.pkl and evaluates: the result is the single-process one. The numbers and the TEST keys used go to
eval.json next to detections.pkl (read by tools/compare_runs.py).
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys

from faster_rcnn.cli import (ToolParser, add_config_args, apply_config, apply_detector_config, model_settings,
                             resolve_device, run_tool, test_settings)
from faster_rcnn.config import cfg, get_output_dir, get_output_tb_dir
from faster_rcnn.datasets.factory import get_imdb
from faster_rcnn.engine.distributed import cleanup, init_distributed
from faster_rcnn.engine.tester import evaluate_attributes, print_attribute_ap, test_net
from faster_rcnn.errors import UsageError
from faster_rcnn.export.runtime import RUNTIMES
from faster_rcnn.inference import Detector, is_graph_file
from faster_rcnn.model_file import open_detector
from faster_rcnn.nets.factory import build_from_file
from faster_rcnn.nets.registry import describe_networks
from faster_rcnn.utils.eval_summary import write_eval_summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ToolParser(description='Test a Faster R-CNN network')
    parser.add_argument('--model', required=True,
                        help='model file to test (<prefix>_iter_<N>.pth), or a graph from tools/export.py (.onnx, '
                             '.pt2 with --trust-code)')
    parser.add_argument('--runtime', choices=RUNTIMES, default=None,
                        help='what runs an .onnx graph (default onnxruntime; openvino: CPU, bf16 with --set TEST.AMP '
                             'bf16; opencv: OpenCV 5\'s DNN module)')
    parser.add_argument('--trust-code', action='store_true',
                        help='run a .pt2 program (loading one runs code stored in it: only for files you trust)')
    parser.add_argument('--imdb', dest='imdb_name', default='voc_2007_test', help='dataset to test')
    parser.add_argument('--comp', dest='comp_mode', action='store_true', help='competition mode (VOC: the '
                        'comp4_det_* result files are kept after evaluation)')
    parser.add_argument('--num_dets', dest='max_per_image', type=int, default=None,
                        help='maximum detections per image over all classes (0: no limit; default '
                             'TEST.MAX_PER_IMAGE, 100)')
    parser.add_argument('--tag', default='', help='tag of the model (output sub-folder)')
    parser.add_argument('--net', default=None,
                        help=f"{describe_networks()} (default: the model file's)")
    parser.add_argument('--workers', type=int, default=None,
                        help='data loader worker processes per process (default: DATA_LOADER.NUM_WORKERS)')
    add_config_args(parser)
    return parser.parse_args(argv)


def write_tensorboard(result, tb_dir: str, step: int) -> None:
    """The mean AP, each class's AP and (VOC) the precision / recall curves, at the model's iteration."""
    from tensorboardX import SummaryWriter
    from faster_rcnn.datasets.evaluation import render_pr_curves
    with SummaryWriter(tb_dir) as writer:
        writer.add_scalar('test/mean_ap', result.mean_ap, step)
        for name, ap in result.per_class.items():
            writer.add_scalar(f'test/ap/{name}', ap, step)
        if result.curves:
            writer.add_image('test/pr_curves', render_pr_curves(result.curves, result.per_class).transpose(2, 0, 1),
                             step)
    print(f'TensorBoard: {tb_dir}')


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = init_distributed(resolve_device(args.device))
    finished = False
    try:
        if info.is_main:
            print('Called with args:')
            print(args)
        imdb_classes = None
        if is_graph_file(args.model):
            detector, step = graph_detector(args), 0
        else:
            if args.runtime is not None:
                raise UsageError(f'--runtime {args.runtime}: a runtime runs an exported .onnx graph; {args.model} is '
                                 'a network file, which runs in PyTorch')
            detector_file = open_detector(args.model, args.net)
            apply_detector_config(args, detector_file, verbose=info.is_main)
            imdb_classes = detector_file.classes
            step = detector_file.iteration
        test = test_settings(args.workers)
        filename = osp.splitext(osp.basename(args.model))[0]
        tag = args.tag if args.tag else 'default'
        imdb = get_imdb(args.imdb_name, cfg.DATA_DIR)
        imdb.competition_mode(args.comp_mode)
        if not is_graph_file(args.model):
            settings = model_settings(detector_file.net)
            if args.max_per_image is not None:
                settings = settings.with_test(max_per_image=args.max_per_image)
            model = build_from_file(detector_file, settings, info.device, num_classes=imdb.num_classes)
            detector = Detector.from_model(model, imdb.classes, device=info.device, amp=test.amp,
                                           batch_size=test.ims_per_batch, attributes=detector_file.attributes)
        elif len(detector.classes) != imdb.num_classes:
            raise UsageError(f'--model {args.model} detects {len(detector.classes) - 1} classes, {imdb.name} has '
                             f'{imdb.num_classes - 1}: test it on the dataset it was trained on')
        if info.is_main:
            known = imdb_classes or list(detector.classes)
            if tuple(known) != tuple(imdb.classes):
                print(f'WARNING: {args.model} was trained on classes {list(known)}; {imdb.name} has '
                      f'{list(imdb.classes)}')
            print(f'Loaded {args.model} ({detector}); testing {imdb.num_images} images on '
                  f'{info.world_size} process(es), {detector.batch_size} per batch'
                  f'{f", {test.amp} autocast" if test.amp and detector.model is not None else ""}')
        output_dir = get_output_dir(imdb.name, tag=tag, weights_filename=filename)
        _, result = test_net(detector, imdb, output_dir, rank=info.rank, world_size=info.world_size,
                             num_workers=test.num_workers, progress=info.is_main)
        if result is not None:
            attributes = attribute_results(detector, imdb)
            summary = write_eval_summary(output_dir, imdb=imdb.name, num_images=imdb.num_images,
                                         metric=result.metric, mean_ap=result.mean_ap, per_class=result.per_class,
                                         coco_stats=result.stats, test_config=tested_with(args, detector),
                                         attributes=attributes)
            print(f'Wrote {summary}')
            write_tensorboard(result, get_output_tb_dir(imdb.name, tag=tag, weights_filename=filename), step)
        finished = True
    finally:
        cleanup(info, finished)
    return 0


def attribute_results(detector: Detector, imdb) -> dict | None:
    """The attribute mAP (at detections and at the gt boxes) of a network with an attribute head on a dataset with
    attributes, printed after the object mAP; None (not measured) otherwise."""
    if getattr(imdb, 'attributes', None) is None:
        return None
    model = detector.model
    if model is None or getattr(model, 'attr_head', None) is None:
        print(f'{imdb.name} has attributes, but the network has no attribute head: no attribute mAP')
        return None
    if list(imdb.attributes) != list(detector.attributes or []):
        print(f'WARNING: the network was trained on attributes {list(detector.attributes or [])[1:]}; '
              f'{imdb.name} has {list(imdb.attributes)[1:]}')
    at_dets, at_gt = evaluate_attributes(model, imdb)
    print_attribute_ap(at_dets, at_gt)
    return {'at_detections': at_dets.summary(), 'at_gt_boxes': at_gt.summary()}


def tested_with(args: argparse.Namespace, detector: Detector) -> dict:
    """The TEST keys the run was tested with: a graph's recorded ones (its settings are baked in), else the
    config's after the detector file's record and --cfg / --set, with --num_dets."""
    if detector.model is None:
        keys = dict(detector.metadata.get('config', {}).get('test', {}))
    else:
        keys = dict(cfg.TEST)
    if args.max_per_image is not None:
        keys['MAX_PER_IMAGE'] = args.max_per_image
    return keys


def graph_detector(args: argparse.Namespace) -> Detector:
    """An exported graph under ONNX Runtime: its settings are in the graph, so only --num_dets may be given (and
    must be the graph's) and --cfg / --set only change where results go (EXP_DIR) and the loader."""
    apply_config(args, verbose=False)
    overrides = {} if args.max_per_image is None else {'max_per_image': args.max_per_image}
    if args.runtime == 'openvino' and cfg.TEST.AMP:
        overrides['amp'] = str(cfg.TEST.AMP)
    detector = Detector.load(args.model, runtime=args.runtime, trust_code=args.trust_code, **overrides)
    if 'exp_dir' in detector.metadata and not (args.set_cfgs and 'EXP_DIR' in args.set_cfgs):
        cfg.EXP_DIR = detector.metadata['exp_dir']
    return detector


if __name__ == '__main__':
    sys.exit(run_tool(main))
