"""faster_rcnn.analysis.tide against tidecv's numbers (fixtures in tests/data/tide) and hand-made cases."""
import json
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest

from faster_rcnn.analysis.tide import (BKG, BOTH, CLS, DUPE, ERROR_NAMES, LOC, MAIN_ERRORS, SPECIAL_ERRORS,
                                       TRUE_POSITIVE, UNEVALUATED, ImageDetections, ImageGroundTruth, tide)

FIXTURES = Path(__file__).resolve().parent / "data" / "tide"
CASES = ["hand", "random_int", "random_float"]
TOL = 1e-6  # dAP points; the arithmetic follows tidecv's, so the differences are rounding at most


def load_case(name: str) -> Tuple[dict, List[ImageGroundTruth], List[ImageDetections], List[np.ndarray],
                                  List[np.ndarray]]:
    """The fixture and our inputs, per image in the file's image order.

    Also returns, per image, the indices of its detections in the results list and of its gt in the
    annotation list (both keep their file order within the image, as tidecv does).
    """
    case = json.loads((FIXTURES / f"{name}.json").read_text())
    gt_rows = np.array(case["gt"], dtype=np.float64).reshape(-1, 7)
    det_rows = np.array(case["dets"], dtype=np.float64).reshape(-1, 7)

    def inclusive(xywh: np.ndarray) -> np.ndarray:
        return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:] - 1], axis=1)

    gts, dets, det_index, gt_index = [], [], [], []
    for image_id, _, _ in case["images"]:
        g = np.flatnonzero(gt_rows[:, 0] == image_id)
        d = np.flatnonzero(det_rows[:, 0] == image_id)
        gts.append(ImageGroundTruth(boxes=inclusive(gt_rows[g, 2:6]), labels=gt_rows[g, 1].astype(np.int64),
                                    ignore=gt_rows[g, 6] > 0))
        dets.append(ImageDetections(boxes=inclusive(det_rows[d, 3:7]), scores=det_rows[d, 2],
                                    labels=det_rows[d, 1].astype(np.int64)))
        det_index.append(d)
        gt_index.append(g)
    return case, gts, dets, det_index, gt_index


def breakdown_differences(ours: dict, theirs: dict) -> List[Tuple[str, float]]:
    diffs = [("ap50", abs(ours["ap50"] - theirs["ap50"]))]
    diffs += [(f"main.{k}", abs(ours["main"][k] - theirs["main"][k])) for k in MAIN_ERRORS]
    diffs += [(f"special.{k}", abs(ours["special"][k] - theirs["special"][k])) for k in SPECIAL_ERRORS]
    return diffs


@pytest.mark.parametrize("name", CASES)
def test_matches_tidecv(name):
    case, gts, dets, _, _ = load_case(name)
    assert case["tidecv_version"] == "1.0.1"
    result = tide(gts, dets, case["num_classes"], pos_thresh=case["pos_thresh"], bg_thresh=case["bg_thresh"],
                  max_dets=case["max_dets"])
    ours, theirs = result.to_json(), case["expected"]
    diffs = breakdown_differences(ours, theirs)
    assert sorted(ours["per_class"]) == sorted(theirs["per_class"])
    for k, cls_theirs in theirs["per_class"].items():
        diffs += [(f"class {k} {n}", d) for n, d in breakdown_differences(ours["per_class"][k], cls_theirs)]
    worst = max(diffs, key=lambda x: x[1])
    assert worst[1] <= TOL, worst
    assert result.counts == theirs["counts"]


@pytest.mark.parametrize("name", CASES)
def test_assignments_match_tidecv(name):
    case, gts, dets, det_index, gt_index = load_case(name)
    result = tide(gts, dets, case["num_classes"])
    exp = case["expected"]
    n_det, n_gt = len(case["dets"]), len(case["gt"])
    det_error, det_ignored, gt_missed = [None] * n_det, [None] * n_det, [None] * n_gt
    for img, d, g in zip(result.images, det_index, gt_index):
        for i, code, ign in zip(d, img.det_error, img.det_ignored):
            det_error[i], det_ignored[i] = ERROR_NAMES[int(code)], int(ign)
        for i, miss in zip(g, img.gt_missed):
            gt_missed[i] = int(miss)
    assert det_error == exp["det_error"]
    assert det_ignored == exp["det_ignored"]
    assert gt_missed == exp["gt_missed"]


