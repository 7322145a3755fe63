"""Writers of region features in the layouts vision-language code reads (docs/features.md has the table):

- ``butd-tsv``: one TSV, 6 columns (image_id, image_w, image_h, num_boxes, boxes, features): bottom-up-attention.
- ``lxmert-tsv``: one TSV, 10 columns (img_id, img_h, img_w, objects_id, objects_conf, attrs_id, attrs_conf,
  num_boxes, boxes, features): LXMERT, py-bottom-up-attention.
- ``npz``: ``<out>_att/<id>.npz['feat']``, ``<out>_fc/<id>.npy`` (the mean), ``<out>_box/<id>.npy``:
  ImageCaptioning.pytorch.
- ``h5``: ``<out>`` with ``image_features``, ``image_bb``, ``spatial_features`` and ``<stem>_imgid2idx.pkl``:
  bottom-up-attention-vqa.
- ``mmf``: ``<out>/<id>.npy`` and ``<out>/<id>_info.npy`` (a dict): MMF.

Every writer survives a kill: a TSV row is appended whole (write, flush, fsync) and a partial last line left by a
kill is cut on the next start; per-image files are written to a temporary name, synced and renamed; h5 rows are
staged as per-image files in ``<out>.parts/`` and the h5 file is assembled from them at the end (then renamed).
``done()`` says which images a previous run finished, so the same command resumes without writing one twice.
Arrays are base64 of raw little-endian C-order bytes in the TSVs (float32; LXMERT's ids int64).
"""
from __future__ import annotations

import base64
import io
import os
import os.path as osp
import pickle
import shutil
from collections.abc import Sequence
from typing import IO, Any

import numpy as np

from ..errors import DataError, UsageError
from .region_features import RegionFeatures

__all__ = ['FORMATS', 'FeatureWriter', 'make_writer', 'spatial_features']

FORMATS = ('butd-tsv', 'lxmert-tsv', 'npz', 'h5', 'mmf')


def _b64(a: np.ndarray, dtype: type) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=np.dtype(dtype).newbyteorder('<')).tobytes()).decode('ascii')


def _atomic_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all (temporary file, fsync, rename)."""
    tmp = f'{path}.tmp.{os.getpid()}'
    with open(tmp, 'wb') as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _npy_bytes(a: np.ndarray | dict[str, object], allow_pickle: bool = False) -> bytes:
    """The .npy bytes of an array, or of a dict as a 0-d object array (what np.save makes of it; needs pickle)."""
    buf = io.BytesIO()
    np.save(buf, np.asanyarray(a), allow_pickle=allow_pickle)
    return buf.getvalue()


def spatial_features(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """bottom-up-attention-vqa's 6 box features (N, 6): x1/w, y1/h, x2/w, y2/h, (x2 - x1)/w, (y2 - y1)/h."""
    b = boxes.astype(np.float64)
    w, h = float(width), float(height)
    out = np.stack([b[:, 0] / w, b[:, 1] / h, b[:, 2] / w, b[:, 3] / h, (b[:, 2] - b[:, 0]) / w,
                    (b[:, 3] - b[:, 1]) / h], 1)
    return out.astype(np.float32)


class FeatureWriter:
    """One output. ``rows``: written by one process from rows made anywhere (``row`` then ``append``), in the
    run's order; otherwise every process writes its own images (``write``) and the main one calls ``finish``."""

    rows = False

    def done(self) -> set[str]:
        """The image ids a previous run finished (repairing what a kill left half written)."""
        raise NotImplementedError

    def row(self, image_id: str, r: RegionFeatures) -> str:
        raise NotImplementedError

    def append(self, line: str) -> None:
        raise NotImplementedError

    def write(self, image_id: str, r: RegionFeatures) -> None:
        raise NotImplementedError

    def finish(self, image_ids: Sequence[str], complete: bool) -> None:
        """After the run (the main process): ``image_ids`` every id written, in the run's order; ``complete``
        whether no image was skipped."""

    def close(self) -> None:
        pass


