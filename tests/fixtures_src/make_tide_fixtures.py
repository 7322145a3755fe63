"""Regenerate tests/data/tide/*.json: small detection sets and what tidecv (TIDE's own package) makes of them.

tidecv is not a dependency of the project; it is only run here, in a separate virtualenv:

    python3 -m venv /tmp/tidevenv && /tmp/tidevenv/bin/pip install tidecv==1.0.1
    /tmp/tidevenv/bin/python tests/fixtures_src/make_tide_fixtures.py [--out tests/data/tide]

Cases (seeded, so the files are reproducible):
  hand.json          a hand-placed set: every error type once or more, IoUs exactly at 0.1 and 0.5,
                     an ignored detection whose Loc fix turns it into a true positive, Cls and Loc
                     errors competing for one gt, an image without gt, an image with only a crowd box,
                     a class with gt and no detections, a class with detections and no gt
  random_int.json    24 random images, integer boxes, scores with 2 decimals (many score ties), one
                     image with more than 100 detections
  random_float.json  36 random images, non-integer boxes and scores

Each file holds the inputs as compact COCO-like records (gt: image_id, category_id, x, y, w, h, iscrowd in
annotation order; dets: image_id, category_id, score, x, y, w, h in results order) and under "expected"
tidecv's numbers in box mode with its defaults (foreground IoU 0.5, background 0.1): ap50 (``run.ap``),
the main and special dAPs (``TIDE.get_main_errors`` / ``get_special_errors``), the error counts
(``run.count_errors``), each detection's error type and ignore flag and each gt's Miss flag (from
``run.errors`` and the detections' ``used`` field), and per class, for every class in tidecv's mean, the
class's AP in ``run.ap_data`` and in the data that ``run.fix_errors`` returns for each fix (dAP = fixed - AP,
main errors clamped at 0 as tidecv clamps the mean). tidecv's reports stop at the mean; its per-class APs are
those of the ClassedAPDataObject it averages.

tidecv reads COCO files with its own readers (``datasets.COCO`` / ``datasets.COCOResult``), which want a
``segmentation`` on every gt even in box mode: the box is given as a 4-point polygon.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

import tidecv
from tidecv import TIDE, datasets
from tidecv.errors.main_errors import (BackgroundError, BoxError, ClassError, DuplicateError, FalsePositiveError,
                                       MissedError, OtherError)

OUT = Path(__file__).resolve().parents[1] / "data" / "tide"
WIDTH, HEIGHT = 640, 480

MAIN = {ClassError: "cls", BoxError: "loc", OtherError: "both", DuplicateError: "dupe", BackgroundError: "bkg",
        MissedError: "miss"}
SPECIAL = {"FalsePos": "false_pos", "FalseNeg": "false_neg"}
SHORT = {cls.short_name: name for cls, name in MAIN.items()}


def hand_case() -> dict:
    """Hand-placed boxes (COCO x y w h, integers so every IoU is exact). Classes 1..5; 4 has no gt, 5 no dets."""
    gt = [  # image_id, category_id, x, y, w, h, iscrowd
        # image 1: a TP and its duplicate, a Cls, a Loc, a Bkg, a Both, a Loc at IoU exactly 0.5 on a used gt
        (1, 1, 10, 10, 100, 100, 0), (1, 2, 300, 100, 80, 120, 0), (1, 1, 150, 300, 60, 60, 0),
        # image 2: a class-5 gt nobody detects, a crowd box of class 3 holding an ignored Bkg, an ignored Loc
        # on an unused gt and a detection exactly half inside (not ignored: the test is strict)
        (2, 2, 50, 50, 100, 100, 0), (2, 5, 300, 300, 50, 50, 0), (2, 3, 400, 50, 200, 200, 1),
        (2, 3, 420, 60, 40, 40, 0), (2, 3, 430, 200, 60, 40, 0),
        # image 4: two gt and no detections
        (4, 1, 20, 20, 60, 60, 0), (4, 2, 200, 200, 60, 60, 0),
        # image 5: Loc and Cls errors competing for one gt, IoU exactly 0.1 (Loc) and 0.1 to another class
        # (Bkg), a TP at IoU exactly 0.5
        (5, 1, 100, 100, 100, 100, 0), (5, 2, 300, 300, 100, 100, 0),
        # image 6: only a crowd box
        (6, 2, 0, 0, 300, 300, 1),
    ]
    dets = [  # image_id, category_id, score, x, y, w, h
        (1, 1, 0.95, 12, 10, 100, 100), (1, 1, 0.80, 20, 20, 100, 100), (1, 3, 0.85, 300, 100, 80, 120),
        (1, 1, 0.70, 180, 330, 60, 60), (1, 2, 0.60, 500, 10, 50, 50), (1, 2, 0.50, 60, 10, 100, 100),
        (1, 1, 0.45, 10, 10, 100, 50),
        (2, 2, 0.90, 50, 50, 100, 100), (2, 3, 0.88, 420, 60, 40, 40), (2, 3, 0.75, 500, 150, 60, 60),
        (2, 3, 0.65, 440, 210, 60, 40), (2, 3, 0.55, 350, 60, 100, 40),
        (3, 1, 0.99, 10, 10, 50, 50), (3, 4, 0.30, 100, 100, 30, 30),
        (5, 1, 0.66, 150, 100, 100, 100), (5, 2, 0.40, 100, 100, 100, 100), (5, 1, 0.35, 100, 100, 100, 10),
        (5, 3, 0.20, 100, 100, 10, 100), (5, 2, 0.50, 300, 300, 100, 50),
        (6, 2, 0.70, 10, 10, 50, 50), (6, 1, 0.60, 10, 10, 50, 50),
    ]
    images = [(i, WIDTH, HEIGHT) for i in range(1, 7)]
    return {"num_classes": 6, "images": images, "gt": gt, "dets": dets}


def _jitter(rng: np.random.Generator, box: np.ndarray, scale: float) -> np.ndarray:
    x, y, w, h = box
    dx, dy = rng.normal(0, scale, 2) * (w, h)
    sw, sh = np.exp(rng.normal(0, scale, 2))
    return np.array([x + dx, y + dy, max(w * sw, 2.0), max(h * sh, 2.0)])


def random_case(seed: int, n_images: int, integer: bool) -> dict:
    """Random gt and detections around them. Classes 1..8: class 7 is only predicted, class 8 only annotated."""
    rng = np.random.default_rng(seed)
    gt, dets = [], []

    def coords(box):
        box = np.clip(box, [0, 0, 2, 2], [WIDTH - 2, HEIGHT - 2, WIDTH, HEIGHT])
        return [int(v) for v in np.round(box)] if integer else [round(float(v), 2) for v in box]

    def score():
        return round(float(rng.uniform(0.05, 1.0)), 2 if integer else 6)

    crowded = n_images // 2  # one image over 100 detections
    for img in range(1, n_images + 1):
        n_gt = 0 if img % 9 == 0 else int(rng.integers(1, 8))
        boxes = []
        for _ in range(n_gt):
            box = np.array([rng.uniform(0, 500), rng.uniform(0, 380), rng.uniform(12, 140), rng.uniform(12, 140)])
            cls = int(rng.choice([1, 2, 3, 4, 5, 6, 8]))
            crowd = int(rng.random() < 0.1)
            gt.append((img, cls, *coords(box), crowd))
            boxes.append((box, cls))
        for box, cls in boxes:
            for _ in range(int(rng.choice([0, 1, 1, 1, 2, 3]))):
                label = cls if rng.random() < 0.75 else int(rng.integers(1, 8))
                if label == 8:
                    label = int(rng.integers(1, 8))
                dets.append((img, label, score(), *coords(_jitter(rng, box, float(rng.choice([0.03, 0.1, 0.3]))))))
        for _ in range(110 if img == crowded else int(rng.integers(0, 4))):
            box = np.array([rng.uniform(0, 560), rng.uniform(0, 420), rng.uniform(8, 120), rng.uniform(8, 120)])
            dets.append((img, int(rng.integers(1, 8)), score(), *coords(box)))
    order = rng.permutation(len(dets))  # results files need not be grouped by image
    dets = [dets[i] for i in order]
    images = [(i, WIDTH, HEIGHT) for i in range(1, n_images + 1)]
    return {"num_classes": 9, "images": images, "gt": gt, "dets": dets}


def coco_files(case: dict, folder: Path) -> tuple[Path, Path]:
    """Write the case as a COCO instances file (box as polygon) and a COCO results file."""
    cats = sorted({g[1] for g in case["gt"]} | {d[1] for d in case["dets"]} | set(range(1, case["num_classes"])))
    anns = []
    for i, (img, cls, x, y, w, h, crowd) in enumerate(case["gt"]):
        anns.append({"id": i + 1, "image_id": img, "category_id": cls, "bbox": [x, y, w, h], "area": w * h,
                     "iscrowd": crowd, "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]]})
    instances = {"images": [{"id": i, "width": w, "height": h, "file_name": f"{i:06d}.jpg"}
                            for i, w, h in case["images"]],
                 "annotations": anns, "categories": [{"id": c, "name": f"class{c}"} for c in cats]}
    results = [{"image_id": img, "category_id": cls, "score": s, "bbox": [x, y, w, h]}
               for img, cls, s, x, y, w, h in case["dets"]]
    gt_path, det_path = folder / "instances.json", folder / "results.json"
    gt_path.write_text(json.dumps(instances))
    det_path.write_text(json.dumps(results))
    return gt_path, det_path


def run_tidecv(case: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        gt_path, det_path = coco_files(case, Path(tmp))
        gt, preds = datasets.COCO(str(gt_path)), datasets.COCOResult(str(det_path))
    tide = TIDE(pos_threshold=0.5, background_threshold=0.1, mode=TIDE.BOX)
    run = tide.evaluate(gt, preds, mode=TIDE.BOX)
    main = tide.get_main_errors()[preds.name]
    special = tide.get_special_errors()[preds.name]

    det_error = ["unevaluated"] * len(preds.annotations)
    det_ignored = [False] * len(preds.annotations)
    gt_missed = [False] * len(gt.annotations)
    for pred in preds.annotations:
        if "used" in pred:  # only evaluated detections have it
            det_ignored[pred["_id"]] = pred["used"] is None
            if pred["used"]:
                det_error[pred["_id"]] = "tp"
    for err in run.errors:
        if isinstance(err, MissedError):
            gt_missed[err.gt["_id"]] = True
        else:
            det_error[err.pred["_id"]] = SHORT[err.short_name]

    base = run.ap_data
    fixed = {name: run.fix_errors(lambda e, t=t: isinstance(e, t)) for t, name in MAIN.items()}
    fixed_special = {"false_pos": run.fix_errors(transform=FalsePositiveError.fix),
                     "false_neg": run.fix_errors(false_neg_dict=run.false_negatives)}
    per_class = {}
    for k, obj in sorted(base.objs.items()):
        if obj.is_empty():
            continue
        ap = obj.get_ap()
        per_class[str(k)] = {
            "ap50": ap,
            "main": {name: max(data.objs[k].get_ap() - ap, 0) for name, data in fixed.items()},
            "special": {name: data.objs[k].get_ap() - ap for name, data in fixed_special.items()},
        }
    return {
        "ap50": run.ap,
        "main": {SHORT[k]: v for k, v in main.items()},
        "special": {SPECIAL[k]: v for k, v in special.items()},
        "counts": {MAIN[t]: n for t, n in run.count_errors().items()},
        "per_class": per_class,
        "det_error": det_error,
        "det_ignored": det_ignored,
        "gt_missed": gt_missed,
    }


def check_coverage(name: str, case: dict, expected: dict) -> None:
    """Fail loudly if a case lost one of the situations it is there for."""
    for err in ("cls", "loc", "both", "dupe", "bkg", "miss"):
        assert expected["counts"][err] > 0, (name, err)
    assert any(expected["det_ignored"]), name
    assert any(g[6] for g in case["gt"]), name
    gt_images = {g[0] for g in case["gt"]}
    assert any(i not in gt_images for i, _, _ in case["images"]), name
    detected = {d[1] for d in case["dets"]}
    assert any(g[1] not in detected for g in case["gt"] if not g[6]), name


def dump(case: dict, expected: dict, path: Path) -> None:
    """JSON with one record per line: small, diffable, no pickles."""
    def records(rows):
        return "[\n" + ",\n".join("  " + json.dumps(list(r)) for r in rows) + "\n]"

    head = {"tidecv_version": tidecv.__version__, "mode": "bbox", "pos_thresh": 0.5, "bg_thresh": 0.1,
            "max_dets": 100, "num_classes": case["num_classes"]}
    parts = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in head.items()]
    parts += [f'"images": {records(case["images"])}', f'"gt": {records(case["gt"])}',
              f'"dets": {records(case["dets"])}']
    numbers = {k: v for k, v in expected.items() if k not in ("det_error", "det_ignored", "gt_missed")}
    flags = [f'"det_error": {json.dumps(expected["det_error"])}',
             f'"det_ignored": {json.dumps([int(v) for v in expected["det_ignored"]])}',
             f'"gt_missed": {json.dumps([int(v) for v in expected["gt_missed"]])}']
    parts.append('"expected": ' + json.dumps(numbers, indent=1)[:-2] + ",\n " + ",\n ".join(flags) + "\n}")
    path.write_text("{\n" + ",\n".join(parts) + "\n}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cases = {"hand": hand_case(), "random_int": random_case(7, 24, integer=True),
             "random_float": random_case(11, 36, integer=False)}
    for name, case in cases.items():
        expected = run_tidecv(case)
        check_coverage(name, case, expected)
        dump(case, expected, args.out / f"{name}.json")
        print(f"{name}: {len(case['dets'])} dets, {len(case['gt'])} gt, ap50 {expected['ap50']:.4f}, "
              f"main {expected['main']}, special {expected['special']}, counts {expected['counts']}")


if __name__ == "__main__":
    main()
