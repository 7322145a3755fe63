# Sourced with the scripts' arguments (GPU_ID DATASET NET [KEY VALUE ...]) by train_faster_rcnn.sh,
# test_faster_rcnn.sh and quickstart.sh: DATASET -> imdbs, schedule, anchors, config, final snapshot path.
# Sets TRAIN_IMDB, TEST_IMDB, STEPSIZE, ITERS, ANCHOR_SET, CFG_FILE, NET_BASE, NET_IMAGENET, EXP_DIR, NET_FINAL,
# DEVICE_ARGS, NPROC, EXTRA_ARGS and EXTRA_ARGS_SLUG. The environment variable ITERS overrides the schedule's iteration
# count (e.g. ITERS=1190000 for the published COCO models); FRCNN_ROOT_DIR moves output/ (as the tools do).
if (( $# < 3 )); then
  echo "error: $(basename "$0"): expected GPU_ID DATASET NET [KEY VALUE ...], e.g. 0 pascal_voc vgg16; see its header" >&2
  exit 2
fi
GPU_ID=$1
DATASET=$2
NET=$3
EXTRA_ARGS=("${@:4}")
EXTRA_ARGS_SLUG=$(IFS=_; echo "${EXTRA_ARGS[*]:-}" | tr -d '[]",' | tr ' ' '_')
ANCHORS=""
DATASET_CFG=""
RATIOS="[0.5,1,2]"
case ${DATASET} in
  pascal_voc)
    TRAIN_IMDB="voc_2007_trainval"; TEST_IMDB="voc_2007_test"
    STEPSIZE="[50000]"; ITERS=${ITERS:-70000}; ANCHORS="[8,16,32]" ;;
  pascal_voc_0712)
    TRAIN_IMDB="voc_2007_trainval+voc_2012_trainval"; TEST_IMDB="voc_2007_test"
    STEPSIZE="[80000]"; ITERS=${ITERS:-110000}; ANCHORS="[8,16,32]" ;;
  coco)
    TRAIN_IMDB="coco_2014_train+coco_2014_valminusminival"; TEST_IMDB="coco_2014_minival"
    STEPSIZE="[350000]"; ITERS=${ITERS:-490000}; ANCHORS="[4,8,16,32]" ;;
  coco_2017)
    TRAIN_IMDB="coco_2017_train"; TEST_IMDB="coco_2017_val"
    STEPSIZE="[350000]"; ITERS=${ITERS:-490000}; ANCHORS="[4,8,16,32]" ;;
  shapes)
    # The quick start: its own config (network, anchors, cosine schedule) in experiments/cfgs/shapes.yml.
    TRAIN_IMDB="shapes_trainval"; TEST_IMDB="shapes_test"
    STEPSIZE="[100000]"; ITERS=${ITERS:-${SHAPES_ITERS:-1600}}
    DATASET_CFG="experiments/cfgs/shapes.yml" ;;
  *)
    echo "error: DATASET ${DATASET}: unknown; use pascal_voc, pascal_voc_0712, coco, coco_2017 or shapes" >&2
    exit 2 ;;
esac
# The network, its yml and whether it starts from ImageNet weights come from the network table
# (nets/registry.py); a variant such as res101-lg is the base network with its own yml.
read -r NET_BASE CFG_FILE NET_IMAGENET < <(python3 ./tools/networks.py --resolve "${NET}") || exit 2
if [[ -n "${DATASET_CFG}" ]]; then CFG_FILE=${DATASET_CFG}; fi
ANCHOR_SET=()
if [[ -n "${ANCHORS}" ]]; then
  ANCHOR_SET=(ANCHOR_SCALES "${ANCHORS}" ANCHOR_RATIOS "${RATIOS}")
fi
if [[ ! -f "${CFG_FILE}" ]]; then
  echo "error: NET ${NET}: no config ${CFG_FILE}; add it (the network table names it: python3 tools/networks.py)" >&2
  exit 2
fi
EXP_DIR=$(python3 -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['EXP_DIR'])" "${CFG_FILE}")
PREFIX=$(python3 -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['TRAIN']['SNAPSHOT_PREFIX'])" "${CFG_FILE}")
TAG=${EXTRA_ARGS_SLUG:-default}
# GPU_ID: a CUDA device list ("0", "0,1": one process per GPU through torchrun) or "cpu".
if [[ "${GPU_ID}" == "cpu" ]]; then
  DEVICE_ARGS=(--device cpu); NPROC=1
else
  export CUDA_VISIBLE_DEVICES=${GPU_ID}
  DEVICE_ARGS=()
  IFS=',' read -r -a _gpus <<< "${GPU_ID}"; NPROC=${#_gpus[@]}
fi
# With several GPUs the run trains the schedule scaled to its global batch (tools/schedule.py prints it), so its
# final snapshot is at the scaled iteration.
FINAL_ITER=$(python3 ./tools/schedule.py --iters "${ITERS}" --world-size "${NPROC}" --final-iter --cfg "${CFG_FILE}" \
  --set "${ANCHOR_SET[@]}" TRAIN.STEPSIZE "${STEPSIZE}" "${EXTRA_ARGS[@]}") || exit 2
NET_FINAL="${FRCNN_ROOT_DIR:-.}/output/${EXP_DIR}/${TRAIN_IMDB}/${TAG}/${PREFIX}_iter_${FINAL_ITER}.pth"
