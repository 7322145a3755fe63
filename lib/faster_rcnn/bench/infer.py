"""``python tools/benchmark.py infer``: CPU inference of one 600 x 1000 image, image in, detections out, per runtime.

    python tools/benchmark.py infer [--nets tiny,mobile,vgg16,res101] [--repeat 5] [--threads 0] [--json FILE]

For each network (its yml's settings; random seeded weights, the ResNet / MobileNetV2 residual branches started at
zero as in ``bench.nets`` so the RPN proposes ordinary boxes; 21 classes, tiny's 4 on its shapes settings) these
run in turn, round after round (``--warmup`` untimed rounds, then ``--repeat`` timed ones; each row gets the median
of its rounds):

  network      the bare network call on a prepared input: ``FasterRCNN.detect`` (forward + post-processing) on the
               normalised, resized blob (what is left when the image preparation is done elsewhere)
  eager_fp32   ``Detector(image)``: preparation on the host, the network, post-processing
  eager_bf16   the same under bf16 autocast (``amp='bf16'``)
  onnxruntime  the exported ONNX graph under ONNX Runtime, CPU execution provider, intra-op threads = torch's
  pt2          the ``torch.export`` program (``torch.export.load(...).module()``)
  openvino_fp32  the same ONNX file compiled by OpenVINO for the CPU held to fp32, when the package is installed
               (not a dependency of this project); openvino_bf16: with the plugin's default precision where that is
               not fp32 (bf16 on CPUs with AMX or AVX512-BF16)

``detector_overhead`` is (eager_fp32 - network) / network. The machine's limit is measured in the same run and on
the same threads: ``torch.mm`` of two 4096 x 4096 matrices and a channels-last 3x3 convolution 512 -> 512 at
64 x 64 (batch 1), each in fp32 and bf16; each row's achieved GFLOP/s (the network forward's FLOPs, counted once
with ``torch.utils.flop_counter.FlopCounterMode`` on the eager call, divided by its time) is reported as a share of
the faster of those rates for its precision.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..cli import ToolParser
from ..config import load_config
from ..nets.registry import spec
from ..settings import ModelSettings

_REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))
IMAGE_HW = (600, 1000)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = ToolParser(prog='benchmark.py infer', description=__doc__.splitlines()[0])
    p.add_argument('--nets', default='tiny,mobile,vgg16,res101')
    p.add_argument('--repeat', type=int, default=5, help='timed rounds (the median is reported)')
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--threads', type=int, default=0, help="torch and ONNX Runtime threads (0: torch's default)")
    p.add_argument('--no-openvino', action='store_true', help='leave OpenVINO out even when it is installed')
    p.add_argument('--json', default=None, help='write the results to this file')
    return p.parse_args(argv)


def _image() -> np.ndarray:
    """A 600 x 1000 BGR picture with structure (smooth bands and noise), the same every run."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:IMAGE_HW[0], 0:IMAGE_HW[1]]
    base = 128 + 80 * np.sin(xx / 37.0)[..., None] * np.cos(yy / 53.0)[..., None]
    return np.clip(base + rng.normal(0, 25, (*IMAGE_HW, 3)), 0, 255).astype(np.uint8)


def _model(net: str):
    from ..nets.factory import build_network
    from .nets import _tame
    config = load_config(osp.join(_REPO, 'experiments', 'cfgs', spec(net).config_file))
    torch.manual_seed(0)
    num_classes = 4 if net == 'tiny' else 21
    model = build_network(net, num_classes, ModelSettings.from_config(config, net))
    _tame(model.backbone)
    return model.eval(), [f'class{i}' for i in range(num_classes)]


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000.0


