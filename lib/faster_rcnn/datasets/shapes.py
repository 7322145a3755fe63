"""``shapes``: a small generated detection set for the quick start and the tests.

Images of 160-256 px with 1-5 objects (circle, square, triangle pointing up) of 16-96 px in several colours
on noisy gradient or striped backgrounds, some overlapping; some images also hold a tiny object (< 16 px)
marked difficult. Everything derives from one seed, so a seed gives byte-identical files.

On first use ``ensure_shapes(root)`` writes a real VOC devkit (JPEGImages/, Annotations/*.xml with 1-based
coordinates, ImageSets/Main/{trainval,test}.txt) and COCO-format jsons (annotations/instances_<split>.json,
tiny objects as crowd regions so COCOeval ignores them as VOC ignores difficult ones). It writes to a
temporary folder and renames it, so an interrupted run never leaves a half-written set that looks complete.
"""
from __future__ import annotations

import json
import logging
import os
import os.path as osp
import shutil
import tempfile
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from ..paths import default_data_dir
from .registry import register

logger = logging.getLogger(__name__)

CLASSES = ('__background__', 'circle', 'square', 'triangle')

# BGR colours: saturated enough to stand out from the backgrounds, several per class on purpose.
_COLOURS = ((40, 40, 220), (40, 200, 40), (220, 60, 40), (30, 200, 230), (200, 40, 200), (220, 200, 40),
            (20, 120, 250), (240, 240, 240))

# Bump when the drawing changes, so sets on disk made by an older generator are regenerated.
GENERATOR_VERSION = 2


@dataclass(frozen=True)
class ShapesSpec:
    seed: int = 0
    num_trainval: int = 400
    num_test: int = 100
    min_size: int = 160
    max_size: int = 256
    min_obj: int = 16
    max_obj: int = 96
    max_objects: int = 5
    tiny_fraction: float = 0.2  # images that also get one difficult object smaller than 16 px
    version: int = GENERATOR_VERSION


def default_root(data_dir: str | None = None) -> str:
    """``<data_dir>/shapes`` (``data_dir`` default: FRCNN_DATA_DIR or the checkout's data/)."""
    return osp.join(data_dir or default_data_dir(), 'shapes')


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A noisy linear gradient between two muted colours, half of the time with faint stripes."""
    c0 = rng.uniform(60, 190, size=3)
    c1 = rng.uniform(60, 190, size=3)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = (np.cos(angle) * xx / w + np.sin(angle) * yy / h)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    im = c0[None, None, :] * (1 - t[..., None]) + c1[None, None, :] * t[..., None]
    if rng.random() < 0.5:
        period = rng.uniform(6, 20)
        stripes = 12.0 * np.sin(2 * np.pi * (xx * np.cos(angle + 1) + yy * np.sin(angle + 1)) / period)
        im += stripes[..., None]
    im += rng.normal(0, 8, size=im.shape)
    return im


def _covered(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over the smaller box: how much of the smaller shape another could hide (IoU would
    let a large shape hide most of a small one)."""
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return 0.0
    area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)  # noqa: E731
    return iw * ih / min(area(a), area(b))


