# Sourced with the scripts' arguments (GPU_ID DATASET NET [KEY VALUE ...]) by train_faster_rcnn.sh,
# test_faster_rcnn.sh and quickstart.sh: DATASET -> imdbs, schedule, anchors, config, final snapshot path.
# Sets TRAIN_IMDB, TEST_IMDB, STEPSIZE, ITERS, ANCHOR_SET, EVAL_SET, CFG_FILE, NET_BASE, NET_IMAGENET, EXP_DIR,
# NET_FINAL, DEVICE_ARGS, NPROC, EXTRA_ARGS and EXTRA_ARGS_SLUG. The environment variable ITERS overrides the schedule's iteration
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
# A dataset's own training recipe (KEY VALUE pairs, before the user's, which override them).
RECIPE_SET=()
EVAL_SET=()  # --set pairs of the training run only (the periodic evaluation)
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
    DATASET_CFG="experiments/cfgs/shapes.yml"
    # mAP on the 100 test images 8 times during training (a curve in TensorBoard's _val run; seconds each).
    EVAL_SET=(TRAIN.EVAL_INTERVAL "$(( ITERS >= 8 ? ITERS / 8 : 1 ))") ;;
  vg)
    # bottom-up-attention's recipe: 380k iterations on 8 GPUs of one image each, LR 0.001 stepped at 350k. Counted
    # at a reference batch of 8, the schedule scales to any world size (1 GPU: 3.04M iterations at LR 1.25e-4).
    TRAIN_IMDB="vg_1600-400-20_train"; TEST_IMDB="vg_1600-400-20_val"
    STEPSIZE="[350000]"; ITERS=${ITERS:-380000}; ANCHORS="[4,8,16,32]"
    RECIPE_SET=(TRAIN.REFERENCE_BATCH 8 TRAIN.LEARNING_RATE 0.001 TRAIN.WEIGHT_DECAY 0.0005
                TRAIN.BATCH_SIZE 64 TRAIN.FG_FRACTION 0.5 TRAIN.RPN_BATCHSIZE 64 TRAIN.BG_THRESH_LO 0.0
                TRAIN.SCALES "[600]" TRAIN.MAX_SIZE 1000 TEST.SCALES "[600]" TEST.MAX_SIZE 1000
                TEST.MAX_PER_IMAGE 400) ;;
  shapes_attr)
    # shapes with colour and fill attributes: the quick-start network with an attribute head (docs/training.md).
    TRAIN_IMDB="shapes_attr_trainval"; TEST_IMDB="shapes_attr_test"
    STEPSIZE="[100000]"; ITERS=${ITERS:-${SHAPES_ITERS:-1600}}
    DATASET_CFG="experiments/cfgs/shapes.yml" ;;
  *)
    echo "error: DATASET ${DATASET}: unknown; use pascal_voc, pascal_voc_0712, coco, coco_2017, vg, shapes or shapes_attr" >&2
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
ANCHOR_SET+=("${RECIPE_SET[@]}")
if [[ ! -f "${CFG_FILE}" ]]; then
  echo "error: NET ${NET}: no config ${CFG_FILE}; add it (the network table names it: python3 tools/networks.py)" >&2
  exit 2
fi
# The experiment folder trainval_net.py writes to: the config's EXP_DIR, or the network's name where that names
# another network (shapes.yml says tiny) or none (nets/registry.py experiment_name).
EXP_DIR=$(python3 -c "import sys, yaml; from faster_rcnn.nets.registry import experiment_name; \
print(experiment_name(str(yaml.safe_load(open(sys.argv[1])).get('EXP_DIR', 'default')), sys.argv[2]))" \
  "${CFG_FILE}" "${NET_BASE}")
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
