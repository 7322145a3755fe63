#!/usr/bin/env bash
# The quick start: install, generate the `shapes` dataset, train the small network on it on this machine's
# CPU (or GPU 0), evaluating it on shapes_test 8 times on the way (a mean AP curve in TensorBoard), test it
# (prints "Mean AP = ..."), and draw its detections on data/demo.
#   bash experiments/scripts/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
bash experiments/scripts/setup_env.sh
# shellcheck disable=SC1091
source .venv/bin/activate
./experiments/scripts/train_faster_rcnn.sh 0 shapes tiny
source experiments/scripts/dataset_table.sh 0 shapes tiny
python3 tools/demo.py --net tiny --model "${NET_FINAL}" --cfg experiments/cfgs/shapes.yml \
  --images data/demo --output output/demo --thresh 0.5
echo
echo "Model:        ${NET_FINAL}"
echo "TensorBoard:  .venv/bin/tensorboard --logdir tensorboard/${EXP_DIR} --port 6006  (train and _val runs; the"
echo "              _val run's eval/mean_ap is the mAP curve, 8 points),"
echo "              then open http://localhost:6006/ in a browser"
echo "Demo images:  output/demo/*_detections.jpg"
echo "Logs:         experiments/logs/"