def test_json_shape():
    case, gts, dets, _, _ = load_case("hand")
    out = tide(gts, dets, case["num_classes"]).to_json()
    assert set(out) == {"ap50", "main", "special", "per_class"}
    assert list(out["main"]) == ["cls", "loc", "both", "dupe", "bkg", "miss"]
    assert list(out["special"]) == ["false_pos", "false_neg"]
    assert all(isinstance(k, str) for k in out["per_class"])
    json.dumps(out)


# ------------------------------------------------------------------------------------------------
# Hand-computed cases. Boxes are inclusive x1 y1 x2 y2; A is 100 x 100 pixels.

A = [0, 0, 99, 99]


def one_image(gt_boxes, gt_labels, det_boxes, det_labels, scores, ignore=None):
    gt = ImageGroundTruth(boxes=np.array(gt_boxes, dtype=np.float64).reshape(-1, 4),
                          labels=np.array(gt_labels, dtype=np.int64),
                          ignore=np.zeros(len(gt_labels), bool) if ignore is None else np.array(ignore))
    det = ImageDetections(boxes=np.array(det_boxes, dtype=np.float64).reshape(-1, 4),
                          scores=np.array(scores, dtype=np.float64), labels=np.array(det_labels, dtype=np.int64))
    return [gt], [det]


def run(gts, dets, num_classes=4, **kw):
    return tide(gts, dets, num_classes, **kw)


def test_cls_error():
    # Right box, wrong class: AP 0 in both classes; the fix moves it to class 1 as a true positive and
    # class 2 (now empty) leaves the mean.
    r = run(*one_image([A], [1], [A], [2], [0.9]))
    assert r.images[0].det_error.tolist() == [CLS]
    assert r.images[0].det_gt.tolist() == [0]
    assert r.images[0].gt_missed.tolist() == [False]
    assert r.ap50 == 0.0
    assert r.main["cls"] == pytest.approx(100.0)
    assert r.counts == {"cls": 1, "loc": 0, "both": 0, "dupe": 0, "bkg": 0, "miss": 0}


def test_loc_error_iou_between_thresholds():
    # IoU 30 x 100 / (2 x 10000 - 3000) = 0.176, right class.
    r = run(*one_image([A], [1], [[70, 0, 169, 99]], [1], [0.9]))
    assert r.images[0].det_error.tolist() == [LOC]
    assert r.images[0].gt_missed.tolist() == [False]  # the Loc error can fix it, so it is no Miss
    assert r.main["loc"] == pytest.approx(100.0)
    assert r.main["miss"] == 0.0
    assert r.special["false_neg"] == pytest.approx(0.0)  # class left without gt: AP 0, still counted


def test_both_error():
    # Wrong class and IoU 0.176 with the only gt.
    r = run(*one_image([A], [1], [[70, 0, 169, 99]], [2], [0.9]))
    assert r.images[0].det_error.tolist() == [BOTH]
    assert r.images[0].gt_missed.tolist() == [True]
    assert r.main["both"] == 0.0  # removing it leaves class 1 at AP 0, class 2 drops out: mean 0


def test_duplicate():
    r = run(*one_image([A], [1], [A, [5, 5, 99, 99]], [1, 1], [0.9, 0.8]))
    assert r.images[0].det_error.tolist() == [TRUE_POSITIVE, DUPE]
    assert r.images[0].det_gt.tolist() == [0, 0]
    assert r.ap50 == pytest.approx(100.0)  # recall 1 is reached before the duplicate


def test_background_ranked_above_true_positive():
    # IoU 500 / 10000 = 0.05 with the gt. FP then TP: precision 0.5 at every recall, AP 50.
    r = run(*one_image([A], [1], [[0, 0, 99, 4], A], [1, 1], [0.9, 0.5]))
    assert r.images[0].det_error.tolist() == [BKG, TRUE_POSITIVE]
    assert r.ap50 == pytest.approx(50.0)
    assert r.main["bkg"] == pytest.approx(50.0)
    assert r.special["false_pos"] == pytest.approx(50.0)
    assert r.images[0].ap_lost > 0


def test_miss():
    # One of two gt found: precision 1 up to recall 0.5, so 51 of the 101 recall samples are 1.
    r = run(*one_image([A, [200, 200, 299, 299]], [1, 1], [A], [1], [0.9]))
    assert r.images[0].gt_missed.tolist() == [False, True]
    assert r.ap50 == pytest.approx(100 * 51 / 101)
    assert r.main["miss"] == pytest.approx(100 - 100 * 51 / 101)
    assert r.special["false_neg"] == pytest.approx(100 - 100 * 51 / 101)


