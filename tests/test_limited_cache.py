"""A limited evaluation set (``imdb.limit``) and the full set keep separate roidb caches: neither rebuilds the
other's, and no false "annotations changed" is reported (VOC and COCO readers)."""
from __future__ import annotations

import json
import os

import pytest

from faster_rcnn.datasets import pascal_voc
from faster_rcnn.datasets.factory import get_imdb

from test_datasets import write_voc

pytestmark = pytest.mark.usefixtures('tmp_data_dir')

IMAGES = {f'{i:06d}': (40, 30, [('car', (5, 5, 9 + i, 9), False)]) for i in range(1, 5)}


def _voc(root: str) -> str:
    write_voc(root, IMAGES, {'train': list(IMAGES)}, classes_txt=['car'])
    return f'voc_dir:{root}:train'


def test_limited_and_full_sets_keep_their_own_caches(tmp_path, monkeypatch, capsys):
    name = _voc(str(tmp_path / 'mine'))
    full = get_imdb(name)
    assert len(full.roidb) == 4
    part = get_imdb(name)
    part.limit(2)
    assert [e['boxes'][0, 2] for e in part.roidb] == [9.0, 10.0]  # 0-based x2 of the first two images
    assert part.cache_file('x') != full.cache_file('x')
    # Both caches are now valid: reading either again parses no annotation and reports nothing.
    monkeypatch.setattr(pascal_voc, 'parse_voc_annotation', lambda p: pytest.fail(f'cache not used for {p}'))
    capsys.readouterr()
    assert len(get_imdb(name).roidb) == 4
    again = get_imdb(name)
    again.limit(2)
    assert len(again.roidb) == 2
    out = capsys.readouterr()
    assert 'changed' not in out.out + out.err and 'rebuilding' not in out.out + out.err


def test_a_limited_coco_set_does_not_read_the_full_sets_cache(tmp_path):
    ann = {'images': [{'id': i, 'file_name': f'{i}.jpg', 'width': 40, 'height': 30} for i in (1, 2, 3)],
           'annotations': [{'id': i, 'image_id': i, 'category_id': 7, 'bbox': [2, 2, 10, 10], 'area': 100,
                            'iscrowd': 0} for i in (1, 2, 3)],
           'categories': [{'id': 7, 'name': 'car'}]}
    path = tmp_path / 'ann.json'
    path.write_text(json.dumps(ann))
    os.makedirs(tmp_path / 'images', exist_ok=True)
    name = f'coco_json:{path}:{tmp_path / "images"}'
    assert len(get_imdb(name).roidb) == 3
    part = get_imdb(name)
    part.limit(1)
    assert len(part.roidb) == 1 and part.num_images == 1
