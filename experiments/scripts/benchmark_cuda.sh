#!/usr/bin/env bash
# On a CUDA machine: run the CUDA variants of the tests, every benchmark on the GPU, and a short `shapes`
# training + test on the GPU. Results (logs and JSON) go to OUTDIR.
#   bash experiments/scripts/benchmark_cuda.sh OUTDIR
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?OUTDIR}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, torch.cuda.get_device_name(0))" >> "$OUT/gpu.txt" 2>&1
step() { local name=$1; shift; local t0=$SECONDS; timeout "${LIMIT:-300}" "$@" > "$OUT/$name.txt" 2>&1; echo "$name: rc=$? $((SECONDS - t0))s" | tee -a "$OUT/steps.txt"; }
LIMIT=240 step pytest_cuda python3 -m pytest -q -x -k "cuda" -p no:cacheprovider tests/
LIMIT=120 step layers_cuda python3 tools/benchmark.py layers --device cuda --json "$OUT/layers_cuda.json"
LIMIT=240 step nets_cuda python3 tools/benchmark.py nets --device cuda --nets vgg16,res101,res50,mobile --json "$OUT/nets_cuda.json"
LIMIT=60 step train_cuda python3 tools/benchmark.py train --net tiny --imdb shapes_trainval --cfg experiments/cfgs/shapes.yml --device cuda --iters 30 --json "$OUT/train_tiny_cuda.json"
LIMIT=60 step test_cuda python3 tools/benchmark.py test --net tiny --imdb shapes_test --cfg experiments/cfgs/shapes.yml --device cuda --iters 30 --json "$OUT/test_tiny_cuda.json"
LIMIT=180 step shapes_cuda ./experiments/scripts/train_faster_rcnn.sh 0 shapes tiny
cat "$OUT/steps.txt"
