#!/usr/bin/env bash
# Test the final snapshot of train_faster_rcnn.sh (same arguments):
#   ./experiments/scripts/test_faster_rcnn.sh GPU_ID DATASET NET [KEY VALUE ...]
set -euo pipefail
cd "$(dirname "$0")/../.."

source experiments/scripts/dataset_table.sh "$@"

mkdir -p experiments/logs
LOG="experiments/logs/test_${NET}_${TRAIN_IMDB}_${EXTRA_ARGS_SLUG}.txt.$(date +'%Y-%m-%d_%H-%M-%S')"
exec &> >(tee -a "$LOG")
echo "Logging output to $LOG"

TAG_ARGS=()
[[ -n "${EXTRA_ARGS_SLUG}" ]] && TAG_ARGS=(--tag "${EXTRA_ARGS_SLUG}")

time python3 ./tools/test_net.py --imdb "${TEST_IMDB}" --model "${NET_FINAL}" --cfg "${CFG_FILE}" \
  "${TAG_ARGS[@]}" --net "${NET_BASE}" "${DEVICE_ARGS[@]}" --set "${ANCHOR_SET[@]}" "${EXTRA_ARGS[@]}"
