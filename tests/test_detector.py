"""``faster_rcnn.Detector``: the same detections as test_net and demo, batches equal to single images, every
accepted input type, one-line refusals, and detectors of different files side by side in one process."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from faster_rcnn import Detector, Detections
from faster_rcnn.errors import DataError, UsageError
from faster_rcnn.model_file import save_atomic
from faster_rcnn.utils.detections_file import read_detections

from tool_runs import REPO, _dirs, _env, run_tool


def _images(root: Path, n: int, split: str = 'test') -> list[Path]:
    found = sorted((root / 'data' / 'shapes' / 'JPEGImages').glob(f'{split}_*.jpg'))
    assert len(found) >= n
    return found[:n]


def _same(a: Detections, b: Detections) -> bool:
    return (np.array_equal(a.boxes, b.boxes) and np.array_equal(a.scores, b.scores)
            and np.array_equal(a.labels, b.labels))


@pytest.fixture(scope='module')
def detector(trained) -> Detector:
    return Detector.load(str(trained))


@pytest.mark.slow
def test_detector_equals_test_net_on_the_test_set(root, trained, detector):
    run_tool(['tools/test_net.py', '--imdb', 'shapes_test', '--model', str(trained), '--device', 'cpu',
              '--workers', '0', '--tag', 'detector_api', '--set', *_dirs(root)])
    det_file = root / 'output' / 'tiny' / 'shapes_test' / 'detector_api' / trained.stem / 'detections.pkl'
    all_boxes = read_detections(str(det_file))
    paths = sorted((root / 'data' / 'shapes' / 'JPEGImages').glob('test_*.jpg'))
    assert len(paths) == len(all_boxes[1]) == 100
    found = detector([str(p) for p in paths])
    for i, dets in enumerate(found):
        per_class = dets.per_class()
        for j in range(1, len(all_boxes)):
            # Bit for bit: the same functions on the same values.
            np.testing.assert_array_equal(per_class[j], all_boxes[j][i])
    assert sum(len(d) for d in found) > 0


def test_detector_equals_the_demo_json(root, trained, detector, tmp_path):
    images = _images(root, 2)
    src = tmp_path / 'in'
    src.mkdir()
    for p in images:
        (src / p.name).write_bytes(p.read_bytes())
    out = tmp_path / 'demo.json'
    run_tool(['tools/demo.py', '--model', str(trained), '--images', str(src), '--output', str(tmp_path / 'out'),
              '--thresh', '0.05', '--json', str(out), '--device', 'cpu'])
    written = json.loads(out.read_text())
    expected = []
    thresh = Detector.load(str(trained), score_thresh=0.05)
    for i, p in enumerate(sorted(src.glob('*.jpg'))):
        expected += thresh(str(p)).to_coco(i, file_name=str(p))
    assert written == expected and len(written) > 0
    assert min(r['score'] for r in written) >= 0.05  # only what --thresh lets through


def test_a_batch_equals_one_image_at_a_time(root, trained):
    one = Detector.load(str(trained), batch_size=1)
    three = Detector.load(str(trained), batch_size=3)
    ims = [cv2.imread(str(p)) for p in _images(root, 5) + _images(root, 2, 'trainval')]
    assert len({im.shape for im in ims}) > 1  # different sizes: the batch is padded
    alone = [one(im) for im in ims]
    batched = three(ims)
    assert len(batched) == len(ims)
    for a, b in zip(alone, batched):
        assert len(a) == len(b)
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
        np.testing.assert_array_equal(a.labels, b.labels)


def test_every_accepted_input_gives_the_same_detections(root, detector):
    from PIL import Image
    path = _images(root, 1)[0]
    bgr = cv2.imread(str(path))
    ref = detector(bgr)
    assert len(ref) > 0 and ref.boxes.dtype == np.float32 and ref.labels.dtype == np.int64
    assert ref.labels.min() >= 1 and ref.class_names[0] in detector.classes[1:]
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    # Each type's own order by default: arrays BGR (OpenCV), tensors and PIL images RGB (torchvision, PIL);
    # an explicit channel_order overrides it for arrays and tensors.
    same = [detector(str(path)), detector(path), detector(rgb, channel_order='RGB'),
            detector(Image.fromarray(rgb)), detector(torch.from_numpy(rgb)),
            detector(torch.from_numpy(rgb).permute(2, 0, 1)),
            detector(torch.from_numpy(bgr), channel_order='BGR'),
            detector(torch.from_numpy(bgr).permute(2, 0, 1), channel_order='BGR'),
            detector(bgr, channel_order='BGR'), detector([rgb], channel_order='RGB')[0],
            detector([bgr, torch.from_numpy(rgb), Image.fromarray(rgb)])[2],
            detector(np.concatenate([bgr, np.full(bgr.shape[:2] + (1,), 255, np.uint8)], axis=2))]
    for i, d in enumerate(same):
        assert _same(d, ref), i
    # The wrong order is a different image: the defaults matter.
    assert not _same(detector(torch.from_numpy(bgr)), ref)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    assert _same(detector(gray), detector(np.repeat(gray[:, :, None], 3, axis=2)))
    assert _same(detector(Image.fromarray(gray)), detector(gray))


@pytest.mark.filterwarnings('ignore:The image decoding:DeprecationWarning')
def test_torchvision_tensors_are_rgb_and_equal_the_opencv_array(root, detector, tmp_path):
    from torchvision.io import decode_image, read_image
    png = tmp_path / 'im.png'  # lossless: OpenCV and torchvision decode the same pixels
    cv2.imwrite(str(png), cv2.imread(str(_images(root, 1)[0])))
    bgr = cv2.imread(str(png))
    ref = detector(bgr)
    tensor = read_image(str(png))
    assert tensor.shape == (3,) + bgr.shape[:2] and torch.equal(tensor[0], torch.from_numpy(bgr[:, :, 2]))
    assert _same(detector(tensor), ref) and _same(detector(decode_image(str(png))), ref)
    assert _same(detector(png), ref)


def test_draw_takes_every_input_and_returns_bgr(root, detector, tmp_path):
    from PIL import Image
    png = tmp_path / 'im.png'
    cv2.imwrite(str(png), cv2.imread(str(_images(root, 1)[0])))
    bgr = cv2.imread(str(png))
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    dets = detector(bgr)
    ref = dets.draw(bgr, score=0.1)
    assert ref.dtype == np.uint8 and ref.shape == bgr.shape and not np.array_equal(ref, bgr)
    assert np.array_equal(bgr, cv2.imread(str(png)))  # the input is left alone
    pil = Image.open(png)
    read_only = np.asarray(Image.open(png))  # PIL's array view cannot be written to
    assert not read_only.flags.writeable
    tensor = torch.from_numpy(rgb).permute(2, 0, 1)
    for i, image in enumerate([str(png), png, pil, tensor, torch.from_numpy(rgb)]):
        assert np.array_equal(dets.draw(image, score=0.1), ref), i
    assert np.array_equal(dets.draw(read_only, score=0.1, channel_order='RGB'), ref)
    assert np.array_equal(dets.draw(rgb, score=0.1, channel_order='RGB'), ref)
    assert np.array_equal(dets.draw(torch.from_numpy(bgr), score=0.1, channel_order='BGR'), ref)
    with pytest.raises(UsageError, match=r"^channel_order='bgr'"):
        dets.draw(bgr, channel_order='bgr')
    with pytest.raises(UsageError, match=r"^channel_order='rgb'"):
        detector(bgr, channel_order='rgb')


@pytest.mark.parametrize('device, words', [
    ('tpu', ["device='tpu'", 'not a device name', 'available on this machine: cpu']),
    ('cuda', ["device='cuda'", 'CUDA is not available', 'available on this machine: cpu']),
    ('cuda:1', ["device='cuda:1'", 'CUDA is not available']),
    ('meta', ["device='meta'", 'not available', 'available on this machine: cpu']),
])
def test_a_device_this_machine_lacks_is_one_usage_error(trained, device, words, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)  # as on a machine without CUDA
    with pytest.raises(UsageError) as e:
        Detector.load(str(trained), device=device)
    message = str(e.value)
    assert '\n' not in message and all(w in message for w in words), message


@pytest.mark.parametrize('make, name, words', [
    (lambda im: im.astype(np.float32) / 255, 'image', 'nothing is rescaled'),
    (lambda im: im[:, :, :2], 'image', ', 2)'),
    (lambda im: im[:0], 'image', 'empty'),
    (lambda im: torch.from_numpy(im).float(), 'image', 'torch.float32'),
    (lambda im: im.astype(np.int16), 'image', 'dtype int16'),
    (lambda im: '/nonexistent/picture.jpg', 'image', 'not a readable file'),
    (lambda im: [im, 'not an image'], 'images[1]', 'not a readable file'),
    (lambda im: 3.5, 'image', 'got float'),
])
def test_refused_inputs_name_the_argument_in_one_line(root, detector, make, name, words):
    bgr = cv2.imread(str(_images(root, 1)[0]))
    with pytest.raises(UsageError) as e:
        detector(make(bgr))
    message = str(e.value)
    assert message.startswith(f'{name}: ') and words in message and '\n' not in message


def test_a_corrupt_file_is_a_data_error(root, detector, tmp_path):
    bad = tmp_path / 'cut.jpg'
    bad.write_bytes(_images(root, 1)[0].read_bytes()[:500])
    with pytest.raises(DataError, match=r'cut\.jpg is corrupt'):
        detector(str(bad))


def test_overrides_and_results(root, trained, detector):
    im = cv2.imread(str(_images(root, 1)[0]))
    full = detector(im)
    capped = Detector.load(str(trained), max_per_image=3)(im)
    assert len(full) > 3 and len(capped) == 3
    np.testing.assert_array_equal(np.sort(capped.scores), np.sort(full.scores)[-3:])
    strict = Detector.load(str(trained), score_thresh=0.3)(im)
    assert (strict.scores > 0.3).all()
    coco = full.to_coco(7, file_name='x.jpg')
    x1, y1, x2, y2 = full.boxes[0].tolist()
    assert coco[0]['image_id'] == 7 and coco[0]['file_name'] == 'x.jpg'
    assert coco[0]['bbox'] == pytest.approx([x1, y1, x2 - x1 + 1, y2 - y1 + 1])
    assert coco[0]['category_name'] == full.class_names[0]
    drawn = full.draw(im, score=0.0)
    assert drawn.shape == im.shape and not np.array_equal(drawn, im)
    assert np.array_equal(im, cv2.imread(str(_images(root, 1)[0])))  # the input is left alone
    assert repr(detector).startswith('Detector(') and detector.settings.net == 'tiny'


_ALONE = '''
import json, sys
import cv2
from faster_rcnn import Detector
det = Detector.load(sys.argv[1])
out = []
for p in sys.argv[2:]:
    d = det(cv2.imread(p))
    out.append([d.boxes.tolist(), d.scores.tolist(), d.labels.tolist()])
print(json.dumps(out))
'''


def _alone(model: Path, images: list[Path]) -> list:
    proc = subprocess.run([sys.executable, '-c', _ALONE, str(model), *map(str, images)], capture_output=True,
                          text=True, env=_env(), cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_two_detectors_alternate_in_one_process_each_as_alone(root, trained, tmp_path):
    contents = torch.load(trained, map_location='cpu', weights_only=True)
    record = contents['config']
    # The same weights recorded with another normalisation, test scale and anchor scales (as many anchors).
    record['model']['PIXEL_MEANS'] = [[[90.0, 100.0, 140.0]]]
    record['model']['ANCHOR_SCALES'] = [1.5, 3.0, 6.0, 12.0]
    record['test']['SCALES'] = [200]
    other = tmp_path / 'other.pth'
    save_atomic(contents, str(other))
    images = _images(root, 3)
    alone_a, alone_b = _alone(trained, images), _alone(other, images)
    assert alone_a != alone_b  # the records make a difference
    a, b = Detector.load(str(trained)), Detector.load(str(other))
    assert a.settings.input.scales == (160,) and b.settings.input.scales == (200,)
    for _ in range(2):
        for det, alone in ((a, alone_a), (b, alone_b)):
            got = [det(cv2.imread(str(p))) for p in images]
            assert [[d.boxes.tolist(), d.scores.tolist(), d.labels.tolist()] for d in got] == alone