class _TsvWriter(FeatureWriter):
    rows = True

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: IO[bytes] | None = None

    def done(self) -> set[str]:
        if not osp.isfile(self.path):
            return set()
        with open(self.path, 'rb') as f:
            data = f.read()
        end = data.rfind(b'\n') + 1
        if end != len(data):  # a row cut by a kill: drop it, it is written again
            with open(self.path, 'r+b') as f:
                f.truncate(end)
                f.flush()
                os.fsync(f.fileno())
        return {line.split(b'\t', 1)[0].decode() for line in data[:end].splitlines() if line}

    def append(self, line: str) -> None:
        if self._file is None:
            self._file = open(self.path, 'ab')
        self._file.write(line.encode('ascii'))
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class ButdTsvWriter(_TsvWriter):
    """generate_tsv.py's rows: image_id, image_w, image_h, num_boxes, base64 float32 boxes (N, 4) and features."""

    def row(self, image_id: str, r: RegionFeatures) -> str:
        h, w = r.image_size
        return '\t'.join([image_id, str(w), str(h), str(len(r)), _b64(r.boxes, np.float32),
                          _b64(r.features, np.float32)]) + '\n'


class LxmertTsvWriter(_TsvWriter):
    """LXMERT's rows (h before w); ids 0-based without background / "no attribute", int64; zeros without an
    attribute head."""

    def row(self, image_id: str, r: RegionFeatures) -> str:
        h, w = r.image_size
        n = len(r)
        attrs = (r.attributes - 1) if r.attributes is not None else np.zeros(n, np.int64)
        attr_conf = r.attribute_scores if r.attribute_scores is not None else np.zeros(n, np.float32)
        return '\t'.join([image_id, str(h), str(w), _b64(r.objects - 1, np.int64), _b64(r.object_scores, np.float32),
                          _b64(attrs, np.int64), _b64(attr_conf, np.float32), str(n), _b64(r.boxes, np.float32),
                          _b64(r.features, np.float32)]) + '\n'


class NpzWriter(FeatureWriter):
    """ImageCaptioning.pytorch's folders ``<out>_att``, ``<out>_fc``, ``<out>_box``; the box file is written last,
    so it marks an image done."""

    def __init__(self, out: str) -> None:
        self.att, self.fc, self.box = f'{out}_att', f'{out}_fc', f'{out}_box'
        for d in (self.att, self.fc, self.box):
            os.makedirs(d, exist_ok=True)

    def done(self) -> set[str]:
        return {f[:-4] for f in os.listdir(self.box) if f.endswith('.npy')}

    def write(self, image_id: str, r: RegionFeatures) -> None:
        buf = io.BytesIO()
        np.savez_compressed(buf, feat=r.features.astype(np.float32))
        _atomic_bytes(osp.join(self.att, f'{image_id}.npz'), buf.getvalue())
        _atomic_bytes(osp.join(self.fc, f'{image_id}.npy'), _npy_bytes(r.features.mean(0).astype(np.float32)))
        _atomic_bytes(osp.join(self.box, f'{image_id}.npy'), _npy_bytes(r.boxes.astype(np.float32)))


class MmfWriter(FeatureWriter):
    """MMF's ``<id>.npy`` (N, D) float32 and ``<id>_info.npy`` (a pickled dict, written last)."""

    def __init__(self, out: str) -> None:
        self.out = out
        os.makedirs(out, exist_ok=True)

    def done(self) -> set[str]:
        return {f[:-len('_info.npy')] for f in os.listdir(self.out) if f.endswith('_info.npy')}

    def write(self, image_id: str, r: RegionFeatures) -> None:
        h, w = r.image_size
        info = {'bbox': r.boxes.astype(np.float32), 'num_boxes': len(r), 'objects': r.objects.astype(np.int64),
                'cls_prob': r.cls_prob.astype(np.float32), 'image_width': int(w), 'image_height': int(h)}
        _atomic_bytes(osp.join(self.out, f'{image_id}.npy'), _npy_bytes(r.features.astype(np.float32)))
        _atomic_bytes(osp.join(self.out, f'{image_id}_info.npy'), _npy_bytes(info, allow_pickle=True))


