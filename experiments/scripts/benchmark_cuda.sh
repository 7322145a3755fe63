#!/usr/bin/env bash
# On a CUDA machine: the CUDA variants of the tests and the benchmarks on the GPU; logs and JSON go to OUTDIR.
#   bash experiments/scripts/benchmark_cuda.sh OUTDIR
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?OUTDIR}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, torch.cuda.get_device_name(0))" >> "$OUT/gpu.txt" 2>&1
step() { local name=$1; shift; local t0=$SECONDS; timeout "${LIMIT:-300}" "$@" > "$OUT/$name.txt" 2>&1; echo "$name: rc=$? $((SECONDS - t0))s" | tee -a "$OUT/steps.txt"; }
LAYER_TESTS=(tests/test_boxes.py tests/test_anchors.py tests/test_nms.py tests/test_anchor_target.py
             tests/test_proposal.py tests/test_proposal_target.py tests/test_roi_pool.py tests/test_losses.py)
LIMIT=60 step pytest_cuda_layers python3 -m pytest -q -k cuda -p no:cacheprovider "${LAYER_TESTS[@]}"
LIMIT=40 step layers_cuda python3 tools/benchmark.py layers --device cuda --json "$OUT/layers_cuda.json"
LIMIT=150 step nets_cuda python3 tools/benchmark.py nets --device cuda --nets vgg16,res101,res50 --repeat 10 --json "$OUT/nets_cuda.json"
LIMIT=40 step train_cuda python3 tools/benchmark.py train --net tiny --imdb shapes_trainval --cfg experiments/cfgs/shapes.yml --device cuda --iters 20 --json "$OUT/train_tiny_cuda.json"
LIMIT=20 step test_cuda python3 tools/benchmark.py test --net tiny --imdb shapes_test --cfg experiments/cfgs/shapes.yml --device cuda --iters 20 --json "$OUT/test_tiny_cuda.json"
LIMIT=90 step pytest_cuda_rest python3 -m pytest -q -k cuda -p no:cacheprovider tests/test_network.py tests/test_nets.py tests/test_folded_norm.py
cat "$OUT/steps.txt"
