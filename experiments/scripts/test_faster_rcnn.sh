#!/usr/bin/env bash
# Test the final snapshot of train_faster_rcnn.sh (same arguments):
#   ./experiments/scripts/test_faster_rcnn.sh GPU_ID DATASET NET [KEY VALUE ...]
#   GPU_ID 0,1,2,3 tests on four GPUs (torchrun), the images sharded over them.
set -euo pipefail
cd "$(dirname "$0")/../.."

source experiments/scripts/dataset_table.sh "$@"

LOG_DIR="${FRCNN_ROOT_DIR:-.}/experiments/logs"
mkdir -p "${LOG_DIR}"
LOG="${LOG_DIR}/test_${NET}_${TRAIN_IMDB}_${EXTRA_ARGS_SLUG}.txt.$(date +'%Y-%m-%d_%H-%M-%S')"
# Both streams go to the log; errors stay on stderr.
exec > >(tee -a "$LOG") 2> >(tee -a "$LOG" >&2)
echo "Logging output to $LOG"

TAG_ARGS=()
[[ -n "${EXTRA_ARGS_SLUG}" ]] && TAG_ARGS=(--tag "${EXTRA_ARGS_SLUG}")

# Trained on another number of GPUs: the final snapshot is at that world size's scaled iteration.
if [[ ! -f "${NET_FINAL}" ]]; then
  for _it in $(python3 ./tools/schedule.py --iters "${ITERS}" --world-size 1,2,3,4,6,8,16 --final-iter \
      --cfg "${CFG_FILE}" --set "${ANCHOR_SET[@]}" TRAIN.STEPSIZE "${STEPSIZE}" "${EXTRA_ARGS[@]}"); do
    _candidate="${NET_FINAL%_iter_*}_iter_${_it}.pth"
    if [[ -f "${_candidate}" ]]; then NET_FINAL="${_candidate}"; break; fi
  done
fi
# A model file that records its config (every snapshot and converted model of this project) needs no --cfg;
# older snapshots take the experiment's config file.
CFG_ARGS=(--cfg "${CFG_FILE}")
if [[ -f "${NET_FINAL}" ]] && python3 ./tools/describe_model.py --has-config "${NET_FINAL}"; then
  CFG_ARGS=()
fi
# Several GPUs (GPU_ID 0,1,...): one process each through torchrun, the test images sharded over them.
if (( NPROC > 1 )); then
  LAUNCH=(torchrun --standalone --nproc_per_node="${NPROC}")
else
  LAUNCH=(python3)
fi
START=$SECONDS
"${LAUNCH[@]}" ./tools/test_net.py --imdb "${TEST_IMDB}" --model "${NET_FINAL}" "${CFG_ARGS[@]}" \
  "${TAG_ARGS[@]}" --net "${NET_BASE}" "${DEVICE_ARGS[@]}" --set "${ANCHOR_SET[@]}" "${EXTRA_ARGS[@]}"
echo "Testing took $((SECONDS - START)) s"
