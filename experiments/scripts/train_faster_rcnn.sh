#!/usr/bin/env bash
# Train, then test, a Faster R-CNN network (tf-faster-rcnn's script, same arguments):
#   ./experiments/scripts/train_faster_rcnn.sh GPU_ID DATASET NET [KEY VALUE ...]
#   GPU_ID: 0, 0,1,2,3 (multi-GPU via torchrun) or cpu; DATASET: pascal_voc, pascal_voc_0712, coco, coco_2017, vg,
#   shapes, shapes_attr; NET: a network of tools/networks.py (vgg16, res101, res101_butd, ...) or a variant with its
#   own yml (res101-lg); trailing pairs go to --set.
# Training is skipped when the final snapshot exists; the log goes to experiments/logs/.
set -euo pipefail
cd "$(dirname "$0")/../.."

source experiments/scripts/dataset_table.sh "$@"

LOG_DIR="${FRCNN_ROOT_DIR:-.}/experiments/logs"
mkdir -p "${LOG_DIR}"
LOG="${LOG_DIR}/${NET}_${TRAIN_IMDB}_${EXTRA_ARGS_SLUG}_${NET}.txt.$(date +'%Y-%m-%d_%H-%M-%S')"
# Both streams go to the log; errors stay on stderr.
exec > >(tee -a "$LOG") 2> >(tee -a "$LOG" >&2)
echo "Logging output to $LOG"

TAG_ARGS=()
[[ -n "${EXTRA_ARGS_SLUG}" ]] && TAG_ARGS=(--tag "${EXTRA_ARGS_SLUG}")
WEIGHT_ARGS=()
[[ "${NET_IMAGENET}" == "yes" ]] && WEIGHT_ARGS=(--weight "data/imagenet_weights/${NET_BASE}.pth")

if [[ ! -f "${NET_FINAL}" ]]; then
  if (( NPROC > 1 )); then
    LAUNCH=(torchrun --standalone --nproc_per_node="${NPROC}")
  else
    LAUNCH=(python3)
  fi
  START=$SECONDS
  "${LAUNCH[@]}" ./tools/trainval_net.py "${WEIGHT_ARGS[@]}" \
    --imdb "${TRAIN_IMDB}" --imdbval "${TEST_IMDB}" --iters "${ITERS}" \
    --cfg "${CFG_FILE}" "${TAG_ARGS[@]}" --net "${NET_BASE}" "${DEVICE_ARGS[@]}" \
    --set "${ANCHOR_SET[@]}" "${EVAL_SET[@]}" TRAIN.STEPSIZE "${STEPSIZE}" "${EXTRA_ARGS[@]}"
  echo "Training took $((SECONDS - START)) s"
else
  echo "Final model ${NET_FINAL} exists: skipping training"
fi

./experiments/scripts/test_faster_rcnn.sh "$@"
