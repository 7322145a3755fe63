"""``shapes_attr``: the shapes set with attributes, to train and test an attribute head in minutes on a CPU.

The same kind of images as ``shapes`` (circles, squares, triangles on noisy backgrounds, tiny difficult objects),
each object with two attributes: its colour (one of five named colours) and its fill (``solid``, or ``outline``: a
band a tenth of its size wide, the background showing inside). The annotations are VOC XML with BUTD's
``<attribute>`` elements; the reader gives ``gt_attributes`` (G, 16) and ``imdb.attributes``.
It lives in ``<data_dir>/shapes_attr`` and is generated on first use, atomically, like ``shapes``.
"""
from __future__ import annotations

import json
import logging
import os
import os.path as osp
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict

import cv2
import numpy as np

from ..paths import default_data_dir
from .imdb import imdb
from .registry import register
from .shapes import CLASSES, ShapesSpec, _background, _draw, _place

logger = logging.getLogger(__name__)

# BGR values of the named colours: far apart, so a colour is decidable from the pixels.
COLOURS = {'red': (40, 40, 220), 'green': (40, 200, 40), 'blue': (220, 60, 40), 'yellow': (30, 220, 230),
           'purple': (200, 40, 200)}
FILLS = ('solid', 'outline')
ATTRIBUTES = ('__no_attribute__',) + tuple(COLOURS) + FILLS
# Bump when the drawing changes, so sets on disk made by an older generator are regenerated.
ATTR_GENERATOR_VERSION = 1


def default_root(data_dir: str | None = None) -> str:
    """``<data_dir>/shapes_attr``."""
    return osp.join(data_dir or default_data_dir(), 'shapes_attr')


