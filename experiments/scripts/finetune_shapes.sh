#!/usr/bin/env bash
# Fine-tuning from a detector against training from scratch, on the generated shapes set (CPU or GPU 0):
#   1. train the quick-start network on shapes_circle_square_trainval (triangles left unlabelled), 1600 iterations;
#   2. for each M in ITERS_LIST: fine-tune that detector to all three classes for M iterations (--finetune), and
#      train the same network from scratch for M iterations, with the same recipe (experiments/cfgs/shapes.yml);
#   3. test every model on shapes_test and print the mean AP table (the README's "Fine-tuning" numbers).
#   bash experiments/scripts/finetune_shapes.sh            (ITERS_LIST="100 200 400 800" by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
ITERS_LIST=${ITERS_LIST:-"100 200 400 800"}
PRETRAIN_ITERS=${PRETRAIN_ITERS:-1600}
CFG=experiments/cfgs/shapes.yml
ROOT=${FRCNN_ROOT_DIR:-.}

mean_ap() {  # test a model on shapes_test; print its mean AP
  python3 tools/test_net.py --imdb shapes_test --model "$1" --tag "$2" | sed -n 's/^Mean AP = //p'
}

python3 tools/trainval_net.py --net tiny --imdb shapes_circle_square_trainval --imdbval '' \
  --iters "${PRETRAIN_ITERS}" --cfg "${CFG}" --tag two_classes
BASE="${ROOT}/output/tiny/shapes_circle_square_trainval/two_classes/tiny_faster_rcnn_iter_${PRETRAIN_ITERS}.pth"

rows=()
for M in ${ITERS_LIST}; do
  python3 tools/trainval_net.py --imdb shapes_trainval --imdbval '' --iters "${M}" --cfg "${CFG}" \
    --finetune "${BASE}" --tag "finetune_${M}"
  python3 tools/trainval_net.py --net tiny --imdb shapes_trainval --imdbval '' --iters "${M}" --cfg "${CFG}" \
    --tag "scratch_${M}"
  ft=$(mean_ap "${ROOT}/output/tiny/shapes_trainval/finetune_${M}/tiny_faster_rcnn_iter_${M}.pth" "finetune_${M}")
  sc=$(mean_ap "${ROOT}/output/tiny/shapes_trainval/scratch_${M}/tiny_faster_rcnn_iter_${M}.pth" "scratch_${M}")
  rows+=("| ${M} | ${ft} | ${sc} |")
done
echo
echo "Mean AP on shapes_test (VOC07 metric) after M iterations on shapes_trainval:"
echo "| M | fine-tuned from the 2-class detector | from scratch |"
echo "| ---: | ---: | ---: |"
printf '%s\n' "${rows[@]}"