def _draw(im: np.ndarray, cls: int, box: tuple[int, int, int, int], colour: tuple[int, ...]) -> None:
    """Draw class ``cls`` filling ``box`` (0-based inclusive) so that the box is the shape's tight box; ``colour``
    has one value per channel of ``im`` (BGR, or one for a mask)."""
    x1, y1, x2, y2 = box
    if cls == 1:  # circle: an ellipse with equal axes, centred in the (square) box
        c = ((x1 + x2) / 2.0, (y1 + y2) / 2.0)
        cv2.ellipse(im, (c, (x2 - x1 + 1.0, y2 - y1 + 1.0), 0.0), colour, -1, cv2.LINE_AA)
    elif cls == 2:
        cv2.rectangle(im, (x1, y1), (x2, y2), colour, -1)
    else:  # triangle pointing up
        pts = np.array([[x1, y2], [x2, y2], [(x1 + x2) // 2, y1]], dtype=np.int32)
        cv2.fillPoly(im, [pts], colour, cv2.LINE_AA)


def _place(rng: np.random.Generator, w: int, h: int, size: int, taken: list, max_cover: float):
    for _ in range(30):
        x1 = int(rng.integers(0, w - size + 1))
        y1 = int(rng.integers(0, h - size + 1))
        box = (x1, y1, x1 + size - 1, y1 + size - 1)
        if all(_covered(box, t) <= max_cover for t in taken):
            return box
    return None


def make_image(spec: ShapesSpec, split_id: int, i: int) -> tuple[np.ndarray, list[dict]]:
    """Image ``i`` of a split: (BGR uint8 (H, W, 3), objects [{'cls', 'box' 0-based, 'difficult'}])."""
    rng = np.random.default_rng([spec.seed, split_id, i, spec.version])
    h = int(rng.integers(spec.min_size, spec.max_size + 1))
    w = int(rng.integers(spec.min_size, spec.max_size + 1))
    im = _background(rng, h, w)
    objects: list[dict] = []
    taken: list = []
    n = int(rng.integers(1, spec.max_objects + 1))
    for _ in range(n):
        size = int(rng.integers(spec.min_obj, min(spec.max_obj, h, w) + 1))
        # Some overlap, never so much that a shape hides most of another.
        box = _place(rng, w, h, size, taken, max_cover=0.25)
        if box is None:
            continue
        cls = int(rng.integers(1, len(CLASSES)))
        colour = _COLOURS[int(rng.integers(len(_COLOURS)))]
        taken.append(box)
        objects.append({'cls': cls, 'box': box, 'difficult': False, 'colour': colour})
    if rng.random() < spec.tiny_fraction:
        size = int(rng.integers(6, spec.min_obj))
        box = _place(rng, w, h, size, taken, max_cover=0.0)
        if box is not None:
            objects.append({'cls': int(rng.integers(1, len(CLASSES))), 'box': box, 'difficult': True,
                            'colour': _COLOURS[int(rng.integers(len(_COLOURS)))]})
    for o in objects:
        _draw(im, o['cls'], o['box'], o['colour'])
    im = np.clip(im + rng.normal(0, 4, size=im.shape), 0, 255).astype(np.uint8)
    return im, objects


def _voc_xml(filename: str, w: int, h: int, objects: list[dict]) -> str:
    parts = ['<annotation>', '  <folder>shapes</folder>', f'  <filename>{filename}</filename>',
             f'  <size><width>{w}</width><height>{h}</height><depth>3</depth></size>']
    for o in objects:
        x1, y1, x2, y2 = (v + 1 for v in o['box'])  # VOC files are 1-based
        parts += ['  <object>', f'    <name>{CLASSES[o["cls"]]}</name>', '    <pose>Unspecified</pose>',
                  '    <truncated>0</truncated>', f'    <difficult>{int(o["difficult"])}</difficult>',
                  f'    <bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox>',
                  '  </object>']
    parts.append('</annotation>')
    return '\n'.join(parts) + '\n'


def _write_set(spec: ShapesSpec, out: str) -> None:
    for sub in ('JPEGImages', 'Annotations', osp.join('ImageSets', 'Main'), 'annotations'):
        os.makedirs(osp.join(out, sub), exist_ok=True)
    cats = [{'id': c, 'name': CLASSES[c], 'supercategory': 'shape'} for c in range(1, len(CLASSES))]
    image_id = 0
    ann_id = 0
    for split_id, (split, count) in enumerate((('trainval', spec.num_trainval), ('test', spec.num_test))):
        ids, images, anns = [], [], []
        for i in range(count):
            im, objects = make_image(spec, split_id, i)
            h, w = im.shape[:2]
            index = f'{split}_{i:06d}'
            ids.append(index)
            ok, buf = cv2.imencode('.jpg', im, [cv2.IMWRITE_JPEG_QUALITY, 90])
            assert ok, f'OpenCV could not encode the generated image {index}.jpg as JPEG'
            with open(osp.join(out, 'JPEGImages', index + '.jpg'), 'wb') as f:
                f.write(buf.tobytes())
            with open(osp.join(out, 'Annotations', index + '.xml'), 'w', encoding='utf-8') as f:
                f.write(_voc_xml(index + '.jpg', w, h, objects))
            image_id += 1
            images.append({'id': image_id, 'file_name': index + '.jpg', 'width': w, 'height': h})
            for o in objects:
                ann_id += 1
                x1, y1, x2, y2 = o['box']
                bw, bh = x2 - x1 + 1, y2 - y1 + 1
                anns.append({'id': ann_id, 'image_id': image_id, 'category_id': o['cls'],
                             'bbox': [x1, y1, bw, bh], 'area': bw * bh, 'iscrowd': int(o['difficult'])})
        with open(osp.join(out, 'ImageSets', 'Main', split + '.txt'), 'w', encoding='utf-8') as f:
            f.write('\n'.join(ids) + '\n')
        with open(osp.join(out, 'annotations', f'instances_{split}.json'), 'w', encoding='utf-8') as f:
            json.dump({'images': images, 'annotations': anns, 'categories': cats}, f)
    with open(osp.join(out, 'classes.txt'), 'w', encoding='utf-8') as f:
        f.write('\n'.join(CLASSES[1:]) + '\n')
    # Written last: its presence with the right content marks the set as complete.
    with open(osp.join(out, 'shapes_meta.json'), 'w', encoding='utf-8') as f:
        json.dump(asdict(spec), f, sort_keys=True)


def is_complete(root: str, spec: ShapesSpec) -> bool:
    """True when ``root`` holds a set written by this generator with ``spec``, with every file present."""
    meta = osp.join(root, 'shapes_meta.json')
    try:
        with open(meta, encoding='utf-8') as f:
            if json.load(f) != asdict(spec):
                return False
    except (OSError, ValueError):
        return False
    for split, count in (('trainval', spec.num_trainval), ('test', spec.num_test)):
        if not osp.exists(osp.join(root, 'annotations', f'instances_{split}.json')):
            return False
        for i in range(count):
            index = f'{split}_{i:06d}'
            if not (osp.exists(osp.join(root, 'JPEGImages', index + '.jpg'))
                    and osp.exists(osp.join(root, 'Annotations', index + '.xml'))):
                return False
    return True


def ensure_shapes(root: str | None = None, spec: ShapesSpec | None = None, data_dir: str | None = None) -> str:
    """Return ``root`` (default ``<data_dir>/shapes``) after generating the set there if it is missing,
    incomplete or made with another spec."""
    root = osp.abspath(root or default_root(data_dir))
    spec = spec or ShapesSpec()
    if is_complete(root, spec):
        return root
    parent = osp.dirname(root)
    os.makedirs(parent, exist_ok=True)
    logger.info(f'Generating the shapes set ({spec.num_trainval} trainval / {spec.num_test} test images, '
          f'seed {spec.seed}) in {root}')
    tmp = tempfile.mkdtemp(prefix='.shapes_tmp_', dir=parent)
    try:
        # mkdtemp makes a private folder; the set gets the permissions any new folder would get.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        _write_set(spec, tmp)
        if osp.exists(root):
            old = tempfile.mkdtemp(prefix='.shapes_old_', dir=parent)
            os.rename(root, osp.join(old, 'shapes'))
            os.rename(tmp, root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def shapes_voc(image_set: str, root: str | None = None, spec: ShapesSpec | None = None,
               data_dir: str | None = None):
    """``shapes_<image_set>``: the VOC reader over the generated set (07 metric, difficult ignored)."""
    from .pascal_voc import VocDataset
    root = ensure_shapes(root, spec, data_dir)
    return VocDataset(f'shapes_{image_set}', root, image_set, classes=CLASSES, use_07_metric=True,
                      data_dir=data_dir)


def shapes_subset_voc(image_set: str, classes: tuple[str, ...], root: str | None = None,
                      spec: ShapesSpec | None = None, data_dir: str | None = None):
    """``shapes_<class>_<class>_<image_set>``: the same images with only ``classes`` annotated (objects of the
    other classes are left out, as unlabelled objects): a detector to fine-tune to all of them."""
    from .pascal_voc import VocDataset
    root = ensure_shapes(root, spec, data_dir)
    name = '_'.join(('shapes',) + classes + (image_set,))
    return VocDataset(name, root, image_set, classes=('__background__',) + classes, use_07_metric=True,
                      ignored_classes=tuple(c for c in CLASSES[1:] if c not in classes), data_dir=data_dir)


def shapes_coco(image_set: str, root: str | None = None, spec: ShapesSpec | None = None,
                data_dir: str | None = None):
    """``shapes_coco_<image_set>``: the COCO reader over the same images."""
    from .coco import CocoDataset
    root = ensure_shapes(root, spec, data_dir)
    return CocoDataset(f'shapes_coco_{image_set}', osp.join(root, 'annotations', f'instances_{image_set}.json'),
                       osp.join(root, 'JPEGImages'), data_dir=data_dir)


def write_demo_images(out_dir: str, indices: tuple[int, ...] = (0, 1, 2, 3),
                      spec: ShapesSpec | None = None) -> list[str]:
    """Write test images ``indices`` of ``spec`` (default: the shapes_test set) as JPEGs named like the
    generated set (``test_<i>.jpg``): held-out pictures for tools/demo.py."""
    spec = spec or ShapesSpec()
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for i in indices:
        im, _ = make_image(spec, 1, i)
        path = osp.join(out_dir, f'test_{i:06d}.jpg')
        ok, buf = cv2.imencode('.jpg', im, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok, f'OpenCV could not encode the demo image {path} as JPEG'
        with open(path, 'wb') as f:
            f.write(buf.tobytes())
        paths.append(path)
    return paths


def _register_split(split: str) -> None:
    """The names of one split (a function, so that each builder holds its own ``split``)."""
    register(f'shapes_{split}', lambda d: shapes_voc(split, data_dir=d), CLASSES)
    register(f'shapes_coco_{split}', lambda d: shapes_coco(split, data_dir=d), CLASSES)
    register(f'shapes_circle_square_{split}',
             lambda d: shapes_subset_voc(split, ('circle', 'square'), data_dir=d), CLASSES[:3])


for _split in ('trainval', 'test'):
    _register_split(_split)