def _shape_mask(h: int, w: int, cls: int, box: tuple[int, int, int, int], fill: str) -> np.ndarray:
    """(H, W) bool: the pixels of the shape; an outline keeps the band of width max(2, size / 10) inside its edge,
    so the box stays the shape's tight box."""
    mask = np.zeros((h, w), np.uint8)
    _draw(mask, cls, box, (255,))
    solid = mask > 127
    if fill == 'solid':
        return solid
    width = max(2, (box[2] - box[0] + 1) // 10)
    inner = cv2.erode(solid.astype(np.uint8), np.ones((2 * width + 1, 2 * width + 1), np.uint8)) > 0
    return solid & ~inner


def make_image(spec: ShapesSpec, split_id: int, i: int) -> tuple[np.ndarray, list[dict]]:
    """Image ``i`` of a split: (BGR uint8 (H, W, 3), objects [{'cls', 'box' 0-based, 'difficult', 'attributes'}])."""
    rng = np.random.default_rng([spec.seed, split_id, i, spec.version, ATTR_GENERATOR_VERSION, 0xA77])
    h = int(rng.integers(spec.min_size, spec.max_size + 1))
    w = int(rng.integers(spec.min_size, spec.max_size + 1))
    im = _background(rng, h, w)
    objects: list[dict] = []
    taken: list = []
    for _ in range(int(rng.integers(1, spec.max_objects + 1))):
        size = int(rng.integers(spec.min_obj, min(spec.max_obj, h, w) + 1))
        box = _place(rng, w, h, size, taken, max_cover=0.25)
        if box is None:
            continue
        taken.append(box)
        objects.append({'cls': int(rng.integers(1, len(CLASSES))), 'box': box, 'difficult': False})
    if rng.random() < spec.tiny_fraction:
        box = _place(rng, w, h, int(rng.integers(6, spec.min_obj)), taken, max_cover=0.0)
        if box is not None:
            objects.append({'cls': int(rng.integers(1, len(CLASSES))), 'box': box, 'difficult': True})
    names = list(COLOURS)
    for o in objects:
        colour = names[int(rng.integers(len(names)))]
        fill = 'solid' if o['difficult'] else FILLS[int(rng.integers(len(FILLS)))]
        o['attributes'] = (colour, fill)
        im[_shape_mask(h, w, o['cls'], o['box'], fill)] = COLOURS[colour]
    im = np.clip(im + rng.normal(0, 4, size=im.shape), 0, 255).astype(np.uint8)
    return im, objects


def _voc_xml(filename: str, w: int, h: int, objects: list[dict]) -> str:
    parts = ['<annotation>', '  <folder>shapes_attr</folder>', f'  <filename>{filename}</filename>',
             f'  <size><width>{w}</width><height>{h}</height><depth>3</depth></size>']
    for o in objects:
        x1, y1, x2, y2 = (v + 1 for v in o['box'])  # VOC files are 1-based
        parts += ['  <object>', f'    <name>{CLASSES[o["cls"]]}</name>',
                  f'    <difficult>{int(o["difficult"])}</difficult>',
                  f'    <bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox>']
        parts += [f'    <attribute>{a}</attribute>' for a in o['attributes']]
        parts.append('  </object>')
    parts.append('</annotation>')
    return '\n'.join(parts) + '\n'


def _meta(spec: ShapesSpec) -> dict:
    return {**asdict(spec), 'attributes': list(ATTRIBUTES), 'attr_version': ATTR_GENERATOR_VERSION}


def _write_set(spec: ShapesSpec, out: str) -> None:
    for sub in ('JPEGImages', 'Annotations', osp.join('ImageSets', 'Main')):
        os.makedirs(osp.join(out, sub), exist_ok=True)
    for split_id, (split, count) in enumerate((('trainval', spec.num_trainval), ('test', spec.num_test))):
        ids = []
        for i in range(count):
            im, objects = make_image(spec, split_id, i)
            index = f'{split}_{i:06d}'
            ids.append(index)
            ok, buf = cv2.imencode('.jpg', im, [cv2.IMWRITE_JPEG_QUALITY, 90])
            assert ok, f'OpenCV could not encode the generated image {index}.jpg as JPEG'
            with open(osp.join(out, 'JPEGImages', index + '.jpg'), 'wb') as f:
                f.write(buf.tobytes())
            with open(osp.join(out, 'Annotations', index + '.xml'), 'w', encoding='utf-8') as f:
                f.write(_voc_xml(index + '.jpg', im.shape[1], im.shape[0], objects))
        with open(osp.join(out, 'ImageSets', 'Main', split + '.txt'), 'w', encoding='utf-8') as f:
            f.write('\n'.join(ids) + '\n')
    with open(osp.join(out, 'attributes.txt'), 'w', encoding='utf-8') as f:
        f.write('\n'.join(ATTRIBUTES[1:]) + '\n')
    # Written last: its presence with the right content marks the set as complete.
    with open(osp.join(out, 'shapes_meta.json'), 'w', encoding='utf-8') as f:
        json.dump(_meta(spec), f, sort_keys=True)


def is_complete(root: str, spec: ShapesSpec) -> bool:
    """True when ``root`` holds a set written by this generator with ``spec``, with every file present."""
    try:
        with open(osp.join(root, 'shapes_meta.json'), encoding='utf-8') as f:
            if json.load(f) != _meta(spec):
                return False
    except (OSError, ValueError):
        return False
    return all(osp.exists(osp.join(root, sub, f'{split}_{i:06d}{ext}'))
               for split, count in (('trainval', spec.num_trainval), ('test', spec.num_test)) for i in range(count)
               for sub, ext in (('JPEGImages', '.jpg'), ('Annotations', '.xml')))


def ensure_shapes_attr(root: str | None = None, spec: ShapesSpec | None = None, data_dir: str | None = None) -> str:
    """Return ``root`` (default ``<data_dir>/shapes_attr``) after generating the set there if it is missing,
    incomplete or made with another spec."""
    root = osp.abspath(root or default_root(data_dir))
    spec = spec or ShapesSpec()
    if is_complete(root, spec):
        return root
    parent = osp.dirname(root)
    os.makedirs(parent, exist_ok=True)
    logger.info(f'Generating the shapes_attr set ({spec.num_trainval} trainval / {spec.num_test} test images, '
                f'seed {spec.seed}) in {root}')
    tmp = tempfile.mkdtemp(prefix='.shapes_attr_tmp_', dir=parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        _write_set(spec, tmp)
        if osp.exists(root):
            old = tempfile.mkdtemp(prefix='.shapes_attr_old_', dir=parent)
            os.rename(root, osp.join(old, 'shapes_attr'))
            os.rename(tmp, root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def shapes_attr_voc(image_set: str, root: str | None = None, spec: ShapesSpec | None = None,
                    data_dir: str | None = None) -> imdb:
    """``shapes_attr_<image_set>``: the VOC reader with attributes over the generated set (07 metric)."""
    from .pascal_voc import VocDataset
    root = ensure_shapes_attr(root, spec, data_dir)
    return VocDataset(f'shapes_attr_{image_set}', root, image_set, classes=CLASSES, use_07_metric=True,
                      data_dir=data_dir, attributes=ATTRIBUTES)


def _builder(image_set: str) -> Callable[[str | None], imdb]:
    """data_dir -> ``shapes_attr_<image_set>`` (the registry's builder of one split)."""
    def build(data_dir: str | None) -> imdb:
        return shapes_attr_voc(image_set, data_dir=data_dir)
    return build


for _split in ('trainval', 'test'):
    register(f'shapes_attr_{_split}', _builder(_split), CLASSES)
