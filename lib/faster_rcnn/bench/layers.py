"""Per-layer timings at PASCAL VOC size (``python tools/benchmark.py layers --device cpu|cuda``).

Inputs: a 600 x 800 image, a 38 x 50 feature map with 9 anchors (17100), 6 gt boxes, random
RPN scores and deltas (seeded). Reports the median of ``--repeat`` runs after ``--warmup`` runs;
CUDA work is synchronised before and after each timed call. Then the batched layers for N = 1, 2, 4 images:
time and operators dispatched per call, and a whole training step outside the backbone (``bench.batched``).
"""
import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torchvision

from ..boxes import bbox_transform_inv, clip_boxes
from ..cli import ToolParser
from ..errors import UsageError
from ..layers.anchor_target import anchor_target_layer
from ..layers.anchors import anchors_for
from ..layers.proposal import proposal_layer
from ..layers.proposal_target import proposal_target_layer
from ..layers.roi_pool import crop_and_resize, roi_features
from ..utils.atomic import write_json_atomic
from .batched import median_ms, run_batched
from .batched import table as batched_table

IM_INFO = (600.0, 800.0, 1.6)
GT_BOXES = [
    [48, 64, 300, 420, 15],
    [320, 100, 560, 380, 7],
    [500, 260, 790, 590, 12],
    [20, 380, 200, 590, 9],
    [600, 20, 700, 140, 3],
    [250, 420, 330, 520, 1],
]


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = ToolParser(prog="benchmark.py layers", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per layer (median reported)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs before timing")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave torch's default)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    return parser.parse_args(argv)


def run(device: torch.device, repeat: int, warmup: int) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(0)
    anchors = anchors_for(38, 50, device)
    n = anchors.shape[0]
    scores = torch.softmax(torch.randn(n, 2, generator=gen) * 2, dim=1)[:, 1].to(device)
    deltas = (torch.randn(n, 4, generator=gen) * 0.1).to(device)
    gt = torch.tensor(GT_BOXES, dtype=torch.float32, device=device)
    sample_gen = torch.Generator(device=device).manual_seed(0)
    features = torch.randn(1, 512, 38, 50, generator=gen).to(device).requires_grad_()

    # The 12000 boxes the TRAIN proposal layer hands to NMS, for torchvision's NMS alone.
    boxes = clip_boxes(bbox_transform_inv(anchors, deltas), IM_INFO[:2])
    top = torch.sort(scores, descending=True, stable=True)[1][:12000]
    nms_boxes, nms_scores = boxes[top].contiguous(), scores[top].contiguous()

    train_rois, train_scores = proposal_layer(
        scores, deltas, anchors, IM_INFO, pre_nms_top_n=12000, post_nms_top_n=2000, nms_thresh=0.7
    )
    crop_rois = train_rois[:256].contiguous()

    def crop_fwd_bwd() -> None:
        crop_and_resize(features, crop_rois, 14).sum().backward()

    def pooled_crop(f: torch.Tensor) -> torch.Tensor:
        # What VGG16 / MobileNet run: crop 14 x 14, 2 x 2 max-pool to 7 x 7.
        return roi_features(f, crop_rois, mode="crop", pooling_size=7, max_pool=True)

    def torchvision_align(f: torch.Tensor) -> torch.Tensor:
        # torchvision's FasterRCNN RoI op: 7 x 7 RoIAlign, 2 x 2 samples per bin (as many samples as ours).
        return torchvision.ops.roi_align(f, crop_rois, (7, 7), 1.0 / 16, 2, False)

    cases: dict[str, Callable[[], object]] = {
        "proposal_train": lambda: proposal_layer(
            scores, deltas, anchors, IM_INFO, pre_nms_top_n=12000, post_nms_top_n=2000, nms_thresh=0.7
        ),
        "proposal_test": lambda: proposal_layer(
            scores, deltas, anchors, IM_INFO, pre_nms_top_n=6000, post_nms_top_n=300, nms_thresh=0.7
        ),
        "torchvision_nms_12000": lambda: torchvision.ops.nms(nms_boxes, nms_scores, 0.7),
        "anchor_target": lambda: anchor_target_layer(anchors, gt, IM_INFO, generator=sample_gen),
        "proposal_target": lambda: proposal_target_layer(
            train_rois, train_scores, gt, 21, batch_size=128, bg_thresh_lo=0.0, generator=sample_gen
        ),
        "crop_and_resize_fwd": lambda: crop_and_resize(features.detach(), crop_rois, 14),
        "crop_and_resize_fwd_bwd": crop_fwd_bwd,
        "crop_pool_7_fwd": lambda: pooled_crop(features.detach()),
        "crop_pool_7_fwd_bwd": lambda: pooled_crop(features).sum().backward(),
        "torchvision_roi_align_7_fwd": lambda: torchvision_align(features.detach()),
        "torchvision_roi_align_7_fwd_bwd": lambda: torchvision_align(features).sum().backward(),
    }
    times = {name: median_ms(fn, device, repeat, warmup) for name, fn in cases.items()}
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "repeat": repeat,
        "warmup": warmup,
        "num_train_rois": int(train_rois.shape[0]),
        "median_ms": times,
        "proposal_train_vs_torchvision_nms": times["proposal_train"] / times["torchvision_nms_12000"],
    }


def _table(result: dict[str, Any]) -> str:
    notes = {
        "proposal_train": "12000 -> NMS 0.7 -> 2000",
        "proposal_test": "6000 -> NMS 0.7 -> 300",
        "torchvision_nms_12000": "torchvision.ops.nms on the same 12000 boxes",
        "anchor_target": "17100 anchors, 6 gt, 256 sampled",
        "proposal_target": f"{result['num_train_rois']} rois -> 128",
        "crop_and_resize_fwd": "256 rois, (1, 512, 38, 50) -> 14 x 14",
        "crop_and_resize_fwd_bwd": "same, forward + backward",
        "crop_pool_7_fwd": "same rois, crop 14 x 14 + 2 x 2 max-pool (POOLING_MODE crop)",
        "crop_pool_7_fwd_bwd": "same, forward + backward",
        "torchvision_roi_align_7_fwd": "same rois, torchvision roi_align 7 x 7, sampling_ratio 2",
        "torchvision_roi_align_7_fwd_bwd": "same, forward + backward",
    }
    lines = [
        f"Layers on {result['device']} ({result['threads']} CPU threads), median of {result['repeat']}",
        "",
        "| layer | median ms | what |",
        "| --- | ---: | --- |",
    ]
    for name, ms in result["median_ms"].items():
        lines.append(f"| {name} | {ms:.3f} | {notes[name]} |")
    lines.append("")
    lines.append(f"proposal_train / torchvision nms: {result['proposal_train_vs_torchvision_nms']:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parse(list(argv) if argv is not None else [])
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("benchmark layers: --device cuda was asked for but torch sees no CUDA device")
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"benchmark layers: --device must be cpu or cuda, got {args.device!r}")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    result = run(device, max(args.repeat, 1), max(args.warmup, 0))
    result['batched'] = run_batched(device, max(args.repeat, 1), max(args.warmup, 0))
    print(_table(result))
    print(batched_table(result['batched']))
    if args.json is not None:
        write_json_atomic(str(args.json), result, indent=2)
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