class H5Writer(FeatureWriter):
    """bottom-up-attention-vqa's hdf5 (a fixed number of boxes): rows staged in ``<out>.parts/``, assembled at the
    end into ``<out>`` (in the run's order) and ``<stem>_imgid2idx.pkl``; the parts are removed when no image
    was skipped (else kept, so that the same command finishes the job)."""

    def __init__(self, out: str, num_boxes: int) -> None:
        self.out, self.num_boxes = out, num_boxes
        self.parts = f'{out}.parts'
        os.makedirs(self.parts, exist_ok=True)

    def done(self) -> set[str]:
        return {f[:-4] for f in os.listdir(self.parts) if f.endswith('.npz')}

    def write(self, image_id: str, r: RegionFeatures) -> None:
        if len(r) != self.num_boxes:
            raise DataError(f'image {image_id}: {len(r)} boxes, and the h5 file holds {self.num_boxes} per image; '
                            'pass boxes of that count or use another --format')
        h, w = r.image_size
        buf = io.BytesIO()
        np.savez(buf, boxes=r.boxes.astype(np.float32), features=r.features.astype(np.float32),
                 size=np.array([h, w], np.int64))
        _atomic_bytes(osp.join(self.parts, f'{image_id}.npz'), buf.getvalue())

    def finish(self, image_ids: Sequence[str], complete: bool) -> None:
        import h5py
        tmp = f'{self.out}.tmp.{os.getpid()}'
        index: dict = {}
        with h5py.File(tmp, 'w') as f:
            # (image_features, image_bb, spatial_features), made once the feature width is known.
            datasets: tuple[Any, Any, Any] | None = None
            for row, image_id in enumerate(image_ids):
                with np.load(osp.join(self.parts, f'{image_id}.npz'), allow_pickle=False) as part:
                    boxes, features, (h, w) = part['boxes'], part['features'], part['size']
                if datasets is None:
                    n, k, d = len(image_ids), self.num_boxes, features.shape[1]
                    datasets = (f.create_dataset('image_features', (n, k, d), 'f'),
                                f.create_dataset('image_bb', (n, k, 4), 'f'),
                                f.create_dataset('spatial_features', (n, k, 6), 'f'))
                feats, bboxes, spatial = datasets
                feats[row], bboxes[row], spatial[row] = features, boxes, spatial_features(boxes, int(w), int(h))
                index[int(image_id) if image_id.isdigit() else image_id] = row
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())
        os.replace(tmp, self.out)
        _atomic_bytes(osp.splitext(self.out)[0] + '_imgid2idx.pkl', pickle.dumps(index))
        if complete:
            shutil.rmtree(self.parts, ignore_errors=True)


def make_writer(fmt: str, out: str, num_boxes: tuple[int, int]) -> FeatureWriter:
    """The writer of ``fmt`` at ``out``; ``num_boxes`` the (min, max) boxes per image (h5 needs min == max)."""
    if fmt not in FORMATS:
        raise UsageError(f'--format {fmt}: unknown; expected one of {list(FORMATS)}')
    parent = osp.dirname(osp.abspath(out))
    os.makedirs(parent, exist_ok=True)
    if fmt == 'butd-tsv':
        return ButdTsvWriter(out)
    if fmt == 'lxmert-tsv':
        return LxmertTsvWriter(out)
    if fmt == 'npz':
        return NpzWriter(out)
    if fmt == 'mmf':
        return MmfWriter(out)
    if num_boxes[0] != num_boxes[1]:
        raise UsageError(f'--boxes {num_boxes[0]}-{num_boxes[1]}: the h5 format holds a fixed number of boxes per '
                         'image; pass --boxes K (e.g. --boxes 36)')
    try:
        import h5py  # noqa: F401  (an optional dependency: the 'features' extra)
    except ImportError:
        raise UsageError("--format h5 needs the h5py package; install it (pip install h5py, or the project's "
                         "'features' extra)") from None
    return H5Writer(out, num_boxes[0])
