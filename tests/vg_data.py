"""A small Visual Genome folder written by the tests: BUTD's layout, VG's JSON, tiny images.

val (3 images, 60x40 each):
  image 1 (VG_100K/1.jpg): 11 "White Dog." (5, 5, 20, 10) + attributes "gray", "red and blue"
                           12 "stopsign" (50, 30, 20, 20), out on the right and bottom, attributes "grey", "gray",
                              "black and white"
                           13 "unicorn" (out of the vocabulary)
                           14 "car" (100, 5, 5, 5), wholly outside the image
                           15 "shirt" (0, 0, 10, 10) with 17 attributes in the vocabulary
  image 2 (VG_100K_2/2.jpg): only a "unicorn": the image is dropped
  image 3 (VG_100K/3.jpg): 31 "small car" (10, 10, 30, 20) ("small" is split off, not in the attribute vocabulary)
train: image 3, then 999 ids without objects, then image 1 (so minitrain, its first 1000 lines, holds image 3 only).
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

OBJECTS_VOCAB = ['dog', 'stop sign,stopsign', 'shirt', 'car']
MANY = [f'attr{k}' for k in range(15)]
ATTRIBUTES_VOCAB = ['white', 'gray,grey', 'red', 'blue', 'black and white', *MANY]
# Vocabulary indices (line + 1).
DOG, STOP_SIGN, SHIRT, CAR = 1, 2, 3, 4
WHITE, GRAY, RED, BLUE, BLACK_AND_WHITE = 1, 2, 3, 4, 5


def obj(object_id: int, name: str, x: float, y: float, w: float, h: float, **extra) -> dict:
    return {'object_id': object_id, 'names': [name], 'x': x, 'y': y, 'w': w, 'h': h, 'synsets': [], **extra}


def default_objects() -> dict[int, list[dict]]:
    return {
        1: [obj(11, 'White Dog.', 5, 5, 20, 10), obj(12, 'stopsign', 50, 30, 20, 20), obj(13, 'unicorn', 1, 1, 5, 5),
            obj(14, 'car', 100, 5, 5, 5), obj(15, 'shirt', 0, 0, 10, 10)],
        2: [obj(21, 'unicorn', 1, 1, 5, 5)],
        3: [obj(31, 'small car', 10, 10, 30, 20)],
    }


def default_attributes() -> dict[int, list[dict]]:
    return {
        1: [{'object_id': 11, 'names': ['dog'], 'attributes': ['gray', 'red and blue']},
            {'object_id': 12, 'names': ['stopsign'], 'attributes': ['grey', 'gray', 'black and white']},
            {'object_id': 13, 'names': ['unicorn']},  # no "attributes" key: VG has such entries
            {'object_id': 15, 'names': ['shirt'], 'attributes': ['white', 'red', *MANY]}],
        3: [{'object_id': 31, 'names': ['car'], 'attributes': ['Red.']}],
    }


def write_vg(data_dir: Path, objects: dict[int, list[dict]] | None = None,
             attributes: dict[int, list[dict]] | None = None) -> Path:
    """Write the set under ``data_dir/vg``; returns that folder."""
    root = data_dir / 'vg'
    vocab = root / 'genome' / '1600-400-20'
    vocab.mkdir(parents=True, exist_ok=True)
    # Like BUTD's files: no trailing newline.
    (vocab / 'objects_vocab.txt').write_text('\n'.join(OBJECTS_VOCAB))
    (vocab / 'attributes_vocab.txt').write_text('\n'.join(ATTRIBUTES_VOCAB))
    (vocab / 'relations_vocab.txt').write_text('on\nhas')
    folders = {1: 'VG_100K', 2: 'VG_100K_2', 3: 'VG_100K'}
    line = lambda i: f'{folders.get(i, "VG_100K")}/{i}.jpg xml/{i}.xml'  # noqa: E731
    (root / 'genome' / 'val.txt').write_text('\n'.join(line(i) for i in (1, 2, 3)) + '\n')
    (root / 'genome' / 'test.txt').write_text(line(3) + '\n')
    (root / 'genome' / 'train.txt').write_text('\n'.join(line(i) for i in [3, *range(1000, 1999), 1]) + '\n')
    objects = default_objects() if objects is None else objects
    attributes = default_attributes() if attributes is None else attributes
    (root / 'objects.json').write_text(json.dumps([{'image_id': i, 'objects': o} for i, o in objects.items()]))
    (root / 'attributes.json').write_text(json.dumps([{'image_id': i, 'attributes': a}
                                                      for i, a in attributes.items()]))
    (root / 'image_data.json').write_text(json.dumps([{'image_id': i, 'width': 60, 'height': 40,
                                                       'url': f'https://cs.stanford.edu/people/rak248/'
                                                              f'{folders[i]}/{i}.jpg'} for i in folders]))
    rng = np.random.default_rng(0)
    for i, folder in folders.items():
        (root / folder).mkdir(exist_ok=True)
        cv2.imwrite(str(root / folder / f'{i}.jpg'), rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))
    return root