def test_plus_one_width_and_inclusive_threshold():
    # Rows 0..49 of A: 5000 / 10000 = 0.5 exactly with +1 widths (0.44 without), and IoU >= 0.5 matches.
    r = run(*one_image([A], [1], [[0, 0, 99, 49]], [1], [0.9]))
    assert r.images[0].det_error.tolist() == [TRUE_POSITIVE]
    # The same box on an already matched gt: same-class IoU 0.5 is still "<= 0.5", so Loc, not Dupe.
    r = run(*one_image([A], [1], [A, [0, 0, 99, 49]], [1, 1], [0.9, 0.8]))
    assert r.images[0].det_error.tolist() == [TRUE_POSITIVE, LOC]


def test_background_threshold_edges():
    # Rows 0..9 of A: IoU 0.1 exactly. Same class: Loc (>= 0.1); other class: Bkg (<= 0.1).
    r = run(*one_image([A], [1], [[0, 0, 99, 9]], [1], [0.9]))
    assert r.images[0].det_error.tolist() == [LOC]
    r = run(*one_image([A], [1], [[0, 0, 99, 9]], [2], [0.9]))
    assert r.images[0].det_error.tolist() == [BKG]


def test_image_without_gt_is_background():
    gts, dets = one_image([], [], [A], [1], [0.9])
    r = run(gts, dets)
    assert r.images[0].det_error.tolist() == [BKG]
    assert r.ap50 == 0.0 and r.main["bkg"] == 0.0  # the only class drops out: mean of nothing


def test_crowd_region_ignores_detection():
    # A crowd box of class 1 over the right half; the detection inside it is left out of the AP.
    crowd = [100, 0, 299, 99]
    r = run(*one_image([A, crowd], [1, 1], [A, [150, 0, 249, 99]], [1, 1], [0.9, 0.95], ignore=[False, True]))
    assert r.images[0].det_error.tolist() == [TRUE_POSITIVE, BKG]
    assert r.images[0].det_ignored.tolist() == [False, True]
    assert r.ap50 == pytest.approx(100.0)
    assert r.images[0].gt_missed.tolist() == [False, False]
    # Another class is not ignored by it.
    r = run(*one_image([A, crowd], [1, 1], [A, [150, 0, 249, 99]], [1, 2], [0.9, 0.95], ignore=[False, True]))
    assert r.images[0].det_ignored.tolist() == [False, False]


def test_cls_and_loc_compete_for_one_gt():
    # The Loc error has the higher score, so it is the one a fix may turn into the gt's true
    # positive; fixing only Cls errors removes the Cls detection and gains nothing.
    r = run(*one_image([A], [1], [[70, 0, 169, 99], A], [1, 2], [0.9, 0.8]))
    assert r.images[0].det_error.tolist() == [LOC, CLS]
    assert r.main["cls"] == 0.0
    assert r.main["loc"] == pytest.approx(50.0)  # class 1 at 100, class 2 still one FP at 0


def test_max_dets_and_class_without_detections():
    boxes = [[300, 300, 309, 309]] * 101
    gts, dets = one_image([A, A], [1, 3], boxes, [1] * 101, np.linspace(1.0, 0.5, 101))
    r = run(gts, dets, max_dets=100)
    assert r.images[0].det_error[-1] == UNEVALUATED
    assert (r.images[0].det_error[:-1] == BKG).all()
    assert set(r.per_class) == {1, 3}
    assert r.counts["bkg"] == 100 and r.counts["miss"] == 2


def test_per_class_and_mean():
    # Two images; the mean of the per-class AP is the overall AP.
    g1, d1 = one_image([A], [1], [A], [1], [0.9])
    g2, d2 = one_image([A, [200, 0, 299, 99]], [2, 2], [A, [0, 0, 99, 4]], [2, 2], [0.3, 0.8])
    r = run(g1 + g2, d1 + d2)
    assert r.per_class[1].ap50 == pytest.approx(100.0)
    assert r.per_class[2].ap50 == pytest.approx(100 * (0.5 * 51) / 101)
    assert r.ap50 == pytest.approx((r.per_class[1].ap50 + r.per_class[2].ap50) / 2)
    assert r.per_class[1].main["bkg"] == 0.0 and r.per_class[2].main["bkg"] > 0
    # Image 2 holds every error: a background FP and a missed gt.
    assert r.images[0].ap_lost == 0.0 and r.images[1].ap_lost > 0


def test_empty_input():
    r = tide([], [], 3)
    assert r.ap50 == 0.0 and r.images == [] and r.per_class == {}


def test_rejects_bad_labels():
    with pytest.raises(ValueError):
        run(*one_image([A], [0], [A], [1], [0.9]))