def machine_limit(repeat: int) -> dict[str, float]:
    """GFLOP/s of a 4096^2 matmul and of a channels-last 3x3 conv 512 -> 512 at 64 x 64, fp32 and bf16."""
    out = {}
    a = torch.randn(4096, 4096)
    x = torch.randn(1, 512, 64, 64).contiguous(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(512, 512, 3, padding=1, bias=False).eval().to(memory_format=torch.channels_last)
    flops = {'gemm': 2 * 4096 ** 3, 'conv': 2 * 512 * 512 * 9 * 64 * 64}
    for dtype, name in ((torch.float32, 'fp32'), (torch.bfloat16, 'bf16')):
        aa, xx, cc = a.to(dtype), x.to(dtype), conv.to(dtype)
        with torch.no_grad():
            for key, fn in (('gemm', lambda: torch.mm(aa, aa)), ('conv', lambda: cc(xx))):
                fn()
                ms = statistics.median(_timed(fn) for _ in range(max(repeat, 3)))
                out[f'{key}_{name}_gflops'] = flops[key] / ms / 1e6
    return out


def _forward_flops(model, blob: torch.Tensor, im_info: torch.Tensor, sizes) -> int:
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.detect(blob, im_info, sizes)
    return int(counter.get_total_flops())


def _runners(net: str, tmp: str, threads: int, use_openvino: bool) -> tuple[dict[str, Callable], dict]:
    from ..data.test_loader import collate_test, prepare_test_image
    from ..export.onnx_export import export_onnx
    from ..export.pt2_export import export_pt2
    from ..inference import Detector
    model, classes = _model(net)
    im = _image()
    info: dict = {}
    t0 = time.perf_counter()
    onnx_path, pt2_path = osp.join(tmp, f'{net}.onnx'), osp.join(tmp, f'{net}.pt2')
    export_onnx(model, classes, onnx_path, net=net, record=None)
    export_pt2(model, classes, pt2_path, net=net, record=None)
    info['export_s'] = time.perf_counter() - t0
    model.place('cpu')  # channels-last on CPU, as the tools run it
    fp32 = Detector.from_model(model, classes)
    bf16 = Detector.from_model(model, classes, amp='bf16')
    blob, im_info = prepare_test_image(im, model.settings.input)
    batch = collate_test([{'image': blob, 'im_info': im_info, 'size': im.shape[:2], 'index': 0}])
    data, infos, sizes = batch['data'], batch['im_info'], batch['sizes']
    info['forward_flops'] = _forward_flops(model, data, infos, sizes)
    info['input_hw'] = [int(im_info[0]), int(im_info[1])]
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    session = ort.InferenceSession(onnx_path, options, providers=['CPUExecutionProvider'])
    program = torch.export.load(pt2_path).module()
    image_t = torch.from_numpy(im)
    runners = {
        'network': lambda: model.detect(data, infos, sizes),
        'eager_fp32': lambda: fp32(im),
        'eager_bf16': lambda: bf16(im),
        'onnxruntime': lambda: session.run(None, {'image': im}),
        'pt2': lambda: program(image_t),
    }
    runners.update(_opencv_runner(onnx_path, im, threads or torch.get_num_threads(), info))
    if use_openvino:
        try:
            runners.update(_openvino_runners(onnx_path, im, threads or torch.get_num_threads(), info))
        except ImportError:
            info['openvino'] = 'not installed'
        except Exception as e:  # an operator it lacks: said, not hidden
            info['openvino'] = f'failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}'
    return runners, info


def _opencv_runner(onnx_path: str, im: np.ndarray, threads: int, info: dict) -> dict[str, Callable]:
    """The ONNX file under OpenCV's DNN module (fp32, CPU): version 5 imports it; 4.x cannot, which is recorded
    instead of a row."""
    import cv2
    if int(cv2.__version__.split('.')[0]) < 5:
        info['opencv'] = f'OpenCV {cv2.__version__} cannot import the graph (5.x can)'
        return {}
    cv2.setNumThreads(threads)
    net = cv2.dnn.readNetFromONNX(onnx_path)

    def run() -> Sequence[np.ndarray]:
        net.setInput(im)
        return net.forward(['boxes', 'scores', 'labels'])
    return {'opencv_dnn': run}


def _openvino_runners(onnx_path: str, im: np.ndarray, threads: int, info: dict) -> dict[str, Callable]:
    """The ONNX file under OpenVINO's CPU plugin twice: held to fp32 (INFERENCE_PRECISION_HINT f32), and with the
    plugin's default precision, which is bf16 on CPUs with AMX or AVX512-BF16 (the row is named after it)."""
    import openvino as ov
    core = ov.Core()
    model = core.read_model(onnx_path)
    fp32 = core.compile_model(model, 'CPU', {'INFERENCE_NUM_THREADS': threads, 'INFERENCE_PRECISION_HINT': 'f32'})
    default = core.compile_model(model, 'CPU', {'INFERENCE_NUM_THREADS': threads})
    hint = default.get_property('INFERENCE_PRECISION_HINT')  # an openvino Type: 'f32', 'bf16', 'f16'
    precision = hint.get_type_name() if hasattr(hint, 'get_type_name') else str(hint)
    info['openvino_default_precision'] = precision
    runners = {'openvino_fp32': lambda: fp32({'image': im})}
    if precision != 'f32':
        runners[f'openvino_{precision}'] = lambda: default({'image': im})
    return runners


def bench_net(net: str, args: argparse.Namespace, tmp: str) -> dict:
    runners, info = _runners(net, tmp, args.threads, not args.no_openvino)
    with torch.no_grad():
        for _ in range(args.warmup):
            for fn in runners.values():
                fn()
        times: dict[str, list[float]] = {k: [] for k in runners}
        for _ in range(args.repeat):
            for key, fn in runners.items():
                times[key].append(_timed(fn))
    ms = {k: statistics.median(v) for k, v in times.items()}
    entry = {**info, 'ms': ms, 'runs_ms': times,
             'detector_overhead': (ms['eager_fp32'] - ms['network']) / ms['network'],
             'onnxruntime_vs_eager_fp32': ms['onnxruntime'] / ms['eager_fp32'],
             'gflops': {k: info['forward_flops'] / v / 1e6 for k, v in ms.items()}}
    return entry


def _table(results: dict) -> str:
    limit = results['machine']
    best = {'fp32': max(limit['gemm_fp32_gflops'], limit['conv_fp32_gflops']),
            'bf16': max(limit['gemm_bf16_gflops'], limit['conv_bf16_gflops'])}
    lines = ['| net | runtime | ms | x eager fp32 | GFLOP/s | share of the machine |',
             '| --- | --- | ---: | ---: | ---: | ---: |']
    for net, e in results['nets'].items():
        for key, ms in e['ms'].items():
            peak = best['bf16' if key.endswith('bf16') else 'fp32']
            lines.append(f'| {net} | {key} | {ms:.1f} | {ms / e["ms"]["eager_fp32"]:.2f} | {e["gflops"][key]:.1f} | '
                         f'{e["gflops"][key] / peak:.0%} |')
    return '\n'.join(lines)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    results: dict = {'device': f'cpu ({os.cpu_count()} cores)', 'torch': torch.__version__,
                     'threads': torch.get_num_threads(), 'image': list(IMAGE_HW), 'repeat': args.repeat}
    results['machine'] = machine_limit(args.repeat)
    print('machine: ' + ', '.join(f'{k} {v:.0f}' for k, v in results['machine'].items()), flush=True)
    results['nets'] = {}
    with tempfile.TemporaryDirectory(prefix='frcnn_bench_infer_') as tmp:
        for net in [n.strip() for n in args.nets.split(',') if n.strip()]:
            entry = bench_net(net, args, tmp)
            results['nets'][net] = entry
            print(f'{net}: ' + ', '.join(f'{k} {v:.1f} ms' for k, v in entry['ms'].items())
                  + f'; Detector overhead {entry["detector_overhead"]:+.1%}; ONNX Runtime '
                  f'{entry["onnxruntime_vs_eager_fp32"]:.2f}x eager fp32'
                  + (f'; openvino {entry["openvino"]}' if 'openvino' in entry else ''), flush=True)
    print(_table(results))
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(results, f, indent=2)
    return 0
